package clusters

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// AuditLog is the part of the store the audit route reads.
type AuditLog interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, string, error)
}

// auditEntry is an audit entry as the API shows it.
type auditEntry struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Who       string    `json:"who"`
	Cluster   string    `json:"cluster,omitempty"`
	Verb      string    `json:"verb"`
	Resource  string    `json:"resource,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name,omitempty"`
	Outcome   int       `json:"outcome"`
	RequestID string    `json:"requestId,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

type auditPage struct {
	Items    []auditEntry `json:"items"`
	Continue string       `json:"continue,omitempty"`
}

// listAudit serves GET /api/v1/audit: newest first, filtered by who, cluster, verb and time, one page at a time.
func (f *Function) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter := store.AuditFilter{Who: q.Get("who"), Cluster: q.Get("cluster"), Verb: q.Get("verb"),
		Continue: q.Get("continue"), Limit: 100}
	for name, dst := range map[string]*time.Time{"since": &filter.Since, "until": &filter.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
					"%s must be an RFC 3339 time like 2026-12-01T10:00:00Z, got %q", name, v).WithField(name))
				return
			}
			*dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"limit must be a number from 1 to 500, got %q", v).WithField("limit"))
			return
		}
		filter.Limit = n
	}
	entries, next, err := f.auditLog.ListAudit(r.Context(), filter)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	page := auditPage{Items: make([]auditEntry, 0, len(entries)), Continue: next}
	for _, e := range entries {
		page.Items = append(page.Items, auditEntry{ID: e.ID, Time: e.Time, Who: e.Who, Cluster: e.Cluster,
			Verb: e.Verb, Resource: e.Resource, Namespace: e.Namespace, Name: e.Name, Outcome: e.Outcome,
			RequestID: e.RequestID, Detail: e.Detail})
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
}

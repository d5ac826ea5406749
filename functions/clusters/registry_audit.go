package clusters

import (
	"context"
	"net/http"
	"strings"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/store"
)

// Who names the registry changes kitefn makes on its own, without a caller.
const (
	whoReconcile   = "system:reconcile"
	whoLocalImport = "system:local-import"
)

// audited records one entry per request to a registry route: verb on clusters, named by the path's {ref}
// until the handler resolves the record, with the status answered as the outcome.
func (f *Function) audited(verb string, h http.HandlerFunc) http.HandlerFunc {
	if f.audit == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ref := r.PathValue("ref")
		access.Audited(f.audit, store.AuditEntry{Verb: verb, Resource: "clusters", Cluster: ref, Name: ref}, h)(w, r)
	}
}

// noteCluster names the cluster a registry request acts on in its audit entry.
func noteCluster(ctx context.Context, name string) {
	a := access.AuditOf(ctx)
	a.Cluster, a.Name = name, name
}

// noteUpdate says in the audit entry which fields an update asks to change: the field names only, never the
// kubeconfig or any other value.
func noteUpdate(ctx context.Context, req updateRequest) {
	var fields []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"name", req.Name != nil}, {"labels", req.Labels != nil}, {"prometheus", req.PrometheusURL != nil},
		{"kubeconfig", req.Kubeconfig != nil}} {
		if f.set {
			fields = append(fields, f.name)
		}
	}
	access.AuditOf(ctx).Detail = strings.Join(fields, ", ")
}

// noteChanged replaces the requested fields by the ones the update changed.
func noteChanged(ctx context.Context, before, after *store.Cluster, changed []string) {
	a := access.AuditOf(ctx)
	switch {
	case len(changed) == 0:
		a.Detail = "no change"
	case before.Name != after.Name:
		a.Detail = strings.Join(changed, ", ") + " (renamed to " + after.Name + ")"
	default:
		a.Detail = strings.Join(changed, ", ")
	}
}

// recordImport writes one entry per context of an import, with that context's own outcome, in place of the
// request's single entry.
func (f *Function) recordImport(ctx context.Context, resp importResponse, who string) {
	access.AuditOf(ctx).Off = true
	for _, res := range resp.Results {
		e := store.AuditEntry{Who: who, Cluster: res.Name, Verb: "import", Resource: "clusters", Name: res.Name,
			Outcome: res.Status, Detail: "context " + res.Context}
		if res.Error != nil {
			e.Detail += ": " + res.Error.Code
		}
		f.record(ctx, e)
	}
}

// recordReconcile writes the reconcile's reset of a failed discovery to pending, when it tried one.
func (f *Function) recordReconcile(ctx context.Context, c *store.Cluster, err error) {
	e := store.AuditEntry{Cluster: c.Name, Verb: "reconcile", Resource: "clusters", Name: c.Name,
		Outcome: outcome(err, http.StatusOK), Detail: "prometheus: failed → pending (discovery runs again)"}
	if _, ok := access.CallerFrom(ctx); !ok {
		e.Who = whoReconcile // the one-process loop, or a PingSource's event
	}
	f.record(ctx, e)
}

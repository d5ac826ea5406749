package fire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kitefn/kitefn/shared/store"
)

// The audit log is P_audit/<id>, the ID also in field "id". ListAudit is one range query ordered by "id"
// (single-field indexes, which Firestore keeps by itself); Who, Cluster and Verb are checked on the documents
// read, so no composite index has to be deployed.

type auditDoc struct {
	ID        string    `firestore:"id"`
	Time      time.Time `firestore:"time"`
	Who       string    `firestore:"who"`
	Cluster   string    `firestore:"cluster"`
	Verb      string    `firestore:"verb"`
	Resource  string    `firestore:"resource"`
	Namespace string    `firestore:"namespace"`
	Name      string    `firestore:"name"`
	Outcome   int       `firestore:"outcome"`
	RequestID string    `firestore:"requestId"`
	Detail    string    `firestore:"detail"`
}

func (s *Store) audit() *firestore.CollectionRef { return s.client.Collection(s.prefix + "_audit") }

// AppendAudit implements store.Audit: Create fails on a taken ID (another replica, the same microsecond), and
// the next stamp is tried.
func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	rec, err := store.PrepareAudit(e)
	if err != nil {
		return err
	}
	stamps, err := store.AuditStamps(rec.Time)
	if err != nil {
		return err
	}
	d := auditDoc{Time: rec.Time, Who: rec.Who, Cluster: rec.Cluster, Verb: rec.Verb, Resource: rec.Resource,
		Namespace: rec.Namespace, Name: rec.Name, Outcome: rec.Outcome, RequestID: rec.RequestID, Detail: rec.Detail}
	for _, n := range stamps {
		d.ID = store.AuditID(n)
		_, err := s.audit().Doc(d.ID).Create(ctx, d)
		if status.Code(err) == codes.AlreadyExists {
			continue
		}
		if err != nil {
			return s.wrap("append audit", err)
		}
		e.ID, e.Time = d.ID, rec.Time
		return nil
	}
	return s.wrap("append audit", errors.New("every audit ID of this microsecond is taken"))
}

// ListAudit implements store.Audit.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, string, error) {
	r, err := f.Range()
	if err != nil {
		return nil, "", err
	}
	out := []*store.AuditEntry{}
	if r.Empty() {
		return out, "", nil
	}
	q := s.audit().Where("id", ">=", store.AuditID(r.Lo)).Where("id", "<", store.AuditID(r.Hi)).
		OrderBy("id", firestore.Desc)
	if f.Who == "" && f.Cluster == "" && f.Verb == "" {
		q = q.Limit(r.Limit + 1)
	}
	it := q.Documents(ctx)
	defer it.Stop()
	for len(out) <= r.Limit {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, "", s.wrap("list audit", err)
		}
		var d auditDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, "", s.wrap("list audit", fmt.Errorf("decode %s: %w", snap.Ref.ID, err))
		}
		e := &store.AuditEntry{ID: d.ID, Time: d.Time.UTC(), Who: d.Who, Cluster: d.Cluster, Verb: d.Verb,
			Resource: d.Resource, Namespace: d.Namespace, Name: d.Name, Outcome: d.Outcome,
			RequestID: d.RequestID, Detail: d.Detail}
		if f.Matches(e) {
			out = append(out, e)
		}
	}
	page, next := store.AuditPage(out, r.Limit)
	return page, next, nil
}

package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kitefn/kitefn/shared/store"
)

// auditBucket maps the ID (zero-padded stamp, see store.AuditStamps) to the JSON entry: key order is time order.
const auditBucket = "audit"

type auditRecord struct {
	Time      time.Time `json:"time"`
	Who       string    `json:"who,omitempty"`
	Cluster   string    `json:"cluster,omitempty"`
	Verb      string    `json:"verb,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name,omitempty"`
	Outcome   int       `json:"outcome"`
	RequestID string    `json:"requestId,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

var errStampsUsed = errors.New("every audit ID of this microsecond is taken")

// AppendAudit implements store.Audit.
func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	rec, err := store.PrepareAudit(e)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return unavailable(fmt.Errorf("append audit: %w", err))
	}
	stamps, err := store.AuditStamps(rec.Time)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(auditRecord{Time: rec.Time, Who: rec.Who, Cluster: rec.Cluster, Verb: rec.Verb,
		Resource: rec.Resource, Namespace: rec.Namespace, Name: rec.Name, Outcome: rec.Outcome,
		RequestID: rec.RequestID, Detail: rec.Detail})
	if err != nil {
		return fmt.Errorf("append audit: encode: %w", err)
	}
	var id string
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(auditBucket))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", auditBucket, err)
		}
		for _, n := range stamps {
			if k := []byte(store.AuditID(n)); b.Get(k) == nil {
				id = string(k)
				return b.Put(k, raw)
			}
		}
		return errStampsUsed
	})
	if err != nil {
		return s.wrap("append audit", err)
	}
	e.ID, e.Time = id, rec.Time
	return nil
}

// ListAudit implements store.Audit: a cursor walks the range backwards from its upper end.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, string, error) {
	r, err := f.Range()
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", unavailable(fmt.Errorf("list audit: %w", err))
	}
	out := []*store.AuditEntry{}
	if r.Empty() {
		return out, "", nil
	}
	lo, hi := []byte(store.AuditID(r.Lo)), []byte(store.AuditID(r.Hi))
	err = s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(auditBucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.Seek(hi) // the first key >= hi, which is past the range
		if k == nil {
			k, v = c.Last()
		}
		for ; k != nil && len(out) <= r.Limit; k, v = c.Prev() {
			if bytes.Compare(k, hi) >= 0 {
				continue
			}
			if bytes.Compare(k, lo) < 0 {
				break
			}
			e, err := decodeAudit(k, v)
			if err != nil {
				return err
			}
			if f.Matches(e) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", s.wrap("list audit", err)
	}
	page, next := store.AuditPage(out, r.Limit)
	return page, next, nil
}

func decodeAudit(k, v []byte) (*store.AuditEntry, error) {
	var rec auditRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode audit %s: %w", k, err)
	}
	return &store.AuditEntry{ID: string(k), Time: rec.Time.UTC(), Who: rec.Who, Cluster: rec.Cluster,
		Verb: rec.Verb, Resource: rec.Resource, Namespace: rec.Namespace, Name: rec.Name, Outcome: rec.Outcome,
		RequestID: rec.RequestID, Detail: rec.Detail}, nil
}

// Package bolt is the single-file store.Store backend, built on go.etcd.io/bbolt. bbolt allows one writer at a
// time and locks its file, so one process owns the registry: fine for a single replica or local development.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kitefn/kitefn/shared/store"
)

// DefaultTimeout is how long Open waits for the file lock held by another process before giving up.
const DefaultTimeout = 2 * time.Second

// backendName is what Name returns and what *store.UnavailableError carries.
const backendName = "bbolt"

const (
	clustersBucket = "clusters" // big-endian uint64 id → JSON record; its sequence allocates IDs
	namesBucket    = "names"    // name → big-endian uint64 id, which keeps names unique
)

// Options tunes Open; the zero value is fine.
type Options struct {
	// Timeout is how long to wait for another process's lock on the file; zero means DefaultTimeout.
	Timeout time.Duration
}

// Store is a store.Store over one bbolt file.
type Store struct {
	db *bbolt.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the bbolt file at path. The parent directory must exist. A file locked by
// another process is reported after Options.Timeout as a *store.UnavailableError, instead of blocking forever.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("open %s: %w", path, err))
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, unavailable(fmt.Errorf("open %s: the file is locked by another process (gave up after %s); "+
			"only one process may use a bbolt store at a time", path, timeout))
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("open %s: %w", path, err))
	}
	// Creating the buckets is a write (an fsync); skip it when they exist, which is every start but the first.
	var ready bool
	_ = db.View(func(tx *bbolt.Tx) error {
		ready = tx.Bucket([]byte(clustersBucket)) != nil && tx.Bucket([]byte(namesBucket)) != nil
		return nil
	})
	if ready {
		return &Store{db: db}, nil
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{clustersBucket, namesBucket} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, unavailable(fmt.Errorf("open %s: %w", path, err))
	}
	return &Store{db: db}, nil
}

// Name implements store.Store.
func (s *Store) Name() string { return backendName }

// Close releases the file lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return unavailable(fmt.Errorf("close: %w", err))
	}
	return nil
}

// Create implements store.Store. The sequence is bumped inside the same write transaction as the record and
// the name, so a failed create rolls all three back and leaves no gap in the IDs.
func (s *Store) Create(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	if err := store.CheckInput(backendName, c); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("create %q: %w", c.Name, err))
	}
	rec := store.NewRecord(c)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		clusters, names := tx.Bucket([]byte(clustersBucket)), tx.Bucket([]byte(namesBucket))
		if names.Get([]byte(rec.Name)) != nil {
			return store.NameTaken(rec.Name)
		}
		id, err := clusters.NextSequence()
		if err != nil {
			return fmt.Errorf("next id: %w", err)
		}
		rec.ID = id
		return put(clusters, names, rec)
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("create %q", c.Name), err)
	}
	return rec, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id uint64) (*store.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("get %d: %w", id, err))
	}
	var out *store.Cluster
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = get(tx.Bucket([]byte(clustersBucket)), id)
		return err
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get %d", id), err)
	}
	return out, nil
}

// GetByName implements store.Store.
func (s *Store) GetByName(ctx context.Context, name string) (*store.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("get %q: %w", name, err))
	}
	var out *store.Cluster
	err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket([]byte(namesBucket)).Get([]byte(name))
		if raw == nil {
			return store.ErrNotFound
		}
		var err error
		out, err = get(tx.Bucket([]byte(clustersBucket)), binary.BigEndian.Uint64(raw))
		return err
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get %q", name), err)
	}
	return out, nil
}

// List implements store.Store; big-endian keys make bbolt's key order the ID order.
func (s *Store) List(ctx context.Context) ([]*store.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("list: %w", err))
	}
	out := []*store.Cluster{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(clustersBucket)).ForEach(func(k, v []byte) error {
			c, err := decode(v)
			if err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("list", err)
	}
	return out, nil
}

// Update implements store.Store. The version check, the rename and the write happen in one transaction.
func (s *Store) Update(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	if err := store.CheckInput(backendName, c); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("update %d: %w", c.ID, err))
	}
	var out *store.Cluster
	err := s.db.Update(func(tx *bbolt.Tx) error {
		clusters, names := tx.Bucket([]byte(clustersBucket)), tx.Bucket([]byte(namesBucket))
		old, err := get(clusters, c.ID)
		if err != nil {
			return err
		}
		rec, err := store.NextVersion(old, c)
		if err != nil {
			return err
		}
		if rec.Name != old.Name {
			if names.Get([]byte(rec.Name)) != nil {
				return store.NameTaken(rec.Name)
			}
			if err := names.Delete([]byte(old.Name)); err != nil {
				return fmt.Errorf("free name %q: %w", old.Name, err)
			}
		}
		out = rec
		return put(clusters, names, rec)
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("update %d", c.ID), err)
	}
	return out, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return unavailable(fmt.Errorf("delete %d: %w", id, err))
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		clusters, names := tx.Bucket([]byte(clustersBucket)), tx.Bucket([]byte(namesBucket))
		old, err := get(clusters, id)
		if err != nil {
			return err
		}
		if err := names.Delete([]byte(old.Name)); err != nil {
			return fmt.Errorf("free name %q: %w", old.Name, err)
		}
		if err := clusters.Delete(idKey(id)); err != nil {
			return fmt.Errorf("delete record: %w", err)
		}
		return nil
	})
	if err != nil {
		return s.wrap(fmt.Sprintf("delete %d", id), err)
	}
	return nil
}

// record is the stored form, its own type so that nothing but this file decides the bytes on disk (the same
// JSON as the first release wrote).
type record struct {
	ID         uint64            `json:"id"`
	Name       string            `json:"name"`
	Server     string            `json:"server"`
	Kubeconfig []byte            `json:"kubeconfig,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Prometheus promRecord        `json:"prometheus"`
	// Impersonate is omitted when false, so records written before it existed read the same.
	Impersonate bool      `json:"impersonate,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	Version     uint64    `json:"version"`
}

type promRecord struct {
	URL       string     `json:"url,omitempty"`
	Status    string     `json:"status"`
	Message   string     `json:"message,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
}

func put(clusters, names *bbolt.Bucket, c *store.Cluster) error {
	raw, err := json.Marshal(record{ID: c.ID, Name: c.Name, Server: c.Server, Kubeconfig: c.Kubeconfig,
		Labels: c.Labels, Prometheus: promRecord{URL: c.Prometheus.URL, Status: string(c.Prometheus.Status),
			Message: c.Prometheus.Message, CheckedAt: c.Prometheus.CheckedAt},
		Impersonate: c.Impersonate, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Version: c.Version})
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if err := clusters.Put(idKey(c.ID), raw); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	if err := names.Put([]byte(c.Name), idKey(c.ID)); err != nil {
		return fmt.Errorf("write name: %w", err)
	}
	return nil
}

func get(clusters *bbolt.Bucket, id uint64) (*store.Cluster, error) {
	raw := clusters.Get(idKey(id))
	if raw == nil {
		return nil, store.ErrNotFound
	}
	c, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", id, err)
	}
	return c, nil
}

// decode copies out of bbolt's memory map, whose bytes are only valid inside the transaction (json.Unmarshal
// copies).
func decode(raw []byte) (*store.Cluster, error) {
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &store.Cluster{ID: rec.ID, Name: rec.Name, Server: rec.Server, Kubeconfig: rec.Kubeconfig,
		Labels: rec.Labels, Prometheus: store.Prometheus{URL: rec.Prometheus.URL,
			Status: store.PrometheusStatus(rec.Prometheus.Status), Message: rec.Prometheus.Message,
			CheckedAt: store.NormTimePtr(rec.Prometheus.CheckedAt)},
		Impersonate: rec.Impersonate, CreatedAt: rec.CreatedAt.UTC(), UpdatedAt: rec.UpdatedAt.UTC(), Version: rec.Version}, nil
}

func idKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, id)
}

// wrap adds context, and turns anything that is not a not-found, a conflict or refused input into a
// *store.UnavailableError.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%s %s: %w", backendName, op, err)
	}
	if errors.Is(err, bbolt.ErrKeyTooLarge) || errors.Is(err, bbolt.ErrValueTooLarge) {
		return fmt.Errorf("%s %s: %w: %w", backendName, op, store.ErrInvalid, err) // refused input, not an outage
	}
	return unavailable(fmt.Errorf("%s: %w", op, err))
}

func unavailable(err error) error {
	return &store.UnavailableError{Backend: backendName, Err: err}
}

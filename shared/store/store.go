// Package store holds the cluster registry: the record every function reads, and the small interface its
// backends (bbolt, Firestore, DynamoDB) implement. Backends treat the kubeconfig as opaque bytes: it is sealed
// before it reaches them.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/semaphore"
)

// PrometheusStatus is where discovery of a cluster's Prometheus stands.
type PrometheusStatus string

// The states a cluster's Prometheus can be in.
const (
	PrometheusPending  PrometheusStatus = "pending"
	PrometheusFound    PrometheusStatus = "found"
	PrometheusNotFound PrometheusStatus = "not_found"
	PrometheusFailed   PrometheusStatus = "failed"
	PrometheusManual   PrometheusStatus = "manual"
)

// Prometheus is what is known about a cluster's Prometheus.
type Prometheus struct {
	URL       string
	Status    PrometheusStatus
	Message   string
	CheckedAt *time.Time
}

// Cluster is one registered cluster as the backends keep it. Kubeconfig holds sealed (encrypted) bytes. It has
// no JSON form on purpose: each backend writes its own stored type, the API answers with shared/clusterapi and
// events carry events.Cluster, so none of the three formats can change by accident with another.
type Cluster struct {
	ID         uint64
	Name       string
	Server     string
	Kubeconfig []byte
	Labels     map[string]string
	Prometheus Prometheus
	// Impersonate makes kitefn act on the cluster as each caller (Impersonate-User/Group) instead of as the
	// kubeconfig's own identity, so the cluster's RBAC decides and its audit log names the person.
	Impersonate bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Version starts at 1 and is bumped by every successful Update; Update compares it (compare-and-set).
	Version uint64
}

// Clone returns a deep copy, so callers can change a record without touching one a backend or cache holds.
func (c *Cluster) Clone() *Cluster {
	if c == nil {
		return nil
	}
	out := *c
	out.Kubeconfig = append([]byte(nil), c.Kubeconfig...)
	if c.Labels != nil {
		out.Labels = make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			out.Labels[k] = v
		}
	}
	if c.Prometheus.CheckedAt != nil {
		t := *c.Prometheus.CheckedAt
		out.Prometheus.CheckedAt = &t
	}
	return &out
}

// Store is the cluster registry. Every backend passes the same conformance suite (shared/store/storetest).
type Store interface {
	// Tokens and Audit live in the same database: the registry's store is the platform's only one.
	Tokens
	Audit
	// Create allocates the next ID (1, 2, 3, … with no gaps from failed creates where the backend can avoid
	// them), sets Version to 1 and both timestamps, and stores the record. A taken name is a *ConflictError.
	Create(ctx context.Context, c *Cluster) (*Cluster, error)
	// Get returns the record with this ID, or ErrNotFound.
	Get(ctx context.Context, id uint64) (*Cluster, error)
	// GetByName returns the record with this name, or ErrNotFound.
	GetByName(ctx context.Context, name string) (*Cluster, error)
	// List returns every record, ordered by ID.
	List(ctx context.Context) ([]*Cluster, error)
	// Update replaces the record if c.Version is still the stored version, and returns it with Version+1 and a
	// new UpdatedAt. A stale version or a taken name (on rename) is a *ConflictError; a missing record ErrNotFound.
	Update(ctx context.Context, c *Cluster) (*Cluster, error)
	// Delete removes the record and frees its name, or returns ErrNotFound.
	Delete(ctx context.Context, id uint64) error
	// Name names the backend in errors and logs ("bbolt", "firestore", "dynamodb").
	Name() string
	Close() error
}

// classError is a store error class that knows what it means over HTTP: shared/httpapi honours HTTPStatus and
// Code on any error without importing the store.
type classError struct {
	msg    string
	status int
	code   string
}

func (e *classError) Error() string   { return e.msg }
func (e *classError) HTTPStatus() int { return e.status }
func (e *classError) Code() string    { return e.code }

// ErrNotFound is returned (possibly wrapped) when no record matches.
var ErrNotFound error = &classError{msg: "cluster not found", status: 404, code: "not_found"}

// ErrConflict is matched by every *ConflictError through errors.Is.
var ErrConflict = errors.New("conflict")

// ConflictError says why a write lost: the name is taken, or the record changed since it was read.
type ConflictError struct {
	Reason string
}

func (e *ConflictError) Error() string        { return "conflict: " + e.Reason }
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// HTTPStatus, Code and PublicMessage tell the API how to answer: 409 with the reason.
func (e *ConflictError) HTTPStatus() int       { return 409 }
func (e *ConflictError) Code() string          { return "conflict" }
func (e *ConflictError) PublicMessage() string { return e.Reason }

// NameTaken is the conflict for a duplicate cluster name.
func NameTaken(name string) error {
	return &ConflictError{Reason: fmt.Sprintf("a cluster named %q already exists", name)}
}

// StaleVersion is the conflict for a compare-and-set that lost.
func StaleVersion(id, want uint64) error {
	return &ConflictError{Reason: fmt.Sprintf("cluster %d was changed since version %d was read", id, want)}
}

// ErrInvalid marks input no backend accepts (nil record, empty or oversized name): neither a conflict nor an
// outage, so a 400.
var ErrInvalid error = &classError{msg: "invalid cluster", status: 400, code: "invalid"}

// ErrTooLarge marks a record over the backend's size limit (DynamoDB's 400 KB item): a 413. It also matches
// ErrInvalid.
var ErrTooLarge error = &tooLarge{classError{msg: "cluster record too large", status: 413, code: "payload_too_large"}}

type tooLarge struct{ classError }

func (e *tooLarge) Is(target error) bool { return target == ErrInvalid }

// CheckInput refuses records no backend can store; backends call it first so the error is the same everywhere.
func CheckInput(backend string, c *Cluster) error {
	switch {
	case c == nil:
		return fmt.Errorf("%s: %w: nil", backend, ErrInvalid)
	case c.Name == "":
		return fmt.Errorf("%s: %w: the name is empty", backend, ErrInvalid)
	}
	return nil
}

// Now is the backends' clock: UTC with microsecond precision, the finest every backend keeps (Firestore's), so
// the record Create returns equals the one Get reads back.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// NormTimePtr brings a caller's time to the same precision and zone as Now.
func NormTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC().Truncate(time.Microsecond)
	return &v
}

// NewRecord is what Create stores: a copy of c with Version 1 and both timestamps set to now.
func NewRecord(c *Cluster) *Cluster {
	rec := c.Clone()
	now := Now()
	rec.Version = 1
	rec.CreatedAt, rec.UpdatedAt = now, now
	rec.Prometheus.CheckedAt = NormTimePtr(rec.Prometheus.CheckedAt)
	return rec
}

// NextVersion is what Update stores over old: a copy of c with the version bumped, CreatedAt kept and
// UpdatedAt now — or the stale-version conflict when c was read before old was written.
func NextVersion(old, c *Cluster) (*Cluster, error) {
	if old.Version != c.Version {
		return nil, StaleVersion(c.ID, c.Version)
	}
	rec := c.Clone()
	rec.Version = old.Version + 1
	rec.CreatedAt = old.CreatedAt
	rec.UpdatedAt = Now()
	rec.Prometheus.CheckedAt = NormTimePtr(rec.Prometheus.CheckedAt)
	return rec, nil
}

// WriteSlot serialises one instance's writes. Unlike a sync.Mutex, waiting for it ends with the context, so a
// request that gave up does not queue behind others.
type WriteSlot struct{ sem *semaphore.Weighted }

// NewWriteSlot makes a free slot.
func NewWriteSlot() WriteSlot { return WriteSlot{sem: semaphore.NewWeighted(1)} }

// Lock takes the slot or returns ctx's error.
func (w WriteSlot) Lock(ctx context.Context) error { return w.sem.Acquire(ctx, 1) }

// Unlock frees the slot.
func (w WriteSlot) Unlock() { w.sem.Release(1) }

// ErrUnavailable is matched by every *UnavailableError through errors.Is.
var ErrUnavailable = errors.New("store unavailable")

// UnavailableError says the backend could not be reached or failed; the API maps it to 503 naming Backend.
type UnavailableError struct {
	Backend string
	Err     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s store unavailable: %v", e.Backend, e.Err)
}
func (e *UnavailableError) Unwrap() error        { return e.Err }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// HTTPStatus, Code and PublicMessage: a 503 naming the backend, never the cause (that goes to the log).
func (e *UnavailableError) HTTPStatus() int { return 503 }
func (e *UnavailableError) Code() string    { return "store_unavailable" }
func (e *UnavailableError) PublicMessage() string {
	return fmt.Sprintf("the %s store is unavailable, try again later", e.Backend)
}

// WithTimeout bounds every call to s that arrives without a deadline: the Firestore and DynamoDB clients retry
// an unreachable server for as long as the context allows, and a request must fail with a 503 instead of hanging.
func WithTimeout(s Store, d time.Duration) Store {
	if d <= 0 {
		return s
	}
	return &timeoutStore{Store: s, d: d}
}

type timeoutStore struct {
	Store
	d time.Duration
}

func (t *timeoutStore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, t.d)
}

func (t *timeoutStore) Create(ctx context.Context, c *Cluster) (*Cluster, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.Create(ctx, c)
}

func (t *timeoutStore) Get(ctx context.Context, id uint64) (*Cluster, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.Get(ctx, id)
}

func (t *timeoutStore) GetByName(ctx context.Context, name string) (*Cluster, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.GetByName(ctx, name)
}

func (t *timeoutStore) List(ctx context.Context) ([]*Cluster, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.List(ctx)
}

func (t *timeoutStore) Update(ctx context.Context, c *Cluster) (*Cluster, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.Update(ctx, c)
}

func (t *timeoutStore) Delete(ctx context.Context, id uint64) error {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.Delete(ctx, id)
}

func (t *timeoutStore) CreateToken(ctx context.Context, tok *Token) (*Token, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.CreateToken(ctx, tok)
}

func (t *timeoutStore) TokenByHash(ctx context.Context, hash []byte) (*Token, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.TokenByHash(ctx, hash)
}

func (t *timeoutStore) ListTokens(ctx context.Context) ([]*Token, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.ListTokens(ctx)
}

func (t *timeoutStore) DeleteToken(ctx context.Context, name string) error {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.DeleteToken(ctx, name)
}

func (t *timeoutStore) AppendAudit(ctx context.Context, e *AuditEntry) error {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.AppendAudit(ctx, e)
}

func (t *timeoutStore) ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, string, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.Store.ListAudit(ctx, f)
}

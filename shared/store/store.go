// Package store holds the cluster registry: the record every function reads, and the small interface its
// backends (bbolt, Firestore, DynamoDB) implement. Backends treat the kubeconfig as opaque bytes: it is sealed
// before it reaches them.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
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
	URL       string           `json:"url,omitempty"`
	Status    PrometheusStatus `json:"status"`
	Message   string           `json:"message,omitempty"`
	CheckedAt *time.Time       `json:"checkedAt,omitempty"`
}

// Cluster is one registered cluster. Kubeconfig holds sealed (encrypted) bytes and is never serialised to
// clients: the JSON tag hides it, and API code returns a public view anyway.
type Cluster struct {
	ID         uint64            `json:"id"`
	Name       string            `json:"name"`
	Server     string            `json:"server"`
	Kubeconfig []byte            `json:"-"`
	Labels     map[string]string `json:"labels,omitempty"`
	Prometheus Prometheus        `json:"prometheus"`
	CreatedAt  time.Time         `json:"createdAt"`
	UpdatedAt  time.Time         `json:"updatedAt"`
	// Version starts at 1 and is bumped by every successful Update; Update compares it (compare-and-set).
	Version uint64 `json:"version"`
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

// ErrNotFound is returned (possibly wrapped) when no record matches.
var ErrNotFound = errors.New("cluster not found")

// ErrConflict is matched by every *ConflictError through errors.Is.
var ErrConflict = errors.New("conflict")

// ConflictError says why a write lost: the name is taken, or the record changed since it was read.
type ConflictError struct {
	Reason string
}

func (e *ConflictError) Error() string        { return "conflict: " + e.Reason }
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// NameTaken is the conflict for a duplicate cluster name.
func NameTaken(name string) error {
	return &ConflictError{Reason: fmt.Sprintf("a cluster named %q already exists", name)}
}

// StaleVersion is the conflict for a compare-and-set that lost.
func StaleVersion(id, want uint64) error {
	return &ConflictError{Reason: fmt.Sprintf("cluster %d was changed since version %d was read", id, want)}
}

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

// Package clusterapi is a registered cluster as the HTTP API shows it. It is its own type, not the stored
// record (shared/store) nor the event payload (events): a JSON tag changed in one of the three cannot silently
// change the other two, and the kubeconfig has no field here to leak through.
package clusterapi

import (
	"time"

	"github.com/kitefn/kitefn/shared/store"
)

// Prometheus is what is known about a cluster's Prometheus.
type Prometheus struct {
	URL       string     `json:"url,omitempty"`
	Status    string     `json:"status"`
	Message   string     `json:"message,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
}

// Cluster is the public view of a registered cluster.
type Cluster struct {
	ID         uint64            `json:"id"`
	Name       string            `json:"name"`
	Server     string            `json:"server"`
	Labels     map[string]string `json:"labels,omitempty"`
	Prometheus Prometheus        `json:"prometheus"`
	// Impersonate: kitefn acts on the cluster as each caller, not as its kubeconfig's identity.
	Impersonate bool      `json:"impersonate"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	Version     uint64    `json:"version"`
}

// FromRecord is the public view of a stored record (nil for nil).
func FromRecord(rec *store.Cluster) *Cluster {
	if rec == nil {
		return nil
	}
	c := rec.Clone()
	return &Cluster{ID: c.ID, Name: c.Name, Server: c.Server, Labels: c.Labels,
		Prometheus: PrometheusFromRecord(c.Prometheus), Impersonate: c.Impersonate, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Version: c.Version}
}

// PrometheusFromRecord is the public view of a record's Prometheus state.
func PrometheusFromRecord(p store.Prometheus) Prometheus {
	return Prometheus{URL: p.URL, Status: string(p.Status), Message: p.Message, CheckedAt: p.CheckedAt}
}

// List is the public view of records, never nil (an empty registry is [] on the wire).
func List(recs []*store.Cluster) []*Cluster {
	out := make([]*Cluster, 0, len(recs))
	for _, r := range recs {
		out = append(out, FromRecord(r))
	}
	return out
}

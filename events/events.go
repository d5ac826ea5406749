// Package events defines kitefn's CloudEvents (types, source, data) and sends them to K_SINK, or in one-process
// mode to the functions of the same process, over the same CloudEvents HTTP code path.
package events

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kitefn/kitefn/shared/store"
)

// CloudEvent types, in reverse-DNS form as the CloudEvents spec recommends.
const (
	TypeClusterCreated       = "dev.kitefn.cluster.created"
	TypeClusterUpdated       = "dev.kitefn.cluster.updated"
	TypeClusterDeleted       = "dev.kitefn.cluster.deleted"
	TypePrometheusDiscovered = "dev.kitefn.prometheus.discovered"
)

// Sources of kitefn's events.
const (
	SourceClusters  = "/kitefn/clusters"
	SourceDiscovery = "/kitefn/discovery"
)

// ClusterData is the data of every cluster event: the public cluster (never its kubeconfig) and, for updates,
// which fields changed so receivers can ignore what they don't care about.
type ClusterData struct {
	Cluster *Cluster `json:"cluster"`
	Changed []string `json:"changed,omitempty"`
}

// Cluster is a cluster as events carry it: its own type, so the event format changes only when this file does
// (not with the stored record or the HTTP API).
type Cluster struct {
	ID          uint64            `json:"id"`
	Name        string            `json:"name"`
	Server      string            `json:"server"`
	Labels      map[string]string `json:"labels,omitempty"`
	Prometheus  Prometheus        `json:"prometheus"`
	Impersonate bool              `json:"impersonate"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	Version     uint64            `json:"version"`
}

// Prometheus is a cluster's Prometheus state in an event.
type Prometheus struct {
	URL       string     `json:"url,omitempty"`
	Status    string     `json:"status"`
	Message   string     `json:"message,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
}

// ClusterFromRecord is the event form of a stored record.
func ClusterFromRecord(rec *store.Cluster) *Cluster {
	c := rec.Clone()
	return &Cluster{ID: c.ID, Name: c.Name, Server: c.Server, Labels: c.Labels,
		Prometheus: Prometheus{URL: c.Prometheus.URL, Status: string(c.Prometheus.Status),
			Message: c.Prometheus.Message, CheckedAt: c.Prometheus.CheckedAt},
		Impersonate: c.Impersonate, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Version: c.Version}
}

// Subject is the CloudEvent subject of a cluster's events: its ID.
func Subject(id uint64) string { return strconv.FormatUint(id, 10) }

// ClusterEventID is deterministic, so a re-send of the same change (a retry, or a replay after a crash) carries
// the same id and receivers can drop it: they dedupe on source + id.
func ClusterEventID(eventType string, id, version uint64) string {
	return fmt.Sprintf("cluster-%d-v%d-%s", id, version, eventType[len("dev.kitefn."):])
}

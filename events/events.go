// Package events defines kitefn's CloudEvents (types, source, data) and sends them to K_SINK, or in one-process
// mode to the functions of the same process, over the same CloudEvents HTTP code path.
package events

import (
	"fmt"
	"strconv"

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

// ClusterTypes lists the cluster lifecycle event types.
func ClusterTypes() []string {
	return []string{TypeClusterCreated, TypeClusterUpdated, TypeClusterDeleted}
}

// ClusterData is the data of every cluster event: the public cluster record (store.Cluster never serialises its
// kubeconfig) and, for updates, which fields changed so receivers can ignore what they don't care about.
type ClusterData struct {
	Cluster *store.Cluster `json:"cluster"`
	Changed []string       `json:"changed,omitempty"`
}

// Subject is the CloudEvent subject of a cluster's events: its ID.
func Subject(id uint64) string { return strconv.FormatUint(id, 10) }

// ClusterEventID is deterministic, so a re-send of the same change (a retry, or a replay after a crash) carries
// the same id and receivers can drop it: they dedupe on source + id.
func ClusterEventID(eventType string, c *store.Cluster) string {
	return fmt.Sprintf("cluster-%d-v%d-%s", c.ID, c.Version, eventType[len("dev.kitefn."):])
}

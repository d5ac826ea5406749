package events

import (
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// ErrNoCluster is what DecodeClusterData refuses with: the event's data names no cluster, or another than its
// subject.
var ErrNoCluster = errors.New("no cluster in the event data")

// DecodeClusterData reads a cluster event's data and checks it names a cluster (an ID other than 0) and,
// when the event has a subject, the same cluster as the subject.
func DecodeClusterData(e cloudevents.Event) (ClusterData, error) {
	var data ClusterData
	if err := e.DataAs(&data); err != nil || data.Cluster == nil || data.Cluster.ID == 0 {
		return ClusterData{}, fmt.Errorf("event %s: %w: expected {\"cluster\": {\"id\": …}}", e.ID(), ErrNoCluster)
	}
	if s := e.Subject(); s != "" && s != Subject(data.Cluster.ID) {
		return ClusterData{}, fmt.Errorf("event %s: %w: subject %q is not the cluster's ID %d", e.ID(), ErrNoCluster,
			s, data.Cluster.ID)
	}
	return data, nil
}

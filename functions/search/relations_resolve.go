package search

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/kitefn/kitefn/functions/search/graph"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// relationsState is what relations keep per cluster connection: discovery-backed kind and name mapping, and
// the reads shared between requests.
type relationsState struct {
	cluster  string
	lister   graph.Lister
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	expander meta.RESTMapper // kubectl's short names (po, deploy) and categories over mapper

	mu        sync.Mutex
	lastReset time.Time
}

type relationsStateKey struct{}

func (f *Function) relationsState(c *kube.Client) (*relationsState, error) {
	v, err := c.Attached(relationsStateKey{}, func(c *kube.Client) (any, error) {
		disc := memory.NewMemCacheClient(c.Kubernetes.Discovery())
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
		var lister graph.Lister = graph.ClusterLister{Dynamic: c.Dynamic, Metadata: c.Metadata}
		if f.cfg.RelationsCacheTTL > 0 {
			lister = &graph.SharedLister{Lister: lister, TTL: f.cfg.RelationsCacheTTL, Now: f.now}
		}
		return &relationsState{cluster: c.Name, lister: lister, mapper: mapper,
			expander: restmapper.NewShortcutExpander(mapper, disc, nil)}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*relationsState), nil
}

// maybeReset refreshes discovery (a CRD installed since it was read), at most once per interval.
func (s *relationsState) maybeReset(now time.Time, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastReset) < every {
		return false
	}
	s.lastReset = now
	s.mapper.Reset()
	return true
}

// resolve maps a resource named the way kubectl accepts it (pods, po, deploy, deployments.apps,
// clonesets.apps.kruise.io, a singular or kind name) to its mapping; 404 when the cluster serves no such thing.
func (s *relationsState) resolve(ref string, now time.Time, every time.Duration) (*meta.RESTMapping, error) {
	gr := schema.ParseGroupResource(strings.ToLower(ref))
	for attempt := 0; attempt < 2; attempt++ {
		m, err := s.mapping(gr)
		if err == nil {
			return m, nil
		}
		if !meta.IsNoMatchError(err) && !discovery.IsGroupDiscoveryFailedError(err) {
			return nil, kube.APIError(s.cluster, err)
		}
		if attempt == 0 && !s.maybeReset(now, every) {
			break
		}
	}
	return nil, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
		"resource %q not found in cluster %q (kubectl api-resources lists what it serves)", ref, s.cluster)
}

func (s *relationsState) mapping(gr schema.GroupResource) (*meta.RESTMapping, error) {
	gvr, err := s.expander.ResourceFor(gr.WithVersion(""))
	if err != nil {
		return nil, err
	}
	gvk, err := s.mapper.KindFor(gvr)
	if err != nil {
		return nil, err
	}
	return s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
}

// refresher is the graph builder's Refresh: discovery is re-read at most once per interval.
func (s *relationsState) refresher(now func() time.Time, every time.Duration) func() bool {
	return func() bool { return s.maybeReset(now(), every) }
}

package search

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/kitefn/kitefn/functions/search/graph"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// RelationsConfig is the relations half of the configuration (embedded in Config: same KITEFN_ prefix).
type RelationsConfig struct {
	// RelationsMaxNodes cuts a graph at this many nodes (the answer says truncated).
	RelationsMaxNodes int `envconfig:"RELATIONS_MAX_NODES" default:"1000"`
	// RelationsTimeout bounds one graph, every list it makes included.
	RelationsTimeout time.Duration `envconfig:"RELATIONS_TIMEOUT" default:"20s"`
	// RelationsConcurrency bounds the objects expanded, and so the lists in flight, at once per request.
	RelationsConcurrency int `envconfig:"RELATIONS_CONCURRENCY" default:"8"`
	// RelationsCacheTTL is how long the lists and reads of one cluster are shared between relations requests (a
	// graph may be this old); 0 reads everything afresh for each request.
	RelationsCacheTTL time.Duration `envconfig:"RELATIONS_CACHE_TTL" default:"2s"`
	// DiscoveryResetInterval bounds how often an unknown resource or kind may refresh a cluster's discovery.
	DiscoveryResetInterval time.Duration `envconfig:"DISCOVERY_RESET_INTERVAL" default:"10s"`
}

// Depth limits of a relations request.
const (
	defaultDepth = 3
	maxDepth     = 5
)

func (c RelationsConfig) check() error {
	switch {
	case c.RelationsMaxNodes < 1:
		return fmt.Errorf("KITEFN_RELATIONS_MAX_NODES must be positive, got %d", c.RelationsMaxNodes)
	case c.RelationsTimeout <= 0:
		return fmt.Errorf("KITEFN_RELATIONS_TIMEOUT must be positive, got %s", c.RelationsTimeout)
	case c.RelationsConcurrency < 1:
		return fmt.Errorf("KITEFN_RELATIONS_CONCURRENCY must be positive, got %d", c.RelationsConcurrency)
	case c.RelationsCacheTTL < 0:
		return fmt.Errorf("KITEFN_RELATIONS_CACHE_TTL must not be negative, got %s", c.RelationsCacheTTL)
	case c.DiscoveryResetInterval < 0:
		return fmt.Errorf("KITEFN_DISCOVERY_RESET_INTERVAL must not be negative, got %s", c.DiscoveryResetInterval)
	}
	return nil
}

// relations serves GET /api/v1/relations/{resource}/{namespace}/{name} (cluster-scoped: /{resource}/{name})
// with ?depth=1..5 (3 by default): the graph around one object of the selected cluster, within the caller's
// scopes and, on a cluster that impersonates the caller, read as the caller.
func (f *Function) relations(w http.ResponseWriter, r *http.Request) {
	caller, ok := access.CallerFrom(r.Context())
	if !ok {
		httpapi.WriteError(w, r, noCaller())
		return
	}
	segs := strings.Split(strings.Trim(r.PathValue("path"), "/"), "/")
	if len(segs) < 2 || len(segs) > 3 || slices.Contains(segs, "") {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"name an object: /api/v1/relations/{resource}/{namespace}/{name}, or /{resource}/{name} when cluster-scoped"))
		return
	}
	depth := defaultDepth
	if v := r.URL.Query().Get("depth"); v != "" {
		d, err := strconv.Atoi(v)
		if err != nil || d < 1 || d > maxDepth {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"depth must be a whole number from 1 to %d, got %q", maxDepth, v).WithField("depth"))
			return
		}
		depth = d
	}
	clusterhttp.Select(f.clients, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := clusterhttp.ClientFrom(r.Context())
		if !caller.AllowsCluster(c.Name) {
			httpapi.WriteError(w, r, clusterOutOfScope(caller, c.Name))
			return
		}
		g, err := f.graph(r.Context(), c, caller, segs, depth)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, g)
	})).ServeHTTP(w, r)
}

// graph reads the start object and builds its graph. A start object outside the caller's namespace scope is a
// 403 before anything is read (whether it exists is not the caller's to know); objects outside it are left out.
func (f *Function) graph(ctx context.Context, c *kube.Client, caller *access.Caller, segs []string,
	depth int) (*graph.Graph, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.RelationsTimeout)
	defer cancel()
	st, err := f.relationsState(c)
	if err != nil {
		return nil, err
	}
	m, err := st.resolve(segs[0], f.now(), f.cfg.DiscoveryResetInterval)
	if err != nil {
		return nil, err
	}
	namespaced := m.Scope.Name() == meta.RESTScopeNameNamespace
	var namespace, name string
	switch {
	case namespaced && len(segs) == 3:
		namespace, name = segs[1], segs[2]
	case !namespaced && len(segs) == 2:
		name = segs[1]
	case namespaced:
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"%s is namespaced: /api/v1/relations/%s/{namespace}/{name}", segs[0], segs[0])
	default:
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"%s is cluster-scoped: /api/v1/relations/%s/{name}", segs[0], segs[0])
	}
	if !caller.AllowsNamespace(namespace) {
		return nil, namespaceOutOfScope(caller, graph.Resource(m.Resource), namespace)
	}
	// On a cluster that impersonates the caller every read is the caller's own, so its RBAC decides: a kind
	// they may not list is a gap in the answer's errors. Those reads are not shared with other callers.
	lister, direct := st.lister, graph.ClusterLister{Dynamic: c.Dynamic, Metadata: c.Metadata}
	if f.actAs != nil {
		as, _, err := f.actAs(ctx, c, caller)
		if err != nil {
			return nil, kube.APIError(c.Name, fmt.Errorf("acting as %s %q: %w", caller.Kind, caller.Name, err))
		}
		if as != nil {
			direct = graph.ClusterLister{Dynamic: as.Dynamic, Metadata: as.Metadata}
			lister = direct
		}
	}
	// The start object is read afresh: whether it exists is the answer's status.
	start, err := direct.Get(ctx, m.Resource, namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			where := ""
			if namespace != "" {
				where = " in namespace " + strconv.Quote(namespace)
			}
			return nil, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "%s %q not found%s in cluster %q",
				graph.Resource(m.Resource), name, where, c.Name)
		}
		return nil, kube.APIError(c.Name, err)
	}
	b := graph.Builder{Lister: lister, Mapper: st.mapper, MaxNodes: f.cfg.RelationsMaxNodes,
		Concurrency: f.cfg.RelationsConcurrency, Refresh: st.refresher(f.now, f.cfg.DiscoveryResetInterval),
		Visible: caller.AllowsNamespace}
	g := b.Build(ctx, m.Resource, start, depth)
	if ctx.Err() != nil {
		g.Truncated = true // the deadline cut some reads short (they are in g.Errors)
	}
	return g, nil
}

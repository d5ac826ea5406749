// Package search is the search and relations function: metadata search across one or many registered clusters
// from a per-instance index that watches keep fresh, and the graph of how an object relates to others.
package search

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/resource"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/functions/search/index"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/crd"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// Config is the search function's configuration (env prefix KITEFN_).
type Config struct {
	// ClusterTimeout bounds the search of one cluster, so a slow or unreachable one cannot hold up the others.
	ClusterTimeout time.Duration `envconfig:"SEARCH_CLUSTER_TIMEOUT" default:"10s"`
	// IndexBudget bounds the index's memory per instance (a Kubernetes quantity: 256Mi, 1Gi, 100000000); the
	// least recently searched clusters are evicted beyond it. 256Mi leaves room under the service's 1Gi limit
	// for lists being decoded and answers being written.
	IndexBudget string `envconfig:"SEARCH_INDEX_BUDGET" default:"256Mi"`
	// CacheTTL is how long a complete (not partial) answer is reused for the same caller and query; 0 turns the
	// result cache off.
	CacheTTL time.Duration `envconfig:"SEARCH_CACHE_TTL" default:"2s"`
	// Revalidate is how often indexed clusters are checked against the registry, so a deleted cluster's or an
	// old connection's watches stop even if nobody searches it again.
	Revalidate time.Duration `envconfig:"SEARCH_REVALIDATE" default:"30s"`
	// AccessTTL is how long a cluster's answer to "may this identity list this kind here" is reused on
	// clusters that impersonate the caller; 0 asks the cluster on every search.
	AccessTTL time.Duration `envconfig:"SEARCH_ACCESS_TTL" default:"30s"`

	budget int64

	RelationsConfig
}

// Registry lists the registered clusters (clusters=_all) and reads one.
type Registry interface {
	clusterhttp.Registry
	List(ctx context.Context) ([]*store.Cluster, error)
}

// Deps is what the function works with, handed in by its constructor.
type Deps struct {
	Clients  clusterhttp.Clients
	Registry Registry
	// ActAs, when set, gives the client acting as the caller on clusters that impersonate: search filters the
	// shared index by what that identity may list, relations list through it. Nil: kitefn's scopes only.
	ActAs ActAs
}

// Function is the search function.
type Function struct {
	cfg      Config
	clients  clusterhttp.Clients
	registry Registry
	actAs    ActAs
	mux      *httpapi.Mux
	log      *zap.SugaredLogger
	now      func() time.Time

	index    *index.Manager
	results  *expirable.LRU[string, []byte] // nil when KITEFN_SEARCH_CACHE_TTL is 0
	access   *decisions                     // nil when KITEFN_SEARCH_ACCESS_TTL is 0
	families []crd.Family
	stop     context.CancelFunc
	stopped  chan struct{}
}

// resultCacheSize bounds the answers kept (each at most ~500 items).
const resultCacheSize = 1024

var (
	_ runtime.Starter = (*Function)(nil)
	_ runtime.Stopper = (*Function)(nil)
	_ runtime.Router  = (*Function)(nil)
)

// New makes the function over its dependencies; Start reads its configuration.
func New(d Deps) *Function {
	f := &Function{clients: d.Clients, registry: d.Registry, actAs: d.ActAs, mux: httpapi.NewMux(), now: time.Now}
	f.mux.Handle(http.MethodGet, "/api/v1/search", f.search)
	f.mux.Handle(http.MethodGet, "/api/v1/search/status", f.status)
	f.mux.Handle(http.MethodGet, "/api/v1/relations/{path...}", f.relations)
	return f
}

// LoadConfig reads and validates the configuration.
func LoadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		return cfg, fmt.Errorf("search configuration: %w", err)
	}
	if cfg.ClusterTimeout <= 0 {
		return cfg, fmt.Errorf("KITEFN_SEARCH_CLUSTER_TIMEOUT must be positive, got %s", cfg.ClusterTimeout)
	}
	q, err := resource.ParseQuantity(cfg.IndexBudget)
	if err != nil || q.Sign() <= 0 {
		return cfg, fmt.Errorf("KITEFN_SEARCH_INDEX_BUDGET must be a positive size (256Mi, 1Gi, bytes), got %q",
			cfg.IndexBudget)
	}
	cfg.budget = q.Value()
	if cfg.CacheTTL < 0 {
		return cfg, fmt.Errorf("KITEFN_SEARCH_CACHE_TTL must not be negative, got %s", cfg.CacheTTL)
	}
	if cfg.AccessTTL < 0 {
		return cfg, fmt.Errorf("KITEFN_SEARCH_ACCESS_TTL must not be negative, got %s", cfg.AccessTTL)
	}
	if cfg.Revalidate <= 0 {
		return cfg, fmt.Errorf("KITEFN_SEARCH_REVALIDATE must be positive, got %s", cfg.Revalidate)
	}
	if err := cfg.RelationsConfig.check(); err != nil {
		return cfg, fmt.Errorf("search configuration: %w", err)
	}
	return cfg, nil
}

// CheckConfig validates the configuration (kitefn -check-config).
func CheckConfig() error {
	_, err := LoadConfig()
	return err
}

// Start reads the configuration.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	f.cfg = cfg
	f.log = logging.FromContext(ctx).With("function", "search")
	f.families = crd.Families()
	f.index = index.NewManager(index.Options{Budget: cfg.budget, Log: f.log})
	if cfg.CacheTTL > 0 {
		f.results = expirable.NewLRU[string, []byte](resultCacheSize, nil, cfg.CacheTTL)
	}
	if cfg.AccessTTL > 0 {
		f.access = expirable.NewLRU[accessKey, bool](accessCacheSize, nil, cfg.AccessTTL)
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f.stop, f.stopped = stop, make(chan struct{})
	go f.revalidate(rctx)
	return nil
}

// revalidate drops, every Revalidate, the indexes of clusters deleted or given a new kubeconfig meanwhile.
func (f *Function) revalidate(ctx context.Context) {
	defer close(f.stopped)
	t := time.NewTicker(f.cfg.Revalidate)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.index.Revalidate(ctx, func(ctx context.Context, id uint64) (*kube.Client, error) {
				return f.clients.Client(ctx, strconv.FormatUint(id, 10))
			})
		}
	}
}

// Stop ends the index's watches.
func (f *Function) Stop(ctx context.Context) error {
	if f.index == nil {
		return nil
	}
	f.stop()
	<-f.stopped
	return f.index.Stop(ctx)
}

// Routes are the paths this function serves in one-process mode.
func (f *Function) Routes() []string { return f.mux.Paths() }

// Handle serves the API.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

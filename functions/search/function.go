// Package search is the search and relations function: metadata search across one or many registered clusters
// from a per-instance index that watches keep fresh, and the graph of how an object relates to others.
package search

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// Config is the search function's configuration (env prefix KITEFN_).
type Config struct {
	// ClusterTimeout bounds the search of one cluster, so a slow or unreachable one cannot hold up the others.
	ClusterTimeout time.Duration `envconfig:"SEARCH_CLUSTER_TIMEOUT" default:"10s"`
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
}

// Function is the search function.
type Function struct {
	cfg      Config
	clients  clusterhttp.Clients
	registry Registry
	mux      *httpapi.Mux
	log      *zap.SugaredLogger
	now      func() time.Time
}

var (
	_ runtime.Starter = (*Function)(nil)
	_ runtime.Stopper = (*Function)(nil)
	_ runtime.Router  = (*Function)(nil)
)

// New makes the function over its dependencies; Start reads its configuration.
func New(d Deps) *Function {
	f := &Function{clients: d.Clients, registry: d.Registry, mux: httpapi.NewMux(), now: time.Now}
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
	return nil
}

// Stop ends the index's watches.
func (f *Function) Stop(ctx context.Context) error { return nil }

// Routes are the paths this function serves in one-process mode.
func (f *Function) Routes() []string { return f.mux.Paths() }

// Handle serves the API.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

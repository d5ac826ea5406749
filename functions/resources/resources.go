// Package resources is kubectl over HTTP for one cluster at a time: list, get, events, apply, delete, scale and
// restart for every kind the cluster serves — built-in kinds through discovery, CRDs (the OpenKruise, Traefik,
// Tailscale and K3s families, and any other) through their CustomResourceDefinition.
package resources

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
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
)

// Config is the resources function's configuration (env prefix KITEFN_).
type Config struct {
	// CRDCacheTTL is how long a CRD lookup (found or not) is trusted per cluster.
	CRDCacheTTL time.Duration `envconfig:"CRD_CACHE_TTL" default:"10s"`
	// FamiliesCacheTTL is how long the installed-families answer (with object counts) is reused.
	FamiliesCacheTTL time.Duration `envconfig:"CRD_FAMILIES_CACHE_TTL" default:"30s"`
	// DiscoveryResetInterval bounds how often an unknown resource name may refresh a cluster's discovery, so a
	// typo cannot make every request re-read discovery.
	DiscoveryResetInterval time.Duration `envconfig:"DISCOVERY_RESET_INTERVAL" default:"10s"`
	// MaxApplyBytes bounds an apply body.
	MaxApplyBytes int64 `envconfig:"MAX_APPLY_BYTES" default:"4194304"`
}

// Function is the resources function.
type Function struct {
	cfg     Config
	mux     *httpapi.Mux
	clients clusterhttp.Clients
	log     *zap.SugaredLogger
	now     func() time.Time
}

var (
	_ runtime.Starter       = (*Function)(nil)
	_ runtime.Router        = (*Function)(nil)
	_ runtime.ConfigChecker = (*Function)(nil)
)

// New makes the function; Start wires it to the platform's client cache.
func New() runtime.Handler {
	f := &Function{mux: httpapi.NewMux(), now: time.Now}
	f.mux.Handle(http.MethodGet, "/api/v1/resources/{path...}", f.withCluster(f.get))
	f.mux.Handle(http.MethodDelete, "/api/v1/resources/{path...}", f.withCluster(f.delete))
	f.mux.Handle(http.MethodPost, "/api/v1/resources/{path...}", f.withCluster(f.action))
	f.mux.Handle(http.MethodPost, "/api/v1/apply", f.withCluster(f.apply))
	f.mux.Handle(http.MethodGet, "/api/v1/crds", f.withCluster(f.listCRDs))
	f.mux.Handle(http.MethodGet, "/api/v1/crds/families", f.withCluster(f.families))
	return f
}

// CheckConfig validates the configuration (kitefn -check-config).
func (f *Function) CheckConfig() error {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		return fmt.Errorf("resources configuration: %w", err)
	}
	if cfg.CRDCacheTTL < 0 || cfg.FamiliesCacheTTL < 0 || cfg.DiscoveryResetInterval < 0 || cfg.MaxApplyBytes < 1 {
		return fmt.Errorf("resources configuration: durations must not be negative and KITEFN_MAX_APPLY_BYTES must be positive")
	}
	return nil
}

// Start reads the config and takes the client cache from the platform.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	if err := f.CheckConfig(); err != nil {
		return err
	}
	if err := envconfig.Process("kitefn", &f.cfg); err != nil {
		return fmt.Errorf("resources configuration: %w", err)
	}
	p, err := platform.From(ctx)
	if err != nil {
		return err
	}
	f.log = logging.FromContext(ctx).With("function", "resources")
	f.clients = p.Clients
	return nil
}

// withCluster runs h on the cluster the request selects (X-Cluster-Name or ?cluster=): 400 when none, 404 when
// unknown. Routing comes first, so an unknown route is a 404 whether or not a cluster was named.
func (f *Function) withCluster(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		clusterhttp.Select(f.clients, h).ServeHTTP(w, r)
	}
}

// Routes are the paths this function serves in one-process mode.
func (f *Function) Routes() []string { return f.mux.Paths() }

// Handle serves the API.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// client is the selected cluster's client; Select guarantees it is there.
func client(r *http.Request) *kube.Client {
	c, _ := clusterhttp.ClientFrom(r.Context())
	return c
}

// Package resources is kubectl over HTTP for one cluster at a time: list, get, events, apply, delete, scale and
// restart for every kind the cluster serves — built-in kinds through discovery, CRDs (the OpenKruise, Traefik,
// Tailscale and K3s families, and any other) through their CustomResourceDefinition — and PromQL queries to
// the cluster's Prometheus at the URL discovery saved.
package resources

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
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
	// ApplyTimeout is the deadline of one apply request, waits for new CRDs included. Keep it below the
	// service's Knative timeoutSeconds (60 in deploy/base/services/resources.yaml), so the answer says which
	// documents were done instead of the request being cut.
	ApplyTimeout time.Duration `envconfig:"APPLY_TIMEOUT" default:"50s"`
	// PrometheusTimeout bounds one Prometheus query; PrometheusMaxBytes the answer read from Prometheus.
	PrometheusTimeout  time.Duration `envconfig:"PROMETHEUS_QUERY_TIMEOUT" default:"30s"`
	PrometheusMaxBytes int64         `envconfig:"PROMETHEUS_MAX_BYTES" default:"16777216"`
	// PublicURL is this service's external URL, which handed-out kubeconfigs point at; empty means the
	// request's X-Forwarded-Proto/X-Forwarded-Host, else its Host.
	PublicURL string `envconfig:"PUBLIC_URL"`
}

// maxRequestTimeout is Knative's default max-revision-timeout-seconds: no request can take longer.
const maxRequestTimeout = 10 * time.Minute

// Function is the resources function.
type Function struct {
	cfg     Config
	mux     *httpapi.Mux
	clients clusterhttp.Clients
	// registry reads cluster records (their saved Prometheus URL; all of them for a kubeconfig handout).
	registry Registry
	log      *zap.SugaredLogger
	now      func() time.Time
	// audit records writes, proxy writes and pod sessions (nil: not recorded).
	audit Recorder
}

// Registry is what the function reads of the cluster registry.
type Registry interface {
	clusterhttp.Registry
	List(ctx context.Context) ([]*store.Cluster, error)
}

var (
	_ runtime.Starter = (*Function)(nil)
	_ runtime.Router  = (*Function)(nil)
)

// Deps is what the function works with, handed in by its constructor.
type Deps struct {
	Clients clusterhttp.Clients
	// Registry gives the cluster records: the Prometheus URL discovery saved, the clusters a kubeconfig
	// handout lists.
	Registry Registry
	// Audit records writes: apply (one entry per document), delete, scale, restart, and the proxy's writes and
	// exec, attach and port-forward sessions (nil: not recorded).
	Audit Recorder
}

// New makes the function over its dependencies; Start reads its configuration.
func New(d Deps) *Function {
	f := &Function{mux: httpapi.NewMux(), clients: d.Clients, registry: d.Registry, now: time.Now, audit: d.Audit}
	f.mux.Handle(http.MethodGet, "/api/v1/resources/{path...}", f.withCluster(f.get))
	f.mux.Handle(http.MethodDelete, "/api/v1/resources/{path...}", f.withCluster(f.auditedWrite("delete", f.delete)))
	f.mux.Handle(http.MethodPost, "/api/v1/resources/{path...}", f.withCluster(f.auditedWrite("", f.action)))
	f.mux.Handle(http.MethodPost, "/api/v1/apply", f.withCluster(f.auditedWrite("apply", f.apply)))
	f.mux.Handle(http.MethodGet, "/api/v1/crds", f.withCluster(f.listCRDs))
	f.mux.Handle(http.MethodGet, "/api/v1/crds/families", f.withCluster(f.families))
	f.mux.Handle(http.MethodGet, "/api/v1/clusters/{ref}/prometheus/query", f.promQuery)
	f.mux.Handle(http.MethodGet, "/api/v1/clusters/{ref}/prometheus/query_range", f.promQueryRange)
	f.mux.Handle(http.MethodGet, "/api/v1/clusters/{ref}/kubeconfig", f.kubeconfig)
	for _, m := range proxyMethods {
		f.mux.Handle(m, proxyPrefix+"{cluster}/{path...}", f.auditedProxy(f.proxy))
	}
	return f
}

// LoadConfig reads and validates the function's configuration.
func LoadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		return cfg, fmt.Errorf("resources configuration: %w", err)
	}
	if cfg.CRDCacheTTL < 0 || cfg.FamiliesCacheTTL < 0 || cfg.DiscoveryResetInterval < 0 || cfg.MaxApplyBytes < 1 {
		return cfg, fmt.Errorf("resources configuration: durations must not be negative and KITEFN_MAX_APPLY_BYTES must be positive")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"KITEFN_APPLY_TIMEOUT", cfg.ApplyTimeout}, {"KITEFN_PROMETHEUS_QUERY_TIMEOUT", cfg.PrometheusTimeout}} {
		if d.v <= 0 || d.v > maxRequestTimeout {
			return cfg, fmt.Errorf("resources configuration: %s must be above 0 and at most %s (keep it below the "+
				"service's timeoutSeconds), got %s", d.name, maxRequestTimeout, d.v)
		}
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			return cfg, fmt.Errorf("resources configuration: KITEFN_PUBLIC_URL must be an http(s) URL such as "+
				"https://kitefn.example.com, got %q", cfg.PublicURL)
		}
	}
	if cfg.PrometheusMaxBytes < 1 {
		return cfg, fmt.Errorf("resources configuration: KITEFN_PROMETHEUS_MAX_BYTES must be positive")
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
	f.log = logging.FromContext(ctx).With("function", "resources")
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

// Package clusters is the registration function: CRUD over the cluster registry under /api/v1/clusters,
// kubeconfig import (one cluster per context), and the dev.kitefn.cluster.* CloudEvents every change emits.
package clusters

import (
	"context"
	"fmt"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// Config is the clusters function's own configuration (env prefix KITEFN_).
type Config struct {
	AllowExecPlugins bool `envconfig:"ALLOW_EXEC_PLUGINS"`
	// ImportKubeconfig: on the first start of one-process mode with an empty registry, register every context
	// of the current kubeconfig (KUBECONFIG or ~/.kube/config).
	ImportKubeconfig bool          `envconfig:"IMPORT_KUBECONFIG" default:"true"`
	VerifyTimeout    time.Duration `envconfig:"VERIFY_TIMEOUT" default:"10s"`
	// ImportParallelism bounds how many contexts of one import are verified at once.
	ImportParallelism int `envconfig:"IMPORT_PARALLELISM" default:"8"`
	// AllowPrivateServers lets kubeconfigs name loopback, link-local and metadata addresses in deployed mode;
	// AllowedServerCIDRs admits only the ranges it lists.
	AllowPrivateServers bool     `envconfig:"ALLOW_PRIVATE_SERVERS"`
	AllowedServerCIDRs  []string `envconfig:"ALLOWED_SERVER_CIDRS"`
	// The reconcile re-sends events of clusters pending longer than ReconcilePendingAge or failed longer than
	// ReconcileFailedAge; one-process mode runs it every ReconcileInterval, which is also its event-ID window.
	ReconcilePendingAge time.Duration `envconfig:"RECONCILE_PENDING_AGE" default:"2m"`
	ReconcileFailedAge  time.Duration `envconfig:"RECONCILE_FAILED_AGE" default:"1h"`
	ReconcileInterval   time.Duration `envconfig:"RECONCILE_INTERVAL" default:"5m"`
	// ReconcileOnPing: take a PingSource's CloudEvent at POST / without a token. Only for a cluster-local
	// service (deploy/base/services/clusters-reconcile.yaml).
	ReconcileOnPing bool `envconfig:"RECONCILE_ON_PING"`
}

// Registry is the store as this function uses it.
type Registry interface {
	Create(ctx context.Context, c *store.Cluster) (*store.Cluster, error)
	Get(ctx context.Context, id uint64) (*store.Cluster, error)
	GetByName(ctx context.Context, name string) (*store.Cluster, error)
	List(ctx context.Context) ([]*store.Cluster, error)
	Update(ctx context.Context, c *store.Cluster) (*store.Cluster, error)
	Delete(ctx context.Context, id uint64) error
}

// Sealer encrypts kubeconfigs before they are stored.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
}

// Clients gives a cached client by cluster name or ID, and forgets one the registry no longer matches.
type Clients interface {
	clusterhttp.Clients
	Invalidate(id uint64)
}

// Sender emits CloudEvents (nil: events are off).
type Sender interface {
	Send(ctx context.Context, e cloudevents.Event) error
}

// Deps is what the function works with, handed in by its constructor.
type Deps struct {
	Registry Registry
	Sealer   Sealer
	Clients  Clients
	Events   Sender
	// Kube tunes the clients built to verify a kubeconfig before it is stored.
	Kube kube.Config
	// AllMode: every function runs in this process (make run), which imports the local kubeconfig at start.
	AllMode bool
	// Tokens keeps named API tokens; TokenCache is this replica's authenticator cache, told of revocations.
	Tokens     TokenStore
	TokenCache TokenCache
	// Audit records registry and token changes (nil: not recorded); AuditLog serves GET /api/v1/audit.
	Audit    Recorder
	AuditLog AuditLog
}

// Function is the clusters function.
type Function struct {
	cfg     Config
	reg     Registry
	sealer  Sealer
	clients Clients
	events  Sender
	kube    kube.Config
	allMode bool
	// tokens, tokenCache and audit serve the token routes (nil tokens: the routes answer 404).
	tokens     TokenStore
	tokenCache TokenCache
	audit      Recorder
	auditLog   AuditLog
	mux        *httpapi.Mux
	log        *zap.SugaredLogger
	servers    serverPolicy

	stopLoop context.CancelFunc
	loopDone chan struct{}
}

var (
	_ runtime.Starter       = (*Function)(nil)
	_ runtime.Stopper       = (*Function)(nil)
	_ runtime.Router        = (*Function)(nil)
	_ runtime.EventConsumer = (*Function)(nil)
)

// New makes the function over its dependencies; Start reads its configuration.
func New(d Deps) *Function {
	f := &Function{reg: d.Registry, sealer: d.Sealer, clients: d.Clients, events: d.Events, kube: d.Kube,
		allMode: d.AllMode, tokens: d.Tokens, tokenCache: d.TokenCache, audit: d.Audit, auditLog: d.AuditLog, mux: httpapi.NewMux()}
	if f.auditLog != nil {
		f.mux.Handle(http.MethodGet, "/api/v1/audit", f.listAudit)
	}
	if f.tokens != nil {
		f.mux.Handle(http.MethodPost, "/api/v1/tokens", f.createToken)
		f.mux.Handle(http.MethodGet, "/api/v1/tokens", f.listTokens)
		f.mux.Handle(http.MethodGet, "/api/v1/tokens/{name}", f.getToken)
		f.mux.Handle(http.MethodDelete, "/api/v1/tokens/{name}", f.deleteToken)
	}
	f.mux.Handle(http.MethodGet, "/api/v1/clusters", f.list)
	f.mux.Handle(http.MethodPost, "/api/v1/clusters", f.audited("create", f.create))
	f.mux.Handle(http.MethodPost, "/api/v1/clusters/import", f.audited("import", f.importKubeconfig))
	f.mux.Handle(http.MethodPost, "/api/v1/clusters/reconcile", f.reconcileRoute)
	f.mux.Handle(http.MethodGet, "/api/v1/clusters/{ref}", f.get)
	f.mux.Handle(http.MethodPatch, "/api/v1/clusters/{ref}", f.audited("update", f.update))
	f.mux.Handle(http.MethodDelete, "/api/v1/clusters/{ref}", f.audited("delete", f.delete))
	f.mux.Handle(http.MethodPost, "/api/v1/clusters/{ref}/verify", f.verify)
	return f
}

// LoadConfig reads and validates the function's configuration.
func LoadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		return cfg, fmt.Errorf("clusters configuration: %w", err)
	}
	if cfg.VerifyTimeout <= 0 {
		return cfg, fmt.Errorf("KITEFN_VERIFY_TIMEOUT must be positive, got %s", cfg.VerifyTimeout)
	}
	if cfg.ImportParallelism < 1 || cfg.ImportParallelism > 64 {
		return cfg, fmt.Errorf("KITEFN_IMPORT_PARALLELISM must be between 1 and 64, got %d", cfg.ImportParallelism)
	}
	for name, d := range map[string]time.Duration{"KITEFN_RECONCILE_PENDING_AGE": cfg.ReconcilePendingAge,
		"KITEFN_RECONCILE_FAILED_AGE": cfg.ReconcileFailedAge} {
		if d < 0 {
			return cfg, fmt.Errorf("%s must not be negative, got %s", name, d)
		}
	}
	if cfg.ReconcileInterval <= 0 {
		return cfg, fmt.Errorf("KITEFN_RECONCILE_INTERVAL must be positive, got %s", cfg.ReconcileInterval)
	}
	_, err := newServerPolicy(cfg, false)
	return cfg, err
}

// CheckConfig validates the configuration (kitefn -check-config).
func CheckConfig() error {
	_, err := LoadConfig()
	return err
}

// Start reads the configuration; in one-process mode it imports the local kubeconfig into an empty registry.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	f.cfg = cfg
	if f.servers, err = newServerPolicy(f.cfg, f.allMode); err != nil {
		return err
	}
	f.log = logging.FromContext(ctx).With("function", "clusters")
	if f.allMode {
		if f.cfg.ImportKubeconfig {
			f.importLocal(ctx)
		}
		if f.events != nil {
			f.startReconcileLoop(ctx)
		}
	}
	return nil
}

// ConsumesEvents: a PingSource's ping, which runs the reconcile (see receivePing for who may send it).
func (f *Function) ConsumesEvents() []string { return []string{TypePing} }

// Routes are the paths this function serves in one-process mode.
func (f *Function) Routes() []string { return f.mux.Paths() }

// Handle serves the clusters API.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/" && runtime.IsCloudEvent(r) {
		f.receivePing(w, r)
		return
	}
	f.mux.ServeHTTP(w, r)
}

func (f *Function) parseOptions() kubeconfig.Options {
	return kubeconfig.Options{AllowExecPlugins: f.cfg.AllowExecPlugins}
}

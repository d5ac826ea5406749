// Package clusters is the registration function: CRUD over the cluster registry under /api/v1/clusters,
// kubeconfig import (one cluster per context), and the dev.kitefn.cluster.* CloudEvents every change emits.
package clusters

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/platform"
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
	Target           string        `envconfig:"FUNCTION_TARGET" default:"all"`
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

// Function is the clusters function.
type Function struct {
	cfg     Config
	reg     Registry
	sealer  Sealer
	clients Clients
	events  *events.Sender
	kube    kube.Config
	mux     *httpapi.Mux
	log     *zap.SugaredLogger
}

var (
	_ runtime.Starter = (*Function)(nil)
	_ runtime.Router  = (*Function)(nil)
)

// New makes the function; Start wires it to the platform.
func New() runtime.Handler {
	f := &Function{mux: httpapi.NewMux()}
	f.mux.Handle(http.MethodGet, "/api/v1/clusters", f.list)
	f.mux.Handle(http.MethodPost, "/api/v1/clusters", f.create)
	f.mux.Handle(http.MethodPost, "/api/v1/clusters/import", f.importKubeconfig)
	f.mux.Handle(http.MethodGet, "/api/v1/clusters/{ref}", f.get)
	f.mux.Handle(http.MethodPatch, "/api/v1/clusters/{ref}", f.update)
	f.mux.Handle(http.MethodDelete, "/api/v1/clusters/{ref}", f.delete)
	f.mux.Handle(http.MethodPost, "/api/v1/clusters/{ref}/verify", f.verify)
	return f
}

// CheckConfig validates the function's configuration (kitefn -check-config).
func (f *Function) CheckConfig() error {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		return fmt.Errorf("clusters configuration: %w", err)
	}
	if cfg.VerifyTimeout <= 0 {
		return fmt.Errorf("KITEFN_VERIFY_TIMEOUT must be positive, got %s", cfg.VerifyTimeout)
	}
	return nil
}

// Start reads the config and takes the shared store, sealer, client cache and sender from the platform.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	if err := f.CheckConfig(); err != nil {
		return err
	}
	if err := envconfig.Process("kitefn", &f.cfg); err != nil {
		return fmt.Errorf("clusters configuration: %w", err)
	}
	p, err := platform.From(ctx)
	if err != nil {
		return err
	}
	f.reg, f.sealer, f.clients, f.events, f.kube = p.Store, p.Sealer, p.Clients, p.Events, p.Config.Kube
	f.log = logging.FromContext(ctx).With("function", "clusters")
	if f.cfg.ImportKubeconfig && (f.cfg.Target == "" || f.cfg.Target == "all") {
		f.importLocal(ctx)
	}
	return nil
}

// Routes are the paths this function serves in one-process mode.
func (f *Function) Routes() []string { return f.mux.Paths() }

// Handle serves the clusters API.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *Function) parseOptions() kubeconfig.Options {
	return kubeconfig.Options{AllowExecPlugins: f.cfg.AllowExecPlugins}
}

// Package terminal is the one long-running service: pod terminals, node shells and live logs over WebSockets
// (and logs over plain HTTP and SSE), and the browser page that opens them.
package terminal

import (
	"context"
	"fmt"
	"net/http"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// Config is the terminal function's configuration (env prefix KITEFN_).
type Config struct {
	TerminalConfig
	NodeShellConfig
	LogsConfig
}

// Registry lists the registered clusters (the node-shell reaper visits each) and reads one.
type Registry interface {
	clusterhttp.Registry
	List(ctx context.Context) ([]*store.Cluster, error)
}

// Recorder writes audit entries; a nil *access.Recorder records nothing.
type Recorder interface {
	Record(ctx context.Context, e store.AuditEntry)
}

// Deps is what the function works with, handed in by its constructor.
type Deps struct {
	Clients  clusterhttp.Clients
	Registry Registry
	Audit    Recorder
	// TicketKey seals terminal tickets (32 bytes, shared by every instance; terminal_ticket.go).
	TicketKey []byte
}

// Function is the terminal function.
type Function struct {
	cfg      Config
	clients  clusterhttp.Clients
	registry Registry
	audit    Recorder
	mux      *httpapi.Mux
	log      *zap.SugaredLogger

	terminals *terminals // pod terminals, tickets, sessions (terminals.go)
	tickets   *Tickets
	ticketKey []byte
	shells    *shells // node shells (nodes.go)
	logs      *logStreams
}

var (
	_ runtime.Starter          = (*Function)(nil)
	_ runtime.Stopper          = (*Function)(nil)
	_ runtime.Router           = (*Function)(nil)
	_ runtime.ShutdownNotifier = (*Function)(nil)
)

// New makes the function over its dependencies; Start reads its configuration.
func New(d Deps) *Function {
	f := &Function{clients: d.Clients, registry: d.Registry, audit: d.Audit, mux: httpapi.NewMux(),
		ticketKey: d.TicketKey}
	f.routeTerminals()
	f.routeNodeShells()
	f.routeLogs()
	f.routePage()
	return f
}

// LoadConfig reads and validates the configuration.
func LoadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		return cfg, fmt.Errorf("terminal configuration: %w", err)
	}
	for _, check := range []func() error{cfg.TerminalConfig.check, cfg.NodeShellConfig.check, cfg.LogsConfig.check} {
		if err := check(); err != nil {
			return cfg, fmt.Errorf("terminal configuration: %w", err)
		}
	}
	return cfg, nil
}

// CheckConfig validates the configuration (kitefn -check-config).
func CheckConfig() error {
	_, err := LoadConfig()
	return err
}

// Start reads the configuration and starts what runs in the background (the node-shell reaper).
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	f.cfg = cfg
	f.log = logging.FromContext(ctx).With("function", "terminal")
	for _, start := range []func(context.Context) error{f.startTerminals, f.startNodeShells, f.startLogs} {
		if err := start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ShuttingDown is SIGTERM: every socket is told why and closed with 1001, node shells are deleted.
func (f *Function) ShuttingDown() {
	f.shutdownTerminals()
	f.shutdownNodeShells()
	f.shutdownLogs()
}

// Stop waits for the background work to end.
func (f *Function) Stop(ctx context.Context) error {
	for _, stop := range []func(context.Context) error{f.stopTerminals, f.stopNodeShells, f.stopLogs} {
		if err := stop(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Routes lists the function's ServeMux patterns.
func (f *Function) Routes() []string { return f.mux.Paths() }

// Handle serves a request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

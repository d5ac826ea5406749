package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"
)

// Spec is one function: its FUNCTION_TARGET name, how to build it from what the process shares (P), and how
// to check its own configuration without building anything (`kitefn -check-config`).
type Spec[P any] struct {
	Name  string
	New   func(P) Handler
	Check func() error
}

// Options tell Main which functions exist and how to prepare what they share.
type Options[P any] struct {
	// Functions lists every function. Only the targeted one is constructed, so a deployed function pays no
	// start-up cost for the others.
	Functions []Spec[P]
	// Setup builds what the functions share before any is constructed; they receive it in their constructor.
	// cleanup runs after Stop.
	Setup func(ctx context.Context, cfg Config, log *zap.SugaredLogger) (P, func(context.Context) error, error)
	// Bind runs once the functions are constructed, before they Start (one-process mode delivers events to the
	// consumers among them).
	Bind func(shared P, fns []Function)
	// Check validates the configuration Setup would use, without opening anything (`kitefn -check-config`).
	Check func(cfg Config) error
	// Access gives the authenticators beyond the bootstrap tokens (named API tokens, OIDC) and the cluster name
	// resolver, built over what the functions share.
	Access func(shared P) (AccessConfig, error)
}

// AccessOf is the access configuration over shared (none without an Access hook).
func (o Options[P]) AccessOf(shared P) (AccessConfig, error) {
	if o.Access == nil {
		return AccessConfig{}, nil
	}
	return o.Access(shared)
}

func (o Options[P]) names() []string {
	out := make([]string, 0, len(o.Functions))
	for _, s := range o.Functions {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

// targeted are the specs this process runs: the one FUNCTION_TARGET names, or all of them.
func (o Options[P]) targeted(cfg Config) []Spec[P] {
	var out []Spec[P]
	for _, s := range o.Functions {
		if cfg.AllMode() || s.Name == cfg.Target {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Spec[P]) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Build constructs the targeted functions over shared and binds them (for tests and Main).
func (o Options[P]) Build(cfg Config, shared P) []Function {
	var fns []Function
	for _, s := range o.targeted(cfg) {
		fns = append(fns, Function{Name: s.Name, Value: s.New(shared)})
	}
	if o.Bind != nil {
		o.Bind(shared, fns)
	}
	return fns
}

// checkConfig validates everything a start would, opens nothing and listens nowhere: deploy/ tests run it on
// every Knative Service's environment, and operators can run it before a rollout.
func checkConfig[P any](cfg Config, opts Options[P]) error {
	if !cfg.AllMode() || len(cfg.APITokens) > 0 || cfg.APITokensFile != "" {
		if _, _, err := cfg.Tokens(); err != nil {
			return err
		}
	}
	if opts.Check != nil {
		if err := opts.Check(cfg); err != nil {
			return err
		}
	}
	for _, s := range opts.targeted(cfg) {
		if s.Check != nil {
			if err := s.Check(); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
	}
	return nil
}

// Main runs the process and returns its exit code.
func Main[P any](opts Options[P]) int {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "kitefn: configuration: %v\n", err)
		return 2
	}
	if err := cfg.Validate(opts.names()); err != nil {
		fmt.Fprintf(os.Stderr, "kitefn: configuration: %v\n", err)
		return 2
	}
	log, err := NewLogger(cfg.Format(), cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kitefn: %v\n", err)
		return 2
	}
	routeKlog(log)
	if len(os.Args) > 1 && os.Args[1] == "-check-config" {
		if err := checkConfig(cfg, opts); err != nil {
			fmt.Fprintf(os.Stderr, "kitefn: configuration: %v\n", err)
			return 2
		}
		fmt.Printf("kitefn: configuration of %s is valid\n", cfg.Target)
		return 0
	}
	defer func() { _ = log.Sync() }()
	if err := run(cfg, log, opts); err != nil {
		log.Errorw("kitefn stopped with an error", "error", err)
		return 1
	}
	return 0
}

func run[P any](cfg Config, log *zap.SugaredLogger, opts Options[P]) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = logging.WithLogger(ctx, log)

	tokens, generated, err := cfg.Tokens()
	if err != nil {
		return err
	}
	if generated != "" {
		// Printed, not logged: it is the one credential the operator needs to call the local API.
		fmt.Fprintf(os.Stderr, "\nkitefn: API token (kept in %s):\n\n    export KITEFN_TOKEN=%s\n\n", generated, tokens[0])
	}

	var shared P
	cleanup := func(context.Context) error { return nil }
	if opts.Setup != nil {
		if shared, cleanup, err = opts.Setup(ctx, cfg, log); err != nil {
			return err
		}
	}
	defer func() {
		if err := cleanup(context.Background()); err != nil {
			log.Errorw("cleanup failed", "error", err)
		}
	}()
	fns := opts.Build(cfg, shared)
	startCtx := ctx

	acc, err := opts.AccessOf(shared)
	if err != nil {
		return err
	}
	srv, err := NewServer(cfg, log, fns, tokens, WithAccess(acc))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Address())
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Address(), err)
	}
	names := make([]string, len(fns))
	for i, f := range fns {
		names[i] = f.Name
	}
	log.Infow("kitefn listening", "address", ln.Addr().String(), "functions", names)

	// Serve health (readiness 503) while the functions start, as the contract asks.
	startErr := make(chan error, 1)
	serveCtx, cancelServe := context.WithCancel(ctx)
	defer cancelServe()
	go func() {
		err := srv.Start(startCtx)
		if err != nil {
			cancelServe()
		}
		startErr <- err
	}()
	serveErr := srv.Serve(serveCtx, ln)
	if err := <-startErr; err != nil {
		return errors.Join(err, serveErr)
	}
	return serveErr
}

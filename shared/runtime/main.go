package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"
)

// Options tell Main which functions exist and how to prepare what they share.
type Options struct {
	// Functions maps a FUNCTION_TARGET name to its New. Only the targeted one is constructed, so a deployed
	// function pays no start-up cost for the others.
	Functions map[string]func() Handler
	// Setup runs after the functions are constructed and before they Start. It returns the context passed to
	// Start (carrying shared resources) and a cleanup run after Stop.
	Setup func(ctx context.Context, cfg Config, log *zap.SugaredLogger, fns []Function) (
		context.Context, func(context.Context) error, error)
	// Check validates the configuration Setup would use, without opening anything (`kitefn -check-config`).
	Check func(cfg Config) error
}

// checkConfig validates everything a start would, opens nothing and listens nowhere: deploy/ tests run it on
// every Knative Service's environment, and operators can run it before a rollout.
func checkConfig(cfg Config, opts Options) error {
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
	for _, name := range slices.Sorted(maps.Keys(opts.Functions)) {
		if cfg.AllMode() || name == cfg.Target {
			if c, ok := opts.Functions[name]().(ConfigChecker); ok {
				if err := c.CheckConfig(); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		}
	}
	return nil
}

// Main runs the process and returns its exit code.
func Main(opts Options) int {
	var cfg Config
	if err := envconfig.Process("kitefn", &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "kitefn: configuration: %v\n", err)
		return 2
	}
	if err := cfg.Validate(slices.Sorted(maps.Keys(opts.Functions))); err != nil {
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

func run(cfg Config, log *zap.SugaredLogger, opts Options) error {
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

	var fns []Function
	for _, name := range slices.Sorted(maps.Keys(opts.Functions)) {
		if cfg.AllMode() || name == cfg.Target {
			fns = append(fns, Function{Name: name, Value: opts.Functions[name]()})
		}
	}
	startCtx, cleanup := ctx, func(context.Context) error { return nil }
	if opts.Setup != nil {
		if startCtx, cleanup, err = opts.Setup(ctx, cfg, log, fns); err != nil {
			return err
		}
	}
	defer func() {
		if err := cleanup(context.Background()); err != nil {
			log.Errorw("cleanup failed", "error", err)
		}
	}()

	srv, err := NewServer(cfg, log, fns, tokens)
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

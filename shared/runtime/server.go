package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// Function is one named function instance.
type Function struct {
	Name  string
	Value Handler
}

// Server serves one function, or all of them in one process.
type Server struct {
	cfg      Config
	log      *zap.SugaredLogger
	fns      []Function
	handler  http.Handler
	ready    atomic.Bool
	stopping atomic.Bool
}

// NewServer builds the HTTP handler: health endpoints and the GET routes functions declare public (PublicRouter)
// without auth, everything else authenticated (the bootstrap tokens, then the authenticators WithAccess gives)
// and authorised by the route table.
func NewServer(cfg Config, log *zap.SugaredLogger, fns []Function, tokens []string, opts ...ServerOption) (*Server, error) {
	if len(fns) == 0 {
		return nil, errors.New("no function to serve")
	}
	if len(tokens) == 0 {
		return nil, errors.New("no API token configured: set KITEFN_API_TOKENS or KITEFN_API_TOKENS_FILE")
	}
	s := &Server{cfg: cfg, log: log, fns: fns}
	var api http.Handler
	if cfg.AllMode() {
		mux := http.NewServeMux()
		for _, f := range fns {
			r, ok := f.Value.(Router)
			if !ok {
				return nil, fmt.Errorf("function %s lists no routes (Routes method), so it cannot share a process",
					f.Name)
			}
			for _, p := range r.Routes() {
				mux.Handle(p, handlerOf(f.Value))
			}
		}
		mux.Handle("/", httpapi.NotFoundHandler())
		api = mux
	} else {
		api = handlerOf(fns[0].Value)
	}
	var acc AccessConfig
	for _, o := range opts {
		o(&acc)
	}
	// Authentication and authorisation first, so the rate limit is keyed by the caller.
	api, err := rateLimited(cfg, api)
	if err != nil {
		return nil, err
	}
	authed := guard(tokens, acc, api)
	pub, err := publicMux(fns)
	if err != nil {
		return nil, err
	}
	// Public routes serve embedded files and are not rate limited: without a caller the limit could only be
	// keyed by the client address, which behind Knative's queue-proxy is one address for every browser.
	authed = withPublic(pub, pub, authed)
	if _, ok := fns[0].Value.(EventConsumer); ok && !cfg.AllMode() {
		// A Knative Trigger delivers events without our bearer token; the event receiver is protected by the
		// service being cluster-local instead (deploy/). Only CloudEvents to "/" skip auth.
		authed = eventsBypass(handlerOf(fns[0].Value), authed)
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /health/readiness", s.readiness)
	root.HandleFunc("GET /health/liveness", s.liveness)
	root.Handle("/", httpapi.RequestID(log, httpapi.AccessLog(authed)))
	if s.handler, err = edge(cfg, root); err != nil {
		return nil, err
	}
	return s, nil
}

func handlerOf(h Handler) http.Handler { return http.HandlerFunc(h.Handle) }

// IsCloudEvent reports whether r carries a CloudEvent in binary or structured HTTP mode.
func IsCloudEvent(r *http.Request) bool {
	return r.Header.Get("Ce-Specversion") != "" ||
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents")
}

func eventsBypass(events, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/" && IsCloudEvent(r) {
			events.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// Handler is the server's root handler (tests serve it with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Start runs every function's Start, then marks the server ready.
func (s *Server) Start(ctx context.Context) error {
	env := environ()
	for _, f := range s.fns {
		if st, ok := f.Value.(Starter); ok {
			if err := st.Start(ctx, env); err != nil {
				return fmt.Errorf("starting %s: %w", f.Name, err)
			}
		}
	}
	s.ready.Store(true)
	return nil
}

// Stop runs every function's Stop within ctx and reports all failures.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	for _, f := range s.fns {
		if st, ok := f.Value.(Stopper); ok {
			if err := st.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stopping %s: %w", f.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() || s.stopping.Load() {
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	for _, f := range s.fns {
		if rr, ok := f.Value.(ReadinessReporter); ok {
			if ok, err := rr.Ready(r.Context()); !ok || err != nil {
				msg := "not ready"
				if err != nil {
					msg = err.Error()
				}
				httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": msg, "function": f.Name})
				return
			}
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) liveness(w http.ResponseWriter, r *http.Request) {
	for _, f := range s.fns {
		if lr, ok := f.Value.(LivenessReporter); ok {
			if ok, err := lr.Alive(r.Context()); !ok || err != nil {
				httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not alive", "function": f.Name})
				return
			}
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Serve serves on ln until ctx is cancelled (SIGTERM), then: readiness goes 503, functions holding long-lived
// connections are told, in-flight requests finish (bounded by the shutdown timeout), and Stop runs.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return logging.WithLogger(context.Background(), s.log) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: no new requests, finishing in-flight ones")
	s.stopping.Store(true)
	for _, f := range s.fns {
		if n, ok := f.Value.(ShutdownNotifier); ok {
			n.ShuttingDown()
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("draining requests: %w", err))
	}
	if err := s.Stop(sctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func environ() map[string]string {
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

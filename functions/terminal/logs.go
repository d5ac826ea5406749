package terminal

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// Live logs: GET /api/v1/logs/{namespace}/{pod} and GET /api/v1/logs/{resource}/{namespace}/{name}, over a
// WebSocket, SSE or plain chunked text. logs_target.go reads the request and finds the pods, logs_stream.go
// streams them (following the workload's pods), logs_transport.go writes the three wire forms.

// LogsConfig configures the live logs.
type LogsConfig struct {
	// MaxPods is how many pods one request follows at once; more are announced and left out.
	MaxPods int `envconfig:"LOGS_MAX_PODS" default:"20"`
	// MaxBytesPerSecond bounds each container stream (a Kubernetes quantity: 1Mi, 500k, 2048); a faster
	// stream is slowed, not cut, and told so.
	MaxBytesPerSecond byteQuantity `envconfig:"LOGS_MAX_BYTES_PER_SECOND" default:"1Mi"`
}

// byteQuantity is a byte count written as a Kubernetes quantity.
type byteQuantity int64

// Decode is envconfig's hook.
func (b *byteQuantity) Decode(v string) error {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return fmt.Errorf("%q is not a quantity (1Mi, 500k, 2048): %w", v, err)
	}
	*b = byteQuantity(q.Value())
	return nil
}

func (c *LogsConfig) check() error {
	if c.MaxPods < 1 {
		return fmt.Errorf("KITEFN_LOGS_MAX_PODS (%d) must be at least 1", c.MaxPods)
	}
	if c.MaxBytesPerSecond < 1 {
		return fmt.Errorf("KITEFN_LOGS_MAX_BYTES_PER_SECOND (%d) must be at least 1", c.MaxBytesPerSecond)
	}
	return nil
}

// logStreams are the live log requests, so SIGTERM can end them and Stop can wait for them.
type logStreams struct {
	mu       sync.Mutex
	shutdown chan struct{} // closed by ShuttingDown
	closing  bool
	wg       sync.WaitGroup
}

func (f *Function) routeLogs() {
	f.logs = &logStreams{shutdown: make(chan struct{})}
	f.mux.Handle(http.MethodGet, "/api/v1/logs/{path...}", clusterhttp.Select(f.clients,
		http.HandlerFunc(f.serveLogs)).ServeHTTP)
}

func (f *Function) startLogs(context.Context) error { return nil }

// shutdownLogs tells every live stream to end: sockets get an info frame and 1001, HTTP streams end.
func (f *Function) shutdownLogs() {
	f.logs.mu.Lock()
	defer f.logs.mu.Unlock()
	if !f.logs.closing {
		f.logs.closing = true
		close(f.logs.shutdown)
	}
}

// stopLogs waits for the streams ShuttingDown ended (or ctx).
func (f *Function) stopLogs(ctx context.Context) error {
	f.shutdownLogs()
	done := make(chan struct{})
	go func() { f.logs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for live log streams to end: %w", ctx.Err())
	}
}

// enter registers a live request; false once shutting down.
func (l *logStreams) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.wg.Add(1)
	return true
}

func (f *Function) serveLogs(w http.ResponseWriter, r *http.Request) {
	if !f.logs.enter() {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusServiceUnavailable, "shutting_down",
			"this instance is shutting down; retry"))
		return
	}
	defer f.logs.wg.Done()

	req, err := parseLogRequest(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	cl, err := logsClient(r.Context(), req.namespace)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	sess, err := f.prepareLogs(r.Context(), cl, req)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	defer sess.closeOpened()
	f.transportLogs(w, r, sess)
}

// logsClient is the request's cluster client once the caller's namespace scope admits ns (403 if not).
func logsClient(ctx context.Context, ns string) (*kube.Client, error) {
	caller, ok := access.CallerFrom(ctx)
	if !ok {
		return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "no authenticated caller on the request")
	}
	if err := caller.CheckNamespace("logs", ns); err != nil {
		return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error())
	}
	cl, ok := clusterhttp.ClientFrom(ctx)
	if !ok {
		return nil, httpapi.Errorf(http.StatusInternalServerError, httpapi.CodeInternal, "no cluster client on the request")
	}
	return cl, nil
}

package runtime

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/shared/access"
)

const token = "runtime-test-token-0123456789"

// fn is a test function with every optional method of the contract.
type fn struct {
	started, stopped, told atomic.Bool
	ready                  atomic.Bool
	release                chan struct{}
	arrived                chan struct{} // gets a value when /fn/slow is being handled
	startErr               error
}

func newFn() *fn {
	f := &fn{release: make(chan struct{}), arrived: make(chan struct{}, 1)}
	f.ready.Store(true)
	return f
}

func (f *fn) Start(ctx context.Context, cfg map[string]string) error {
	if cfg["PATH"] == "" {
		return errors.New("Start got no environment")
	}
	f.started.Store(true)
	return f.startErr
}
func (f *fn) Stop(context.Context) error          { f.stopped.Store(true); return nil }
func (f *fn) Ready(context.Context) (bool, error) { return f.ready.Load(), nil }
func (f *fn) Alive(context.Context) (bool, error) { return true, nil }
func (f *fn) ShuttingDown()                       { f.told.Store(true) }
func (f *fn) Routes() []string                    { return []string{"/fn/"} }
func (f *fn) ConsumesEvents() []string            { return []string{"dev.kitefn.test"} }
func (f *fn) Handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/fn/slow" {
		f.arrived <- struct{}{}
		<-f.release
	}
	_, _ = io.WriteString(w, "handled "+r.URL.Path)
}

// testAccess admits every GET to viewers: the test function's routes are not kitefn's.
func testAccess(t *testing.T) ServerOption {
	t.Helper()
	table, err := access.NewTable([]access.Rule{{Method: "GET", Pattern: "/{path...}", Verb: "get", Resource: "fn",
		Role: access.Viewer}})
	if err != nil {
		t.Fatal(err)
	}
	return WithAccess(AccessConfig{Table: table})
}

func status(t *testing.T, h http.Handler, method, path string, hdr ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestHealthFollowsStartAndReady(t *testing.T) {
	f := newFn()
	s, err := NewServer(Config{Target: "all", ShutdownTimeout: time.Second}, zaptest.NewLogger(t).Sugar(),
		[]Function{{Name: "fn", Value: f}}, []string{token}, testAccess(t))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	if code, _ := status(t, h, "GET", "/health/readiness"); code != 503 {
		t.Fatalf("readiness before Start: %d, want 503", code)
	}
	if code, _ := status(t, h, "GET", "/health/liveness"); code != 200 {
		t.Fatalf("liveness: %d", code)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := status(t, h, "GET", "/health/readiness"); code != 200 {
		t.Fatalf("readiness after Start: %d", code)
	}
	f.ready.Store(false)
	if code, body := status(t, h, "GET", "/health/readiness"); code != 503 || !strings.Contains(body, `"fn"`) {
		t.Fatalf("readiness with a function not ready: %d %s", code, body)
	}
	if code, _ := status(t, h, "GET", "/fn/x"); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, body := status(t, h, "GET", "/fn/x", "Authorization", "Bearer "+token); code != 200 || body != "handled /fn/x" {
		t.Fatalf("routed: %d %q", code, body)
	}
	if code, body := status(t, h, "GET", "/elsewhere", "Authorization", "Bearer "+token); code != 404 ||
		!strings.Contains(body, `"code":"not_found"`) {
		t.Fatalf("unknown route: %d %s", code, body)
	}
	// In one-process mode events only arrive in-process: "/" from outside is not an event endpoint.
	if code, _ := status(t, h, "POST", "/", "Ce-Specversion", "1.0"); code != 401 {
		t.Fatalf("event from outside in all mode: %d, want 401", code)
	}
}

func TestSingleFunctionGetsEverythingAndEventsSkipAuth(t *testing.T) {
	f := newFn()
	s, err := NewServer(Config{Target: "fn", ShutdownTimeout: time.Second}, zaptest.NewLogger(t).Sugar(),
		[]Function{{Name: "fn", Value: f}}, []string{token}, testAccess(t))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	if code, body := status(t, h, "GET", "/any/path", "Authorization", "Bearer "+token); code != 200 || body != "handled /any/path" {
		t.Fatalf("single mode: %d %q", code, body)
	}
	if code, _ := status(t, h, "POST", "/", "Ce-Specversion", "1.0", "Ce-Type", "dev.kitefn.test"); code != 200 {
		t.Fatalf("CloudEvent from a Trigger: %d, want 200 without a token", code)
	}
	if code, _ := status(t, h, "POST", "/"); code != 401 {
		t.Fatalf("plain POST / without a token: %d, want 401", code)
	}
}

func TestGracefulShutdown(t *testing.T) {
	f := newFn()
	s, err := NewServer(Config{Target: "all", ShutdownTimeout: 5 * time.Second}, zaptest.NewLogger(t).Sugar(),
		[]Function{{Name: "fn", Value: f}}, []string{token}, testAccess(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	slow := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/fn/slow", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- string(b)
	}()
	select { // the slow request is in flight
	case <-f.arrived:
	case got := <-slow:
		t.Fatalf("slow request ended before it was handled: %q", got)
	case <-time.After(5 * time.Second):
		t.Fatal("slow request not handled within 5 s")
	}
	cancel() // what SIGTERM does
	if err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return f.told.Load(), nil }); err != nil {
		t.Fatalf("ShuttingDown not called: %v", err)
	}
	if code, _ := status(t, s.Handler(), "GET", "/health/readiness"); code != 503 {
		t.Fatalf("readiness while shutting down: %d, want 503", code)
	}
	if f.stopped.Load() {
		t.Fatal("Stop ran before the in-flight request finished")
	}
	close(f.release)
	if got := <-slow; got != "handled /fn/slow" {
		t.Fatalf("in-flight request: %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !f.stopped.Load() {
		t.Fatal("Stop not called")
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: "all"}, "127.0.0.1:8080"},
		{Config{Target: ""}, "127.0.0.1:8080"},
		{Config{Target: "clusters"}, "[::]:8080"},
		{Config{Target: "clusters", Port: "9000"}, "[::]:9000"},
		{Config{Target: "all", Port: "9000", ListenAddress: "0.0.0.0:1"}, "0.0.0.0:1"},
	} {
		if got := tc.cfg.Address(); got != tc.want {
			t.Errorf("%+v: address %s, want %s", tc.cfg, got, tc.want)
		}
	}
	err := Config{Target: "nope", ShutdownTimeout: time.Second}.Validate([]string{"clusters"})
	if err == nil || !strings.Contains(err.Error(), "clusters") {
		t.Fatalf("unknown target: %v", err)
	}
	if err := (Config{Target: "all", LogFormat: "xml", ShutdownTimeout: time.Second}).Validate(nil); err == nil {
		t.Fatal("bad log format accepted")
	}
	if (Config{KService: "kitefn-clusters"}).Format() != "json" || (Config{}).Format() != "console" {
		t.Fatal("log format defaults")
	}
}

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	all := Config{Target: "all", DataDir: dir}
	toks, path, err := all.Tokens()
	if err != nil || len(toks) != 1 || path != filepath.Join(dir, "api-token") {
		t.Fatalf("generated: %v %v %v", toks, path, err)
	}
	again, _, _ := all.Tokens()
	if again[0] != toks[0] {
		t.Fatal("local token not reused across starts")
	}
	if _, _, err := (Config{Target: "clusters", DataDir: dir}).Tokens(); err == nil {
		t.Fatal("deployed function started without tokens")
	}
	if _, _, err := (Config{Target: "all", APITokens: []string{"short"}}).Tokens(); err == nil {
		t.Fatal("short token accepted")
	}
	file := filepath.Join(dir, "tokens")
	_ = os.WriteFile(file, []byte("# comment\nfrom-file-0123456789abcdef\n\n"), 0o600)
	toks, path, err = (Config{Target: "clusters", APITokens: []string{"from-env-0123456789abcdef"}, APITokensFile: file}).Tokens()
	if err != nil || path != "" || len(toks) != 2 {
		t.Fatalf("env + file: %v %v %v", toks, path, err)
	}
}

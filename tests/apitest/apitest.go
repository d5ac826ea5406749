// Package apitest runs kitefn functions for tests the way the binary does — the real runtime (auth, routing,
// health) over a real platform (a bbolt file, the sealer, the client cache) on a real listener — and makes HTTP
// calls against them.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap/zaptest"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/functions/catalog"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// Token is the bearer token test servers accept.
const Token = "test-token-0123456789abcdef"

// EncryptionKey seals kubeconfigs in test servers (a deployed function must be given one).
const EncryptionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// Server is one running kitefn process's worth of functions (a "replica").
type Server struct {
	t        testing.TB
	URL      string
	Platform *platform.Platform
	// Hits counts the requests the server received (a retry shows as one more).
	Hits atomic.Int64
	auth []access.Authenticator
	logs *logBuffer
}

// Fn is a function to run, built over the platform (functions/catalog has every real one).
type Fn = runtime.Spec[*platform.Platform]

// Function is the real function of this name, wired as the binary wires it.
func Function(name string) Fn {
	for _, s := range catalog.All() {
		if s.Name == name {
			return s
		}
	}
	panic("apitest: no function " + name)
}

// Start runs fns over a bbolt file in a temp dir, in one-process mode unless env sets FUNCTION_TARGET. env sets
// or overrides variables (t.Setenv: such tests cannot run in parallel).
func Start(t *testing.T, env map[string]string, fns ...Fn) *Server {
	t.Helper()
	return StartWith(t, env, nil, fns...)
}

// StartWith is Start with authenticators asked after the bootstrap token and the platform's own (tests map
// fixed credentials to callers of each role and scope).
func StartWith(t *testing.T, env map[string]string, auth []access.Authenticator, fns ...Fn) *Server {
	t.Helper()
	dir := t.TempDir()
	base := map[string]string{
		"FUNCTION_TARGET":           "all",
		"KITEFN_STORE":              "bbolt",
		"KITEFN_BBOLT_PATH":         filepath.Join(dir, "kitefn.db"),
		"KITEFN_DATA_DIR":           dir,
		"KITEFN_IMPORT_KUBECONFIG":  "false",
		"KITEFN_EVENT_BACKOFF":      "10ms",
		"KITEFN_CLIENT_REVALIDATE":  "30s",
		"K_SINK":                    "",
		"KITEFN_ALLOW_EXEC_PLUGINS": "false",
		"KITEFN_ENCRYPTION_KEY":     EncryptionKey,
		"KITEFN_PROMETHEUS_URLS":    "",
		// Tests poll in tight loops; a test of the limit itself sets it.
		"KITEFN_RATE_LIMIT": "0",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	return serve(t, fns, nil, auth)
}

// Replica starts fns as another replica sharing s's store (replicas share one database) with its own client
// cache.
func (s *Server) Replica(t *testing.T, fns ...Fn) *Server {
	t.Helper()
	return serve(t, fns, s.Platform, s.auth)
}

func serve(t *testing.T, specs []Fn, share *platform.Platform, auth []access.Authenticator) *Server {
	t.Helper()
	var rcfg runtime.Config
	if err := envconfig.Process("kitefn", &rcfg); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := logs.tee(zaptest.NewLogger(t)).Sugar()
	ctx := logging.WithLogger(context.Background(), log)
	cfg, err := platform.Load()
	if err != nil {
		t.Fatal(err)
	}
	var p *platform.Platform
	if share == nil {
		if p, err = platform.New(ctx, cfg, rcfg, log); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
	} else {
		// Another replica: the same store, sealer and event sender, its own client cache. Events it sends
		// still reach the first one's in-process consumers, so it binds none.
		q := *share
		if q.Clients, err = kube.NewCache(q.Store, q.Sealer, q.Config.Kube); err != nil {
			t.Fatal(err)
		}
		p = &q
	}
	bind := func(p *platform.Platform, fns []runtime.Function) { p.Bind(fns) }
	if share != nil {
		bind = nil
	}
	opts := runtime.Options[*platform.Platform]{Functions: specs, Bind: bind}
	fns := opts.Build(rcfg, p)
	acc, err := catalog.Options().AccessOf(p)
	if err != nil {
		t.Fatal(err)
	}
	acc.Authenticators = append(acc.Authenticators, auth...)
	srv, err := runtime.NewServer(rcfg, log, fns, []string{Token}, runtime.WithAccess(acc))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out := &Server{t: t, Platform: p, auth: auth, logs: logs}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out.Hits.Add(1)
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	out.URL = ts.URL
	return out
}

// AddCluster registers a cluster straight in the registry (sealed as the clusters function would), for tests
// of functions that only read the registry.
func (s *Server) AddCluster(name string, kubeconfig []byte) *store.Cluster {
	s.t.Helper()
	sealed, err := s.Platform.Sealer.Seal(kubeconfig)
	if err != nil {
		s.t.Fatal(err)
	}
	rec, err := s.Platform.Store.Create(context.Background(), &store.Cluster{Name: name, Server: "https://test",
		Kubeconfig: sealed, Prometheus: store.Prometheus{Status: store.PrometheusPending}})
	if err != nil {
		s.t.Fatal(err)
	}
	return rec
}

// Response is a reply, with its JSON decoded when it is JSON.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Do calls the server with the test token. body may be nil, []byte, a string or anything JSON-encodable; hdr
// are header name/value pairs (a Content-Type there replaces the JSON default; an empty value removes a
// header, e.g. Authorization).
func (s *Server) Do(method, path string, body any, hdr ...string) Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	out := Response{Status: res.StatusCode, Header: res.Header, Body: data}
	if len(data) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, &out.JSON); err != nil {
			s.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, data)
		}
	}
	return out
}

// Expect fails unless the reply has the status and, for errors, the stable error code with a message.
func (r Response) Expect(t testing.TB, status int, code string) Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body: %s", r.Status, status, r.Body)
	}
	if code != "" {
		e, _ := r.JSON["error"].(map[string]any)
		if e == nil || e["code"] != code {
			t.Fatalf("error code %v, want %q; body: %s", e["code"], code, r.Body)
		}
		if msg, _ := e["message"].(string); msg == "" {
			t.Fatalf("error without a message: %s", r.Body)
		}
		if int(e["status"].(float64)) != status {
			t.Fatalf("error.status %v, want %d", e["status"], status)
		}
	}
	return r
}

// Message is the error message of an error reply.
func (r Response) Message() string {
	e, _ := r.JSON["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// Items is the "items" array of a list reply.
func (r Response) Items() []map[string]any {
	raw, _ := r.JSON["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

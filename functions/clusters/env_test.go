package clusters_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/logging"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/functions/clusters"
	kubepkg "github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/tests/harness"
)

const testToken = "test-token-0123456789abcdef"

// kube is the real kube-apiserver every test in this package shares.
var kube *harness.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	c, err := harness.Start(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting kube-apiserver: %v\n", err)
		os.Exit(1)
	}
	kube = c
	code := m.Run()
	c.Stop()
	os.Exit(code)
}

func needKube(t *testing.T) {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
}

// api is one running kitefn server (a "replica") on a real listener.
type api struct {
	t    *testing.T
	URL  string
	plat *platform.Platform
}

// startAPI runs the given functions (the clusters function when none) in one-process mode over a bbolt file in
// a temp dir; env sets extra KITEFN_* variables.
func startAPI(t *testing.T, env map[string]string, extra ...runtime.Function) *api {
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
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	fns := append([]runtime.Function{{Name: "clusters", Value: clusters.New()}}, extra...)
	return serve(t, fns, nil)
}

// serve starts fns; with share set, the new replica uses share's store (as replicas share one database) but
// its own client cache.
func serve(t *testing.T, fns []runtime.Function, share *platform.Platform) *api {
	t.Helper()
	var rcfg runtime.Config
	if err := envconfig.Process("kitefn", &rcfg); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t).Sugar()
	ctx := logging.WithLogger(context.Background(), log)
	cfg, err := platform.Load()
	if err != nil {
		t.Fatal(err)
	}
	var p *platform.Platform
	if share == nil {
		if p, err = platform.New(ctx, cfg, rcfg, log, fns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
	} else {
		q := *share
		if q.Clients, err = newCache(&q); err != nil {
			t.Fatal(err)
		}
		p = &q
	}
	srv, err := runtime.NewServer(rcfg, log, fns, []string{testToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(platform.WithPlatform(ctx, p)); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &api{t: t, URL: ts.URL, plat: p}
}

// response is a decoded reply.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (a *api) do(method, path string, body any, hdr ...string) response {
	a.t.Helper()
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
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	out := response{Status: res.StatusCode, Header: res.Header, Body: data}
	if len(data) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, &out.JSON); err != nil {
			a.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, data)
		}
	}
	return out
}

// expect fails unless the reply has the status and, for errors, the stable error code.
func (r response) expect(t *testing.T, status int, code string) response {
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

func (r response) message() string {
	e, _ := r.JSON["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// count returns how many clusters the registry holds, read through the API.
func (a *api) count() int {
	a.t.Helper()
	r := a.do(http.MethodGet, "/api/v1/clusters", nil).expect(a.t, http.StatusOK, "")
	return len(r.JSON["items"].([]any))
}

func register(name string, kubeconfig []byte) map[string]any {
	return map[string]any{"name": name, "kubeconfig": string(kubeconfig)}
}

func newCache(p *platform.Platform) (*kubepkg.Cache, error) {
	return kubepkg.NewCache(p.Store, p.Sealer, p.Config.Kube)
}

// mutate returns kc changed by fn.
func mutate(t *testing.T, kc []byte, fn func(*clientcmdapi.Config)) []byte {
	t.Helper()
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		t.Fatal(err)
	}
	fn(cfg)
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func metav1ListOptions() metav1.ListOptions { return metav1.ListOptions{Limit: 1} }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

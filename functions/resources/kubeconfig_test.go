package resources_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/tests/apitest"
)

// handout downloads a kubeconfig as the caller of token.
func (e *proxyEnv) handout(t *testing.T, token, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestKubeconfigHandoutReachesTheCluster(t *testing.T) {
	e := proxySetup(t)
	res, body := e.handout(t, "viewer-token", "/api/v1/clusters/test/kubeconfig?embedToken=true")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/yaml" ||
		res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v\n%s", res.StatusCode, res.Header, body)
	}
	cfg, err := clientcmd.Load(body)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "kitefn-test" || len(cfg.Contexts) != 1 ||
		cfg.Clusters["kitefn-test"].Server != e.url+"/k8s/clusters/test" || cfg.AuthInfos["kitefn"].Token != "viewer-token" ||
		cfg.AuthInfos["kitefn"].Exec != nil {
		t.Fatalf("kubeconfig: %+v %+v", cfg, cfg.Clusters["kitefn-test"])
	}
	cfg.Clusters["kitefn-test"].CertificateAuthorityData = e.ca // the gateway's certificate, publicly trusted in production
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	e.ns(t, "proxy-a")
	ns, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Namespaces().Get(t.Context(), "proxy-a", metav1.GetOptions{})
	if err != nil || ns.Name != "proxy-a" {
		t.Fatalf("through the handed-out kubeconfig: %v %v", ns, err)
	}
}

func TestKubeconfigHandoutShapes(t *testing.T) {
	e := proxySetup(t)
	// Without embedToken: a placeholder and a comment saying what to put there.
	res, body := e.handout(t, "admin-token", "/api/v1/clusters/1/kubeconfig")
	cfg, err := clientcmd.Load(body)
	if res.StatusCode != 200 || err != nil || cfg.AuthInfos["kitefn"].Token != resources.TokenPlaceholder ||
		!strings.HasPrefix(string(body), "# kitefn kubeconfig: replace <KITEFN_TOKEN>") ||
		strings.Contains(string(body), "admin-token") || res.Header.Get("Cache-Control") == "no-store" {
		t.Fatalf("%d %v\n%s", res.StatusCode, err, body)
	}

	// _all: every cluster in the caller's scope; JSON on request; the gateway's forwarded host and proto.
	check := func(token, query string, want []string, current string) *clientcmdapi.Config {
		t.Helper()
		res, body := e.handout(t, token, "/api/v1/clusters/_all/kubeconfig?format=json"+query,
			"X-Forwarded-Proto", "https", "X-Forwarded-Host", "kitefn.example.com")
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
			t.Fatalf("%d %v\n%s", res.StatusCode, res.Header, body)
		}
		cfg, err := clientcmd.Load(body)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, name := range want {
			c := cfg.Clusters["kitefn-"+name]
			if c == nil || c.Server != "https://kitefn.example.com/k8s/clusters/"+name || cfg.Contexts["kitefn-"+name] == nil {
				t.Fatalf("%s: no context for %s: %s", token, name, body)
			}
			got = append(got, name)
		}
		if len(cfg.Contexts) != len(want) || cfg.CurrentContext != "kitefn-"+current {
			t.Fatalf("%s: contexts %v current %s, want %v current %s", token, cfg.Contexts, cfg.CurrentContext, want, current)
		}
		return cfg
	}
	check("admin-token", "", []string{"other", "test"}, "other")
	check("admin-token", "&current=test", []string{"other", "test"}, "test")
	check("test-only-token", "", []string{"test"}, "test")
	if cfg := check("team-a-token", "", []string{"other", "test"}, "other"); cfg.Contexts["kitefn-test"].Namespace != "proxy-a" {
		t.Fatalf("a caller scoped to one namespace gets it as the context namespace: %+v", cfg.Contexts["kitefn-test"])
	}

	for _, tc := range []struct {
		token, path string
		status      int
		msg         string
	}{
		{"test-only-token", "/api/v1/clusters/other/kubeconfig", 403, `cluster \"other\" is outside your cluster scope`},
		{"admin-token", "/api/v1/clusters/nope/kubeconfig", 404, `cluster \"nope\" not found`},
		{"admin-token", "/api/v1/clusters/test/kubeconfig?format=xml", 400, "format must be yaml or json"},
		{"admin-token", "/api/v1/clusters/_all/kubeconfig?current=nope", 400, `current=\"nope\" is not one of`},
		{"unknown-token", "/api/v1/clusters/test/kubeconfig", 403, "no authenticated caller"},
	} {
		res, body := e.handout(t, tc.token, tc.path)
		if res.StatusCode != tc.status || !strings.Contains(string(body), tc.msg) || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.token, tc.path, res.StatusCode, body, tc.status, tc.msg)
		}
	}
}

func TestKubeconfigPublicURL(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	t.Setenv("KITEFN_PUBLIC_URL", "https://api.example.com/kitefn/")
	e := proxySetup(t)
	_, body := e.handout(t, "admin-token", "/api/v1/clusters/test/kubeconfig", "X-Forwarded-Host", "evil.example.com")
	cfg, err := clientcmd.Load(body)
	if err != nil || cfg.Clusters["kitefn-test"].Server != "https://api.example.com/kitefn/k8s/clusters/test" {
		t.Fatalf("%v\n%s", err, body)
	}
	t.Setenv("KITEFN_PUBLIC_URL", "ftp://x")
	if _, err := resources.LoadConfig(); err == nil || !strings.Contains(err.Error(), "KITEFN_PUBLIC_URL") {
		t.Fatalf("a bad KITEFN_PUBLIC_URL: %v", err)
	}
}

// kubectl runs the kubectl on PATH with a kubeconfig handed out to the caller of token.
func (e *proxyEnv) kubectl(t *testing.T, token string, args ...string) (string, error) {
	t.Helper()
	_, body := e.handout(t, token, "/api/v1/clusters/test/kubeconfig?embedToken=true")
	cfg, err := clientcmd.Load(body)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clusters["kitefn-test"].CertificateAuthorityData = e.ca
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", path}, args...)...).CombinedOutput()
	return string(out), err
}

func TestKubectlThroughTheProxy(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("no kubectl on PATH")
	}
	e := proxySetup(t)
	e.fakePod(t, "proxy-k", "kpod")
	for _, tc := range []struct {
		token string
		args  []string
		want  string
		fails bool
	}{
		{"viewer-token", []string{"get", "pod", "kpod", "-n", "proxy-k", "-o", "name"}, "pod/kpod", false},
		{"viewer-token", []string{"logs", "kpod", "-n", "proxy-k"}, "hello through the proxy", false},
		{"operator-token", []string{"exec", "kpod", "-n", "proxy-k", "--", "cat", "marker"}, "exec marker", false},
		{"viewer-token", []string{"delete", "pod", "kpod", "-n", "proxy-k"},
			"Error from server (Forbidden): kitefn: delete pods needs the operator role", true},
		{"team-a-token", []string{"get", "pods", "-n", "proxy-k"},
			`Error from server (Forbidden): kitefn: namespace "proxy-k" is outside your namespace scope`, true},
	} {
		out, err := e.kubectl(t, tc.token, tc.args...)
		if (err != nil) != tc.fails || !strings.Contains(out, tc.want) {
			t.Errorf("%s kubectl %v: %v\n%s\nwant %q", tc.token, tc.args, err, out, tc.want)
		}
	}
}

func TestProxyRouteInTheRuntime(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	// Every function in one process (the routes must not clash); the runtime's bootstrap token is an admin
	// caller, so the proxy lets it through.
	var fns []apitest.Fn
	for _, name := range []string{"clusters", "resources", "search"} {
		fns = append(fns, apitest.Function(name))
	}
	api := apitest.Start(t, nil, fns...)
	api.AddCluster("test", kube.AdminKubeconfig())
	r := api.Do(http.MethodGet, "/k8s/clusters/test/api/v1/namespaces", nil)
	if r.Status != 200 || r.JSON["kind"] != "NamespaceList" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	r = api.Do(http.MethodGet, "/api/v1/clusters/test/kubeconfig", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), "/k8s/clusters/test") {
		t.Fatalf("kubeconfig handout: %d %s", r.Status, r.Body)
	}
}

package resources_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/shared/prometheus/prometheustest"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/netns"
)

// promPeer is a Prometheus HTTP API server: the shared fake, plus an execution error (HTTP 422) for one query.
func promPeer(t *testing.T) (*prometheustest.Server, *httptest.Server) {
	fake := &prometheustest.Server{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("query") == "exec_error" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"execution","error":"query processing would load too many samples"}`))
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return fake, ts
}

// setPrometheus saves what discovery would for a cluster.
func setPrometheus(t *testing.T, api *apitest.Server, name string, p store.Prometheus) *store.Cluster {
	t.Helper()
	ctx := context.Background()
	rec, err := api.Platform.Store.GetByName(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	rec.Prometheus = p
	if rec, err = api.Platform.Store.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func promErr(t *testing.T, r apitest.Response) map[string]any {
	t.Helper()
	p, _ := r.JSON["error"].(map[string]any)["prometheus"].(map[string]any)
	return p
}

func TestPrometheusQueryDirect(t *testing.T) {
	e := setup(t)
	_, ts := promPeer(t)
	rec := setPrometheus(t, e.api, "test", store.Prometheus{URL: ts.URL, Status: store.PrometheusFound})

	for _, ref := range []string{"test", strconv.FormatUint(rec.ID, 10)} {
		r := e.api.Do(http.MethodGet, "/api/v1/clusters/"+ref+"/prometheus/query?query=up&time=1712345678.5", nil).Expect(t, 200, "")
		data := r.JSON["data"].(map[string]any)
		res := data["result"].([]any)
		if r.JSON["status"] != "success" || data["resultType"] != "vector" || len(res) != 1 {
			t.Fatalf("%s: %s", ref, r.Body)
		}
		sample := res[0].(map[string]any)
		if sample["metric"].(map[string]any)["__name__"] != "up" || sample["value"].([]any)[0] != 1712345678.5 {
			t.Fatalf("sample: %v", sample)
		}
	}
	r := e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query_range?query=up&start=1000&end=2970-01-01T00:00:00Z&step=15s", nil)
	r.Expect(t, 400, "bad_request") // 31 billion seconds in 15s steps: refused before asking
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query_range?query=up&start=1000&end=1060&step=15s", nil).Expect(t, 200, "")
	series := r.JSON["data"].(map[string]any)["result"].([]any)
	if r.JSON["data"].(map[string]any)["resultType"] != "matrix" || len(series) != 1 || len(series[0].(map[string]any)["values"].([]any)) != 5 {
		t.Fatalf("range: %s", r.Body)
	}

	// Prometheus's own errors, kept apart from the cluster's.
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query?query=nope", nil).Expect(t, 400, resources.CodePrometheusError)
	if p := promErr(t, r); p["errorType"] != "bad_data" || p["status"] != float64(400) || !strings.Contains(p["error"].(string), "nope") {
		t.Fatalf("bad_data: %s", r.Body)
	}
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query?query=exec_error", nil).Expect(t, 422, resources.CodePrometheusError)
	if p := promErr(t, r); p["errorType"] != "execution" || !strings.Contains(r.Message(), "too many samples") {
		t.Fatalf("execution: %s", r.Body)
	}

	// Our own validation.
	for _, q := range []string{"query", "query_range?query=up&start=1&end=2", "query_range?query=up&start=5&end=1&step=1", "query?query=up&time=yesterday", "query_range?query=up&start=1&end=2&step=-1s"} {
		e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/"+q, nil).Expect(t, 400, "bad_request")
	}
	e.api.Do(http.MethodGet, "/api/v1/clusters/nope/prometheus/query?query=up", nil).Expect(t, 404, "not_found")

	// Where discovery stands.
	e.api.AddCluster("fresh", kube.AdminKubeconfig()) // pending
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/fresh/prometheus/query?query=up", nil).Expect(t, 409, resources.CodePrometheusPending)
	if !strings.Contains(r.Message(), `"fresh"`) {
		t.Fatalf("pending: %q", r.Message())
	}
	setPrometheus(t, e.api, "fresh", store.Prometheus{Status: store.PrometheusNotFound, Message: "no Prometheus Service"})
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/fresh/prometheus/query?query=up", nil).Expect(t, 404, resources.CodePrometheusNotFound)
	if !strings.Contains(r.Message(), "no Prometheus Service") || !strings.Contains(r.Message(), "prometheusURL") {
		t.Fatalf("not found: %q", r.Message())
	}

	// A Prometheus that does not answer.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	setPrometheus(t, e.api, "fresh", store.Prometheus{URL: dead.URL, Status: store.PrometheusManual})
	e.api.Do(http.MethodGet, "/api/v1/clusters/fresh/prometheus/query?query=up", nil).Expect(t, 502, resources.CodePrometheusUnreachable)
}

func TestPrometheusAnswerBounded(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, map[string]string{"KITEFN_PROMETHEUS_MAX_BYTES": "200"}, apitest.Function("resources"))
	api.AddCluster("test", kube.AdminKubeconfig())
	_, ts := promPeer(t)
	setPrometheus(t, api, "test", store.Prometheus{URL: ts.URL, Status: store.PrometheusFound})
	api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query_range?query=up&start=0&end=600&step=1", nil).
		Expect(t, 502, resources.CodePrometheusUnreachable)
	api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query?query=up", nil).Expect(t, 200, "")
}

// TestPrometheusThroughServiceProxy: the saved URL is a service-proxy path; the query goes through the real
// kube-apiserver to a Prometheus API server behind a Service (in a network namespace: the proxy refuses
// loopback endpoints), with the cluster's credentials, which a limited kubeconfig may lack.
func TestPrometheusThroughServiceProxy(t *testing.T) {
	e := setup(t)
	ns := netns.MustNew(t)
	fake := &prometheustest.Server{}
	addr := ns.Addrs()[0]
	srv, err := ns.StartHTTP(netip.AddrPortFrom(addr, 9090), fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	admin := kubernetes.NewForConfigOrDie(kube.RESTConfig())
	spec := netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus", Port: 9090}
	cleanup, err := netns.Expose(t.Context(), admin, addr, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cleanup(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := netns.WaitProxied(t.Context(), admin, spec.Namespace, spec.Name, spec.Port, "/api/v1/status/buildinfo"); err != nil {
		t.Fatal(err)
	}
	saved := store.Prometheus{URL: "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy", Status: store.PrometheusFound}
	setPrometheus(t, e.api, "test", saved)

	before := fake.Requests()
	r := e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query?query=vector(1)", nil).Expect(t, 200, "")
	if r.JSON["data"].(map[string]any)["resultType"] != "vector" || fake.Requests() != before+1 {
		t.Fatalf("through the proxy: %s", r.Body)
	}
	if auth := fake.AuthorizationHeaders(); len(auth) != 0 {
		t.Fatalf("credentials reached Prometheus: %d headers", len(auth))
	}
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/test/prometheus/query?query=nope", nil).Expect(t, 400, resources.CodePrometheusError)
	if promErr(t, r)["errorType"] != "bad_data" {
		t.Fatalf("bad_data through the proxy: %s", r.Body)
	}

	// A kubeconfig that may not use services/proxy: the apiserver's 403, not Prometheus's.
	e.api.AddCluster("noproxy", kube.Kubeconfig(limitedUser))
	setPrometheus(t, e.api, "noproxy", saved)
	r = e.api.Do(http.MethodGet, "/api/v1/clusters/noproxy/prometheus/query?query=up", nil).Expect(t, 403, "forbidden")
	if !strings.Contains(r.Message(), "services/proxy") || promErr(t, r) != nil {
		t.Fatalf("forbidden proxy: %s", r.Body)
	}
	// Once allowed, it works.
	ctx := context.Background()
	_, err = admin.RbacV1().Roles("monitoring").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "proxy"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.RbacV1().RoleBindings("monitoring").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "proxy"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "proxy"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: limitedUser}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return e.api.Do(http.MethodGet, "/api/v1/clusters/noproxy/prometheus/query?query=up", nil).Status == 200, nil
	})
	if err != nil {
		t.Fatal("the proxy permission never took effect")
	}
	var ans struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(e.api.Do(http.MethodGet, "/api/v1/clusters/noproxy/prometheus/query?query=up", nil).Body, &ans); err != nil || len(ans.Data.Result) != 1 {
		t.Fatalf("answer: %v %v", err, ans)
	}
}

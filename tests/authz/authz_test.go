// Package authz drives every route of the authorisation table as every role, through the real functions over
// a real kube-apiserver: a role below the route's is refused with 403 naming the role it needs, a role at or
// above it reaches the function (which answers what it answers for that target), and scopes by cluster and
// namespace hold.
package authz

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

// call is one concrete request for a route of the table and what a caller allowed on it gets back.
type call struct {
	path string
	body any
	hdr  []string
	// want is the status an allowed caller gets (the function's own answer for this target); wantText, when
	// set, must be in that answer.
	want     int
	wantText string
}

const configMap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: authz-probe, namespace: default}\ndata: {a: b}\n"

// calls has one request per rule, keyed "METHOD PATTERN". Targets are harmless: writes are dry runs or aim at
// objects that do not exist, so the same call can be made by every role in any order.
var calls = map[string]call{
	"GET /api/v1/me": {path: "/api/v1/me", want: 200, wantText: `"roles"`},
	// In one process events reach their consumers in memory: nothing serves POST / (a deployed event
	// consumer does; the table still asks for admin).
	"POST /{$}":                       {path: "/", body: "{}", want: 404},
	"GET /api/v1/clusters":            {path: "/api/v1/clusters", want: 200, wantText: `"name":"dev"`},
	"GET /api/v1/clusters/{ref}":      {path: "/api/v1/clusters/dev", want: 200, wantText: `"name":"dev"`},
	"POST /api/v1/clusters":           {path: "/api/v1/clusters", body: map[string]any{"name": ""}, want: 400},
	"POST /api/v1/clusters/import":    {path: "/api/v1/clusters/import", body: map[string]any{}, want: 400},
	"POST /api/v1/clusters/reconcile": {path: "/api/v1/clusters/reconcile", want: 200},
	"PATCH /api/v1/clusters/{ref}": {path: "/api/v1/clusters/nope", body: map[string]any{"labels": map[string]string{}},
		hdr: []string{"Content-Type", "application/merge-patch+json"}, want: 404, wantText: "nope"},
	"DELETE /api/v1/clusters/{ref}":      {path: "/api/v1/clusters/nope", want: 404, wantText: "nope"},
	"POST /api/v1/clusters/{ref}/verify": {path: "/api/v1/clusters/nope/verify", want: 404, wantText: "nope"},
	"POST /api/v1/clusters/{ref}/prometheus/discover": {path: "/api/v1/clusters/nope/prometheus/discover", want: 404,
		wantText: "nope"},
	"GET /api/v1/clusters/{ref}/prometheus/query":       {path: "/api/v1/clusters/nope/prometheus/query?query=up", want: 404},
	"GET /api/v1/clusters/{ref}/prometheus/query_range": {path: "/api/v1/clusters/nope/prometheus/query_range?query=up", want: 400, wantText: "start is required"},
	"GET /api/v1/clusters/{ref}/kubeconfig": {path: "/api/v1/clusters/dev/kubeconfig", want: 200,
		wantText: "/k8s/clusters/dev"},
	"GET /api/v1/resources/{path...}": {path: "/api/v1/resources/configmaps/kube-system?cluster=dev", want: 200,
		wantText: `"items"`},
	"GET /api/v1/crds":          {path: "/api/v1/crds?cluster=dev", want: 200},
	"GET /api/v1/crds/families": {path: "/api/v1/crds/families?cluster=dev", want: 200},
	"POST /api/v1/apply": {path: "/api/v1/apply?cluster=dev&dryRun=true", body: configMap,
		hdr: []string{"Content-Type", "application/yaml"}, want: 200, wantText: "authz-probe"},
	"POST /api/v1/resources/{path...}": {path: "/api/v1/resources/deployments/default/nope/scale?cluster=dev",
		body: map[string]any{"replicas": 1}, want: 404, wantText: "nope"},
	"DELETE /api/v1/resources/{path...}": {path: "/api/v1/resources/configmaps/default/nope?cluster=dev", want: 404,
		wantText: "nope"},
	"GET /api/v1/search":        {path: "/api/v1/search?q=kube&cluster=dev", want: 200, wantText: `"items"`},
	"GET /api/v1/search/status": {path: "/api/v1/search/status", want: 200},
	"GET /api/v1/relations/{path...}": {path: "/api/v1/relations/configmaps/default/nope?cluster=dev", want: 404,
		wantText: "nope"},
	// The terminal's sockets answer a plain GET with 400 (they need a WebSocket).
	"GET /api/v1/logs/{path...}": {path: "/api/v1/logs/default/nope?cluster=dev", want: 404,
		wantText: `pods \"nope\" not found`},
	"GET /api/v1/terminal/pods/{path...}": {path: "/api/v1/terminal/pods/default/nope?cluster=dev", want: 400,
		wantText: "WebSocket endpoint"},
	"GET /api/v1/terminal/nodes/{path...}": {path: "/api/v1/terminal/nodes/nope?cluster=dev", want: 400,
		wantText: "WebSocket endpoint"},
	"POST /api/v1/terminal/tickets": {path: "/api/v1/terminal/tickets", body: map[string]any{"cluster": "dev",
		"kind": "logs", "namespace": "default", "pod": "nope"}, want: 201, wantText: `"ticket"`},

	"GET /k8s/clusters/{cluster}/{path...}": {path: "/k8s/clusters/dev/api/v1/namespaces/kube-system/configmaps",
		want: 200, wantText: `"kind":"ConfigMapList"`},
	"POST /k8s/clusters/{cluster}/{path...}": {path: "/k8s/clusters/dev/api/v1/namespaces/default/configmaps?dryRun=All",
		body: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "authz-probe"}},
		want: 201, wantText: `"authz-probe"`},
	"PUT /k8s/clusters/{cluster}/{path...}": {path: "/k8s/clusters/dev/api/v1/namespaces/default/configmaps/nope?dryRun=All",
		body: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "nope"}},
		want: 404, wantText: "nope"},
	"PATCH /k8s/clusters/{cluster}/{path...}": {path: "/k8s/clusters/dev/api/v1/namespaces/default/configmaps/nope?dryRun=All",
		body: map[string]any{"data": map[string]string{"a": "b"}}, hdr: []string{"Content-Type", "application/merge-patch+json"},
		want: 404, wantText: "nope"},
	"DELETE /k8s/clusters/{cluster}/{path...}": {path: "/k8s/clusters/dev/api/v1/namespaces/default/configmaps/nope?dryRun=All",
		want: 404, wantText: "nope"},

	"GET /api/v1/tokens":           {path: "/api/v1/tokens", want: 200, wantText: `"name":"viewer"`},
	"POST /api/v1/tokens":          {path: "/api/v1/tokens", body: map[string]any{"name": "x"}, want: 400, wantText: "roles"},
	"GET /api/v1/tokens/{name}":    {path: "/api/v1/tokens/nope", want: 404},
	"DELETE /api/v1/tokens/{name}": {path: "/api/v1/tokens/nope", want: 404},
	"GET /api/v1/audit":            {path: "/api/v1/audit", want: 200, wantText: `"items"`},
}

var roles = []access.Role{access.Viewer, access.Operator, access.Admin}

// env is a server with every function, clusters dev and prod-1 (both the harness's apiserver as admin), and a
// named token per role plus scoped ones.
type env struct {
	api    *apitest.Server
	tokens map[string]string // token name → secret
}

func start(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, nil, apitest.Function("clusters"), apitest.Function("discovery"),
		apitest.Function("resources"), apitest.Function("search"), apitest.Function("terminal"))
	api.AddCluster("dev", kube.AdminKubeconfig())
	api.AddCluster("prod-1", kube.AdminKubeconfig())
	e := &env{api: api, tokens: map[string]string{}}
	for _, tok := range []map[string]any{
		{"name": "viewer", "roles": []string{"viewer"}},
		{"name": "operator", "roles": []string{"operator"}},
		{"name": "admin", "roles": []string{"admin"}},
		{"name": "prod-viewer", "roles": []string{"viewer"}, "clusters": []string{"prod-*"}},
		{"name": "not-prod-admin", "roles": []string{"admin"}, "clusters": []string{"!prod-*"}},
		{"name": "team-a-operator", "roles": []string{"operator"}, "namespaces": []string{"team-a"}},
		{"name": "revoked", "roles": []string{"admin"}},
	} {
		r := api.Do(http.MethodPost, "/api/v1/tokens", tok).Expect(t, http.StatusCreated, "")
		e.tokens[tok["name"].(string)] = r.JSON["token"].(string)
	}
	api.Do(http.MethodDelete, "/api/v1/tokens/revoked", nil).Expect(t, http.StatusNoContent, "")
	return e
}

// as makes the call with the named token.
func (e *env) as(token, method string, c call) apitest.Response {
	hdr := append([]string{"Authorization", "Bearer " + e.tokens[token]}, c.hdr...)
	return e.api.Do(method, c.path, c.body, hdr...)
}

func TestEveryRouteEveryRole(t *testing.T) {
	e := start(t)
	for _, rule := range access.Routes() {
		key := rule.Method + " " + rule.Pattern
		c, ok := calls[key]
		if !ok {
			t.Errorf("route %s has no call in this test: add one", key)
			continue
		}
		t.Run(key, func(t *testing.T) {
			if r := e.api.Do(rule.Method, c.path, c.body, append([]string{"Authorization", ""}, c.hdr...)...); r.Status != 401 ||
				!strings.Contains(string(r.Body), `"code":"unauthorized"`) {
				t.Errorf("no token: %d %s, want 401", r.Status, r.Body)
			}
			if r := e.as("revoked", rule.Method, c); r.Status != 401 || !strings.Contains(r.Message(), "unknown, revoked or expired") {
				t.Errorf("revoked token: %d %s, want 401 unknown, revoked or expired", r.Status, r.Body)
			}
			for _, role := range roles {
				r := e.as(string(role), rule.Method, c)
				caller := &access.Caller{Roles: []access.Role{role}}
				if !caller.Has(rule.Role) {
					if r.Status != 403 || !strings.Contains(r.Message(), "needs the "+string(rule.Role)+" role") ||
						!strings.Contains(r.Message(), `token "`+string(role)+`"`) {
						t.Errorf("%s: %d %s, want 403 saying it needs the %s role", role, r.Status, r.Body, rule.Role)
					}
					continue
				}
				if r.Status != c.want || !strings.Contains(string(r.Body), c.wantText) {
					t.Errorf("%s: %d %s, want %d with %q", role, r.Status, r.Body, c.want, c.wantText)
				}
			}
		})
	}
	for key := range calls {
		method, pattern, _ := strings.Cut(key, " ")
		found := false
		for _, rule := range access.Routes() {
			found = found || (rule.Method == method && rule.Pattern == pattern)
		}
		if !found {
			t.Errorf("call %s is for no route of the table", key)
		}
	}
}

// TestUnknownRoutesAreDenied: a path no rule names is a 404 and another method of a known path a 405, for an
// admin too, whatever a function would serve.
func TestUnknownRoutesAreDenied(t *testing.T) {
	e := start(t)
	if r := e.as("admin", http.MethodGet, call{path: "/api/v1/nothing-here"}); r.Status != 404 ||
		!strings.Contains(r.Message(), "denied, not allowed") {
		t.Errorf("unknown path: %d %s", r.Status, r.Body)
	}
	if r := e.as("admin", http.MethodPut, call{path: "/api/v1/clusters"}); r.Status != 405 ||
		!strings.Contains(r.Header.Get("Allow"), "GET") || !strings.Contains(r.Message(), "denied, not allowed") {
		t.Errorf("unknown method: %d %s (Allow %q)", r.Status, r.Body, r.Header.Get("Allow"))
	}
}

// TestClusterScopes: a token limited to prod-* reaches prod-1 and nothing of dev, by name or by ID, on every
// kind of route that names a cluster; a negated scope is the mirror image.
func TestClusterScopes(t *testing.T) {
	e := start(t)
	devID := e.api.Do(http.MethodGet, "/api/v1/clusters/dev", nil).Expect(t, 200, "").JSON["id"]
	prodID := e.api.Do(http.MethodGet, "/api/v1/clusters/prod-1", nil).Expect(t, 200, "").JSON["id"]
	for _, c := range []struct {
		token, path string
		want        int
	}{
		{"prod-viewer", "/api/v1/clusters/prod-1", 200},
		{"prod-viewer", "/api/v1/clusters/dev", 403},
		{"prod-viewer", "/api/v1/resources/configmaps/kube-system?cluster=prod-1", 200},
		{"prod-viewer", "/api/v1/resources/configmaps/kube-system?cluster=dev", 403},
		{"prod-viewer", "/api/v1/resources/configmaps/kube-system?cluster=" + jsonID(devID), 403},
		{"prod-viewer", "/k8s/clusters/prod-1/api/v1/namespaces/kube-system/configmaps", 200},
		{"prod-viewer", "/k8s/clusters/dev/api/v1/namespaces/kube-system/configmaps", 403},
		{"prod-viewer", "/api/v1/clusters/dev/kubeconfig", 403},
		{"prod-viewer", "/api/v1/relations/configmaps/default/nope?cluster=dev", 403},
		{"prod-viewer", "/api/v1/logs/default/nope?cluster=dev", 403},
		{"not-prod-admin", "/api/v1/clusters/dev", 200},
		{"not-prod-admin", "/api/v1/clusters/prod-1", 403},
		{"not-prod-admin", "/api/v1/resources/configmaps/kube-system?cluster=" + jsonID(prodID), 403},
		{"not-prod-admin", "/k8s/clusters/prod-1/api/v1/namespaces/kube-system/configmaps", 403},
	} {
		r := e.as(c.token, http.MethodGet, call{path: c.path})
		if r.Status != c.want {
			t.Errorf("%s GET %s: %d %s, want %d", c.token, c.path, r.Status, r.Body, c.want)
			continue
		}
		if c.want == 403 && !strings.Contains(r.Message(), "outside the cluster scope") {
			t.Errorf("%s GET %s: %s, want it to name the cluster scope", c.token, c.path, r.Body)
		}
	}
}

// TestNamespaceScopes: an operator limited to team-a reaches team-a and nothing else, cluster-scoped objects
// included, on every function that reads or writes objects.
func TestNamespaceScopes(t *testing.T) {
	e := start(t)
	e.api.Do(http.MethodPost, "/api/v1/apply?cluster=dev", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n",
		"Content-Type", "application/yaml").Expect(t, 200, "")
	for _, c := range []struct {
		method, path string
		body         any
		want         int
		wantText     string
	}{
		{"GET", "/k8s/clusters/dev/api/v1/namespaces/team-a/configmaps", nil, 200, `"kind":"ConfigMapList"`},
		{"GET", "/k8s/clusters/dev/api/v1/namespaces/kube-system/configmaps", nil, 403, "kube-system"},
		{"GET", "/k8s/clusters/dev/api/v1/configmaps", nil, 403, "cluster-wide"},
		{"GET", "/k8s/clusters/dev/api/v1/nodes", nil, 403, "cluster-wide"},
		{"GET", "/api/v1/resources/configmaps/team-a?cluster=dev", nil, 200, `"items"`},
		{"GET", "/api/v1/resources/configmaps/kube-system?cluster=dev", nil, 403, "kube-system"},
		{"GET", "/api/v1/resources/nodes?cluster=dev", nil, 403, "team-a"},
		{"GET", "/api/v1/resources/namespaces?cluster=dev", nil, 200, `"name":"team-a"`},
		{"POST", "/api/v1/apply?cluster=dev&dryRun=true", strings.ReplaceAll(configMap, "default", "team-a"), 200, "authz-probe"},
		{"DELETE", "/api/v1/resources/configmaps/kube-system/nope?cluster=dev", nil, 403, "kube-system"},
		{"GET", "/api/v1/crds?cluster=dev", nil, 403, "team-a"},
		{"GET", "/api/v1/logs/team-a/nope?cluster=dev", nil, 404, `pods \"nope\" not found`},
		{"GET", "/api/v1/logs/kube-system/nope?cluster=dev", nil, 403, "kube-system"},
	} {
		r := e.as("team-a-operator", c.method, call{path: c.path, body: c.body, hdr: []string{"Content-Type", "application/yaml"}})
		if r.Status != c.want || !strings.Contains(string(r.Body), c.wantText) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, r.Status, r.Body, c.want, c.wantText)
		}
		if c.path == "/api/v1/resources/namespaces?cluster=dev" && strings.Contains(string(r.Body), `"name":"kube-system"`) {
			t.Errorf("the namespace list of a team-a caller shows kube-system: %s", r.Body)
		}
	}
}

// jsonID is a decoded JSON cluster ID as the path segment it is sent as.
func jsonID(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

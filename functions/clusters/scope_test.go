package clusters_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/tests/apitest"
)

// scopeCallers maps the scope test's bearer tokens to callers (asked after the bootstrap token).
type scopeCallers map[string]*access.Caller

func (s scopeCallers) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	return s[credential], nil
}

const (
	prodAdmin  = "scope-prod-admin"  // admin on clusters prod-* only
	prodViewer = "scope-prod-viewer" // viewer on clusters prod-* only
)

// A cluster scope holds on every registry route: the list shows only the admitted clusters, one outside is
// refused as the runtime's table refuses it (by name and by ID), and no create, import, rename or reconcile
// reaches a cluster outside it.
func TestClusterScope(t *testing.T) {
	needKube(t)
	sink := apitest.StartSink(t)
	a := apitest.StartWith(t, map[string]string{"FUNCTION_TARGET": "clusters", "K_SINK": sink.URL,
		"KITEFN_ALLOWED_SERVER_CIDRS": "127.0.0.0/8", "KITEFN_RECONCILE_PENDING_AGE": "0s",
		"KITEFN_RECONCILE_INTERVAL": "1h"},
		[]access.Authenticator{scopeCallers{
			prodAdmin: {Name: "ops", Kind: access.KindToken, Roles: []access.Role{access.Admin},
				Clusters: []string{"prod-*"}},
			prodViewer: {Name: "dash", Kind: access.KindToken, Roles: []access.Role{access.Viewer},
				Clusters: []string{"prod-*", "!prod-secret"}},
		}}, apitest.Function("clusters"))
	kc := kube.AdminKubeconfig()
	ids := map[string]string{}
	for _, name := range []string{"prod-1", "prod-2", "prod-secret", "staging"} {
		r := a.Do(http.MethodPost, "/api/v1/clusters", register(name, kc)).Expect(t, http.StatusCreated, "")
		ids[name] = strconv.FormatFloat(r.JSON["id"].(float64), 'f', -1, 64)
	}
	as := func(token, method, path string, body any) apitest.Response {
		return a.Do(method, path, body, "Authorization", "Bearer "+token)
	}
	listed := func(token string) []string {
		var out []string
		for _, it := range as(token, http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "").Items() {
			out = append(out, it["name"].(string))
		}
		slices.Sort(out)
		return out
	}
	refused := func(what string, r apitest.Response, want string) {
		t.Helper()
		r.Expect(t, http.StatusForbidden, "forbidden")
		if !strings.Contains(r.Message(), want) {
			t.Fatalf("%s: %q, want %q", what, r.Message(), want)
		}
	}

	// The list matches what the table lets each caller reach.
	if got := listed(prodViewer); !slices.Equal(got, []string{"prod-1", "prod-2"}) {
		t.Fatalf("list as prod-*,!prod-secret: %v", got)
	}
	if got := listed(prodAdmin); !slices.Equal(got, []string{"prod-1", "prod-2", "prod-secret"}) {
		t.Fatalf("list as prod-*: %v", got)
	}
	if got := len(a.Do(http.MethodGet, "/api/v1/clusters", nil).Items()); got != 4 {
		t.Fatalf("the unscoped list has %d clusters", got)
	}
	for _, name := range []string{"prod-1", "prod-2"} {
		if r := as(prodViewer, http.MethodGet, "/api/v1/clusters/"+ids[name], nil).Expect(t, http.StatusOK, ""); r.JSON["name"] != name {
			t.Fatalf("get %s by ID: %s", name, r.Body)
		}
	}
	for _, ref := range []string{"prod-secret", ids["prod-secret"]} {
		refused("get "+ref, as(prodViewer, http.MethodGet, "/api/v1/clusters/"+ref, nil),
			`cluster "prod-secret" is outside the cluster scope of token "dash" (prod-*, !prod-secret)`)
	}
	for _, ref := range []string{"staging", ids["staging"]} {
		refused("patch "+ref, as(prodAdmin, http.MethodPatch, "/api/v1/clusters/"+ref, map[string]any{"labels": map[string]string{"x": "y"}}),
			`cluster "staging" is outside the cluster scope of token "ops" (prod-*)`)
		refused("delete "+ref, as(prodAdmin, http.MethodDelete, "/api/v1/clusters/"+ref, nil), `cluster "staging" is outside`)
		refused("verify "+ref, as(prodAdmin, http.MethodPost, "/api/v1/clusters/"+ref+"/verify", nil), `cluster "staging" is outside`)
	}
	if r := a.Do(http.MethodGet, "/api/v1/clusters/staging", nil).Expect(t, http.StatusOK, ""); r.JSON["labels"] != nil {
		t.Fatalf("a refused patch changed staging: %s", r.Body)
	}

	// Names in bodies: create and rename only into the scope.
	refused("create", as(prodAdmin, http.MethodPost, "/api/v1/clusters", register("dev", kc)),
		`cluster "dev" is outside the cluster scope of token "ops" (prod-*)`)
	refused("rename out", as(prodAdmin, http.MethodPatch, "/api/v1/clusters/prod-2", map[string]any{"name": "dev-2"}),
		`cluster "dev-2" is outside the cluster scope`)
	as(prodAdmin, http.MethodPost, "/api/v1/clusters", register("prod-3", kc)).Expect(t, http.StatusCreated, "")
	if r := as(prodAdmin, http.MethodPatch, "/api/v1/clusters/prod-3", map[string]any{"name": "prod-4"}).Expect(t, http.StatusOK, ""); r.JSON["name"] != "prod-4" {
		t.Fatalf("rename within the scope: %s", r.Body)
	}
	all := map[string]bool{}
	for _, it := range a.Do(http.MethodGet, "/api/v1/clusters", nil).Items() {
		all[it["name"].(string)] = true
	}
	if all["dev"] || all["dev-2"] || !all["prod-2"] || !all["prod-4"] {
		t.Fatalf("registry after the refused writes: %v", all)
	}

	// Import: each context is judged by the name it would be registered as.
	two := mutate(t, kc, func(cfg *clientcmdapi.Config) {
		cur := cfg.Contexts[cfg.CurrentContext]
		cfg.Contexts = map[string]*clientcmdapi.Context{"ctx-prod": cur.DeepCopy(), "ctx-dev": cur.DeepCopy()}
		cfg.CurrentContext = "ctx-prod"
	})
	r := as(prodAdmin, http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(two),
		"names": map[string]string{"ctx-prod": "prod-imported", "ctx-dev": "dev-imported"}}).Expect(t, http.StatusOK, "")
	if r.JSON["created"] != float64(1) || r.JSON["failed"] != float64(1) {
		t.Fatalf("import: %s", r.Body)
	}
	for _, res := range r.JSON["results"].([]any) {
		m := res.(map[string]any)
		switch m["name"] {
		case "prod-imported":
			if m["status"] != float64(http.StatusCreated) {
				t.Fatalf("the admitted context: %v", m)
			}
		case "dev-imported":
			e, _ := m["error"].(map[string]any)
			if m["status"] != float64(http.StatusForbidden) || e["code"] != "forbidden" ||
				!strings.Contains(e["message"].(string), `cluster "dev-imported" is outside the cluster scope`) {
				t.Fatalf("the context outside the scope: %v", m)
			}
		default:
			t.Fatalf("import result %v", m)
		}
	}
	a.Do(http.MethodGet, "/api/v1/clusters/dev-imported", nil).Expect(t, http.StatusNotFound, "not_found")

	// The reconcile re-sends the events of the clusters in the scope only (every cluster here is pending).
	resent := func(token string) []string {
		var out []string
		r := as(token, http.MethodPost, "/api/v1/clusters/reconcile", nil).Expect(t, http.StatusOK, "")
		for _, it := range r.JSON["resent"].([]any) {
			out = append(out, it.(map[string]any)["name"].(string))
		}
		slices.Sort(out)
		return out
	}
	if got := resent(prodAdmin); !slices.Equal(got, []string{"prod-1", "prod-2", "prod-4", "prod-imported", "prod-secret"}) {
		t.Fatalf("reconcile as prod-*: %v", got)
	}
	if got := resent(apitest.Token); !slices.Contains(got, "staging") || len(got) != 6 {
		t.Fatalf("reconcile unscoped: %v", got)
	}
}

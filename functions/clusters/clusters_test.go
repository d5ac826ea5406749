package clusters_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/functions/clusters"
	"github.com/kitefn/kitefn/tests/harness"
)

func TestRegisterGetListDelete(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := kube.AdminKubeconfig()

	r := a.Do(http.MethodPost, "/api/v1/clusters", map[string]any{
		"name": "prod", "kubeconfig": string(kc), "labels": map[string]string{"env": "prod"},
	}).Expect(t, http.StatusCreated, "")
	if r.JSON["id"] != float64(1) || r.JSON["name"] != "prod" || r.JSON["server"] != kube.URL {
		t.Fatalf("unexpected record: %s", r.Body)
	}
	if r.Header.Get("Location") != "/api/v1/clusters/1" {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	if p := r.JSON["prometheus"].(map[string]any); p["status"] != "pending" {
		t.Fatalf("prometheus status %v, want pending", p["status"])
	}
	assertNoSecrets(t, r.Body)

	a.Do(http.MethodPost, "/api/v1/clusters", map[string]any{
		"name": "dev", "kubeconfig": string(kc), "prometheusURL": "https://prom.example.com",
	}).Expect(t, http.StatusCreated, "")

	list := a.Do(http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "")
	items := list.JSON["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["name"] != "prod" || items[1].(map[string]any)["name"] != "dev" {
		t.Fatalf("list not ordered by id: %s", list.Body)
	}
	if p := items[1].(map[string]any)["prometheus"].(map[string]any); p["status"] != "manual" ||
		p["url"] != "https://prom.example.com" {
		t.Fatalf("manual prometheus not kept: %v", p)
	}
	assertNoSecrets(t, list.Body)

	byName := a.Do(http.MethodGet, "/api/v1/clusters/dev", nil).Expect(t, http.StatusOK, "")
	byID := a.Do(http.MethodGet, "/api/v1/clusters/2", nil).Expect(t, http.StatusOK, "")
	if !bytes.Equal(byName.Body, byID.Body) {
		t.Fatalf("by name and by id differ:\n%s\n%s", byName.Body, byID.Body)
	}

	a.Do(http.MethodDelete, "/api/v1/clusters/prod", nil).Expect(t, http.StatusNoContent, "")
	a.Do(http.MethodGet, "/api/v1/clusters/1", nil).Expect(t, http.StatusNotFound, "not_found")
	// The name is free again, and the new cluster gets the next ID, never a reused one.
	r = a.Do(http.MethodPost, "/api/v1/clusters", register("prod", kc)).Expect(t, http.StatusCreated, "")
	if r.JSON["id"] != float64(3) {
		t.Fatalf("id %v, want 3", r.JSON["id"])
	}
}

// assertNoSecrets fails if a response carries the kubeconfig or any credential of the test cluster.
func assertNoSecrets(t *testing.T, body []byte) {
	t.Helper()
	for _, secret := range []string{kube.Token(harness.AdminUser), kube.Token(harness.ViewerUser),
		base64.StdEncoding.EncodeToString(kube.CAData), `"kubeconfig":`, "certificate-authority-data", "apiVersion: v1"} {
		if secret != "" && bytes.Contains(body, []byte(secret)) {
			t.Fatalf("response leaks %q: %s", secret, body)
		}
	}
}

func TestBadInputIsRefusedAndNothingIsStored(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := kube.AdminKubeconfig()
	a.Do(http.MethodPost, "/api/v1/clusters", register("taken", kc)).Expect(t, http.StatusCreated, "")

	execUser := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, u := range c.AuthInfos {
			u.Token = ""
			u.Exec = &clientcmdapi.ExecConfig{Command: "aws", Args: []string{"eks", "get-token"},
				APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
		}
	})
	authProvider := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, u := range c.AuthInfos {
			u.AuthProvider = &clientcmdapi.AuthProviderConfig{Name: "gcp"}
		}
	})
	missingCluster := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, ctx := range c.Contexts {
			ctx.Cluster = "nowhere"
		}
	})
	missingUser := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, ctx := range c.Contexts {
			ctx.AuthInfo = "nobody"
		}
	})
	fileRef := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, cl := range c.Clusters {
			cl.CertificateAuthorityData = nil
			cl.CertificateAuthority = "/etc/passwd"
		}
	})
	huge := map[string]any{"name": "huge", "kubeconfig": strings.Repeat("x", 1<<20+10)}

	cases := []struct {
		name   string
		body   any
		status int
		code   string
		want   string
	}{
		{"malformed kubeconfig", register("a", []byte("clusters: [oops")), 400, "invalid_kubeconfig", "not a valid kubeconfig"},
		{"not yaml at all", register("a", []byte("\x00\x01binary")), 400, "invalid_kubeconfig", "invalid kubeconfig"},
		{"empty kubeconfig", register("a", nil), 400, "invalid_kubeconfig", "kubeconfig is required"},
		{"whitespace kubeconfig", register("a", []byte("  \n")), 400, "invalid_kubeconfig", "required"},
		{"no contexts", register("a", []byte("apiVersion: v1\nkind: Config\n")), 400, "invalid_kubeconfig", "no contexts"},
		{"context names a missing cluster", register("a", missingCluster), 400, "invalid_kubeconfig", `cluster "nowhere"`},
		{"context names a missing user", register("a", missingUser), 400, "invalid_kubeconfig", `user "nobody"`},
		{"exec plugin", register("a", execUser), 400, "invalid_kubeconfig", "KITEFN_ALLOW_EXEC_PLUGINS"},
		{"auth provider", register("a", authProvider), 400, "invalid_kubeconfig", "auth-provider"},
		{"file reference", register("a", fileRef), 400, "invalid_kubeconfig", "refers to a file"},
		{"unknown context", map[string]any{"name": "a", "kubeconfig": string(kc), "context": "nope"}, 400, "invalid_kubeconfig", `no context "nope"`},
		{"missing name", register("", kc), 400, "invalid_name", "name is required"},
		{"upper-case name", register("Prod", kc), 400, "invalid_name", "not valid"},
		{"name with dots", register("a.b", kc), 400, "invalid_name", "not valid"},
		{"name too long", register(strings.Repeat("a", 64), kc), 400, "invalid_name", "not valid"},
		{"all-digit name", register("123", kc), 400, "invalid_name", "cluster ID"},
		{"duplicate name", register("taken", kc), 409, "conflict", "already exists"},
		{"bad label", map[string]any{"name": "a", "kubeconfig": string(kc), "labels": map[string]string{"bad key!": "v"}}, 400, "bad_request", "label key"},
		{"bad prometheus URL", map[string]any{"name": "a", "kubeconfig": string(kc), "prometheusURL": "ftp://x"}, 400, "bad_request", "prometheusURL"},
		{"unknown field", map[string]any{"name": "a", "kubeconfig": string(kc), "server": "x"}, 400, "bad_request", `unknown field "server"`},
		{"wrong type", map[string]any{"name": 7, "kubeconfig": string(kc)}, 400, "bad_request", "name"},
		{"not JSON", "name=a", 400, "bad_request", "not valid JSON"},
		{"empty body", "", 400, "bad_request", "empty"},
		{"two documents", `{"name":"a"}{"name":"b"}`, 400, "bad_request", "single JSON object"},
		{"body over 1 MiB", huge, 413, "payload_too_large", "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.Do(http.MethodPost, "/api/v1/clusters", tc.body).Expect(t, tc.status, tc.code)
			if !strings.Contains(r.Message(), tc.want) {
				t.Fatalf("message %q does not say %q", r.Message(), tc.want)
			}
			assertNoSecrets(t, r.Body)
			if n := count(t, a); n != 1 {
				t.Fatalf("registry holds %d clusters after a refused request, want 1", n)
			}
		})
	}

	t.Run("wrong content type", func(t *testing.T) {
		a.Do(http.MethodPost, "/api/v1/clusters", "name: a", "Content-Type", "text/yaml").
			Expect(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	})
	t.Run("unknown cluster", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
			var body any
			if m == http.MethodPatch {
				body = map[string]any{"labels": map[string]string{}}
			}
			r := a.Do(m, "/api/v1/clusters/ghost", body).Expect(t, http.StatusNotFound, "not_found")
			if !strings.Contains(r.Message(), `"ghost"`) {
				t.Fatalf("%s: message %q does not name the cluster", m, r.Message())
			}
		}
		a.Do(http.MethodPost, "/api/v1/clusters/99/verify", nil).Expect(t, http.StatusNotFound, "not_found")
	})
	t.Run("wrong method", func(t *testing.T) {
		r := a.Do(http.MethodPut, "/api/v1/clusters", "{}").Expect(t, http.StatusMethodNotAllowed, "method_not_allowed")
		if r.Header.Get("Allow") == "" {
			t.Fatal("405 without Allow")
		}
	})
	t.Run("exec plugin allowed by the operator", func(t *testing.T) {
		b := startAPI(t, map[string]string{"KITEFN_ALLOW_EXEC_PLUGINS": "true"})
		b.Do(http.MethodPost, "/api/v1/clusters", register("eks", execUser)).Expect(t, http.StatusCreated, "")
	})
	if n := count(t, a); n != 1 {
		t.Fatalf("registry holds %d clusters, want 1", n)
	}
}

func TestAuthRequired(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	for _, auth := range []string{"", "Bearer wrong-token-0000000000", "Basic dXNlcjpwYXNz", testToken} {
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/api/v1/clusters", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Authorization %q: status %d, want 401", auth, res.StatusCode)
		}
	}
	for _, path := range []string{"/health/readiness", "/health/liveness"} {
		res, err := http.Get(a.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d without a token, want 200", path, res.StatusCode)
		}
	}
}

func TestUpdate(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := kube.AdminKubeconfig()
	a.Do(http.MethodPost, "/api/v1/clusters", register("one", kc)).Expect(t, http.StatusCreated, "")
	a.Do(http.MethodPost, "/api/v1/clusters", register("two", kc)).Expect(t, http.StatusCreated, "")

	r := a.Do(http.MethodPatch, "/api/v1/clusters/one", map[string]any{
		"name": "uno", "prometheusURL": "http://prometheus.example:9090", "labels": map[string]string{"tier": "gold"},
	}).Expect(t, http.StatusOK, "")
	if r.JSON["name"] != "uno" || r.JSON["version"] != float64(2) {
		t.Fatalf("rename not applied: %s", r.Body)
	}
	a.Do(http.MethodGet, "/api/v1/clusters/one", nil).Expect(t, http.StatusNotFound, "not_found")
	a.Do(http.MethodGet, "/api/v1/clusters/uno", nil).Expect(t, http.StatusOK, "")

	// Stale compare-and-set, in the body and as If-Match: 409, nothing changed.
	a.Do(http.MethodPatch, "/api/v1/clusters/uno", map[string]any{"name": "x", "version": 1}).
		Expect(t, http.StatusConflict, "conflict")
	a.Do(http.MethodPatch, "/api/v1/clusters/uno", map[string]any{"name": "x"}, "If-Match", `"1"`).
		Expect(t, http.StatusConflict, "conflict")
	a.Do(http.MethodPatch, "/api/v1/clusters/uno", map[string]any{"name": "two"}).
		Expect(t, http.StatusConflict, "conflict")
	a.Do(http.MethodPatch, "/api/v1/clusters/uno", map[string]any{"name": "Bad_Name"}).
		Expect(t, http.StatusBadRequest, "invalid_name")
	a.Do(http.MethodPatch, "/api/v1/clusters/uno", map[string]any{"kubeconfig": "garbage: ["}).
		Expect(t, http.StatusBadRequest, "invalid_kubeconfig")
	got := a.Do(http.MethodGet, "/api/v1/clusters/uno", nil).Expect(t, http.StatusOK, "")
	if got.JSON["version"] != float64(2) {
		t.Fatalf("refused updates changed the record: %s", got.Body)
	}

	// Rotating the kubeconfig with the current version; clearing the prometheus URL makes it pending again.
	viewer := kube.Kubeconfig(harness.ViewerUser)
	r = a.Do(http.MethodPatch, "/api/v1/clusters/uno", map[string]any{
		"kubeconfig": string(viewer), "prometheusURL": "", "version": 2,
	}).Expect(t, http.StatusOK, "")
	if r.JSON["version"] != float64(3) || r.JSON["prometheus"].(map[string]any)["status"] != "pending" {
		t.Fatalf("rotation not applied: %s", r.Body)
	}
	assertNoSecrets(t, r.Body)
}

func TestVerify(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := kube.AdminKubeconfig()
	a.Do(http.MethodPost, "/api/v1/clusters?verify=true", register("live", kc)).Expect(t, http.StatusCreated, "")

	r := a.Do(http.MethodPost, "/api/v1/clusters/live/verify", nil).Expect(t, http.StatusOK, "")
	if v := r.JSON["version"].(map[string]any); v["gitVersion"] != "v1.37.2" {
		t.Fatalf("gitVersion %v, want v1.37.2", v["gitVersion"])
	}

	dead := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, cl := range c.Clusters {
			cl.Server = "https://127.0.0.1:1"
		}
	})
	r = a.Do(http.MethodPost, "/api/v1/clusters?verify=true", register("dead", dead)).
		Expect(t, http.StatusUnprocessableEntity, "cluster_unreachable")
	if !strings.Contains(r.Message(), "127.0.0.1:1") {
		t.Fatalf("message %q does not name the server", r.Message())
	}
	if n := count(t, a); n != 1 {
		t.Fatalf("a cluster that failed verification was stored (%d clusters)", n)
	}
	// Without verify it is stored, and /verify then reports it unreachable.
	a.Do(http.MethodPost, "/api/v1/clusters", register("dead", dead)).Expect(t, http.StatusCreated, "")
	a.Do(http.MethodPost, "/api/v1/clusters/dead/verify", nil).Expect(t, http.StatusBadGateway, "cluster_unreachable")
	a.Do(http.MethodPost, "/api/v1/clusters?verify=maybe", register("x", kc)).Expect(t, http.StatusBadRequest, "bad_request")
}

func TestImport(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := mutate(t, kube.AdminKubeconfig(), func(c *clientcmdapi.Config) {
		var ctxName string
		for n := range c.Contexts {
			ctxName = n
		}
		base := c.Contexts[ctxName]
		c.AuthInfos["viewer"] = &clientcmdapi.AuthInfo{Token: kube.Token(harness.ViewerUser)}
		c.AuthInfos["eks"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{Command: "aws",
			APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
		c.Contexts["gke_project_europe-west1_Staging"] = &clientcmdapi.Context{Cluster: base.Cluster, AuthInfo: "viewer"}
		c.Contexts["arn:aws:eks:eu-west-1:1234:cluster/prod"] = &clientcmdapi.Context{Cluster: base.Cluster, AuthInfo: "eks"}
		c.Contexts["taken"] = &clientcmdapi.Context{Cluster: base.Cluster, AuthInfo: base.AuthInfo}
	})
	a.Do(http.MethodPost, "/api/v1/clusters", register("taken", kube.AdminKubeconfig())).Expect(t, http.StatusCreated, "")

	r := a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(kc)}).
		Expect(t, http.StatusOK, "")
	results := map[string]map[string]any{}
	for _, x := range r.JSON["results"].([]any) {
		res := x.(map[string]any)
		results[res["context"].(string)] = res
	}
	if len(results) != 4 || r.JSON["created"] != float64(2) || r.JSON["failed"] != float64(2) {
		t.Fatalf("unexpected import outcome: %s", r.Body)
	}
	if s := results["gke_project_europe-west1_Staging"]; s["status"] != float64(201) || s["name"] != "gke-project-europe-west1-staging" {
		t.Fatalf("gke context: %v", s)
	}
	if s := results["arn:aws:eks:eu-west-1:1234:cluster/prod"]; s["status"] != float64(400) ||
		!strings.Contains(s["error"].(map[string]any)["message"].(string), "exec plugin") {
		t.Fatalf("exec context: %v", s)
	}
	if s := results["taken"]; s["status"] != float64(409) {
		t.Fatalf("taken context: %v", s)
	}
	assertNoSecrets(t, r.Body)
	if n := count(t, a); n != 3 {
		t.Fatalf("%d clusters after import, want 3", n)
	}

	// A subset, with a name mapping.
	r = a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(kc),
		"contexts": []string{"taken"}, "names": map[string]string{"taken": "copy"}}).Expect(t, http.StatusOK, "")
	if r.JSON["created"] != float64(1) {
		t.Fatalf("subset import: %s", r.Body)
	}
	a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(kc),
		"contexts": []string{"nope"}}).Expect(t, http.StatusBadRequest, "invalid_kubeconfig")
	a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": "{{"}).
		Expect(t, http.StatusBadRequest, "invalid_kubeconfig")
	if n := count(t, a); n != 4 {
		t.Fatalf("%d clusters, want 4", n)
	}
}

func TestNameFromContext(t *testing.T) {
	for in, want := range map[string]string{
		"kind-kind":                               "kind-kind",
		"gke_my-project_us-central1_Main":         "gke-my-project-us-central1-main",
		"arn:aws:eks:eu-west-1:1234:cluster/prod": "arn-aws-eks-eu-west-1-1234-cluster-prod",
		"___":                   "cluster",
		"42":                    "cluster-42",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := clusters.NameFromContext(in); got != want {
			t.Errorf("NameFromContext(%q) = %q, want %q", in, got, want)
		}
	}
}

// Deployed alone (FUNCTION_TARGET=clusters), the function gets every request itself: routes with path values
// must work there too, not only behind the one-process router.
func TestDeployedAlone(t *testing.T) {
	needKube(t)
	// The test apiserver is on loopback, which a deployed function refuses unless allowed.
	a := startAPI(t, map[string]string{"FUNCTION_TARGET": "clusters", "KITEFN_ALLOWED_SERVER_CIDRS": "127.0.0.0/8"})
	a.Do(http.MethodPost, "/api/v1/clusters", register("solo", kube.AdminKubeconfig())).Expect(t, http.StatusCreated, "")
	r := a.Do(http.MethodGet, "/api/v1/clusters/solo", nil).Expect(t, http.StatusOK, "")
	if r.JSON["name"] != "solo" {
		t.Fatalf("get by name when deployed alone: %s", r.Body)
	}
	a.Do(http.MethodPost, "/api/v1/clusters/solo/verify", nil).Expect(t, http.StatusOK, "")
	a.Do(http.MethodDelete, "/api/v1/clusters/1", nil).Expect(t, http.StatusNoContent, "")
}

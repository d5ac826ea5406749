// Package leak checks that no credential kitefn holds — a cluster's token or client key, the API's bearer
// token — comes back in any answer or log line, over every route of every function.
package leak

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube, harness.WithUser("leaker", "system:masters")) }

var functions = []string{"clusters", "discovery", "resources", "search", "terminal"}

// call is one request; route is the pattern (as Routes lists it) it exercises.
type call struct {
	route, method, path string
	body                any
	hdr                 []string
}

// secrets are the strings that must appear nowhere, in every form a leak could take.
type secrets []string

func (s secrets) with(name, v string) secrets {
	_ = name // names document the call sites; the index says which one leaked
	return append(s, v, base64.StdEncoding.EncodeToString([]byte(v)))
}

// find reports which secret text holds (by its index), or -1.
func (s secrets) find(text string) int {
	for i, v := range s {
		if v != "" && strings.Contains(text, v) {
			return i
		}
	}
	return -1
}

// certKubeconfig is a kubeconfig with a client certificate and key no CA signed, plus its own token: the
// apiserver refuses it, so it drives the error paths with a key in hand.
func certKubeconfig(t *testing.T, token string) (kubeconfig []byte, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leak"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: kube.URL, CertificateAuthorityData: kube.CAData}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: token,
		ClientCertificateData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ClientKeyData:         []byte(keyPEM)}
	cfg.Contexts["cert"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "cert"
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out, keyPEM
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestNoCredentialInAnyAnswerOrLog(t *testing.T) {
	if kube == nil {
		t.Skip("needs the test cluster (not with -short)")
	}
	s := apitest.Start(t, nil, apitest.Function("clusters"), apitest.Function("discovery"),
		apitest.Function("resources"), apitest.Function("search"), apitest.Function("terminal"))

	clusterToken := kube.Token("leaker")
	kubeconfig := string(kube.Kubeconfig("leaker"))
	certToken := "leak-cert-token-" + randomHex(t)
	certCfg, keyPEM := certKubeconfig(t, certToken)
	// The key's base64 body lines (PEM wraps at 64) are what a partial echo would show.
	var sec secrets
	sec = sec.with("cluster token", clusterToken).with("api token", apitest.Token).with("cert token", certToken)
	for _, line := range strings.Split(keyPEM, "\n") {
		if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
			sec = sec.with("client key", line)
		}
	}
	sec = append(sec, base64.StdEncoding.EncodeToString([]byte(keyPEM)))

	// A named token: shown once in its create answer (made here, before anything is scanned), never again.
	bearer := s.Do("POST", "/api/v1/tokens", map[string]any{"name": "leak-bearer", "roles": []string{"viewer"}})
	named, _ := bearer.JSON["token"].(string)
	if bearer.Status != 201 || named == "" {
		t.Fatalf("creating the named token: %d %s", bearer.Status, bearer.Body)
	}
	sec = sec.with("named token", named)
	asNamed := []string{"Authorization", "Bearer " + named}

	clusterHdr := []string{"X-Cluster-Name", "leak"}
	yaml := []string{"Content-Type", "application/yaml", "X-Cluster-Name", "leak"}
	// The objects hold no secret under test: a Secret's data is the cluster's, which the resources API shows by
	// design; what must not leak is how kitefn reaches the cluster.
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak-cm, namespace: default}\ndata: {a: b}\n"
	secretManifest := "apiVersion: v1\nkind: Secret\nmetadata: {name: leak-secret, namespace: default}\n" +
		"stringData: {a: not-a-kitefn-credential}\n"
	calls := []call{
		// Registry, with the good kubeconfig and the refused one, and their error paths.
		{"/api/v1/clusters", "POST", "/api/v1/clusters", map[string]any{"name": "leak", "kubeconfig": kubeconfig}, nil},
		{"/api/v1/clusters", "POST", "/api/v1/clusters", map[string]any{"name": "leak-cert", "kubeconfig": string(certCfg)}, nil},
		{"/api/v1/clusters", "POST", "/api/v1/clusters", map[string]any{"name": "leak", "kubeconfig": kubeconfig}, nil}, // 409
		{"/api/v1/clusters", "POST", "/api/v1/clusters", map[string]any{"name": "bad", "kubeconfig": kubeconfig + "\n\t- ]"}, nil},
		{"/api/v1/clusters", "POST", "/api/v1/clusters", `{"name":"bad","kubeconfig":` + fmt.Sprintf("%q", kubeconfig), nil}, // bad JSON
		{"/api/v1/clusters", "POST", "/api/v1/clusters", map[string]any{"name": "bad", "kubeconfig": kubeconfig, "token": clusterToken}, nil},
		{"/api/v1/clusters", "GET", "/api/v1/clusters", nil, nil},
		{"/api/v1/clusters/import", "POST", "/api/v1/clusters/import", map[string]any{"kubeconfig": kubeconfig,
			"names": map[string]string{"leaker": "leak-imported"}}, nil},
		{"/api/v1/clusters/import", "POST", "/api/v1/clusters/import", map[string]any{"kubeconfig": string(certCfg)}, nil},
		{"/api/v1/clusters/import", "POST", "/api/v1/clusters/import", map[string]any{"kubeconfig": kubeconfig, "contexts": []string{"nope"}}, nil},
		{"/api/v1/clusters/reconcile", "POST", "/api/v1/clusters/reconcile", nil, nil},
		{"/api/v1/clusters/{ref}", "GET", "/api/v1/clusters/leak", nil, nil},
		{"/api/v1/clusters/{ref}", "GET", "/api/v1/clusters/nope", nil, nil},
		{"/api/v1/clusters/{ref}", "PATCH", "/api/v1/clusters/leak", map[string]any{"kubeconfig": kubeconfig, "labels": map[string]string{"a": "b"}}, nil},
		{"/api/v1/clusters/{ref}", "PATCH", "/api/v1/clusters/leak-cert", map[string]any{"kubeconfig": string(certCfg)}, nil},
		{"/api/v1/clusters/{ref}", "PATCH", "/api/v1/clusters/leak", map[string]any{"kubeconfig": "not yaml: [" + clusterToken}, nil},
		{"/api/v1/clusters/{ref}", "PATCH", "/api/v1/clusters/leak", `{"kubeconfig":`, nil},
		{"/api/v1/clusters/{ref}/verify", "POST", "/api/v1/clusters/leak/verify", nil, nil},
		{"/api/v1/clusters/{ref}/verify", "POST", "/api/v1/clusters/leak-cert/verify", nil, nil},
		{"/api/v1/clusters/{ref}/verify", "POST", "/api/v1/clusters/nope/verify", nil, nil},
		// Discovery and Prometheus: no Prometheus in the test cluster, so the 404/409 paths.
		{"/api/v1/clusters/{ref}/prometheus/discover", "POST", "/api/v1/clusters/leak/prometheus/discover", nil, nil},
		{"/api/v1/clusters/{ref}/prometheus/discover", "POST", "/api/v1/clusters/leak-cert/prometheus/discover", nil, nil},
		{"/api/v1/clusters/{ref}/prometheus/query", "GET", "/api/v1/clusters/leak/prometheus/query?query=up", nil, nil},
		{"/api/v1/clusters/{ref}/prometheus/query", "GET", "/api/v1/clusters/nope/prometheus/query?query=up", nil, nil},
		{"/api/v1/clusters/{ref}/prometheus/query_range", "GET", "/api/v1/clusters/leak/prometheus/query_range?query=up&start=1&end=2&step=1", nil, nil},
		// Resources, over the good cluster and the refused one.
		{"/api/v1/apply", "POST", "/api/v1/apply", manifest + "---\n" + secretManifest, yaml},
		{"/api/v1/apply", "POST", "/api/v1/apply?dryRun=true", manifest, yaml},
		{"/api/v1/apply", "POST", "/api/v1/apply", "kind: [" + clusterToken, yaml},
		{"/api/v1/apply", "POST", "/api/v1/apply", manifest, []string{"Content-Type", "application/yaml", "X-Cluster-Name", "leak-cert"}},
		{"/api/v1/resources/{path...}", "GET", "/api/v1/resources/configmaps/default/leak-cm", nil, clusterHdr},
		{"/api/v1/resources/{path...}", "GET", "/api/v1/resources/secrets/default/leak-secret", nil, clusterHdr},
		{"/api/v1/resources/{path...}", "GET", "/api/v1/resources/secrets?namespace=_all", nil, clusterHdr},
		{"/api/v1/resources/{path...}", "GET", "/api/v1/resources/pods", nil, []string{"X-Cluster-Name", "leak-cert"}},
		{"/api/v1/resources/{path...}", "GET", "/api/v1/resources/nope", nil, clusterHdr},
		{"/api/v1/resources/{path...}", "POST", "/api/v1/resources/deployments/default/none/scale", map[string]any{"replicas": 1}, clusterHdr},
		{"/api/v1/resources/{path...}", "POST", "/api/v1/resources/deployments/default/none/restart", nil, clusterHdr},
		{"/api/v1/resources/{path...}", "DELETE", "/api/v1/resources/configmaps/default/leak-cm", nil, clusterHdr},
		{"/api/v1/crds", "GET", "/api/v1/crds", nil, clusterHdr},
		{"/api/v1/crds", "GET", "/api/v1/crds", nil, []string{"X-Cluster-Name", "leak-cert"}},
		{"/api/v1/crds/families", "GET", "/api/v1/crds/families", nil, clusterHdr},
		// Search and relations, the token included as a query.
		{"/api/v1/search", "GET", "/api/v1/search?q=leak&cluster=leak", nil, nil},
		{"/api/v1/search", "GET", "/api/v1/search?q=" + clusterToken + "&cluster=_all", nil, nil},
		{"/api/v1/search", "GET", "/api/v1/search?q=leak&cluster=leak-cert", nil, nil},
		{"/api/v1/search", "GET", "/api/v1/search?q=l", nil, nil},
		{"/api/v1/search/status", "GET", "/api/v1/search/status", nil, nil},
		{"/api/v1/relations/{path...}", "GET", "/api/v1/relations/secrets/default/leak-secret?cluster=leak", nil, nil},
		{"/api/v1/relations/{path...}", "GET", "/api/v1/relations/configmaps/default/leak-cm?cluster=leak-cert", nil, nil},
		{"/api/v1/relations/{path...}", "GET", "/api/v1/relations/nope?cluster=leak", nil, nil},
		// Logs, over both clusters, the token pasted as an option.
		{"/api/v1/logs/{path...}", "GET", "/api/v1/logs/default/nope", nil, clusterHdr},
		{"/api/v1/logs/{path...}", "GET", "/api/v1/logs/deployments/default/nope?follow=true", nil, []string{"X-Cluster-Name", "leak-cert"}},
		{"/api/v1/logs/{path...}", "GET", "/api/v1/logs/default/nope?tailLines=" + clusterToken, nil, clusterHdr},
		// Named API tokens, the kubeconfig handout (without embedToken: that one hands out the caller's own
		// token by request) and the Kubernetes API proxy, with both clusters.
		{"/api/v1/tokens", "POST", "/api/v1/tokens", map[string]any{"name": "leak", "roles": []string{"viewer"}}, nil},
		{"/api/v1/tokens", "POST", "/api/v1/tokens", map[string]any{"name": "leak", "roles": []string{"root"}}, nil},
		{"/api/v1/tokens", "GET", "/api/v1/tokens", nil, nil},
		{"/api/v1/audit", "GET", "/api/v1/audit", nil, nil},
		{"/api/v1/audit", "GET", "/api/v1/audit?since=x", nil, nil},
		{"/api/v1/tokens/{name}", "GET", "/api/v1/tokens/leak", nil, nil},
		{"/api/v1/tokens/{name}", "DELETE", "/api/v1/tokens/leak", nil, nil},
		{"/api/v1/tokens/{name}", "DELETE", "/api/v1/tokens/leak", nil, nil},
		// The named token as the bearer: allowed, refused by role, then revoked (401).
		{"/api/v1/me", "GET", "/api/v1/me", nil, asNamed},
		{"/api/v1/clusters", "POST", "/api/v1/clusters", map[string]any{"name": "x"}, asNamed},
		{"/api/v1/tokens/{name}", "DELETE", "/api/v1/tokens/leak-bearer", nil, nil},
		{"/api/v1/me", "GET", "/api/v1/me", nil, asNamed},
		{"/api/v1/clusters/{ref}/kubeconfig", "GET", "/api/v1/clusters/leak/kubeconfig", nil, nil},
		{"/api/v1/clusters/{ref}/kubeconfig", "GET", "/api/v1/clusters/_all/kubeconfig?format=json", nil, nil},
		{"/k8s/clusters/{cluster}/{path...}", "GET", "/k8s/clusters/leak/api/v1/namespaces/default/configmaps", nil, nil},
		{"/k8s/clusters/{cluster}/{path...}", "GET", "/k8s/clusters/leak-cert/version", nil, nil},
		{"/k8s/clusters/{cluster}/{path...}", "GET", "/k8s/clusters/nope/version", nil, nil},
		// The terminal page (public: no token needed, none echoed).
		{"/terminal/{path...}", "GET", "/terminal/", nil, nil},
		{"/terminal/{path...}", "GET", "/terminal/app.js", nil, nil},
		{"/terminal/{path...}", "GET", "/terminal/nope?token=" + clusterToken, nil, nil},
		// The terminal: a socket route asked without an upgrade, tickets issued and refused.
		{"/api/v1/terminal/pods/{namespace}/{pod}", "GET", "/api/v1/terminal/pods/default/nope", nil, clusterHdr},
		{"/api/v1/terminal/pods/{namespace}/{pod}", "GET", "/api/v1/terminal/pods/default/nope?ticket=" + clusterToken, nil,
			[]string{"Authorization", "", "X-Cluster-Name", "leak"}},
		{"/api/v1/terminal/nodes/{node}", "GET", "/api/v1/terminal/nodes/nope", nil, clusterHdr},
		{"/api/v1/terminal/tickets", "POST", "/api/v1/terminal/tickets", map[string]any{"cluster": "leak", "kind": "pod",
			"namespace": "default", "pod": "nope"}, nil},
		{"/api/v1/terminal/tickets", "POST", "/api/v1/terminal/tickets", map[string]any{"cluster": "leak", "kind": clusterToken}, nil},
		// Unknown routes and wrong methods, then deleting both clusters.
		{"", "GET", "/api/v1/nope?token=" + clusterToken, nil, nil},
		{"", "PUT", "/api/v1/clusters", nil, nil},
		{"/api/v1/clusters/{ref}", "DELETE", "/api/v1/clusters/leak-cert", nil, nil},
		{"/api/v1/clusters/{ref}", "DELETE", "/api/v1/clusters/leak-imported", nil, nil},
		{"/api/v1/clusters/{ref}", "DELETE", "/api/v1/clusters/leak", nil, nil},
	}

	// Every route of every function is driven: a new route fails this test until it is added above.
	var routes []string
	for _, name := range functions {
		fn, ok := apitest.Function(name).New(s.Platform).(runtime.Router)
		if !ok {
			t.Fatalf("%s lists no routes", name)
		}
		routes = append(routes, fn.Routes()...)
	}
	for _, r := range routes {
		if !slices.ContainsFunc(calls, func(c call) bool { return c.route == r }) {
			t.Errorf("route %s is not driven by this test: add calls for it", r)
		}
	}

	answers := map[int]bool{} // statuses seen, so a broken setup (everything 401) shows
	for _, c := range calls {
		r := s.Do(c.method, c.path, c.body, c.hdr...)
		answers[r.Status] = true
		text := fmt.Sprintf("%v\n%s", r.Header, r.Body)
		if i := sec.find(text); i >= 0 {
			t.Errorf("%s %s (%d) echoes secret #%d:\n%s", c.method, c.path, r.Status, i, text)
		}
	}
	for _, want := range []int{200, 201, 400, 404, 409} {
		if !answers[want] {
			t.Errorf("no %d answer among the calls: the test does not reach the paths it means to (saw %v)", want, answers)
		}
	}
	logs := s.Logs()
	if !strings.Contains(logs, `"path":"/api/v1/clusters/leak/verify"`) {
		t.Fatalf("the captured logs miss the requests: %.2000s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if i := sec.find(line); i >= 0 {
			t.Errorf("a log line holds secret #%d: %s", i, line)
		}
	}
}

// The scanner must flag a secret wherever it is: plain or base64.
func TestScannerFindsSecrets(t *testing.T) {
	tok := "leak-self-check-" + randomHex(t)
	sec := secrets{}.with("tok", tok)
	for _, text := range []string{
		`{"error":{"message":"bad token ` + tok + `"}}`,
		"Authorization: Bearer " + tok,
		`{"kubeconfig":"` + base64.StdEncoding.EncodeToString([]byte(tok)) + `"}`,
	} {
		if sec.find(text) < 0 {
			t.Errorf("scanner misses the secret in %q", text)
		}
	}
	if sec.find(`{"status":"ok"}`) >= 0 {
		t.Error("scanner flags a clean answer")
	}
}

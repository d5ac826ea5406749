package resources_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
)

// entry is an audit entry as GET /api/v1/audit answers it.
type entry struct {
	Who, Cluster, Verb, Resource, Namespace, Name, RequestID, Detail string
	Outcome                                                          int
}

func (e entry) String() string {
	return fmt.Sprintf("%s %s %s %s/%s outcome=%d detail=%q cluster=%s requestId=%s", e.Who, e.Verb, e.Resource,
		e.Namespace, e.Name, e.Outcome, e.Detail, e.Cluster, e.RequestID)
}

// auditSince reads the entries recorded since the first n, oldest first, through GET /api/v1/audit.
func auditSince(t *testing.T, api *apitest.Server, n int) []entry {
	t.Helper()
	items := api.Do(http.MethodGet, "/api/v1/audit?limit=500", nil).Expect(t, http.StatusOK, "").Items()
	var out []entry
	for i := len(items) - 1 - n; i >= 0; i-- {
		it := items[i]
		s := func(k string) string { v, _ := it[k].(string); return v }
		out = append(out, entry{Who: s("who"), Cluster: s("cluster"), Verb: s("verb"), Resource: s("resource"),
			Namespace: s("namespace"), Name: s("name"), RequestID: s("requestId"), Detail: s("detail"),
			Outcome: int(it["outcome"].(float64))})
	}
	return out
}

// expectAudit checks the entries recorded since the first n against want (who bootstrap, cluster test), each
// naming the request id of the answer given with it.
func expectAudit(t *testing.T, api *apitest.Server, n int, want []entry) int {
	t.Helper()
	got := auditSince(t, api, n)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d:\n%v", len(got), len(want), got)
	}
	for i, w := range want {
		w.Who, w.Cluster = "bootstrap", "test"
		if got[i] != w || w.RequestID == "" {
			t.Errorf("entry %d:\n got %v\nwant %v", i, got[i], w)
		}
	}
	return n + len(got)
}

const auditSecretValue = "hunter2-e4c1b9-do-not-log"

// Every write through the resources routes is recorded, read back through the clusters function's audit route:
// apply per document (created, configured with field paths, unchanged, dry-run, failed with its status), scale
// with its replicas, restart, delete; a Secret's data never appears in an entry or a log line.
func TestWritesAudited(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, nil, apitest.Function("clusters"), apitest.Function("resources"))
	api.AddCluster("test", kube.AdminKubeconfig())
	do := func(method, path string, body any, status int) string {
		t.Helper()
		ct := "application/json"
		if strings.HasPrefix(path, "/api/v1/apply") {
			ct = "application/yaml"
		}
		r := api.Do(method, path, body, "X-Cluster-Name", "test", "Content-Type", ct).Expect(t, status, "")
		return r.Header.Get("X-Request-Id")
	}
	bundle := func(color, secret string) string {
		return `apiVersion: v1
kind: Namespace
metadata: {name: audit-ns}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: audit-ns}
data: {color: ` + color + `}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: audit-ns}
stringData: {password: ` + secret + `}
`
	}
	id := do(http.MethodPost, "/api/v1/apply", bundle("blue", auditSecretValue), http.StatusOK)
	n := expectAudit(t, api, 0, []entry{
		{Verb: "apply", Resource: "namespaces", Name: "audit-ns", Outcome: 201, Detail: "created", RequestID: id},
		{Verb: "apply", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 201, Detail: "created", RequestID: id},
		{Verb: "apply", Resource: "secrets", Namespace: "audit-ns", Name: "creds", Outcome: 201, Detail: "created", RequestID: id},
	})
	id = do(http.MethodPost, "/api/v1/apply", bundle("green", auditSecretValue+"-rotated"), http.StatusOK)
	n = expectAudit(t, api, n, []entry{
		{Verb: "apply", Resource: "namespaces", Name: "audit-ns", Outcome: 200, Detail: "unchanged", RequestID: id},
		{Verb: "apply", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 200, Detail: "configured: data.color", RequestID: id},
		{Verb: "apply", Resource: "secrets", Namespace: "audit-ns", Name: "creds", Outcome: 200, Detail: "configured: data", RequestID: id},
	})
	id = do(http.MethodPost, "/api/v1/apply?dryRun=true", bundle("red", auditSecretValue), http.StatusOK)
	n = expectAudit(t, api, n, []entry{
		{Verb: "apply", Resource: "namespaces", Name: "audit-ns", Outcome: 200, Detail: "dry-run", RequestID: id},
		{Verb: "apply", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 200, Detail: "dry-run", RequestID: id},
		{Verb: "apply", Resource: "secrets", Namespace: "audit-ns", Name: "creds", Outcome: 200, Detail: "dry-run", RequestID: id},
	})

	// A Deployment, then a change of its replicas and containers: the field paths, not their values.
	dep := func(replicas int, image string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: audit-ns}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: %s}]}
`, replicas, image)
	}
	id1 := do(http.MethodPost, "/api/v1/apply", dep(1, "nginx"), http.StatusOK)
	id2 := do(http.MethodPost, "/api/v1/apply", dep(2, "nginx:1.29"), http.StatusOK)
	n = expectAudit(t, api, n, []entry{
		{Verb: "apply", Resource: "deployments.apps", Namespace: "audit-ns", Name: "web", Outcome: 201, Detail: "created", RequestID: id1},
		{Verb: "apply", Resource: "deployments.apps", Namespace: "audit-ns", Name: "web", Outcome: 200,
			Detail: "configured: spec.replicas, spec.template.spec.containers", RequestID: id2},
	})

	// Failures: the cluster's 422 for the document it refused (the next one is skipped: not recorded), a kind
	// the cluster does not serve (404), a body that is no YAML (400, one entry for the request).
	id1 = do(http.MethodPost, "/api/v1/apply", `apiVersion: v1
kind: ConfigMap
metadata: {name: bad, namespace: audit-ns, labels: {"a": "not a valid value!"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after-bad, namespace: audit-ns}
`, http.StatusUnprocessableEntity)
	id2 = do(http.MethodPost, "/api/v1/apply", "apiVersion: example.com/v1\nkind: Nope\nmetadata: {name: x, namespace: audit-ns}\n",
		http.StatusNotFound)
	id3 := do(http.MethodPost, "/api/v1/apply", "kind: [", http.StatusBadRequest)
	n = expectAudit(t, api, n, []entry{
		{Verb: "apply", Resource: "configmaps", Namespace: "audit-ns", Name: "bad", Outcome: 422, Detail: "failed: invalid", RequestID: id1},
		{Verb: "apply", Resource: "nope", Namespace: "audit-ns", Name: "x", Outcome: 404, Detail: "failed: not_found", RequestID: id2},
		{Verb: "apply", Outcome: 400, RequestID: id3},
	})

	id1 = do(http.MethodPost, "/api/v1/resources/deployments/audit-ns/web/scale", `{"replicas": 3}`, http.StatusOK)
	id2 = do(http.MethodPost, "/api/v1/resources/configmaps/audit-ns/settings/scale", `{"replicas": 1}`, http.StatusBadRequest)
	id3 = do(http.MethodPost, "/api/v1/resources/deploy/audit-ns/web/restart", nil, http.StatusOK)
	id4 := do(http.MethodDelete, "/api/v1/resources/configmaps/audit-ns/settings?dryRun=true", nil, http.StatusOK)
	id5 := do(http.MethodDelete, "/api/v1/resources/configmaps/audit-ns/settings", nil, http.StatusOK)
	id6 := do(http.MethodDelete, "/api/v1/resources/configmaps/audit-ns/settings", nil, http.StatusNotFound)
	do(http.MethodGet, "/api/v1/resources/configmaps/audit-ns", nil, http.StatusOK) // a read: not recorded
	expectAudit(t, api, n, []entry{
		{Verb: "scale", Resource: "deployments.apps", Namespace: "audit-ns", Name: "web", Outcome: 200, Detail: "replicas 2→3", RequestID: id1},
		{Verb: "scale", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 400, Detail: "", RequestID: id2},
		{Verb: "restart", Resource: "deployments.apps", Namespace: "audit-ns", Name: "web", Outcome: 200,
			Detail: "pod template restarted (kitefn.dev/restartedAt)", RequestID: id3},
		{Verb: "delete", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 200, Detail: "dry-run", RequestID: id4},
		{Verb: "delete", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 200, RequestID: id5},
		{Verb: "delete", Resource: "configmaps", Namespace: "audit-ns", Name: "settings", Outcome: 404, RequestID: id6},
	})

	all := api.Do(http.MethodGet, "/api/v1/audit?limit=500", nil).Body
	for _, v := range []string{auditSecretValue, base64.StdEncoding.EncodeToString([]byte(auditSecretValue)), "password"} {
		if bytes.Contains(all, []byte(v)) || strings.Contains(api.Logs(), v) {
			t.Errorf("the Secret's data (%q) is in the audit log or a log line", v)
		}
	}
}

// blockingLog is an audit log that never answers: each write waits until the recorder gives up.
type blockingLog struct{}

func (blockingLog) AppendAudit(ctx context.Context, _ *store.AuditEntry) error {
	<-ctx.Done()
	return ctx.Err()
}

// The proxy's writes and exec sessions are recorded: a create, the cluster's 409 for the same create, a
// delete, and one exec entry once the session ends, with its container, command and duration. Reads are not.
func TestProxyAudited(t *testing.T) {
	e := proxySetup(t)
	e.fakePod(t, "proxy-audit", "shell")
	ctx := t.Context()
	before, _, err := e.api.Platform.Store.ListAudit(ctx, store.AuditFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	cs := e.client(t, "operator-token")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audited"}}
	if _, err := cs.CoreV1().ConfigMaps("proxy-audit").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("proxy-audit").Create(ctx, cm, metav1.CreateOptions{}); err == nil {
		t.Fatal("a second create succeeded")
	}
	if _, err := cs.CoreV1().ConfigMaps("proxy-audit").Get(ctx, "audited", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps("proxy-audit").Delete(ctx, "audited", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	execURL := cs.CoreV1().RESTClient().Post().Namespace("proxy-audit").Resource("pods").Name("shell").
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{Container: "c", Command: []string{"cat", "marker"},
		Stdout: true}, scheme.ParameterCodec).URL()
	ex, err := remotecommand.NewSPDYExecutor(e.config("operator-token", "test"), "POST", execURL)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout}); err != nil ||
		stdout.String() != "exec marker\n" {
		t.Fatalf("exec: %q %v", stdout.String(), err)
	}

	var got []*store.AuditEntry
	// The session's entry is written when the proxy's handler returns, just after the client saw the stream end.
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		all, _, err := e.api.Platform.Store.ListAudit(ctx, store.AuditFilter{Limit: 500})
		got = all[:len(all)-len(before)]
		return err == nil && len(got) >= 4, err
	})
	if err != nil {
		t.Fatalf("entries %v: %v", got, err)
	}
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4: %v", len(got), got)
	}
	want := []string{
		"token:op exec pods proxy-audit/shell test 101",
		"token:op delete configmaps proxy-audit/audited test 200 proxy DELETE",
		"token:op create configmaps proxy-audit/audited test 409 proxy POST",
		"token:op create configmaps proxy-audit/audited test 201 proxy POST",
	}
	for i, g := range got {
		line := fmt.Sprintf("%s %s %s %s/%s %s %d", g.Who, g.Verb, g.Resource, g.Namespace, g.Name, g.Cluster, g.Outcome)
		if g.Verb != "exec" {
			line += " " + g.Detail
		}
		if line != want[i] || g.RequestID == "" {
			t.Errorf("entry %d: %q (requestId %q), want %q", i, line, g.RequestID, want[i])
		}
	}
	if d := got[0].Detail; !strings.HasPrefix(d, `container c, command "cat marker", duration `) {
		t.Errorf("exec detail %q", d)
	}
}

// A recorder whose log hangs holds a write up only for its bounded wait, and the write is done.
func TestAuditLogHangingDoesNotStallWrites(t *testing.T) {
	e := proxySetupWith(t, blockingLog{}, 200*time.Millisecond)
	e.ns(t, "audit-hang")
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/apply?namespace=audit-hang",
		strings.NewReader("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hang}\n"))
	req.Header.Set("Authorization", "Bearer operator-token")
	req.Header.Set("X-Cluster-Name", "test")
	req.Header.Set("Content-Type", "application/yaml")
	start := time.Now()
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if took := time.Since(start); res.StatusCode != http.StatusOK || took > 5*time.Second {
		t.Fatalf("apply answered %d after %s with a hanging audit log", res.StatusCode, took)
	}
	if _, err := e.cs.CoreV1().ConfigMaps("audit-hang").Get(t.Context(), "hang", metav1.GetOptions{}); err != nil {
		t.Fatalf("the apply was not done: %v", err)
	}
	if e.rec.Failures() != 1 {
		t.Fatalf("recorder failures %d, want 1", e.rec.Failures())
	}
}

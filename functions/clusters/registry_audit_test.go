package clusters_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

// auditRow is one entry as GET /api/v1/audit shows it, reduced to what a test compares.
type auditRow struct {
	who, cluster, verb, resource, name, requestID, detail string
	outcome                                               int
}

func (e auditRow) String() string {
	return fmt.Sprintf("%s %s %s/%s cluster=%s outcome=%d detail=%q requestId=%s", e.who, e.verb, e.resource,
		e.name, e.cluster, e.outcome, e.detail, e.requestID)
}

// auditLog reads every entry through GET /api/v1/audit, oldest first.
func auditLog(t *testing.T, a *apitest.Server) []auditRow {
	t.Helper()
	r := a.Do(http.MethodGet, "/api/v1/audit?limit=500", nil).Expect(t, http.StatusOK, "")
	items := r.Items()
	out := make([]auditRow, 0, len(items))
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		s := func(k string) string { v, _ := it[k].(string); return v }
		out = append(out, auditRow{who: s("who"), cluster: s("cluster"), verb: s("verb"), resource: s("resource"),
			name: s("name"), requestID: s("requestId"), detail: s("detail"), outcome: int(it["outcome"].(float64))})
	}
	return out
}

// Every registry change through the API — create, update, delete, import, each refused attempt too — has its
// entry with who, cluster, verb, name, outcome and the request id of the answer; no kubeconfig content appears.
func TestRegistryChangesAudited(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := kube.AdminKubeconfig()
	secret := kube.Token(harness.AdminUser)
	type want struct {
		verb, name, detail string
		outcome            int
	}
	var wants []want
	var ids []string
	do := func(method, path string, body any, status int, w want) apitest.Response {
		t.Helper()
		r := a.Do(method, path, body).Expect(t, status, "")
		w.outcome = status
		wants, ids = append(wants, w), append(ids, r.Header.Get("X-Request-Id"))
		return r
	}
	do(http.MethodPost, "/api/v1/clusters", register("audited", kc), http.StatusCreated, want{"create", "audited", "", 0})
	do(http.MethodPost, "/api/v1/clusters", register("audited", kc), http.StatusConflict, want{"create", "audited", "", 0})
	do(http.MethodPost, "/api/v1/clusters", register("Not_A_Name", kc), http.StatusBadRequest,
		want{"create", "Not_A_Name", "", 0})
	do(http.MethodPatch, "/api/v1/clusters/1", map[string]any{"labels": map[string]string{"env": "dev"},
		"kubeconfig": string(kc)}, http.StatusOK, want{"update", "audited", "labels, kubeconfig", 0})
	do(http.MethodPatch, "/api/v1/clusters/audited", map[string]any{"labels": map[string]string{"env": "dev"}},
		http.StatusOK, want{"update", "audited", "labels", 0})
	do(http.MethodPatch, "/api/v1/clusters/audited", map[string]any{"name": "renamed"}, http.StatusOK,
		want{"update", "audited", "name (renamed to renamed)", 0})
	do(http.MethodPatch, "/api/v1/clusters/nope", map[string]any{"kubeconfig": string(kc)}, http.StatusNotFound,
		want{"update", "nope", "kubeconfig", 0})
	do(http.MethodPatch, "/api/v1/clusters/renamed", map[string]any{"labels": map[string]string{"bad key": "x"}},
		http.StatusBadRequest, want{"update", "renamed", "labels", 0})

	// An import: one entry per context with its own outcome (the taken name fails alone).
	multi := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, ctx := range c.Contexts {
			c.Contexts["renamed"] = ctx.DeepCopy()
			c.Contexts["second"] = ctx.DeepCopy()
		}
		for name := range c.Contexts {
			if name != "renamed" && name != "second" {
				delete(c.Contexts, name)
			}
		}
		c.CurrentContext = "second"
	})
	r := a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(multi)}).
		Expect(t, http.StatusOK, "")
	if r.JSON["created"] != float64(1) || r.JSON["failed"] != float64(1) {
		t.Fatalf("import: %s", r.Body)
	}
	wants = append(wants, want{"import", "renamed", "context renamed: conflict", http.StatusConflict},
		want{"import", "second", "context second", http.StatusCreated})
	ids = append(ids, r.Header.Get("X-Request-Id"), r.Header.Get("X-Request-Id"))
	do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": "kind: ["}, http.StatusBadRequest,
		want{"import", "", "", 0})

	do(http.MethodDelete, "/api/v1/clusters/second", nil, http.StatusNoContent, want{"delete", "second", "", 0})
	do(http.MethodDelete, "/api/v1/clusters/second", nil, http.StatusNotFound, want{"delete", "second", "", 0})
	// Reads and verify change nothing and are not recorded.
	a.Do(http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "")
	a.Do(http.MethodGet, "/api/v1/clusters/renamed", nil).Expect(t, http.StatusOK, "")

	got := auditLog(t, a)
	if len(got) != len(wants) {
		t.Fatalf("%d entries, want %d:\n%v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if g.who != "bootstrap" || g.verb != w.verb || g.resource != "clusters" || g.name != w.name ||
			g.cluster != w.name || g.outcome != w.outcome || g.detail != w.detail || g.requestID == "" ||
			g.requestID != ids[i] {
			t.Errorf("entry %d: %v\nwant %s %s outcome=%d detail=%q requestId=%s", i, g, w.verb, w.name, w.outcome,
				w.detail, ids[i])
		}
	}
	if body := a.Do(http.MethodGet, "/api/v1/audit?limit=500", nil).Body; strings.Contains(string(body), secret) ||
		strings.Contains(string(body), "certificate-authority") || strings.Contains(a.Logs(), secret) {
		t.Fatal("kubeconfig content in the audit log or the logs")
	}
}

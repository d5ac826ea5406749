package access

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTableDecides(t *testing.T) {
	table := DefaultTable()
	viewer := &Caller{Name: "v", Kind: KindToken, Roles: []Role{Viewer}}
	operator := &Caller{Name: "o", Kind: KindToken, Roles: []Role{Operator}}
	admin := &Caller{Name: "a", Kind: KindToken, Roles: []Role{Admin}}
	cases := []struct {
		method, path string
		need         Role
	}{
		{"GET", "/api/v1/me", Viewer},
		{"GET", "/api/v1/clusters", Viewer},
		{"GET", "/api/v1/clusters/east", Viewer},
		{"POST", "/api/v1/clusters", Admin},
		{"POST", "/api/v1/clusters/import", Admin},
		{"POST", "/api/v1/clusters/reconcile", Admin},
		{"PATCH", "/api/v1/clusters/east", Admin},
		{"DELETE", "/api/v1/clusters/east", Admin},
		{"POST", "/api/v1/clusters/east/verify", Admin},
		{"POST", "/api/v1/clusters/east/prometheus/discover", Admin},
		{"GET", "/api/v1/clusters/east/prometheus/query", Viewer},
		{"GET", "/api/v1/clusters/east/prometheus/query_range", Viewer},
		{"GET", "/api/v1/clusters/east/kubeconfig", Viewer},
		{"GET", "/api/v1/resources/pods/default", Viewer},
		{"HEAD", "/api/v1/resources/pods/default", Viewer},
		{"POST", "/api/v1/resources/deployments/default/web/scale", Operator},
		{"DELETE", "/api/v1/resources/pods/default/web", Operator},
		{"POST", "/api/v1/apply", Operator},
		{"GET", "/api/v1/crds", Viewer},
		{"GET", "/api/v1/crds/families", Viewer},
		{"GET", "/api/v1/search", Viewer},
		{"GET", "/api/v1/search/status", Viewer},
		{"GET", "/api/v1/relations/pods/default/web", Viewer},
		{"GET", "/api/v1/logs/default/web", Viewer},
		{"GET", "/api/v1/terminal/pods/default/web", Operator},
		{"GET", "/api/v1/terminal/nodes/n1", Admin},
		{"GET", "/k8s/clusters/east/api/v1/pods", Viewer},
		{"POST", "/k8s/clusters/east/api/v1/namespaces/default/pods", Operator},
		{"GET", "/api/v1/tokens", Admin},
		{"POST", "/api/v1/tokens", Admin},
		{"DELETE", "/api/v1/tokens/ci", Admin},
		{"GET", "/api/v1/audit", Admin},
	}
	for _, c := range cases {
		m, status, _ := table.Lookup(httptest.NewRequest(c.method, c.path, nil))
		if m == nil {
			t.Errorf("%s %s: not in the table (%d)", c.method, c.path, status)
			continue
		}
		if m.Rule.Role != c.need {
			t.Errorf("%s %s needs %s, want %s", c.method, c.path, m.Rule.Role, c.need)
		}
		for _, who := range []*Caller{viewer, operator, admin} {
			err := Authorize(who, m.Rule, nil)
			if want := who.Has(c.need); (err == nil) != want {
				t.Errorf("%s %s as %s: %v, allowed want %v", c.method, c.path, who.Roles[0], err, want)
			}
			if err != nil && !strings.Contains(err.Error(), "needs the "+string(c.need)+" role") {
				t.Errorf("refusal does not name the role: %v", err)
			}
		}
	}
	if m, status, _ := table.Lookup(httptest.NewRequest("GET", "/api/v1/unknown", nil)); m != nil || status != 404 {
		t.Errorf("unknown route: %v %d, want denied (404)", m, status)
	}
	if m, status, allow := table.Lookup(httptest.NewRequest("PUT", "/api/v1/clusters", nil)); m != nil ||
		status != 405 || !strings.Contains(allow, "POST") {
		t.Errorf("other method: %v %d %q, want 405", m, status, allow)
	}
	if m, _, _ := table.Lookup(httptest.NewRequest("GET", "/k8s/clusters/prod-1/api", nil)); m == nil || m.Cluster != "prod-1" {
		t.Errorf("proxy cluster: %+v", m)
	}
	if m, _, _ := table.Lookup(httptest.NewRequest("GET", "/api/v1/clusters/prod-2/kubeconfig", nil)); m == nil || m.Cluster != "prod-2" {
		t.Errorf("{ref} cluster: %+v", m)
	}
}

func TestClusterScope(t *testing.T) {
	c := &Caller{Name: "ci", Kind: KindToken, Roles: []Role{Viewer}, Clusters: []string{"prod-*"}}
	r := httptest.NewRequest("GET", "/api/v1/search?clusters=prod-1,dev-1&cluster=prod-2", nil)
	r.Header.Set("X-Cluster-Name", "prod-3")
	refs := ClusterRefs(r, "")
	if strings.Join(refs, ",") != "prod-3,prod-2,prod-1,dev-1" {
		t.Fatalf("refs %v", refs)
	}
	err := Authorize(c, Rule{Verb: "search", Resource: "search", Role: Viewer}, refs)
	if err == nil || !strings.Contains(err.Error(), `cluster "dev-1" is outside the cluster scope`) {
		t.Fatalf("out of scope: %v", err)
	}
	if err := Authorize(c, Rule{Verb: "search", Resource: "search", Role: Viewer}, refs[:3]); err != nil {
		t.Fatalf("in scope: %v", err)
	}
}

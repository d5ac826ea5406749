package resources

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/shared/access"
)

func TestParseK8sRequest(t *testing.T) {
	for _, tc := range []struct {
		method, path, query string
		want                k8sRequest
	}{
		{"GET", "/api", "", k8sRequest{Discovery: true, Verb: "get"}},
		{"GET", "/apis/apps/v1", "", k8sRequest{Discovery: true, Verb: "get"}},
		{"GET", "/openapi/v3/api/v1", "", k8sRequest{Discovery: true, Verb: "get"}},
		{"POST", "/api", "", k8sRequest{Verb: "get"}},
		{"GET", "/metrics", "", k8sRequest{Verb: "get"}},
		{"GET", "/api/v1/pods", "", k8sRequest{Resource: true, Verb: "list", Kind: "pods"}},
		{"GET", "/api/v1/pods", "watch=true", k8sRequest{Resource: true, Verb: "watch", Kind: "pods"}},
		{"GET", "/api/v1/watch/namespaces/a/pods", "", k8sRequest{Resource: true, Verb: "watch", Kind: "pods", Namespace: "a"}},
		{"GET", "/api/v1/namespaces/a/pods/p/log", "follow=true", k8sRequest{Resource: true, Verb: "get", Kind: "pods", Namespace: "a", Name: "p", Subresource: "log"}},
		{"POST", "/api/v1/namespaces/a/pods/p/exec", "", k8sRequest{Resource: true, Verb: "exec", Kind: "pods", Namespace: "a", Name: "p", Subresource: "exec"}},
		{"GET", "/api/v1/namespaces/a/pods/p/portforward", "", k8sRequest{Resource: true, Verb: "portforward", Kind: "pods", Namespace: "a", Name: "p", Subresource: "portforward"}},
		{"GET", "/api/v1/namespaces/a/services/s:80/proxy/x/y", "", k8sRequest{Resource: true, Verb: "proxy", Kind: "services", Namespace: "a", Name: "s:80", Subresource: "proxy"}},
		{"GET", "/api/v1/nodes/n/proxy/metrics", "", k8sRequest{Resource: true, Verb: "proxy", Kind: "nodes", Name: "n", Subresource: "proxy"}},
		{"GET", "/api/v1/namespaces/a", "", k8sRequest{Resource: true, Verb: "get", Kind: "namespaces", Namespace: "a", Name: "a"}},
		{"PUT", "/api/v1/namespaces/a/finalize", "", k8sRequest{Resource: true, Verb: "update", Kind: "namespaces", Namespace: "a", Name: "a", Subresource: "finalize"}},
		{"GET", "/api/v1/namespaces", "", k8sRequest{Resource: true, Verb: "list", Kind: "namespaces"}},
		{"POST", "/apis/apps/v1/namespaces/a/deployments", "", k8sRequest{Resource: true, Verb: "create", Group: "apps", Kind: "deployments", Namespace: "a"}},
		{"PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", "", k8sRequest{Resource: true, Verb: "patch", Group: "apps", Kind: "deployments", Namespace: "a", Name: "d", Subresource: "scale"}},
		{"DELETE", "/api/v1/namespaces/a/configmaps", "", k8sRequest{Resource: true, Verb: "deletecollection", Kind: "configmaps", Namespace: "a"}},
		{"DELETE", "/api/v1/namespaces/a/configmaps/c", "", k8sRequest{Resource: true, Verb: "delete", Kind: "configmaps", Namespace: "a", Name: "c"}},
	} {
		q, _ := url.ParseQuery(tc.query)
		if got := parseK8sRequest(tc.method, tc.path, q); got != tc.want {
			t.Errorf("%s %s?%s = %+v, want %+v", tc.method, tc.path, tc.query, got, tc.want)
		}
	}
}

func TestAuthorise(t *testing.T) {
	viewer := &access.Caller{Name: "v", Roles: []access.Role{access.Viewer}}
	operator := &access.Caller{Name: "o", Roles: []access.Role{access.Operator}}
	admin := &access.Caller{Name: "a", Roles: []access.Role{access.Admin}}
	teamA := &access.Caller{Name: "t", Roles: []access.Role{access.Operator}, Namespaces: []string{"team-a"}}
	prodOnly := &access.Caller{Name: "p", Roles: []access.Role{access.Admin}, Clusters: []string{"prod-*"}}
	req := func(method, path string) k8sRequest { return parseK8sRequest(method, path, nil) }
	for _, tc := range []struct {
		caller  *access.Caller
		cluster string
		req     k8sRequest
		deny    string // "" allowed, else part of the reason
	}{
		{nil, "c", req("GET", "/api"), "no authenticated caller"},
		{viewer, "c", req("GET", "/api/v1/namespaces/x/pods"), ""},
		{viewer, "c", req("GET", "/api/v1/namespaces/x/pods/p/log"), ""},
		{viewer, "c", req("DELETE", "/api/v1/namespaces/x/pods/p"), "delete pods needs the operator role"},
		{viewer, "c", req("POST", "/api/v1/namespaces/x/pods/p/exec"), "exec pods/exec needs the operator role"},
		{operator, "c", req("POST", "/api/v1/namespaces/x/pods/p/exec"), ""},
		{operator, "c", req("GET", "/api/v1/namespaces/x/pods/p/portforward"), ""},
		{operator, "c", req("GET", "/api/v1/namespaces/x/services/s/proxy/"), "proxy services/proxy needs the admin role"},
		{operator, "c", req("GET", "/api/v1/nodes/n/proxy/logs"), "proxy nodes/proxy needs the admin role"},
		{admin, "c", req("GET", "/api/v1/nodes/n/proxy/logs"), ""},
		{operator, "c", req("GET", "/metrics"), "need the admin role"},
		{teamA, "c", req("GET", "/apis/apps/v1"), ""},
		{teamA, "c", req("GET", "/version"), ""},
		{teamA, "c", req("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/d"), ""},
		{teamA, "c", req("GET", "/api/v1/namespaces/team-b/pods"), `namespace "team-b" is outside your namespace scope`},
		{teamA, "c", req("GET", "/api/v1/pods"), "list pods is cluster-wide (no namespace) and your scope is limited to namespaces team-a"},
		{teamA, "c", req("GET", "/api/v1/namespaces/team-a"), ""},
		{prodOnly, "prod-1", req("GET", "/api/v1/nodes"), ""},
		{prodOnly, "dev", req("GET", "/api"), `cluster "dev" is outside your cluster scope`},
	} {
		got := authorise(tc.caller, tc.cluster, tc.req)
		if (tc.deny == "") != (got == "") || !strings.Contains(got, tc.deny) {
			t.Errorf("%v on %s %+v: %q, want %q", tc.caller, tc.cluster, tc.req, got, tc.deny)
		}
	}
}

func TestForwardHeadersStripsCredentialsAndImpersonation(t *testing.T) {
	in := http.Header{}
	in.Set("Authorization", "Bearer kitefn-token")
	in.Set("Cookie", "session=1")
	in.Set("Impersonate-User", "system:admin")
	in.Add("Impersonate-Group", "system:masters")
	in.Set("Impersonate-Uid", "1")
	in["impersonate-extra-scopes"] = []string{"x"} // not canonical: still stripped
	in.Set("Accept", "application/json")
	in.Set("X-Stream-Protocol-Version", "v5.channel.k8s.io")
	out := forwardHeaders(in)
	if len(out) != 2 || out.Get("Accept") != "application/json" || out.Get("X-Stream-Protocol-Version") == "" {
		t.Fatalf("forwarded %v", out)
	}
	if in.Get("Authorization") == "" {
		t.Fatal("the caller's headers were changed")
	}
}

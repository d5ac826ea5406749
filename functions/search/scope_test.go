package search_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kitefn/kitefn/functions/search"
	"github.com/kitefn/kitefn/functions/search/graph"
	"github.com/kitefn/kitefn/shared/access"
	kubeclient "github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
)

// callers is a test authenticator: each bearer credential names a fixed caller.
type callers map[string]*access.Caller

func (c callers) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	return c[credential], nil
}

func viewer(name string, clusters, namespaces []string) *access.Caller {
	return &access.Caller{Name: name, Kind: access.KindToken, Roles: []access.Role{access.Viewer},
		Clusters: clusters, Namespaces: namespaces}
}

// setupAs runs the search function with the test callers and, when actAs is set, the impersonation hook.
func setupAs(t *testing.T, vars map[string]string, who callers, actAs search.ActAs) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	settings := map[string]string{"KITEFN_SEARCH_CACHE_TTL": "0", "KITEFN_RELATIONS_CACHE_TTL": "0s"}
	for k, v := range vars {
		settings[k] = v
	}
	fn := apitest.Fn{Name: "search", Check: search.CheckConfig, New: func(p *platform.Platform) runtime.Handler {
		return search.New(search.Deps{Clients: p.Clients, Registry: p.Store, ActAs: actAs})
	}}
	api := apitest.StartWith(t, settings, []access.Authenticator{who}, fn)
	api.AddCluster("test", kube.AdminKubeconfig())
	return &env{api: api, cs: kubernetes.NewForConfigOrDie(kube.RESTConfig())}
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func (e *env) graphAs(t *testing.T, token, path string, status int) (graph.Graph, apitest.Response) {
	t.Helper()
	r := e.api.Do(http.MethodGet, path, nil, append([]string{"X-Cluster-Name", "test"}, bearer(token)...)...)
	if r.Status != status {
		t.Fatalf("%s as %s: %d %s", path, token, r.Status, r.Body)
	}
	var g graph.Graph
	if status == 200 {
		if err := json.Unmarshal(r.Body, &g); err != nil {
			t.Fatal(err)
		}
	}
	return g, r
}

func ids(g graph.Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.ID)
	}
	slices.Sort(out)
	return out
}

// TestSearchNamespaceScope: a caller limited to team-a finds only team-a's objects and no cluster-scoped
// ones; asking for another namespace or a cluster-scoped kind by name is refused; relations stay in scope.
// The result cache keeps callers apart.
func TestSearchNamespaceScope(t *testing.T) {
	who := callers{"team-a-token": viewer("team-a", nil, []string{"team-a"})}
	e := setupAs(t, map[string]string{"KITEFN_SEARCH_CACHE_TTL": "1m"}, who, nil)
	ctx := t.Context()
	for _, ns := range []string{"team-a", "team-b"} {
		e.namespace(t, ns)
		e.configMap(t, ns, "scoped-cfg", nil, nil)
		_, err := e.cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "scoped-pod"},
			Spec: corev1.PodSpec{NodeName: "no-such-node", Containers: []corev1.Container{{Name: "c", Image: "nginx",
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "scoped-cfg"}}}}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	scoped := bearer("team-a-token")
	if r := e.api.Do(http.MethodGet, "/api/v1/search/status", nil, scoped...); r.Status != 403 ||
		!strings.Contains(r.Message(), "cluster-wide") {
		t.Fatalf("the index status for a namespace-scoped caller: %d %s, want 403", r.Status, r.Body)
	}

	// The admin first: its answer is cached for a minute and must not be served to the scoped caller.
	a, _ := e.search(t, q("scoped"))
	want := []string{"Pod:team-a/scoped-pod", "Pod:team-b/scoped-pod", "ConfigMap:team-a/scoped-cfg",
		"ConfigMap:team-b/scoped-cfg"}
	if !slices.Equal(a.names(), want) {
		t.Fatalf("admin: %v", a.names())
	}
	a, r := e.search(t, q("scoped"), scoped...)
	if r.Status != 200 || r.Header.Get("X-Search-Cache") != "" ||
		!slices.Equal(a.names(), []string{"Pod:team-a/scoped-pod", "ConfigMap:team-a/scoped-cfg"}) ||
		a.Total != 2 || a.Partial {
		t.Fatalf("scoped: %d %v total %d partial %v", r.Status, a.names(), a.Total, a.Partial)
	}
	if strings.Contains(string(r.Body), "team-b") {
		t.Fatalf("team-b in the scoped answer: %s", r.Body)
	}
	if _, r = e.search(t, q("scoped"), scoped...); r.Header.Get("X-Search-Cache") != "hit" {
		t.Fatal("the scoped caller's own answer was not cached")
	}

	// Cluster-scoped kinds: the admin finds the namespaces by name, the scoped caller does not.
	a, _ = e.search(t, q("team-"))
	if !slices.Contains(a.names(), "Namespace:/team-a") || !slices.Contains(a.names(), "Namespace:/team-b") {
		t.Fatalf("admin namespaces: %v", a.names())
	}
	a, _ = e.search(t, q("team-"), scoped...)
	for _, it := range a.Items {
		if it.Namespace != "team-a" {
			t.Fatalf("scoped caller got %s:%s/%s", it.Kind, it.Namespace, it.Name)
		}
	}
	if a.Partial {
		t.Fatalf("hidden kinds made the default search partial: %+v", a.Errors)
	}
	// Named: a 403 in errors, nothing found.
	a, _ = e.search(t, q("team-", "types=ns,cm"), scoped...)
	if len(a.Items) != 0 || !a.Partial || len(a.Errors) != 1 || a.Errors[0].Resource != "namespaces" ||
		a.Errors[0].Status != 403 || a.Errors[0].Code != "forbidden" ||
		!strings.Contains(a.Errors[0].Message, "cluster-scoped") {
		t.Fatalf("types=ns: %v %+v", a.names(), a.Errors)
	}
	// Another namespace: refused, naming it.
	_, r = e.search(t, q("scoped", "namespace=team-b"), scoped...)
	if r.Status != 403 || !strings.Contains(r.Message(), `"team-b"`) {
		t.Fatalf("namespace=team-b: %d %s", r.Status, r.Body)
	}

	// Relations: the pod's ConfigMap is there, its node (cluster-scoped) is neither shown nor "missing".
	g, _ := e.graphAs(t, "team-a-token", "/api/v1/relations/pods/team-a/scoped-pod?depth=1", 200)
	if got := ids(g); !slices.Equal(got, []string{"configmaps/team-a/scoped-cfg", "pods/team-a/scoped-pod"}) {
		t.Fatalf("scoped graph: %v", got)
	}
	g, _ = e.graphAs(t, apitest.Token, "/api/v1/relations/pods/team-a/scoped-pod?depth=1", 200)
	if got := ids(g); !slices.Contains(got, "nodes/no-such-node") {
		t.Fatalf("admin graph: %v", got)
	}
	_, r = e.graphAs(t, "team-a-token", "/api/v1/relations/pods/team-b/scoped-pod", 403)
	if !strings.Contains(r.Message(), `namespace "team-b" is outside your namespace scope`) {
		t.Fatalf("relations in team-b: %s", r.Body)
	}
	// Whether the object exists is not told: a name that does not exist answers alike.
	_, r2 := e.graphAs(t, "team-a-token", "/api/v1/relations/pods/team-b/nothing-here", 403)
	if r2.Message() != r.Message() {
		t.Fatalf("existence told apart: %q vs %q", r.Message(), r2.Message())
	}
	_, r = e.graphAs(t, "team-a-token", "/api/v1/relations/namespaces/team-a", 403)
	if !strings.Contains(r.Message(), "cluster-scoped") {
		t.Fatalf("relations of a namespace: %s", r.Body)
	}
}

// TestSearchClusterScope: a caller limited to clusters a* searches only those; naming another is refused as
// the runtime refuses it, and the status lists only clusters in scope.
func TestSearchClusterScope(t *testing.T) {
	who := callers{"a-token": viewer("a-only", []string{"a*"}, nil)}
	e := setupAs(t, nil, who, nil)
	e.api.AddCluster("alpha", kube.AdminKubeconfig())
	e.api.AddCluster("beta", kube.AdminKubeconfig())
	e.namespace(t, "cscope")
	e.configMap(t, "cscope", "cscope-cfg", nil, nil)
	params := q("cscope-cfg", "namespace=cscope", "clusters=_all")

	a, _ := e.search(t, params)
	var got []string
	for _, it := range a.Items {
		got = append(got, it.Cluster)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"alpha", "beta", "test"}) {
		t.Fatalf("admin: %v", got)
	}
	if st := e.status(t); len(st.Clusters) != 3 {
		t.Fatalf("admin status: %v", st.names())
	}

	a, r := e.search(t, params, bearer("a-token")...)
	if r.Status != 200 || len(a.Items) != 1 || a.Items[0].Cluster != "alpha" || len(a.Clusters) != 1 ||
		a.Clusters[0].Name != "alpha" || len(a.Errors) != 0 {
		t.Fatalf("scoped _all: %d %+v %+v", r.Status, a.Items, a.Clusters)
	}
	if strings.Contains(string(r.Body), "beta") || strings.Contains(string(r.Body), `"test"`) {
		t.Fatalf("out-of-scope clusters named: %s", r.Body)
	}
	for _, p := range []string{q("cscope-cfg", "clusters=alpha,beta"), q("cscope-cfg", "cluster=beta")} {
		_, r := e.search(t, p, append(bearer("a-token"), "X-Cluster-Name", "beta")...)
		if r.Status != 403 || r.JSON["error"].(map[string]any)["code"] != "forbidden" ||
			!strings.Contains(r.Message(), `cluster "beta" is outside the cluster scope`) {
			t.Fatalf("%s: %d %s", p, r.Status, r.Body)
		}
	}
	r = e.api.Do(http.MethodGet, "/api/v1/search/status", nil, bearer("a-token")...).Expect(t, 200, "")
	var st indexStatus
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.names(), []string{"alpha"}) || st.Objects != st.Clusters[0].Objects {
		t.Fatalf("scoped status: %v, %d objects", st.names(), st.Objects)
	}
}

// countingTransport counts the SelfSubjectAccessReviews sent through it.
type countingTransport struct {
	next    http.RoundTripper
	reviews *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/selfsubjectaccessreviews") {
		c.reviews.Add(1)
	}
	return c.next.RoundTrip(r)
}

// impersonating is the test's ActAs: callers named in users act as that Kubernetes user (a client built from
// the harness admin's config with Impersonate set), "carol" through a closed port, everyone else as the
// stored identity.
type impersonating struct {
	t       *testing.T
	users   map[string]string // caller name → Kubernetes user
	closed  string            // a host:port nothing listens on
	reviews atomic.Int64

	mu      sync.Mutex
	clients map[string]*kubeclient.Client
}

func (im *impersonating) actAs(_ context.Context, c *kubeclient.Client, caller *access.Caller) (*kubeclient.Client,
	string, error) {
	user, ok := im.users[caller.Name]
	if !ok {
		return nil, "", nil
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if cl, ok := im.clients[user]; ok {
		return cl, user, nil
	}
	rc := rest.CopyConfig(kube.RESTConfig())
	rc.Impersonate = rest.ImpersonationConfig{UserName: user}
	rc.Timeout = 5 * time.Second
	if user == "carol" {
		rc.Host = "https://" + im.closed
	}
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, reviews: &im.reviews} })
	cl, err := kubeclient.NewClient(&store.Cluster{ID: c.ID, Name: c.Name}, rc)
	if err != nil {
		return nil, "", err
	}
	im.clients[user] = cl
	return cl, user, nil
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func (e *env) role(t *testing.T, ns, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := t.Context()
	if _, err := e.cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// RBAC reaches the apiserver's authorizer shortly after the binding: wait until it says yes.
	rc := rest.CopyConfig(kube.RESTConfig())
	rc.Impersonate = rest.ImpersonationConfig{UserName: user}
	as := kubernetes.NewForConfigOrDie(rc)
	r := rules[0]
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := as.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: "list", Group: r.APIGroups[0], Resource: r.Resources[0], Namespace: ns}}}, metav1.CreateOptions{})
		return err == nil && got.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("%s never got its role in %s", user, ns)
	}
}

// TestSearchImpersonatedRBAC: on a cluster that impersonates the caller, the shared index is filtered by what
// the cluster lets the caller list; kinds they may list nowhere are reported as 403s; decisions are cached;
// an unreachable cluster leaks nothing. Relations list as the caller.
func TestSearchImpersonatedRBAC(t *testing.T) {
	im := &impersonating{t: t, users: map[string]string{"alice": "alice", "bob": "bob", "carol": "carol"},
		closed: closedPort(t), clients: map[string]*kubeclient.Client{}}
	who := callers{"alice-token": viewer("alice", nil, nil), "bob-token": viewer("bob", nil, nil),
		"carol-token": viewer("carol", nil, nil)}
	e := setupAs(t, nil, who, im.actAs)
	ctx := t.Context()
	labels := map[string]string{"app": "rbac-web"}
	for _, ns := range []string{"rbac-a", "rbac-b"} {
		e.namespace(t, ns)
		e.pod(t, ns, "rbac-web", labels)
		e.configMap(t, ns, "rbac-web-cfg", nil, nil)
		if _, err := e.cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "rbac-web-secret"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "rbac-web"},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.role(t, "rbac-a", "alice", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"},
		Verbs: []string{"get", "list"}})

	// The admin (not impersonated) sees everything.
	a, _ := e.search(t, q("rbac-web"))
	if len(a.Items) != 8 || a.Partial {
		t.Fatalf("admin: %v %+v", a.names(), a.Errors)
	}

	a, r := e.search(t, q("rbac-web"), bearer("alice-token")...)
	if r.Status != 200 || !slices.Equal(a.names(), []string{"Pod:rbac-a/rbac-web", "ConfigMap:rbac-a/rbac-web-cfg"}) ||
		a.Total != 2 {
		t.Fatalf("alice: %d %v total %d", r.Status, a.names(), a.Total)
	}
	if strings.Contains(string(r.Body), "rbac-b") {
		t.Fatalf("rbac-b in alice's answer: %s", r.Body)
	}
	forbidden := map[string]bool{}
	for _, er := range a.Errors {
		if er.Status != 403 || er.Code != "forbidden" || er.Cluster != "test" || !strings.Contains(er.Message, "alice") {
			t.Fatalf("error %+v", er)
		}
		forbidden[er.Resource] = true
	}
	for _, res := range []string{"secrets", "deployments.apps", "namespaces", "nodes"} {
		if !forbidden[res] {
			t.Errorf("%s not reported: %+v", res, a.Errors)
		}
	}
	if forbidden["pods"] || forbidden["configmaps"] || !a.Partial || a.Clusters[0].Status != "partial" {
		t.Fatalf("alice report: partial %v %+v %+v", a.Partial, a.Errors, a.Clusters)
	}

	// Within the TTL the decisions are reused: the second search asks the cluster nothing.
	sent := im.reviews.Load()
	if sent == 0 {
		t.Fatal("no access reviews were sent")
	}
	a2, _ := e.search(t, q("rbac-web"), bearer("alice-token")...)
	if !slices.Equal(a2.names(), a.names()) || len(a2.Errors) != len(a.Errors) {
		t.Fatalf("second search differs: %v %+v", a2.names(), a2.Errors)
	}
	if now := im.reviews.Load(); now != sent {
		t.Fatalf("the second search sent %d reviews", now-sent)
	}
	// A namespace the cluster lets alice read, asked for by name.
	a, _ = e.search(t, q("rbac-web", "namespace=rbac-a", "types=pods,secrets"), bearer("alice-token")...)
	if !slices.Equal(a.names(), []string{"Pod:rbac-a/rbac-web"}) || len(a.Errors) != 1 ||
		a.Errors[0].Resource != "secrets" || !strings.Contains(a.Errors[0].Message, `namespace "rbac-a"`) {
		t.Fatalf("alice in rbac-a: %v %+v", a.names(), a.Errors)
	}
	a, _ = e.search(t, q("rbac-web", "namespace=rbac-b", "types=pods"), bearer("alice-token")...)
	if len(a.Items) != 0 || len(a.Errors) != 1 || a.Errors[0].Status != 403 {
		t.Fatalf("alice in rbac-b: %v %+v", a.names(), a.Errors)
	}

	// The reviews cannot be sent: the cluster is reported once, nothing is shown.
	a, r = e.search(t, q("rbac-web"), bearer("carol-token")...)
	if r.Status != 200 || len(a.Items) != 0 || a.Total != 0 || !a.Partial || len(a.Errors) != 1 ||
		a.Errors[0].Cluster != "test" || a.Errors[0].Status != 502 || a.Errors[0].Code != "cluster_unreachable" ||
		a.Clusters[0].Status != "error" || a.Clusters[0].Objects != 0 {
		t.Fatalf("carol: %d %v %+v %+v", r.Status, a.names(), a.Errors, a.Clusters)
	}

	// Relations as carol: the start object cannot be read as her, and is not read as anyone else.
	_, r = e.graphAs(t, "carol-token", "/api/v1/relations/deployments/rbac-a/rbac-web", 502)
	if r.JSON["error"].(map[string]any)["code"] != "cluster_unreachable" || strings.Contains(string(r.Body), "uid") {
		t.Fatalf("carol's relations: %s", r.Body)
	}

	// Relations as bob, who may read the workload kinds in rbac-a only.
	rs, err := e.cs.AppsV1().ReplicaSets("rbac-a").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-web-1", Labels: labels},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := e.cs.AppsV1().Deployments("rbac-a").Get(ctx, "rbac-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name,
		UID: dep.UID, Controller: ptrTo(true)}}
	if rs, err = e.cs.AppsV1().ReplicaSets("rbac-a").Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := e.cs.CoreV1().Pods("rbac-a").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-web-1-x", Labels: labels, OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptrTo(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "rbac-web-cfg"}}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.role(t, "rbac-a", "bob", rbacv1.PolicyRule{APIGroups: []string{"apps"},
		Resources: []string{"deployments", "replicasets"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}})
	g, _ := e.graphAs(t, "bob-token", "/api/v1/relations/deployments/rbac-a/rbac-web?depth=3", 200)
	wantIDs := []string{"deployments.apps/rbac-a/rbac-web", "pods/rbac-a/" + pod.Name, "replicasets.apps/rbac-a/rbac-web-1"}
	if got := ids(g); !slices.Equal(got, wantIDs) {
		t.Fatalf("bob's graph: %v (errors %+v)", got, g.Errors)
	}
	gaps := map[string]int{}
	for _, le := range g.Errors {
		gaps[le.Resource] = le.Status
	}
	if gaps["configmaps"] != 403 || gaps["pods"] != 0 || gaps["replicasets.apps"] != 0 {
		t.Fatalf("bob's gaps: %+v", g.Errors)
	}
	// The admin's graph of the same object has the ConfigMap: the gap was bob's RBAC, not the cluster.
	g, _ = e.graphAs(t, apitest.Token, "/api/v1/relations/deployments/rbac-a/rbac-web?depth=3", 200)
	if got := ids(g); !slices.Contains(got, "configmaps/rbac-a/rbac-web-cfg") {
		t.Fatalf("admin graph: %v", got)
	}
	// Elsewhere bob's read of the start object is the cluster's 403, with its message.
	_, r = e.graphAs(t, "bob-token", "/api/v1/relations/deployments/rbac-b/rbac-web", 403)
	if !strings.Contains(r.Message(), `User "bob" cannot get resource "deployments"`) {
		t.Fatalf("bob in rbac-b: %s", r.Body)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestSearchScopeInsideTheFunction: the function holds the cluster scope itself (the runtime's table refuses
// first in a deployment; here the handler is called directly, as the table could miss a cluster named by an ID it
// could not resolve), and a request without a caller is refused, not served as nobody in particular.
func TestSearchScopeInsideTheFunction(t *testing.T) {
	e := setup(t, nil)
	fn := e.direct(t)
	call := func(path string, caller *access.Caller) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("X-Cluster-Name", "test")
		if caller != nil {
			req = req.WithContext(access.WithCaller(req.Context(), caller))
		}
		rec := httptest.NewRecorder()
		fn.Handle(rec, req)
		return rec
	}
	scoped := viewer("a-only", []string{"a*"}, nil)
	for _, path := range []string{"/api/v1/search?" + q("anything"), "/api/v1/relations/namespaces/default"} {
		rec := call(path, scoped)
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), `cluster \"test\" is outside the cluster scope`) {
			t.Fatalf("%s out of scope: %d %s", path, rec.Code, rec.Body)
		}
		if rec = call(path, nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), "no authenticated caller") {
			t.Fatalf("%s without a caller: %d %s", path, rec.Code, rec.Body)
		}
		if rec = call(path, viewer("all", nil, nil)); rec.Code != 200 {
			t.Fatalf("%s in scope: %d %s", path, rec.Code, rec.Body)
		}
	}
	if rec := call("/api/v1/search/status", nil); rec.Code != 403 {
		t.Fatalf("status without a caller: %d", rec.Code)
	}
}

// direct starts another search function over the test server's platform, to call its handler directly (as
// callers the runtime would not let through, or several callers behind one token).
func (e *env) direct(t *testing.T) *search.Function {
	t.Helper()
	fn := search.New(search.Deps{Clients: e.api.Platform.Clients, Registry: e.api.Platform.Store})
	if err := fn.Start(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := fn.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return fn
}

package resources_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/tests/apitest"
)

// Bearer tokens of the scoped callers the scope tests call as.
const (
	teamAToken     = "scope-team-a"     // operator in namespace scope-a only
	notSystemToken = "scope-not-system" // operator everywhere but kube-system
	prodToken      = "scope-prod"       // operator on clusters prod-* only
)

// scopeCallers is the test's authenticator, asked after the bootstrap token: a fixed caller per token.
type scopeCallers map[string]*access.Caller

func (s scopeCallers) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	return s[credential], nil
}

type scopeEnv struct {
	*env
}

// scopeSetup runs the resources function behind the real runtime with the scoped callers, the test cluster
// registered as "test" and "prod-1", and namespaces scope-a and scope-b each holding a pod, a ConfigMap and a
// Deployment (and a pod in kube-system).
func scopeSetup(t *testing.T) *scopeEnv {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	op := []access.Role{access.Operator}
	api := apitest.StartWith(t, nil, []access.Authenticator{scopeCallers{
		teamAToken:     {Name: "alice", Kind: access.KindToken, Roles: op, Namespaces: []string{"scope-a"}},
		notSystemToken: {Name: "bob", Kind: access.KindToken, Roles: op, Namespaces: []string{"!kube-system"}},
		prodToken:      {Name: "carol", Kind: access.KindToken, Roles: op, Clusters: []string{"prod-*"}},
	}}, apitest.Function("resources"))
	api.AddCluster("test", kube.AdminKubeconfig())
	api.AddCluster("prod-1", kube.AdminKubeconfig())
	e := &scopeEnv{&env{api: api, cs: kubernetes.NewForConfigOrDie(kube.RESTConfig())}}
	ctx := context.Background()
	for _, ns := range []string{"scope-a", "scope-b"} {
		e.namespace(t, ns)
		e.ensurePod(t, ns, "p-"+ns)
		_, err := e.cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}},
			metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		_, err = e.cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	e.ensurePod(t, "kube-system", "p-kube-system")
	return e
}

func (e *scopeEnv) ensurePod(t *testing.T, ns, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// as calls the API on cluster as the caller of token.
func (e *scopeEnv) as(token, cluster, method, path string, body any, hdr ...string) apitest.Response {
	return e.api.Do(method, path, body, append([]string{"X-Cluster-Name", cluster, "Authorization", "Bearer " + token},
		hdr...)...)
}

// refused checks a 403 forbidden whose message has want.
func refused(t *testing.T, what string, r apitest.Response, want string) {
	t.Helper()
	r.Expect(t, http.StatusForbidden, "forbidden")
	if !strings.Contains(r.Message(), want) {
		t.Fatalf("%s: message %q, want it to say %q", what, r.Message(), want)
	}
}

// nsNames are the namespace/name of a list's items.
func nsNames(r apitest.Response) []string { return names(r.Items()) }

func namespacesOf(r apitest.Response) map[string]bool {
	out := map[string]bool{}
	for _, it := range r.Items() {
		out[fmt.Sprint(it["metadata"].(map[string]any)["namespace"])] = true
	}
	return out
}

func TestScopeReads(t *testing.T) {
	e := scopeSetup(t)
	const outsideA = `namespace "scope-b" is outside your namespace scope (scope-a)`

	// One object and one namespace's list: in scope they are served, outside refused naming namespace and scope.
	r := e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-a/p-scope-a", nil).Expect(t, 200, "")
	if md := r.JSON["metadata"].(map[string]any); md["name"] != "p-scope-a" || md["namespace"] != "scope-a" {
		t.Fatalf("get in scope: %s", r.Body)
	}
	refused(t, "get outside", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-b/p-scope-b", nil), outsideA)
	refused(t, "list outside", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-b", nil), outsideA)
	refused(t, "list outside by ?namespace", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/configmaps?namespace=scope-b", nil), outsideA)
	if got := nsNames(e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-a", nil).Expect(t, 200, "")); !slices.Equal(got, []string{"scope-a/p-scope-a"}) {
		t.Fatalf("list in scope: %v", got)
	}

	// Lists across all namespaces hold only admitted namespaces' items: one exact namespace, and a negation.
	for _, path := range []string{"/api/v1/resources/pods", "/api/v1/resources/pods?namespace=_all", "/api/v1/resources/pods/_all"} {
		got := nsNames(e.as(teamAToken, "test", http.MethodGet, path, nil).Expect(t, 200, ""))
		if !slices.Equal(got, []string{"scope-a/p-scope-a"}) {
			t.Fatalf("%s as scope-a: %v", path, got)
		}
	}
	all := e.as(notSystemToken, "test", http.MethodGet, "/api/v1/resources/pods", nil).Expect(t, 200, "")
	got := nsNames(all)
	if !slices.Contains(got, "scope-a/p-scope-a") || !slices.Contains(got, "scope-b/p-scope-b") ||
		namespacesOf(all)["kube-system"] {
		t.Fatalf("all pods as !kube-system: %v", got)
	}
	if admin := nsNames(e.do(http.MethodGet, "/api/v1/resources/pods", nil).Expect(t, 200, "")); !slices.Contains(admin, "kube-system/p-kube-system") {
		t.Fatalf("the unscoped caller sees kube-system's pod: %v", admin)
	}

	// Paging stays truthful: walking every page with continue gives every admitted item once and nothing else,
	// and no page claims a remainingItemCount that counts what the caller does not see.
	unscoped := e.do(http.MethodGet, "/api/v1/resources/pods?limit=1", nil).Expect(t, 200, "")
	if unscoped.JSON["metadata"].(map[string]any)["remainingItemCount"] == nil {
		t.Fatalf("the apiserver gave no remainingItemCount to compare with: %s", unscoped.Body)
	}
	var paged []string
	cont := ""
	for pages := 0; ; pages++ {
		if pages > 500 {
			t.Fatal("paging does not end")
		}
		r := e.as(notSystemToken, "test", http.MethodGet, "/api/v1/resources/pods?limit=2&continue="+cont, nil).Expect(t, 200, "")
		md := r.JSON["metadata"].(map[string]any)
		if md["remainingItemCount"] != nil {
			t.Fatalf("a filtered page claims remainingItemCount: %s", r.Body)
		}
		if len(r.Items()) > 2 {
			t.Fatalf("a page of limit 2 has %d items", len(r.Items()))
		}
		paged = append(paged, nsNames(r)...)
		if cont, _ = md["continue"].(string); cont == "" {
			break
		}
	}
	slices.Sort(paged)
	slices.Sort(got)
	if !slices.Equal(paged, got) {
		t.Fatalf("paged %v\nwant %v", paged, got)
	}

	// Cluster-scoped kinds are refused, except namespaces: the list holds only admitted ones, and an admitted
	// Namespace can be read.
	refused(t, "nodes", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/nodes", nil),
		"list nodes is cluster-wide (no namespace) and your scope is limited to namespaces scope-a")
	refused(t, "a clusterrole", e.as(notSystemToken, "test", http.MethodGet, "/api/v1/resources/clusterroles/admin", nil),
		"get clusterroles.rbac.authorization.k8s.io is cluster-wide")
	var nsList []string
	for _, it := range e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/namespaces", nil).Expect(t, 200, "").Items() {
		nsList = append(nsList, it["metadata"].(map[string]any)["name"].(string))
	}
	if !slices.Equal(nsList, []string{"scope-a"}) {
		t.Fatalf("namespaces as scope-a: %v", nsList)
	}
	nsList = nil
	for _, it := range e.as(notSystemToken, "test", http.MethodGet, "/api/v1/resources/ns", nil).Expect(t, 200, "").Items() {
		nsList = append(nsList, it["metadata"].(map[string]any)["name"].(string))
	}
	if !slices.Contains(nsList, "scope-a") || !slices.Contains(nsList, "default") || slices.Contains(nsList, "kube-system") {
		t.Fatalf("namespaces as !kube-system: %v", nsList)
	}
	r = e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/namespaces/scope-a", nil).Expect(t, 200, "")
	if r.JSON["metadata"].(map[string]any)["name"] != "scope-a" {
		t.Fatalf("get the admitted namespace: %s", r.Body)
	}
	refused(t, "another namespace", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/namespaces/scope-b", nil), outsideA)

	// CRDs and Prometheus are cluster-wide: refused to namespace-scoped callers, served to others.
	for _, path := range []string{"/api/v1/crds", "/api/v1/crds/families"} {
		refused(t, path, e.as(notSystemToken, "test", http.MethodGet, path, nil),
			"list customresourcedefinitions.apiextensions.k8s.io is cluster-wide")
		e.as(prodToken, "prod-1", http.MethodGet, path, nil).Expect(t, 200, "")
	}
	for _, path := range []string{"/api/v1/clusters/test/prometheus/query?query=up",
		"/api/v1/clusters/test/prometheus/query_range?query=up&start=1&end=2&step=1"} {
		refused(t, path, e.as(teamAToken, "", http.MethodGet, path, nil, "X-Cluster-Name", ""),
			"query prometheus is cluster-wide")
		// Unscoped, the query gets as far as the cluster's Prometheus, which discovery has not found yet.
		e.do(http.MethodGet, path, nil, "X-Cluster-Name", "").Expect(t, http.StatusConflict, resources.CodePrometheusPending)
	}
}

func TestScopeEvents(t *testing.T) {
	e := scopeSetup(t)
	ctx := context.Background()
	pod, err := e.cs.CoreV1().Pods("scope-a").Get(ctx, "p-scope-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj, err := e.cs.CoreV1().Namespaces().Get(ctx, "scope-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now())
	for _, ev := range []corev1.Event{
		{ObjectMeta: metav1.ObjectMeta{Name: "scope-pod-ev", Namespace: "scope-a"}, Reason: "PodEvent",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "scope-a", Name: "p-scope-a", UID: pod.UID}},
		// Events about a Namespace are kept in it or in default: only the admitted ones are shown.
		{ObjectMeta: metav1.ObjectMeta{Name: "scope-ns-ev-in", Namespace: "scope-a"}, Reason: "InScope",
			InvolvedObject: corev1.ObjectReference{Kind: "Namespace", APIVersion: "v1", Namespace: "scope-a", Name: "scope-a", UID: nsObj.UID}},
		{ObjectMeta: metav1.ObjectMeta{Name: "scope-ns-ev-out", Namespace: "default"}, Reason: "OutOfScope",
			InvolvedObject: corev1.ObjectReference{Kind: "Namespace", APIVersion: "v1", Name: "scope-a", UID: nsObj.UID}},
	} {
		ev.LastTimestamp, ev.Type, ev.Message = now, "Normal", "m"
		if _, err := e.cs.CoreV1().Events(ev.Namespace).Create(ctx, &ev, metav1.CreateOptions{}); err != nil &&
			!apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	reasons := func(r apitest.Response) []string {
		var out []string
		for _, it := range r.Items() {
			out = append(out, it["reason"].(string))
		}
		slices.Sort(out)
		return out
	}
	r := e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-a/p-scope-a/events", nil).Expect(t, 200, "")
	if got := reasons(r); !slices.Equal(got, []string{"PodEvent"}) {
		t.Fatalf("pod events in scope: %v", got)
	}
	refused(t, "events outside", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-b/p-scope-b/events", nil),
		`namespace "scope-b" is outside your namespace scope (scope-a)`)
	r = e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/namespaces/scope-a/events", nil).Expect(t, 200, "")
	if got := reasons(r); !slices.Equal(got, []string{"InScope"}) {
		t.Fatalf("namespace events as scope-a: %v", got)
	}
	if got := reasons(e.do(http.MethodGet, "/api/v1/resources/namespaces/scope-a/events", nil).Expect(t, 200, "")); !slices.Equal(got, []string{"InScope", "OutOfScope"}) {
		t.Fatalf("namespace events unscoped: %v", got)
	}
	refused(t, "node events", e.as(teamAToken, "test", http.MethodGet, "/api/v1/resources/nodes/n1/events", nil),
		"get nodes is cluster-wide")
}

func TestScopeApply(t *testing.T) {
	e := scopeSetup(t)
	ctx := context.Background()
	cm := func(ns, name string) string {
		return fmt.Sprintf("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %s}\ndata: {a: \"1\"}\n", name, ns)
	}
	exists := func(ns, name string) bool {
		_, err := e.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	yaml := []string{"Content-Type", "application/yaml"}
	statuses := func(r apitest.Response) []string {
		var out []string
		for _, it := range r.Items() {
			out = append(out, it["status"].(string))
		}
		return out
	}

	// The document outside the scope fails with 403; the one before it is applied, the one after not attempted.
	r := e.as(teamAToken, "test", http.MethodPost, "/api/v1/apply", cm("scope-a", "ap-1")+cm("scope-b", "ap-2")+cm("scope-a", "ap-3"), yaml...)
	if r.Status != http.StatusMultiStatus || !slices.Equal(statuses(r), []string{"applied", "failed", "skipped"}) {
		t.Fatalf("mixed apply: %d %s", r.Status, r.Body)
	}
	docErr := r.Items()[1]["error"].(map[string]any)
	if docErr["status"] != float64(403) || docErr["code"] != "forbidden" ||
		!strings.Contains(docErr["message"].(string), `namespace "scope-b" is outside your namespace scope (scope-a)`) {
		t.Fatalf("the refused document's error: %v", docErr)
	}
	if !exists("scope-a", "ap-1") || exists("scope-b", "ap-2") || exists("scope-a", "ap-3") {
		t.Fatal("only the document before the refused one may exist")
	}

	// Atomic: the dry run refuses, nothing is applied; the answer is the 403 naming the document.
	r = e.as(teamAToken, "test", http.MethodPost, "/api/v1/apply?atomic=true", cm("scope-a", "at-1")+cm("scope-b", "at-2"), yaml...).
		Expect(t, http.StatusForbidden, "forbidden")
	if !strings.Contains(r.Message(), "document 2 (ConfigMap scope-b/at-2)") || exists("scope-a", "at-1") {
		t.Fatalf("atomic refusal: %s (at-1 exists: %v)", r.Body, exists("scope-a", "at-1"))
	}

	// A namespace-less document goes to ?namespace=, judged as any other.
	plain := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ap-default}\n"
	refused(t, "default namespace", e.as(teamAToken, "test", http.MethodPost, "/api/v1/apply", plain, yaml...),
		`namespace "default" is outside your namespace scope`)
	e.as(teamAToken, "test", http.MethodPost, "/api/v1/apply?namespace=scope-a", plain, yaml...).Expect(t, 200, "")
	if !exists("scope-a", "ap-default") {
		t.Fatal("the document applied to ?namespace=scope-a is not there")
	}

	// A Namespace is judged by its name: the admitted one may be applied, no other created; other
	// cluster-scoped kinds are refused.
	ns := func(name string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {team: a}}\n", name)
	}
	r = e.as(teamAToken, "test", http.MethodPost, "/api/v1/apply", ns("scope-a"), yaml...).Expect(t, 200, "")
	if got, _ := e.cs.CoreV1().Namespaces().Get(ctx, "scope-a", metav1.GetOptions{}); got.Labels["team"] != "a" {
		t.Fatalf("the admitted Namespace was not applied: %s", r.Body)
	}
	refused(t, "a new namespace", e.as(teamAToken, "test", http.MethodPost, "/api/v1/apply", ns("scope-new"), yaml...),
		`namespace "scope-new" is outside your namespace scope`)
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, "scope-new", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused Namespace exists: %v", err)
	}
	role := "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: scope-role}\nrules: []\n"
	refused(t, "a clusterrole", e.as(notSystemToken, "test", http.MethodPost, "/api/v1/apply", role, yaml...),
		"apply clusterroles.rbac.authorization.k8s.io is cluster-wide (no namespace)")
	refused(t, "kube-system", e.as(notSystemToken, "test", http.MethodPost, "/api/v1/apply", cm("kube-system", "ap-sys"), yaml...),
		`namespace "kube-system" is outside your namespace scope (!kube-system)`)
	e.as(notSystemToken, "test", http.MethodPost, "/api/v1/apply", cm("scope-b", "ap-b"), yaml...).Expect(t, 200, "")
	if exists("kube-system", "ap-sys") || !exists("scope-b", "ap-b") {
		t.Fatal("!kube-system applied where it may not, or not where it may")
	}
}

func TestScopeWrites(t *testing.T) {
	e := scopeSetup(t)
	ctx := context.Background()
	const outsideA = `namespace "scope-b" is outside your namespace scope (scope-a)`
	replicas := func(ns string) int32 {
		d, err := e.cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas
	}
	restarted := func(ns string) bool {
		d, err := e.cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations[resources.RestartAnnotation] != ""
	}

	before := replicas("scope-b")
	refused(t, "scale outside", e.as(teamAToken, "test", http.MethodPost, "/api/v1/resources/deployments/scope-b/web/scale",
		map[string]any{"replicas": before + 2}), outsideA)
	refused(t, "restart outside", e.as(teamAToken, "test", http.MethodPost, "/api/v1/resources/deploy/scope-b/web/restart", nil), outsideA)
	if replicas("scope-b") != before || restarted("scope-b") {
		t.Fatal("a refused scale or restart changed the deployment")
	}
	r := e.as(teamAToken, "test", http.MethodPost, "/api/v1/resources/deployments/scope-a/web/scale",
		map[string]any{"replicas": 4}).Expect(t, 200, "")
	if replicas("scope-a") != 4 || r.JSON["spec"].(map[string]any)["replicas"] != float64(4) {
		t.Fatalf("scale in scope: %s", r.Body)
	}
	e.as(teamAToken, "test", http.MethodPost, "/api/v1/resources/deploy/scope-a/web/restart", nil).Expect(t, 200, "")
	if !restarted("scope-a") {
		t.Fatal("restart in scope stamped nothing")
	}

	refused(t, "delete outside", e.as(teamAToken, "test", http.MethodDelete, "/api/v1/resources/configmaps/scope-b/cm", nil), outsideA)
	refused(t, "delete a node", e.as(notSystemToken, "test", http.MethodDelete, "/api/v1/resources/nodes/n1", nil),
		"delete nodes is cluster-wide")
	if _, err := e.cs.CoreV1().ConfigMaps("scope-b").Get(ctx, "cm", metav1.GetOptions{}); err != nil {
		t.Fatalf("the refused delete deleted: %v", err)
	}
	r = e.as(teamAToken, "test", http.MethodDelete, "/api/v1/resources/configmaps/scope-a/cm", nil).Expect(t, 200, "")
	if _, err := e.cs.CoreV1().ConfigMaps("scope-a").Get(ctx, "cm", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete in scope: %s, configmap still there: %v", r.Body, err)
	}
}

// A cluster scope is the runtime table's: the cluster the request selects must be admitted, by name or ID.
func TestScopeClusters(t *testing.T) {
	e := scopeSetup(t)
	refused(t, "cluster outside", e.as(prodToken, "test", http.MethodGet, "/api/v1/resources/pods/scope-a", nil),
		`cluster "test" is outside the cluster scope of token "carol" (prod-*)`)
	refused(t, "cluster outside by ?cluster", e.as(prodToken, "", http.MethodGet, "/api/v1/resources/pods/scope-a?cluster=test", nil,
		"X-Cluster-Name", ""), `cluster "test" is outside the cluster scope`)
	r := e.as(prodToken, "prod-1", http.MethodGet, "/api/v1/resources/pods/scope-a", nil).Expect(t, 200, "")
	if got := nsNames(r); !slices.Equal(got, []string{"scope-a/p-scope-a"}) {
		t.Fatalf("prod-1 as prod-*: %v", got)
	}
	// No namespace scope: cluster-scoped kinds are served.
	if len(e.as(prodToken, "prod-1", http.MethodGet, "/api/v1/resources/namespaces", nil).Expect(t, 200, "").Items()) < 3 {
		t.Fatal("an unscoped namespace list is short")
	}
	refused(t, "apply outside", e.as(prodToken, "test", http.MethodPost, "/api/v1/apply", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
		"Content-Type", "application/yaml"), `cluster "test" is outside the cluster scope`)
}

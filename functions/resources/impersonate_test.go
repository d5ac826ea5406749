package resources_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
)

// TestImpersonatingCluster: a cluster registered with impersonate acts as each caller. Named API token alice
// (operator in kitefn) is bound on the cluster to pods and configmaps in imp-a only: the cluster's RBAC
// decides, for the resources routes and the /k8s proxy alike, and its 403 names token:alice. The bootstrap
// token acts as the kubeconfig (admin) and sees everything; on the same cluster registered without
// impersonate, alice's kitefn role alone bounds her.
func TestImpersonatingCluster(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, nil, apitest.Function("resources"), apitest.Function("clusters"))
	ctx := context.Background()
	sealed, err := api.Platform.Sealer.Seal(kube.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, imp := range map[string]bool{"imp": true, "plain": false} {
		if _, err := api.Platform.Store.Create(ctx, &store.Cluster{Name: name, Server: kube.URL, Kubeconfig: sealed,
			Impersonate: imp, Prometheus: store.Prometheus{Status: store.PrometheusPending}}); err != nil {
			t.Fatal(err)
		}
	}
	r := api.Do(http.MethodPost, "/api/v1/tokens", map[string]any{"name": "alice", "roles": []string{"operator"}}).
		Expect(t, http.StatusCreated, "")
	alice := "Bearer " + r.JSON["token"].(string)

	cs := kubernetes.NewForConfigOrDie(kube.RESTConfig())
	e := &env{api: api, cs: cs}
	e.namespace(t, "imp-a")
	e.namespace(t, "imp-b")
	e.pod(t, "imp-a", "mine", nil)
	e.pod(t, "imp-b", "theirs", nil)
	if _, err := cs.RbacV1().Roles("imp-a").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"},
			Verbs: []string{"get", "list", "create", "patch", "delete"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings("imp-a").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "alice"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "token:alice"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	as := func(who, cluster, method, path string, body any) apitest.Response {
		t.Helper()
		hdr := []string{"X-Cluster-Name", cluster, "Content-Type", "application/yaml"}
		if who != "" {
			hdr = append(hdr, "Authorization", who)
		}
		r := api.Do(method, path, body, hdr...)
		if r.Status >= 500 {
			t.Fatalf("%s %s on %s: %d %s", method, path, cluster, r.Status, r.Body)
		}
		return r
	}
	// RBAC reaches the apiserver's authorizer cache shortly after the binding is created.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return as(alice, "imp", http.MethodGet, "/api/v1/resources/pods/imp-a", nil).Status == 200, nil
	}); err != nil {
		t.Fatal("alice never got her role")
	}

	// Resources routes as alice on the impersonating cluster.
	if got := names(as(alice, "imp", http.MethodGet, "/api/v1/resources/pods/imp-a", nil).Items()); strings.Join(got, ",") != "imp-a/mine" {
		t.Fatalf("alice's pods in imp-a: %v", got)
	}
	r = as(alice, "imp", http.MethodGet, "/api/v1/resources/pods/imp-b", nil)
	if r.Status != 403 || !strings.Contains(r.Message(), `User "token:alice" cannot list resource "pods"`) {
		t.Fatalf("alice's pods in imp-b: %d %s", r.Status, r.Body)
	}
	r = as(alice, "imp", http.MethodGet, "/api/v1/resources/pods/imp-b/theirs", nil)
	if r.Status != 403 || !strings.Contains(r.Message(), `"token:alice"`) {
		t.Fatalf("alice's get in imp-b: %d %s", r.Status, r.Body)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: NS}\ndata: {a: b}\n"
	r = as(alice, "imp", http.MethodPost, "/api/v1/apply", strings.Replace(cm, "NS", "imp-a", 1))
	if r.Status != 200 || r.Items()[0]["status"] != "applied" {
		t.Fatalf("alice's apply in imp-a: %d %s", r.Status, r.Body)
	}
	r = as(alice, "imp", http.MethodPost, "/api/v1/apply", strings.Replace(cm, "NS", "imp-b", 1))
	if r.Status != 403 || !strings.Contains(r.Message(), `User "token:alice" cannot patch resource "configmaps"`) {
		t.Fatalf("alice's apply in imp-b: %d %s", r.Status, r.Body)
	}
	if items := r.Items(); len(items) != 1 || items[0]["error"].(map[string]any)["status"] != float64(403) {
		t.Fatalf("the document's error is not the cluster's 403: %s", r.Body)
	}
	if _, err := cs.CoreV1().ConfigMaps("imp-b").Get(ctx, "c", metav1.GetOptions{}); err == nil {
		t.Fatal("alice's refused apply created the ConfigMap in imp-b")
	}
	r = as(alice, "imp", http.MethodDelete, "/api/v1/resources/configmaps/imp-a/c", nil)
	if r.Status >= 300 {
		t.Fatalf("alice's delete in imp-a: %d %s", r.Status, r.Body)
	}

	// The bootstrap token acts as the kubeconfig: both namespaces.
	for _, ns := range []string{"imp-a", "imp-b"} {
		if got := as("", "imp", http.MethodGet, "/api/v1/resources/pods/"+ns, nil).Expect(t, 200, "").Items(); len(got) != 1 {
			t.Fatalf("bootstrap's pods in %s: %v", ns, got)
		}
	}
	// Without impersonate, alice acts as the kubeconfig too, bounded only by her kitefn role.
	for _, ns := range []string{"imp-a", "imp-b"} {
		if got := as(alice, "plain", http.MethodGet, "/api/v1/resources/pods/"+ns, nil).Expect(t, 200, "").Items(); len(got) != 1 {
			t.Fatalf("alice's pods in %s on the plain cluster: %v", ns, got)
		}
	}
	r = as(alice, "plain", http.MethodPost, "/api/v1/apply", strings.Replace(cm, "NS", "imp-b", 1)).Expect(t, 200, "")
	if r.Items()[0]["status"] != "applied" {
		t.Fatalf("alice's apply in imp-b on the plain cluster: %s", r.Body)
	}

	// The /k8s proxy: the cluster's own 403 for imp-b, its list for imp-a.
	proxy := func(who, cluster, ns string) apitest.Response {
		t.Helper()
		hdr := []string{"Impersonate-User", "admin"} // the caller's own are stripped, whatever they say
		if who != "" {
			hdr = append(hdr, "Authorization", who)
		}
		return api.Do(http.MethodGet, "/k8s/clusters/"+cluster+"/api/v1/namespaces/"+ns+"/pods", nil, hdr...)
	}
	r = proxy(alice, "imp", "imp-b")
	if r.Status != 403 || r.JSON["reason"] != "Forbidden" || !strings.Contains(r.JSON["message"].(string), `User "token:alice"`) {
		t.Fatalf("alice through the proxy in imp-b: %d %s", r.Status, r.Body)
	}
	r = proxy(alice, "imp", "imp-a").Expect(t, 200, "")
	if items := r.Items(); len(items) != 1 || items[0]["metadata"].(map[string]any)["name"] != "mine" {
		t.Fatalf("alice through the proxy in imp-a: %s", r.Body)
	}
	proxy("", "imp", "imp-b").Expect(t, 200, "")
	proxy(alice, "plain", "imp-b").Expect(t, 200, "")

	// Turning impersonate off through the API takes effect at once on this replica.
	api.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"impersonate": false}).Expect(t, 200, "")
	as(alice, "imp", http.MethodGet, "/api/v1/resources/pods/imp-b", nil).Expect(t, 200, "")
}

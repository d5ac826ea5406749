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
)

// TestLimitedCredentials: a kubeconfig whose RBAC allows pods, CloneSets and ConfigMaps in one namespace and
// no CRD reads. The apiserver's 403s come back as 403s with its message, CloneSets resolve from discovery
// although their CRD may not be read, and nothing is a 500.
func TestLimitedCredentials(t *testing.T) {
	e := setup(t)
	e.installCRDs(t)
	e.namespace(t, "rbac-a")
	e.namespace(t, "rbac-b")
	e.pod(t, "rbac-a", "mine", nil)
	e.pod(t, "rbac-b", "theirs", nil)
	clone := "apiVersion: apps.kruise.io/v1alpha1\nkind: CloneSet\nmetadata: {name: one, namespace: rbac-a}\nspec:\n" +
		"  selector: {matchLabels: {app: one}}\n  template:\n    metadata: {labels: {app: one}}\n    spec: {containers: [{name: c, image: nginx}]}\n"
	e.do(http.MethodPost, "/api/v1/apply", clone, "Content-Type", "application/yaml").Expect(t, 200, "")
	ctx := context.Background()
	_, err := e.cs.RbacV1().Roles("rbac-a").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "limited"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "patch"}},
			{APIGroups: []string{"apps.kruise.io"}, Resources: []string{"clonesets"}, Verbs: []string{"get", "list"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.cs.RbacV1().RoleBindings("rbac-a").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "limited"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "limited"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: limitedUser}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.api.AddCluster("limited", kube.Kubeconfig(limitedUser))
	as := func(method, path string, body any) (int, string, []map[string]any) {
		r := e.api.Do(method, path, body, "X-Cluster-Name", "limited", "Content-Type", "application/yaml")
		if r.Status >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		code := ""
		if r.Status >= 400 {
			code = r.JSON["error"].(map[string]any)["code"].(string)
		}
		var items []map[string]any
		if r.Status < 300 && r.JSON["items"] != nil {
			items = r.Items()
		}
		return r.Status, code + " " + r.Message(), items
	}
	// RBAC reaches the apiserver's authorizer cache shortly after the binding is created.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		status, _, _ := as(http.MethodGet, "/api/v1/resources/pods/rbac-a", nil)
		return status == 200, nil
	})
	if err != nil {
		t.Fatal("the limited user never got its role")
	}

	_, _, items := as(http.MethodGet, "/api/v1/resources/pods/rbac-a", nil)
	if got := names(items); strings.Join(got, ",") != "rbac-a/mine" {
		t.Fatalf("pods in its namespace: %v", got)
	}
	status, msg, _ := as(http.MethodGet, "/api/v1/resources/pods/rbac-b", nil)
	if status != 403 || !strings.HasPrefix(msg, "forbidden ") ||
		!strings.Contains(msg, `User "limited" cannot list resource "pods" in API group "" in the namespace "rbac-b"`) {
		t.Fatalf("other namespace: %d %s", status, msg)
	}
	for _, ref := range []string{"clonesets", "CloneSet", "clonesets.apps.kruise.io", "apps.kruise.io/v1alpha1/clonesets"} {
		status, msg, items := as(http.MethodGet, "/api/v1/resources/"+ref+"/rbac-a", nil)
		if status != 200 || len(items) != 1 {
			t.Fatalf("%s in its namespace, CRD reads forbidden: %d %s %v", ref, status, msg, items)
		}
	}
	if status, msg, _ := as(http.MethodGet, "/api/v1/resources/clonesets/rbac-a/one", nil); status != 200 {
		t.Fatalf("get CloneSet: %d %s", status, msg)
	}
	if status, msg, _ := as(http.MethodGet, "/api/v1/resources/clonesets/rbac-b", nil); status != 403 || !strings.Contains(msg, "clonesets") {
		t.Fatalf("CloneSets elsewhere: %d %s", status, msg)
	}
	if status, msg, _ := as(http.MethodGet, "/api/v1/crds", nil); status != 403 || !strings.Contains(msg, "customresourcedefinitions") {
		t.Fatalf("CRD list: %d %s", status, msg)
	}
	if status, _, _ := as(http.MethodGet, "/api/v1/resources/ingressroutes.traefik.io/rbac-a", nil); status != 403 {
		t.Fatalf("a kind it may not list: %d", status)
	}

	// Apply: allowed in its namespace, the apiserver's 403 elsewhere.
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: NS}\ndata: {a: b}\n"
	if status, msg, items := as(http.MethodPost, "/api/v1/apply", strings.Replace(cm, "NS", "rbac-a", 1)); status != 200 || items[0]["status"] != "applied" {
		t.Fatalf("apply in its namespace: %d %s", status, msg)
	}
	status, msg, _ = as(http.MethodPost, "/api/v1/apply", strings.Replace(cm, "NS", "rbac-b", 1))
	if status != 403 || !strings.Contains(msg, `cannot patch resource "configmaps"`) {
		t.Fatalf("apply elsewhere: %d %s", status, msg)
	}
}

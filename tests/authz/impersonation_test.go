package authz

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/tests/apitest"
)

// TestImpersonationAcrossFunctions: one cluster registered through the API with "impersonate": true, the
// functions wired as the binary wires them. Named token alice is bound on the cluster to pods and configmaps in
// team-imp-a only; token:ops is bound to cluster-admin. Resources, search and relations show alice only
// team-imp-a, report the kinds she may not list instead of leaking them, and show ops everything.
func TestImpersonationAcrossFunctions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.api.Do(http.MethodPost, "/api/v1/clusters", map[string]any{"name": "imp", "impersonate": true,
		"kubeconfig": string(kube.AdminKubeconfig())}).Expect(t, http.StatusCreated, "")
	for _, tok := range []map[string]any{
		{"name": "alice", "roles": []string{"viewer"}},
		{"name": "ops", "roles": []string{"operator"}},
	} {
		r := e.api.Do(http.MethodPost, "/api/v1/tokens", tok).Expect(t, http.StatusCreated, "")
		e.tokens[tok["name"].(string)] = r.JSON["token"].(string)
	}

	cs := kubernetes.NewForConfigOrDie(kube.RESTConfig())
	for _, ns := range []string{"team-imp-a", "team-imp-b"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
			metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: "impprobe-config"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: "impprobe-secret"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "impprobe-pod"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none"}},
				Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "impprobe-config"}}}}}}},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.RbacV1().Roles("team-imp-a").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"},
			Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := func(name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name}}
	}
	if _, err := cs.RbacV1().RoleBindings("team-imp-a").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "alice"},
		Subjects: user("token:alice")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "imp-ops"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: user("token:ops")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func(token, path string) apitest.Response {
		t.Helper()
		r := e.as(token, http.MethodGet, call{path: path, hdr: []string{"X-Cluster-Name", "imp"}})
		if r.Status >= 500 {
			t.Fatalf("%s GET %s: %d %s", token, path, r.Status, r.Body)
		}
		return r
	}
	// The apiserver's authorizer sees new bindings shortly after they are created.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return get("alice", "/api/v1/resources/configmaps/team-imp-a").Status == 200 &&
			get("ops", "/api/v1/resources/configmaps/team-imp-b").Status == 200, nil
	}); err != nil {
		t.Fatalf("bindings not effective: %v", err)
	}

	// Resources: the cluster's RBAC decides and names the person.
	if r := get("alice", "/api/v1/resources/configmaps/team-imp-b"); r.Status != 403 || !strings.Contains(r.Message(), "token:alice") {
		t.Errorf("alice lists team-imp-b: %d %s, want the cluster's 403 naming token:alice", r.Status, r.Body)
	}
	if r := get("alice", "/api/v1/resources/secrets/team-imp-a"); r.Status != 403 {
		t.Errorf("alice lists secrets: %d %s, want 403", r.Status, r.Body)
	}

	// Search: only team-imp-a for alice, secrets reported, never shown; everything for ops.
	r := get("alice", "/api/v1/search?q=impprobe&cluster=imp")
	if r.Status != 200 {
		t.Fatalf("alice searches: %d %s", r.Status, r.Body)
	}
	seen := map[string]bool{}
	for _, it := range r.Items() {
		seen[it["resource"].(string)+" "+it["namespace"].(string)+"/"+it["name"].(string)] = true
		if it["namespace"] != "team-imp-a" || it["resource"] == "secrets" {
			t.Errorf("alice's search shows %v", it)
		}
	}
	if !seen["configmaps team-imp-a/impprobe-config"] || !seen["pods team-imp-a/impprobe-pod"] {
		t.Errorf("alice's search misses her own objects: %s", r.Body)
	}
	if !strings.Contains(string(r.Body), `"resource":"secrets"`) || !strings.Contains(string(r.Body), `"status":403`) ||
		r.JSON["partial"] != true {
		t.Errorf("alice's search does not report secrets as forbidden: %s", r.Body)
	}
	r = get("ops", "/api/v1/search?q=impprobe&cluster=imp")
	if r.Status != 200 || r.JSON["total"].(float64) != 6 {
		t.Errorf("ops searches: %d %s, want all six objects", r.Status, r.Body)
	}

	// Relations: alice's pod and its ConfigMap; the pod of the other namespace is the cluster's 403.
	r = get("alice", "/api/v1/relations/pods/team-imp-a/impprobe-pod?cluster=imp")
	if r.Status != 200 || !strings.Contains(string(r.Body), "impprobe-config") {
		t.Errorf("alice's relations: %d %s", r.Status, r.Body)
	}
	if r := get("alice", "/api/v1/relations/pods/team-imp-b/impprobe-pod?cluster=imp"); r.Status != 403 {
		t.Errorf("alice's relations in team-imp-b: %d %s, want 403", r.Status, r.Body)
	}
	if r := get("ops", "/api/v1/relations/pods/team-imp-b/impprobe-pod?cluster=imp"); r.Status != 200 ||
		!strings.Contains(string(r.Body), "impprobe-config") {
		t.Errorf("ops' relations in team-imp-b: %d %s", r.Status, r.Body)
	}

	// The proxy: the same decisions for kubectl.
	if r := get("alice", "/k8s/clusters/imp/api/v1/namespaces/team-imp-b/configmaps"); r.Status != 403 ||
		!strings.Contains(string(r.Body), "token:alice") {
		t.Errorf("alice through the proxy in team-imp-b: %d %s", r.Status, r.Body)
	}
}

package terminal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kitefn/kitefn/functions/terminal/wire"
)

// TestPodTerminalImpersonated: on a cluster that impersonates, the terminal's exec acts as the caller
// (token:op), so the cluster's RBAC decides: may get the pod but not exec into it → the cluster's refusal
// naming token:op; once bound to pods/exec → a working shell.
func TestPodTerminalImpersonated(t *testing.T) {
	e := setup(t, nil)
	rec := e.api.AddCluster("imp", kube.AdminKubeconfig())
	rec.Impersonate = true
	if _, err := e.api.Platform.Store.Update(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "op-term"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
	if _, err := e.cs.RbacV1().Roles("term-a").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.RbacV1().Roles("term-a").Delete(context.Background(), "op-term", metav1.DeleteOptions{})
		_ = e.cs.RbacV1().RoleBindings("term-a").Delete(context.Background(), "op-term", metav1.DeleteOptions{})
	})
	if _, err := e.cs.RbacV1().RoleBindings("term-a").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "op-term"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "op-term"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "token:op"}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	path := shellPath + "?cluster=imp&command=sh"
	// RBAC changes reach the apiserver's authorizer shortly after they are made: wait until token:op may (or may
	// not) do what the next step needs, as the cluster answers it.
	asOp := kube.RESTConfig()
	asOp.Impersonate = rest.ImpersonationConfig{UserName: "token:op"}
	opCS := kubernetes.NewForConfigOrDie(asOp)
	allowed := func(verb, sub string) bool {
		r, err := opCS.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: "term-a", Verb: verb, Resource: "pods", Subresource: sub}}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed
	}
	waitAllowed := func(verb, sub string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return allowed(verb, sub), nil
		}); err != nil {
			t.Fatalf("token:op still may not %s pods/%s: %v", verb, sub, err)
		}
	}
	waitAllowed("get", "")
	c, _ := e.mustDial(t, path, "operator-token")
	if f := c.until(wire.Error); !strings.Contains(f.Data, "pods/exec") || !strings.Contains(f.Data, "token:op") {
		t.Fatalf("exec as token:op without pods/exec: %+v, want the cluster's refusal naming token:op", f)
	}

	role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"},
		Verbs: []string{"create", "get"}})
	if _, err := e.cs.RbacV1().Roles("term-a").Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAllowed("create", "exec")
	c, _ = e.mustDial(t, path, "operator-token")
	c.stdin("echo imp-$((3*3))\n")
	c.waitOutput("imp-9")
}

package resources_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

// TestProxyExecImpersonated: an exec upgraded through /k8s/clusters on a cluster that impersonates carries the
// caller's identity too, so the cluster's RBAC decides whether token:op may exec, and its refusal names them.
func TestProxyExecImpersonated(t *testing.T) {
	e := proxySetup(t)
	rec := e.api.AddCluster("imp-exec", kube.AdminKubeconfig())
	rec.Impersonate = true
	if _, err := e.api.Platform.Store.Update(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	e.fakePod(t, "proxy-imp", "shell")
	cfg := e.config("operator-token", "imp-exec")
	execURL := kubernetes.NewForConfigOrDie(cfg).CoreV1().RESTClient().Post().Namespace("proxy-imp").
		Resource("pods").Name("shell").SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Command: []string{"cat", "marker"}, Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
	exec := func() (string, error) {
		ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", execURL.String())
		if err != nil {
			return "", err
		}
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
		return stdout.String(), err
	}
	if _, err := exec(); err == nil || !strings.Contains(err.Error(), "token:op") {
		t.Fatalf("exec as token:op without RBAC on the cluster: %v, want the cluster's refusal naming token:op", err)
	}

	ctx := t.Context()
	if _, err := e.cs.RbacV1().Roles("proxy-imp").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "op-exec"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/exec"},
			Verbs: []string{"get", "create"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().RoleBindings("proxy-imp").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "op-exec"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "op-exec"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "token:op"}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var out string
	var last error
	// The apiserver's authorizer sees a new binding shortly after it is created.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		out, last = exec()
		return last == nil, nil
	}); err != nil || out != "exec marker\n" {
		t.Fatalf("exec as token:op once bound: %q %v (last %v)", out, err, last)
	}
}

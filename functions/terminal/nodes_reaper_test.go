package terminal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/functions/terminal/nodeshell"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

// A pod left by a killed instance (the labels, a heartbeat an hour old) is deleted by the reaper of the
// running terminal function on a registered cluster; a renewed one is kept; a cluster that cannot be reached
// is logged and does not stop the loop.
func TestReaperRemovesShellsOfAKilledInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	c := harness.MustStart(t)
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: nodeshell.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, heartbeat time.Time) {
		t.Helper()
		pod := nodeshell.PodSpec("gone-node", nodeshell.Options{Session: name, Caller: "alice",
			Instance: "killed-instance"}, heartbeat)
		pod.GenerateName, pod.Name = "", name
		if _, err := cs.CoreV1().Pods(nodeshell.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("leaked-shell", time.Now().Add(-time.Hour))
	mk("renewed-shell", time.Now())

	s := apitest.Start(t, map[string]string{
		"KITEFN_NODE_SHELL_REAP_INTERVAL": "100ms",
		"KITEFN_NODE_SHELL_HEARTBEAT":     "1m", // "renewed-shell" stays fresh for 3m
	}, apitest.Function("terminal"))
	dead := strings.ReplaceAll(string(c.AdminKubeconfig()), c.URL, "https://127.0.0.1:1")
	s.AddCluster("dead", []byte(dead))
	s.AddCluster("east", c.AdminKubeconfig())

	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, "leaked-shell", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the leaked shell was not reaped: %v\n%s", err, s.Logs())
	}
	if _, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, "renewed-shell", metav1.GetOptions{}); err != nil {
		t.Fatalf("renewed shell: %v", err)
	}
	// The log names the cluster and pod reaped, and the cluster that failed; the loop went on past it.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var reaped, failed bool
		for _, line := range strings.Split(s.Logs(), "\n") {
			reaped = reaped || strings.Contains(line, "deleted a pod no session renewed") &&
				strings.Contains(line, `"cluster":"east"`) && strings.Contains(line, `"pod":"leaked-shell"`)
			failed = failed || strings.Contains(line, `"msg":"node shell reaper"`) && strings.Contains(line, `"cluster":"dead"`)
		}
		return reaped && failed, nil
	})
	if err != nil {
		t.Fatalf("reaper log lines missing: %v\n%s", err, s.Logs())
	}
}

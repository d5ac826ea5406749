package terminal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/functions/terminal/nodeshell"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/harness"
)

func TestNodeShellConfig(t *testing.T) {
	t.Setenv("KITEFN_INSTANCE_ID", "")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	c := cfg.NodeShellConfig
	if c.NodeShellImage != nodeshell.DefaultImage || c.NodeShellStartTimeout != 2*time.Minute ||
		c.NodeShellHeartbeat != 30*time.Second || c.NodeShellReapInterval != time.Minute ||
		c.NodeShellIdleTimeout != 30*time.Minute || c.NodeShellMaxAge != 8*time.Hour || c.InstanceID != host {
		t.Fatalf("defaults %+v", c)
	}
	o := c.nodeShellOptions("s1", "alice")
	if o.Image != c.NodeShellImage || o.Session != "s1" || o.Caller != "alice" || o.Instance != host ||
		o.MaxAge != c.NodeShellMaxAge || o.StartTimeout != c.NodeShellStartTimeout || o.Heartbeat != c.NodeShellHeartbeat {
		t.Fatalf("options %+v", o)
	}
	for env, want := range map[string]string{
		"KITEFN_NODE_SHELL_HEARTBEAT=500ms":    "KITEFN_NODE_SHELL_HEARTBEAT (500ms) must be at least 1s",
		"KITEFN_NODE_SHELL_MAX_AGE=30s":        "KITEFN_NODE_SHELL_MAX_AGE (30s) must be at least 1m0s",
		"KITEFN_NODE_SHELL_REAP_INTERVAL=0s":   "KITEFN_NODE_SHELL_REAP_INTERVAL (0s) must be at least",
		"KITEFN_NODE_SHELL_IDLE_TIMEOUT=-1m":   "KITEFN_NODE_SHELL_IDLE_TIMEOUT (-1m0s) must be at least 1s",
		"KITEFN_NODE_SHELL_START_TIMEOUT=10ms": "KITEFN_NODE_SHELL_START_TIMEOUT (10ms) must be at least 1s",
		"KITEFN_NODE_SHELL_IMAGE=":             "KITEFN_NODE_SHELL_IMAGE is empty",
	} {
		t.Run(env, func(t *testing.T) {
			k, v, _ := strings.Cut(env, "=")
			t.Setenv(k, v)
			if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%v, want %q", err, want)
			}
		})
	}
	t.Setenv("KITEFN_INSTANCE_ID", "replica-7")
	if cfg, err := LoadConfig(); err != nil || cfg.InstanceID != "replica-7" {
		t.Fatalf("instance %q %v", cfg.InstanceID, err)
	}
}

func TestNodeShellError(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("RBAC says no"))
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{errShuttingDown, http.StatusServiceUnavailable, "shutting_down"},
		{fmt.Errorf("%w %q", nodeshell.ErrNodeNotFound, "n1"), http.StatusNotFound, "not_found"},
		{fmt.Errorf("%w: windows", nodeshell.ErrNodeUnsupported), http.StatusUnprocessableEntity, "node_unsupported"},
		{fmt.Errorf("%w: ErrImagePull", nodeshell.ErrStart), http.StatusBadGateway, "node_shell_failed"},
		{fmt.Errorf("creating the node shell pod: %w", forbidden), http.StatusForbidden, "forbidden"},
	} {
		e := nodeShellError("east", tc.err)
		if e.Status != tc.status || e.Code != tc.code || e.Message == "" {
			t.Errorf("%v: %d %s %q, want %d %s", tc.err, e.Status, e.Code, e.Message, tc.status, tc.code)
		}
	}
}

// noClusters is a registry without clusters: the reaper has nothing to visit.
type noClusters struct{}

func (noClusters) Get(context.Context, uint64) (*store.Cluster, error) { return nil, store.ErrNotFound }
func (noClusters) GetByName(context.Context, string) (*store.Cluster, error) {
	return nil, store.ErrNotFound
}
func (noClusters) List(context.Context) ([]*store.Cluster, error) { return nil, nil }

// kwokCluster is a cluster of this test's own with kwok running and a fake node "node-a".
func kwokCluster(t *testing.T) kubernetes.Interface {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	c := harness.MustStart(t)
	if _, err := os.Stat(filepath.Join(c.ToolsDir, "kwok")); err != nil {
		t.Fatalf("kwok not built in %s (make tools builds it): %v", c.ToolsDir, err)
	}
	if _, err := c.StartKwok(t.Context(), harness.WithKwokExec(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), harness.FakeNode("node-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cs
}

// A live shell is renewed, notices its pod deleted behind its back (Gone), is deleted on SIGTERM, and no shell
// opens after SIGTERM.
func TestNodeShellsLifecycle(t *testing.T) {
	cs := kwokCluster(t)
	t.Setenv("KITEFN_INSTANCE_ID", "instance-under-test")
	t.Setenv("KITEFN_NODE_SHELL_HEARTBEAT", "1s")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	f := New(Deps{Registry: noClusters{}})
	f.cfg, f.log = cfg, zaptest.NewLogger(t).Sugar()
	if err := f.startNodeShells(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var said []string
	a, err := f.openNodeShell(ctx, cs, "node-a", "sess-a", "alice", func(m string) { said = append(said, m) })
	if err != nil {
		t.Fatal(err)
	}
	if len(said) == 0 || said[len(said)-1] != "running on node node-a" {
		t.Fatalf("progress %q", said)
	}
	b, err := f.openNodeShell(ctx, cs, "node-a", "sess-b", "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, a.Pod, metav1.GetOptions{})
	if err != nil || pod.Labels[nodeshell.LabelInstance] != "instance-under-test" || pod.Labels[nodeshell.LabelSession] != "sess-a" {
		t.Fatalf("pod labels %v %v", pod.Labels, err)
	}

	// Someone deletes b's pod: its heartbeat finds out.
	zero := int64(0)
	if err := cs.CoreV1().Pods(nodeshell.Namespace).Delete(ctx, b.Pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Gone():
	case <-time.After(30 * time.Second):
		t.Fatal("the heartbeat did not notice the pod deleted")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("closing a shell whose pod is gone: %v", err)
	}

	// SIGTERM: a's pod is deleted, new shells are refused, the reaper ends.
	f.shutdownNodeShells()
	// Grace period 0: the pod is gone from the API by the time ShuttingDown returns.
	if _, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, a.Pod, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod %s after SIGTERM: %v, want gone", a.Pod, err)
	}
	select {
	case <-a.Gone():
		t.Fatal("a closed shell reported gone")
	default:
	}
	if _, err := f.openNodeShell(ctx, cs, "node-a", "sess-c", "carol", nil); !errors.Is(err, errShuttingDown) ||
		nodeShellError("east", err).Status != http.StatusServiceUnavailable {
		t.Fatalf("open after SIGTERM: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.stopNodeShells(sctx); err != nil {
		t.Fatal(err)
	}
	list, err := cs.CoreV1().Pods(nodeshell.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("%d pods left, %v", len(list.Items), err)
	}
}

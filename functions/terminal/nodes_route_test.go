package terminal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/functions/terminal/nodeshell"
	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

const nodePath = "/api/v1/terminal/nodes/term-node"

// shellPods are the node-shell pods on term-node.
func (e *env) shellPods(t *testing.T) []corev1.Pod {
	t.Helper()
	list, err := e.cs.CoreV1().Pods(nodeshell.Namespace).List(t.Context(), metav1.ListOptions{
		LabelSelector: nodeshell.LabelApp + "=" + nodeshell.AppName, FieldSelector: "spec.nodeName=term-node"})
	if err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// waitNoShellPods waits until no node-shell pod is left on term-node.
func (e *env) waitNoShellPods(t *testing.T, why string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return len(e.shellPods(t)) == 0, nil })
	if err != nil {
		t.Fatalf("node-shell pod still there %s: %v", why, err)
	}
}

// openShell dials a node shell as the bootstrap admin and waits until its pod runs the shell.
func (e *env) openShell(t *testing.T) (*client, wire.Frame) {
	t.Helper()
	c, hello := e.mustDial(t, nodePath, apitest.Token)
	for {
		f := c.next()
		if f.Type == wire.Error || f.Type == wire.Exit {
			t.Fatalf("node shell ended while starting: %+v", f)
		}
		if f.Type == wire.Info && strings.Contains(f.Data, "node shell on term-node: pod "+nodeshell.Namespace+"/") {
			return c, hello
		}
	}
}

// TestNodeShell: an admin's node shell runs in a pod on the node (progress shown as info frames), takes
// keystrokes, and its pod is deleted when the socket drops (grace 0); start and end are audited.
func TestNodeShell(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_TERMINAL_RECONNECT_GRACE": "0s"})
	c, hello := e.openShell(t)
	pods := e.shellPods(t)
	if len(pods) != 1 || !pods[0].Spec.HostPID || pods[0].Labels[nodeshell.LabelCaller] != "bootstrap" {
		t.Fatalf("node-shell pods %+v, want one privileged pod of the bootstrap caller", pods)
	}
	c.stdin("echo node-$((40+2))\n")
	c.waitOutput("node-42")
	_ = c.conn.Close() // a dropped connection, no close frame
	e.waitNoShellPods(t, "after the socket dropped")
	entries := e.audit(t, hello.Session, 2)
	if entries[0].Resource != "nodes" || entries[0].Name != "term-node" {
		t.Fatalf("audit entry %+v, want exec on nodes/term-node", entries[0])
	}
}

// TestNodeShellEnds: idle for the idle timeout, and SIGTERM, each end the session with a frame saying why and
// delete the pod.
func TestNodeShellEnds(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		e := setup(t, map[string]string{"KITEFN_NODE_SHELL_IDLE_TIMEOUT": "1s"})
		c, _ := e.openShell(t)
		if f := c.until(wire.Error); !strings.Contains(f.Data, "idle timeout") {
			t.Fatalf("error frame %+v, want the idle timeout", f)
		}
		if ce := c.closed(); ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("close %d, want 1000", ce.Code)
		}
		e.waitNoShellPods(t, "after the idle timeout")
	})
	t.Run("SIGTERM", func(t *testing.T) {
		e := setup(t, nil)
		c, _ := e.openShell(t)
		e.fn.ShuttingDown()
		if f := c.until(wire.Info); !strings.Contains(f.Data, "shutting down") {
			t.Fatalf("info frame %+v", f)
		}
		if ce := c.closed(); ce.Code != websocket.CloseGoingAway {
			t.Fatalf("close %d, want 1001", ce.Code)
		}
		e.waitNoShellPods(t, "after SIGTERM")
	})
}

// TestNodeShellRefusals: an operator is refused before the upgrade; a Windows node gets an error frame and no
// pod is made.
func TestNodeShellRefusals(t *testing.T) {
	e := setup(t, nil)
	if _, res, err := e.dial(t, nodePath, "operator-token"); err == nil || res.StatusCode != 403 ||
		!strings.Contains(body(res), "needs the admin role") {
		t.Fatalf("operator: %v %s, want 403 before the upgrade", err, body(res))
	}
	win := harness.FakeNode("term-windows")
	win.Labels[corev1.LabelOSStable] = "windows"
	if _, err := e.cs.CoreV1().Nodes().Create(t.Context(), win, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.mustDial(t, "/api/v1/terminal/nodes/term-windows", apitest.Token)
	if f := c.until(wire.Error); !strings.Contains(strings.ToLower(f.Data), "windows") {
		t.Fatalf("error frame %+v, want it to say the node runs Windows", f)
	}
	list, err := e.cs.CoreV1().Pods(nodeshell.Namespace).List(t.Context(), metav1.ListOptions{
		FieldSelector: "spec.nodeName=term-windows"})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("pods for the Windows node: %v %v", list, err)
	}
}

package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

const (
	testNS    = "default"
	testPod   = "web-0"
	container = "shell"
	step      = 30 * time.Second // the bound of each wait in the page
)

var (
	kwokOnce sync.Once
	kwokErr  error
)

// fakePod runs pod web-0 on a kwok node; kwok runs its exec commands on this host, in a temp folder.
func fakePod(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(kube.ToolsDir, "kwok")); err != nil {
		t.Fatalf("kwok not built in %s (make tools): %v", kube.ToolsDir, err)
	}
	cs, err := kubernetes.NewForConfig(kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	kwokOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kitefn-browser-kwok-")
		if err != nil {
			kwokErr = err
			return
		}
		if _, kwokErr = kube.StartKwok(context.Background(), harness.WithKwokExec(dir)); kwokErr != nil {
			return
		}
		if _, kwokErr = cs.CoreV1().Nodes().Create(context.Background(), harness.FakeNode("browser-node"),
			metav1.CreateOptions{}); kwokErr != nil {
			return
		}
		_, kwokErr = cs.CoreV1().Pods(testNS).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: testPod},
			Spec: corev1.PodSpec{NodeName: "browser-node",
				Containers: []corev1.Container{{Name: container, Image: "none"}}}}, metav1.CreateOptions{})
	})
	if kwokErr != nil {
		t.Fatal(kwokErr)
	}
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			p, err := cs.CoreV1().Pods(testNS).Get(ctx, testPod, metav1.GetOptions{})
			return err == nil && p.Status.Phase == corev1.PodRunning, nil
		})
	if err != nil {
		t.Fatalf("pod %s/%s not Running: %v", testNS, testPod, err)
	}
}

// env is a kitefn server (clusters, resources, terminal) with cluster dev, and Chromium on a blank page.
type env struct {
	api *apitest.Server
	b   *Browser
	ctx context.Context
}

func setup(t *testing.T) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the test cluster (not with -short)")
	}
	exe, err := Executable()
	if err != nil {
		t.Fatal(err) // `make test` installs it (test-prereqs): a missing browser is a failure, not a skip
	}
	fakePod(t)
	api := apitest.Start(t, nil, apitest.Function("clusters"), apitest.Function("resources"),
		apitest.Function("terminal"))
	api.AddCluster("dev", kube.AdminKubeconfig())
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	b, err := Launch(ctx, exe, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{api: api, b: b, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			e.artefacts(t)
		}
		b.Close() // before the server stops: its WebSockets go first
	})
	return e
}

// artefacts logs the page's console and log, its text, and saves a screenshot, for a failed test.
func (e *env) artefacts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Logf("browser log:\n%s", strings.Join(e.b.Logs(), "\n"))
	var text string
	if err := e.b.Eval(ctx, "document.body ? document.body.innerText : ''", &text); err == nil {
		t.Logf("page text:\n%s", text)
	}
	if png, err := e.b.Screenshot(ctx); err == nil {
		if f, err := os.CreateTemp("", "kitefn-browser-*.png"); err == nil {
			_, _ = f.Write(png)
			f.Close()
			t.Logf("screenshot: %s", f.Name())
		}
	}
}

// js quotes s as a JavaScript string.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// open loads the page and uses token as a person would: types it into the token field and presses Use.
func (e *env) open(t *testing.T, token string) {
	t.Helper()
	if err := e.b.Navigate(e.ctx, e.api.URL+"/terminal/"); err != nil {
		t.Fatal(err)
	}
	e.wait(t, `document.readyState === "complete" && document.getElementById("token")`)
	e.eval(t, `(() => { const f = document.getElementById("token"); f.value = ""; f.focus(); })()`)
	if err := e.b.InsertText(e.ctx, token); err != nil {
		t.Fatal(err)
	}
	e.eval(t, `document.getElementById("token-use").click()`)
}

func (e *env) eval(t *testing.T, expr string) {
	t.Helper()
	if err := e.b.Eval(e.ctx, expr, nil); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
}

// wait waits for cond in the page and returns its value as text.
func (e *env) wait(t *testing.T, cond string) string {
	t.Helper()
	var v any
	if err := e.b.WaitFor(e.ctx, cond, step, &v); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(v)
}

// options is the JavaScript list of a select's option values.
func options(id string) string {
	return `[...document.getElementById(` + js(id) + `).options].map(o => o.value)`
}

// TestPageListsClustersAndPods: the page loads without a token and within its CSP (no refusal in the browser's
// log); a wrong token shows the API's 401; the right one shows who the caller is, the cluster, and the kwok pod
// with its container.
func TestPageListsClustersAndPods(t *testing.T) {
	e := setup(t)

	e.open(t, "not-a-token")
	status := e.wait(t, `document.getElementById("status").classList.contains("error") && document.getElementById("status").textContent`)
	if !strings.Contains(status, "401") || !strings.Contains(status, "not valid") {
		t.Errorf("wrong token: status %q, want the 401 saying the token is not valid", status)
	}

	e.open(t, apitest.Token)
	if who := e.wait(t, `document.getElementById("who").textContent`); !strings.Contains(who, "bootstrap") ||
		!strings.Contains(who, "admin") {
		t.Errorf("who: %q, want the bootstrap caller, admin", who)
	}
	if got := e.wait(t, options("cluster")+`.includes("dev") && `+options("cluster")+`.join(",")`); got != "dev" {
		t.Errorf("clusters: %q, want dev", got)
	}
	e.wait(t, options("pod")+`.includes(`+js(testPod)+`)`)
	if got := e.wait(t, options("container")+`.join(",")`); got != container {
		t.Errorf("containers of %s: %q, want %s", testPod, got, container)
	}
	var stored string
	if err := e.b.Eval(e.ctx, `sessionStorage.getItem("kitefn.token")`, &stored); err != nil || stored != apitest.Token {
		t.Errorf("token in sessionStorage: %q (%v)", stored, err)
	}
	// The node picker lists the kwok node.
	e.eval(t, `(() => { const k = document.getElementById("kind"); k.value = "node"; k.dispatchEvent(new Event("change")); })()`)
	e.wait(t, options("node")+`.includes("browser-node")`)

	for _, line := range e.b.Logs() {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "exception") {
			t.Errorf("browser: %s", line)
		}
	}
}

// terminalLine is true once a row of the terminal on the page reads exactly text.
func terminalLine(text string) string {
	return `[...document.querySelectorAll("#terminal .xterm-rows > div")].some(d => d.textContent.trim() === ` +
		js(text) + `)`
}

// TestPodTerminalEcho is the page end to end: pick the kwok pod, open its terminal (a ticket, then the
// WebSocket frames), type `echo kitefn` and Enter into xterm.js as keystrokes, and see `kitefn` on a line of its
// own; `stty size` shows the size the page sent; `exit` ends the shell and the page says so.
func TestPodTerminalEcho(t *testing.T) {
	e := setup(t)
	e.open(t, apitest.Token)
	e.wait(t, options("pod")+`.includes(`+js(testPod)+`)`)
	e.eval(t, `(() => { const p = document.getElementById("pod"); p.value = `+js(testPod)+`;
		p.dispatchEvent(new Event("change")); })()`)
	e.wait(t, `document.getElementById("container").value === `+js(container))
	e.eval(t, `document.getElementById("open-terminal").click()`)
	// The page focuses the terminal once the server says connected.
	e.wait(t, `document.activeElement && document.activeElement.classList.contains("xterm-helper-textarea")`)
	if err := e.b.InsertText(e.ctx, "echo kitefn"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.PressEnter(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.wait(t, terminalLine("kitefn"))

	// The page sent its size (resize frame): the shell's terminal has xterm's rows and about its width, not the
	// 80x24 or 0x0 of a terminal nobody sized.
	if err := e.b.InsertText(e.ctx, "stty size"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.PressEnter(e.ctx); err != nil {
		t.Fatal(err)
	}
	size := e.wait(t, `(() => { const rows = document.querySelectorAll("#terminal .xterm-rows > div");
		const m = [...rows].map(d => d.textContent.trim().match(/^(\d+) (\d+)$/)).find(Boolean);
		return m && m[1] == rows.length && Number(m[2]) > 100 && m[0]; })()`)
	t.Logf("stty size in the page's terminal: %s", size)

	if err := e.b.InsertText(e.ctx, "exit"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.PressEnter(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.wait(t, `document.getElementById("close").disabled`) // the socket is closed
	if status := e.wait(t, `document.getElementById("status").textContent`); status != "Exited with code 0" {
		t.Errorf("after exit: status %q, want Exited with code 0", status)
	}
	for _, line := range e.b.Logs() {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "exception") {
			t.Errorf("browser: %s", line)
		}
	}
}

// TestViewerTerminalRefused: a viewer's token lists the pods, but opening a terminal shows the API's 403 (the
// ticket needs the operator role) and opens no socket.
func TestViewerTerminalRefused(t *testing.T) {
	e := setup(t)
	viewer := e.api.Do("POST", "/api/v1/tokens", map[string]any{"name": "page-viewer", "roles": []string{"viewer"}}).
		Expect(t, 201, "").JSON["token"].(string)
	e.open(t, viewer)
	e.wait(t, options("pod")+`.includes(`+js(testPod)+`)`)
	e.eval(t, `document.getElementById("open-terminal").click()`)
	status := e.wait(t, `document.getElementById("status").classList.contains("error") && document.getElementById("status").textContent`)
	if !strings.Contains(status, "403") || !strings.Contains(status, "operator") {
		t.Errorf("viewer opening a terminal: status %q, want the 403 naming the operator role", status)
	}
	var closeDisabled bool
	if err := e.b.Eval(e.ctx, `document.getElementById("close").disabled`, &closeDisabled); err != nil || !closeDisabled {
		t.Errorf("a socket was opened for the viewer (close enabled: %v, %v)", !closeDisabled, err)
	}
}

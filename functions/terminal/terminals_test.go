package terminal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/functions/terminal"
	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

// callers are the identities the tests connect as, by bearer token.
var callers = map[string]*access.Caller{
	"operator-token": {Name: "op", Kind: access.KindToken, Roles: []access.Role{access.Operator}},
	"viewer-token":   {Name: "view", Kind: access.KindToken, Roles: []access.Role{access.Viewer}},
	"team-a-token": {Name: "team-a", Kind: access.KindToken, Roles: []access.Role{access.Operator},
		Namespaces: []string{"term-a"}},
}

type fixed map[string]*access.Caller

func (f fixed) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	return f[credential], nil
}

type env struct {
	api *apitest.Server
	fn  *terminal.Function
	cs  kubernetes.Interface
}

// setup runs the terminal function (as the binary wires it) with extra env, over the test cluster registered as
// "test", with a Running fake pod term-a/shell (container c) whose exec runs on this host.
func setup(t *testing.T, vars map[string]string) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	spec := apitest.Function("terminal")
	var fn *terminal.Function
	build := spec.New
	spec.New = func(p *platform.Platform) runtime.Handler {
		h := build(p)
		fn = h.(*terminal.Function)
		return h
	}
	api := apitest.StartWith(t, vars, []access.Authenticator{fixed(callers)}, spec)
	api.AddCluster("test", kube.AdminKubeconfig())
	e := &env{api: api, fn: fn, cs: kubernetes.NewForConfigOrDie(kube.RESTConfig())}
	e.fakePod(t, "term-a", "shell")
	return e
}

var (
	kwokOnce sync.Once
	kwokErr  error
)

func (e *env) fakePod(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(kube.ToolsDir, "kwok")); err != nil {
		t.Skipf("kwok not built in %s: %v", kube.ToolsDir, err)
	}
	kwokOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kitefn-terminal-kwok-")
		if err != nil {
			kwokErr = err
			return
		}
		if _, kwokErr = kube.StartKwok(context.Background(), harness.WithKwokExec(dir)); kwokErr != nil {
			return
		}
		_, kwokErr = e.cs.CoreV1().Nodes().Create(context.Background(), harness.FakeNode("term-node"), metav1.CreateOptions{})
	})
	if kwokErr != nil {
		t.Fatal(kwokErr)
	}
	ctx := t.Context()
	_, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = e.cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: "term-node", Containers: []corev1.Container{{Name: "c", Image: "none"}}}},
		metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running: %v", ns, name, err)
	}
}

// dial opens a socket at path (with ?cluster=test added) as token ("" sends no Authorization).
func (e *env) dial(t *testing.T, path, token string, hdr ...string) (*client, *http.Response, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(e.api.URL, "http") + path
	if !strings.Contains(path, "cluster=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "cluster=test"
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, res, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if err != nil {
		return nil, res, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn}, res, nil
}

// mustDial dials and reads the connected frame.
func (e *env) mustDial(t *testing.T, path, token string) (*client, wire.Frame) {
	t.Helper()
	c, res, err := e.dial(t, path, token)
	if err != nil {
		t.Fatalf("dial %s: %v (%s)", path, err, body(res))
	}
	f := c.next()
	if f.Type != wire.Connected || f.Session == "" {
		t.Fatalf("first frame %+v, want connected with a session", f)
	}
	return c, f
}

// body is an answer's status and its error message (or its body when it is not an error); it can be read
// again.
func body(res *http.Response) string {
	if res == nil {
		return "no response"
	}
	b, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(b))
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return res.Status + " error: " + e.Error.Message
	}
	return res.Status + " " + string(b)
}

// client is the test's end of a socket.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	out  strings.Builder // every stdout seen
}

func (c *client) send(f wire.Frame) {
	c.t.Helper()
	if err := c.conn.WriteJSON(f); err != nil {
		c.t.Fatalf("send %s: %v", f.Type, err)
	}
}

func (c *client) stdin(s string) { c.t.Helper(); c.send(wire.Frame{Type: wire.Stdin, Data: s}) }

// read is the next frame within 20 s, or the error that ended the socket.
func (c *client) read() (wire.Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var f wire.Frame
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("not a frame: %q", b)
	}
	if f.Type == wire.Stdout {
		c.out.WriteString(f.Data)
	}
	return f, nil
}

func (c *client) next() wire.Frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("reading a frame: %v (output so far %q)", err, c.out.String())
	}
	return f
}

// waitOutput reads until the output holds want.
func (c *client) waitOutput(want string) {
	c.t.Helper()
	for !strings.Contains(c.out.String(), want) {
		if f := c.next(); f.Type == wire.Exit || f.Type == wire.Error {
			c.t.Fatalf("%s frame %+v before the output %q (output %q)", f.Type, f, want, c.out.String())
		}
	}
}

// until reads until a frame of type typ, and returns it.
func (c *client) until(typ string) wire.Frame {
	c.t.Helper()
	for {
		if f := c.next(); f.Type == typ {
			return f
		}
	}
}

// closed reads until the socket ends and returns its close error.
func (c *client) closed() *websocket.CloseError {
	c.t.Helper()
	for {
		_, err := c.read()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("socket ended without a close frame: %v", err)
		}
		return ce
	}
}

const shellPath = "/api/v1/terminal/pods/term-a/shell"

// TestPodTerminal: the default shell echoes through a TTY, a resize reaches it, and its exit code comes back
// as the exit frame before close 1000; the session's start and end are in the audit log.
func TestPodTerminal(t *testing.T) {
	e := setup(t, nil)
	c, hello := e.mustDial(t, shellPath, "operator-token")
	if !strings.Contains(hello.Data, "pod term-a/shell, container c") || hello.Container != "c" {
		t.Errorf("connected frame %+v does not name the pod and its container", hello)
	}
	c.send(wire.Frame{Type: wire.Resize, Cols: 123, Rows: 45})
	// The typed line echoes too: the quotes make the output differ from the input.
	c.stdin("echo hel''lo-$((6*7))\n")
	c.waitOutput("hello-42")
	c.stdin("stty size\n")
	c.waitOutput("45 123")
	c.send(wire.Frame{Type: wire.Ping})
	if f := c.until(wire.Pong); f.Type != wire.Pong {
		t.Fatal(f)
	}
	c.stdin("exit 3\n")
	f := c.until(wire.Exit)
	if f.Code == nil || *f.Code != 3 || f.Session != hello.Session {
		t.Fatalf("exit frame %+v, want code 3 of session %s", f, hello.Session)
	}
	if ce := c.closed(); ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("closed with %d, want 1000", ce.Code)
	}

	entries := e.audit(t, hello.Session, 2)
	if entries[1].Who != "token:op" || entries[1].Cluster != "test" || entries[1].Namespace != "term-a" ||
		entries[1].Name != "shell" || entries[1].Resource != "pods" || entries[1].Verb != "exec" ||
		!strings.Contains(entries[1].Detail, "started, container c, command \"bash or sh\"") {
		t.Errorf("start entry %+v", entries[1])
	}
	if !strings.Contains(entries[0].Detail, "ended (exit 3), container c") ||
		!strings.Contains(entries[0].Detail, ", duration ") {
		t.Errorf("end entry %+v", entries[0])
	}
}

// audit waits for n exec entries of session (newest first).
func (e *env) audit(t *testing.T, session string, n int) []*store.AuditEntry {
	t.Helper()
	var got []*store.AuditEntry
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		all, _, err := e.api.Platform.Store.ListAudit(ctx, store.AuditFilter{Verb: "exec", Limit: 500})
		got = got[:0]
		for _, a := range all {
			if strings.Contains(a.Detail, "session "+session+" ") {
				got = append(got, a)
			}
		}
		return len(got) >= n, err
	})
	if err != nil {
		t.Fatalf("audit entries of session %s: %d (%v)", session, len(got), err)
	}
	return got
}

// TestPodTerminalCommand: command= runs that argv, and a failing command's code is the exit frame's.
func TestPodTerminalCommand(t *testing.T) {
	e := setup(t, nil)
	c, _ := e.mustDial(t, shellPath+"?command="+url.QueryEscape("sh -c false"), "operator-token")
	if f := c.until(wire.Exit); f.Code == nil || *f.Code != 1 {
		t.Fatalf("exit frame %+v, want code 1", f)
	}
}

// TestPodTerminalUnknownTarget: an unknown pod or container is an error frame naming it, then close.
func TestPodTerminalUnknownTarget(t *testing.T) {
	e := setup(t, nil)
	for path, want := range map[string]string{
		"/api/v1/terminal/pods/term-a/nope":               `pod term-a/nope not found in cluster "test"`,
		shellPath + "?container=sidecar":                  `container "sidecar" not found in pod term-a/shell; it has: c`,
		"/api/v1/terminal/pods/term-a/shell?cluster=nope": `cluster "nope" not found`,
	} {
		c, res, err := e.dial(t, path, "operator-token")
		if strings.Contains(path, "cluster=nope") { // the cluster is chosen before the upgrade: a plain 404
			if err == nil || res.StatusCode != 404 || !strings.Contains(body(res), want) {
				t.Errorf("%s: %v %s", path, err, body(res))
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v %s", path, err, body(res))
		}
		f := c.next()
		if f.Type != wire.Error || !strings.Contains(f.Data, want) {
			t.Errorf("%s: frame %+v, want an error saying %q", path, f, want)
		}
		if ce := c.closed(); ce.Code != websocket.CloseNormalClosure {
			t.Errorf("%s: close %d", path, ce.Code)
		}
	}
}

// TestPodTerminalRefusals: refused before the upgrade, with a plain JSON answer and no 101.
func TestPodTerminalRefusals(t *testing.T) {
	e := setup(t, nil)
	for _, c := range []struct {
		name, path, token string
		hdr               []string
		status            int
		want              string
	}{
		{"no token", shellPath, "", nil, 401, "missing bearer token"},
		{"bad origin", shellPath, "operator-token", []string{"Origin", "https://evil.example"}, 403,
			`origin "https://evil.example" may not open terminal`},
		{"viewer", shellPath, "viewer-token", nil, 403, "exec pods needs the operator role"},
		{"outside namespace scope", "/api/v1/terminal/pods/term-b/shell", "team-a-token", nil, 403,
			`namespace "term-b" is outside your namespace scope (term-a)`},
		{"bad ticket", shellPath + "?ticket=nonsense", "", nil, 401, "the ticket is not valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, res, err := e.dial(t, c.path, c.token, c.hdr...)
			if !errors.Is(err, websocket.ErrBadHandshake) || res == nil || res.StatusCode != c.status {
				t.Fatalf("%v %s, want %d before the upgrade", err, body(res), c.status)
			}
			if b := body(res); !strings.Contains(b, c.want) || !strings.Contains(b, " error: ") {
				t.Fatalf("answer %s, want JSON saying %q", b, c.want)
			}
		})
	}
	// A plain GET is told it needs a WebSocket.
	r := e.api.Do(http.MethodGet, shellPath+"?cluster=test", nil, "Authorization", "Bearer operator-token")
	r.Expect(t, 400, "bad_request")
	if !strings.Contains(r.Message(), "WebSocket endpoint") {
		t.Fatal(r.Message())
	}
}

// TestTickets: a ticket opens one socket of its target, once, and not after its expiry; it is bound to the
// target and issued only to a caller with the target's role, on any instance sharing the encryption key.
func TestTickets(t *testing.T) {
	e := setup(t, nil)
	ticket := func(token string, body map[string]any) apitest.Response {
		return e.api.Do(http.MethodPost, "/api/v1/terminal/tickets", body, "Authorization", "Bearer "+token)
	}
	shell := map[string]any{"cluster": "test", "kind": "pod", "namespace": "term-a", "pod": "shell"}
	r := ticket("operator-token", shell).Expect(t, 201, "")
	tk, _ := r.JSON["ticket"].(string)
	exp, err := time.Parse(time.RFC3339Nano, r.JSON["expiresAt"].(string))
	if tk == "" || err != nil || time.Until(exp) > 31*time.Second || time.Until(exp) < 20*time.Second {
		t.Fatalf("ticket answer %s", r.Body)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tk); err != nil || strings.Contains(string(raw), "operator") {
		t.Errorf("the ticket is not sealed: %q %v", raw, err)
	}

	// Another target: 403, and the ticket stays unused.
	_, res, err := e.dial(t, "/api/v1/terminal/pods/term-a/other?ticket="+tk, "")
	if err == nil || res.StatusCode != 403 || !strings.Contains(body(res), "the ticket is for pod term-a/shell") {
		t.Fatalf("other target: %v %s", err, body(res))
	}
	c, hello := e.mustDial(t, shellPath+"?ticket="+tk, "")
	c.stdin("echo tic''ket\n")
	c.waitOutput("ticket")
	entries := e.audit(t, hello.Session, 1)
	if entries[0].Who != "token:op" {
		t.Errorf("the ticket's session is %q's, want the caller who asked for it", entries[0].Who)
	}
	_, res, err = e.dial(t, shellPath+"?ticket="+tk, "")
	if err == nil || res.StatusCode != 401 || !strings.Contains(body(res), "already used") {
		t.Fatalf("second use: %v %s", err, body(res))
	}

	// The role of the target, the namespace scope, the fields.
	if r := ticket("viewer-token", shell); r.Status != 403 || !strings.Contains(r.Message(), "a pod ticket needs the operator role") {
		t.Errorf("viewer pod ticket: %d %s", r.Status, r.Body)
	}
	ticket("viewer-token", map[string]any{"cluster": "test", "kind": "logs", "namespace": "term-a", "pod": "shell"}).
		Expect(t, 201, "")
	if r := ticket("operator-token", map[string]any{"cluster": "test", "kind": "node", "node": "term-node"}); r.Status != 403 ||
		!strings.Contains(r.Message(), "needs the admin role") {
		t.Errorf("operator node ticket: %d %s", r.Status, r.Body)
	}
	if r := ticket("team-a-token", map[string]any{"cluster": "test", "kind": "pod", "namespace": "term-b", "pod": "x"}); r.Status != 403 ||
		!strings.Contains(r.Message(), `namespace "term-b" is outside your namespace scope`) {
		t.Errorf("team-a ticket for term-b: %d %s", r.Status, r.Body)
	}
	ticket("operator-token", map[string]any{"cluster": "test", "kind": "shell"}).Expect(t, 400, "bad_request")
	ticket("operator-token", map[string]any{"cluster": "nope", "kind": "pod", "namespace": "a", "pod": "b"}).Expect(t, 404, "not_found")

	// A second instance (same encryption key) with a 1 ms lifetime: its tickets have expired when used.
	short := setup(t, map[string]string{"KITEFN_TERMINAL_TICKET_TTL": "1ms"})
	r = short.api.Do(http.MethodPost, "/api/v1/terminal/tickets", shell, "Authorization", "Bearer operator-token").
		Expect(t, 201, "")
	exp, _ = time.Parse(time.RFC3339Nano, r.JSON["expiresAt"].(string))
	<-time.After(time.Until(exp)) // the condition is the clock: 1 ms at most
	_, res, err = short.dial(t, shellPath+"?ticket="+r.JSON["ticket"].(string), "")
	if err == nil || res.StatusCode != 401 || !strings.Contains(body(res), "expired") {
		t.Fatalf("expired ticket: %v %s", err, body(res))
	}
	// The first instance's ticket works on the second: the key is derived from the shared encryption key.
	tk2 := ticket("operator-token", shell).Expect(t, 201, "").JSON["ticket"].(string)
	short.mustDial(t, shellPath+"?ticket="+tk2, "")
}

// TestReconnect: a dropped socket re-attaches to the same shell within the grace period, replaying recent
// output; only its caller may; after the grace the session is gone and its end is audited.
func TestReconnect(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_TERMINAL_RECONNECT_GRACE": "30s"})
	c, hello := e.mustDial(t, shellPath+"?command=sh", "operator-token")
	c.stdin("KITEFN_X=kept; echo set-$KITEFN_X\n")
	c.waitOutput("set-kept")
	_ = c.conn.Close() // dropped, no close frame

	// Another caller cannot take it over.
	o, _, err := e.dial(t, shellPath+"?session="+hello.Session, "team-a-token")
	if err != nil {
		t.Fatal(err)
	}
	if f := o.next(); f.Type != wire.Error || !strings.Contains(f.Data, "is gone") {
		t.Fatalf("another caller's re-attach: %+v", f)
	}

	c2, again := e.mustDial(t, shellPath+"?session="+hello.Session, "operator-token")
	if again.Session != hello.Session || !strings.Contains(again.Data, "re-attached") {
		t.Fatalf("re-attach: %+v", again)
	}
	if f := c2.next(); f.Type != wire.Stdout || !strings.Contains(f.Data, "set-kept") {
		t.Fatalf("no replay of the recent output: %+v", f)
	}
	c2.stdin("echo again-$KITEFN_X\n")
	c2.waitOutput("again-kept")
	c2.stdin("exit\n")
	c2.until(wire.Exit)
}

func TestReconnectAfterGrace(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_TERMINAL_RECONNECT_GRACE": "200ms"})
	c, hello := e.mustDial(t, shellPath+"?command=sh", "operator-token")
	c.stdin("echo up-$((1+1))\n")
	c.waitOutput("up-2")
	_ = c.conn.Close()
	// The grace passes: the session is ended (its end entry says so).
	entries := e.audit(t, hello.Session, 2)
	if !strings.Contains(entries[0].Detail, "ended") {
		t.Fatalf("end entry %+v", entries[0])
	}
	c2, _, err := e.dial(t, shellPath+"?session="+hello.Session, "operator-token")
	if err != nil {
		t.Fatal(err)
	}
	if f := c2.next(); f.Type != wire.Error || !strings.Contains(f.Data, "is gone") {
		t.Fatalf("re-attach after the grace: %+v", f)
	}
}

// TestShutdown: SIGTERM tells every socket why and closes it with 1001; new sockets get 503.
func TestShutdown(t *testing.T) {
	e := setup(t, nil)
	c, _ := e.mustDial(t, shellPath+"?command=sh", "operator-token")
	c.stdin("echo ready-$((2+2))\n")
	c.waitOutput("ready-4")
	e.fn.ShuttingDown()
	if f := c.until(wire.Info); !strings.Contains(f.Data, "shutting down") {
		t.Fatalf("info frame %+v", f)
	}
	if ce := c.closed(); ce.Code != websocket.CloseGoingAway {
		t.Fatalf("close %d, want 1001", ce.Code)
	}
	_, res, err := e.dial(t, shellPath, "operator-token")
	if err == nil || res.StatusCode != 503 {
		t.Fatalf("after shutdown: %v %s", err, body(res))
	}
}

// TestLimits: the session cap is a 503 before the upgrade; a socket silent past the timeout is closed.
func TestLimits(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_TERMINAL_MAX_SESSIONS": "1", "KITEFN_TERMINAL_PING_INTERVAL": "100ms",
		"KITEFN_TERMINAL_SILENCE_TIMEOUT": "500ms", "KITEFN_TERMINAL_RECONNECT_GRACE": "0s"})
	c, _ := e.mustDial(t, shellPath+"?command=sh", "operator-token")
	_, res, err := e.dial(t, shellPath, "operator-token")
	if err == nil || res.StatusCode != 503 || !strings.Contains(body(res), "maximum of 1 terminal sessions") {
		t.Fatalf("over the cap: %v %s", err, body(res))
	}
	// This client answers no ping: the server hears nothing and closes.
	pinged := make(chan struct{}, 1)
	c.conn.SetPingHandler(func(string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	ce := c.closed()
	if ce.Code != websocket.CloseNormalClosure || !strings.Contains(ce.Text, "silent for 500ms") {
		t.Fatalf("close %d %q, want 1000 silent", ce.Code, ce.Text)
	}
	select {
	case <-pinged:
	default:
		t.Error("the server never pinged")
	}
}

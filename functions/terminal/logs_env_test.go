package terminal_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/functions/terminal"
	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/tests/apitest"
)

// The logs tests run pods on one kwok node whose logs, for every pod and container, are the lines of one file
// (kwok's ClusterLogs); following a pod follows the file.

const logsNode = "logs-node"

// Bearer tokens of the callers the logs tests call as, besides apitest.Token (bootstrap admin).
const (
	viewerToken = "logs-viewer" // viewer everywhere
	teamAToken  = "logs-team-a" // viewer in namespace logs-scope only
)

// The file's first lines; tests append their own.
var initialLines = []string{"first line", "second line", "third line"}

type fixedCallers map[string]*access.Caller

func (f fixedCallers) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	return f[credential], nil
}

type logsEnv struct {
	api *apitest.Server
	cs  kubernetes.Interface
}

// logsSetup runs the terminal function behind the real runtime over the test cluster (registered as "test"),
// with env's settings, kwok serving the logs file, and the test callers.
func logsSetup(t *testing.T, env map[string]string) *logsEnv {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	cs := kubernetes.NewForConfigOrDie(kube.RESTConfig())
	startLogsKwok(t, cs)
	viewer := []access.Role{access.Viewer}
	api := apitest.StartWith(t, env, []access.Authenticator{fixedCallers{
		viewerToken: {Name: "vera", Kind: access.KindToken, Roles: viewer},
		teamAToken:  {Name: "tom", Kind: access.KindToken, Roles: viewer, Namespaces: []string{"logs-scope"}},
	}}, apitest.Function("terminal"))
	api.AddCluster("test", kube.AdminKubeconfig())
	return &logsEnv{api: api, cs: cs}
}

func startLogsKwok(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	startKwok(t, cs)
}

// appendLine adds a line to every fake pod's logs, in CRI format.
func appendLine(text string) error {
	logsFileMu.Lock()
	defer logsFileMu.Unlock()
	f, err := os.OpenFile(logsFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	// Nine digits always, as the kubelet prints them back (RFC3339Nano drops trailing zeros).
	_, err = fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z07:00"), text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func mustAppend(t *testing.T, text string) {
	t.Helper()
	if err := appendLine(text); err != nil {
		t.Fatal(err)
	}
}

// fileLines is the logs file as a pod's logs read: the text of each line, with its timestamp when asked.
func fileLines(t *testing.T, timestamps bool) []string {
	t.Helper()
	logsFileMu.Lock()
	defer logsFileMu.Unlock()
	b, err := os.ReadFile(logsFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		ts, rest, _ := strings.Cut(l, " stdout F ")
		if timestamps {
			rest = ts + " " + rest
		}
		out = append(out, rest)
	}
	return out
}

func (e *logsEnv) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}},
		metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// pod creates a pod on the kwok node with the labels and containers (default one, "c") and waits for Running.
func (e *logsEnv) pod(t *testing.T, ns, name string, labels map[string]string, containers ...string) {
	t.Helper()
	e.namespace(t, ns)
	if len(containers) == 0 {
		containers = []string{"c"}
	}
	spec := corev1.PodSpec{NodeName: logsNode}
	for _, c := range containers {
		spec.Containers = append(spec.Containers, corev1.Container{Name: c, Image: "none"})
	}
	ctx := t.Context()
	_, err := e.cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.deletePod(t, ns, name) }) // the next test (or -count run) starts without it
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running: %v", ns, name, err)
	}
}

// deletePod deletes a pod at once and waits until it is gone.
func (e *logsEnv) deletePod(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background() // also from a Cleanup, after t.Context ended
	err := e.cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not gone: %v", ns, name, err)
	}
}

// web makes the Deployment web in ns and its pods web-a and web-b (app=web).
func (e *logsEnv) web(t *testing.T, ns string) {
	t.Helper()
	e.deployment(t, ns, "web")
	for _, p := range []string{"web-a", "web-b"} {
		e.pod(t, ns, p, map[string]string{"app": "web"})
	}
}

// deployment creates a Deployment selecting app=<name>: no controller-manager runs, so the test makes its pods.
func (e *logsEnv) deployment(t *testing.T, ns, name string) {
	t.Helper()
	e.namespace(t, ns)
	labels := map[string]string{"app": name}
	_, err := e.cs.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none"}}}}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// stream is a streaming GET (plain text or SSE) read line by line, bounded by a deadline.
type stream struct {
	t      *testing.T
	res    *http.Response
	rd     *bufio.Reader
	cancel context.CancelFunc
	lines  []string // read so far
}

func (e *logsEnv) stream(t *testing.T, path string, hdr ...string) *stream {
	return openStream(t, e.api.URL+path, append([]string{"Authorization", "Bearer " + apitest.Token}, hdr...)...)
}

func openStream(t *testing.T, url string, hdr ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{t: t, res: res, rd: bufio.NewReader(res.Body), cancel: cancel}
	t.Cleanup(s.close)
	if res.StatusCode != http.StatusOK {
		b, _ := bufio.NewReader(res.Body).ReadString(0)
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return s
}

func (s *stream) close() {
	s.cancel()
	_ = s.res.Body.Close()
}

// until reads lines until one satisfies ok (the deadline of the request bounds it) and returns it.
func (s *stream) until(what string, ok func(string) bool) string {
	s.t.Helper()
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			s.t.Fatalf("stream ended (%v) before %s; read so far:\n%s", err, what, strings.Join(s.lines, "\n"))
		}
		line = strings.TrimSuffix(line, "\n")
		s.lines = append(s.lines, line)
		if ok(line) {
			return line
		}
	}
}

// rest reads to the end of the answer (a stream without follow ends by itself).
func (s *stream) rest() []string {
	s.t.Helper()
	for {
		line, err := s.rd.ReadString('\n')
		if line != "" {
			s.lines = append(s.lines, strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			return s.lines
		}
	}
}

// sseEvents reads SSE events until ok accepts one.
func (s *stream) event(what string, ok func(event string, f wire.Frame) bool) wire.Frame {
	s.t.Helper()
	var event string
	for {
		line := s.until(what, func(l string) bool { return strings.HasPrefix(l, "data: ") || strings.HasPrefix(l, "event: ") })
		if ev, found := strings.CutPrefix(line, "event: "); found {
			event = ev
			continue
		}
		var f wire.Frame
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f); err != nil {
			s.t.Fatalf("SSE data is not a frame: %q: %v", line, err)
		}
		if event != f.Type {
			s.t.Fatalf("SSE event %q carries a %q frame", event, f.Type)
		}
		if ok(event, f) {
			return f
		}
	}
}

// socket is a logs WebSocket as a client sees it.
type socket struct {
	t    *testing.T
	conn *websocket.Conn
	seen []wire.Frame
}

func dialLogs(t *testing.T, base, path string, hdr ...string) *socket {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+apitest.Token)
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	conn, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+path, h)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &socket{t: t, conn: conn}
}

// until reads frames until ok accepts one, within 30 s.
func (s *socket) until(what string, ok func(wire.Frame) bool) wire.Frame {
	s.t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var f wire.Frame
		if err := s.conn.ReadJSON(&f); err != nil {
			s.t.Fatalf("socket ended (%v) before %s; frames so far: %+v", err, what, s.seen)
		}
		s.seen = append(s.seen, f)
		if ok(f) {
			return f
		}
	}
}

// directLogs is the terminal function served without the runtime (so a test can call ShuttingDown), with every
// request made by the bootstrap admin.
func directLogs(t *testing.T, e *logsEnv) (*terminal.Function, string) {
	t.Helper()
	fn := terminal.New(terminal.Deps{Clients: e.api.Platform.Clients, Registry: e.api.Platform.Store})
	log := zaptest.NewLogger(t).Sugar()
	if err := fn.Start(logging.WithLogger(context.Background(), log), nil); err != nil {
		t.Fatal(err)
	}
	admin := &access.Caller{Name: "root", Kind: access.KindBootstrap, Roles: []access.Role{access.Admin}}
	srv := httptest.NewServer(httpapi.RequestID(log, httpapi.AccessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn.Handle(w, r.WithContext(access.WithCaller(r.Context(), admin)))
	}))))
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := fn.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return fn, srv.URL
}

var metaCreate = metav1.CreateOptions{}

func configMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

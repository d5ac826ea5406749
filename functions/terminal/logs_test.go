package terminal_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/tests/apitest"
)

func TestLogsOfOnePodAsPlainText(t *testing.T) {
	e := logsSetup(t, nil)
	e.pod(t, "logs-one", "solo", nil)
	e.pod(t, "logs-one", "duo", nil, "app", "sidecar")
	want := fileLines(t, false)
	get := func(path string) []string {
		t.Helper()
		r := e.api.Do(http.MethodGet, path, nil, "X-Cluster-Name", "test")
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("GET %s: %d %s %s", path, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		return strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n")
	}

	if got := get("/api/v1/logs/logs-one/solo"); !slices.Equal(got, want) {
		t.Fatalf("logs of a one-container pod: %q, want the file's lines %q", got, want)
	}
	if got := get("/api/v1/logs/logs-one/solo?tailLines=1"); !slices.Equal(got, want[len(want)-1:]) {
		t.Fatalf("tailLines=1: %q, want %q", got, want[len(want)-1:])
	}
	if got := get("/api/v1/logs/logs-one/solo?timestamps=true"); !slices.Equal(got, fileLines(t, true)) {
		t.Fatalf("timestamps=true: %q, want %q", got, fileLines(t, true))
	}
	// The pods form also reaches one pod.
	if got := get("/api/v1/logs/pods/logs-one/solo?tailLines=2"); !slices.Equal(got, want[len(want)-2:]) {
		t.Fatalf("pods/{ns}/{name}: %q, want %q", got, want[len(want)-2:])
	}

	// Two containers: both, each line saying its pod and container; or the one asked for, bare.
	got := get("/api/v1/logs/logs-one/duo")
	var wantBoth []string
	for _, c := range []string{"app", "sidecar"} {
		for _, l := range want {
			wantBoth = append(wantBoth, "[duo/"+c+"] "+l)
		}
	}
	slices.Sort(got)
	slices.Sort(wantBoth)
	if !slices.Equal(got, wantBoth) {
		t.Fatalf("logs of a two-container pod: %q, want %q", got, wantBoth)
	}
	if got := get("/api/v1/logs/logs-one/duo?container=sidecar"); !slices.Equal(got, want) {
		t.Fatalf("container=sidecar: %q, want %q", got, want)
	}
	r := e.api.Do(http.MethodGet, "/api/v1/logs/logs-one/duo?container=nope", nil, "X-Cluster-Name", "test").
		Expect(t, http.StatusNotFound, httpapi.CodeNotFound)
	if m := r.Message(); !strings.Contains(m, `"nope"`) || !strings.Contains(m, "app, sidecar") {
		t.Fatalf("unknown container: %q, want it named with the pod's containers", m)
	}
}

func TestLogsFollowOnePodSeesAppendedLines(t *testing.T) {
	e := logsSetup(t, nil)
	e.pod(t, "logs-one", "solo", nil)
	s := e.stream(t, "/api/v1/logs/logs-one/solo?follow=true&tailLines=1", "X-Cluster-Name", "test")
	last := fileLines(t, false)
	s.until("the last line so far", func(l string) bool { return l == last[len(last)-1] })
	// The request has started and answered: a line written now can only come from following.
	mark := fmt.Sprintf("appended while following %s", t.Name())
	mustAppend(t, mark)
	s.until("the appended line", func(l string) bool { return l == mark })
}

func TestLogsOfADeploymentPlainText(t *testing.T) {
	e := logsSetup(t, nil)
	e.web(t, "logs-wl")
	e.pod(t, "logs-wl", "other", map[string]string{"app": "other"}) // not selected
	s := e.stream(t, "/api/v1/logs/deploy/logs-wl/web?tailLines=1", "X-Cluster-Name", "test")
	got := s.rest()
	last := fileLines(t, false)
	want := []string{"[web-a/c] " + last[len(last)-1], "[web-b/c] " + last[len(last)-1]}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("logs of deployments/web without follow: %q, want %q (and the answer to end)", got, want)
	}
}

// workloadFollow is what a follow of a Deployment shows, whatever the transport: the pods there at the start,
// a pod added (pod_added, then its lines), a pod deleted (pod_removed).
func workloadFollow(t *testing.T, e *logsEnv, ns string, next func(what string, ok func(wire.Frame) bool) wire.Frame) {
	t.Helper()
	seen := map[string]bool{}
	next("a line of both pods", func(f wire.Frame) bool {
		if f.Type == wire.Log && f.Container == "c" && f.Namespace == ns && f.Data != "" {
			seen[f.Pod] = true
		}
		return seen["web-a"] && seen["web-b"]
	})
	e.pod(t, ns, "web-c", map[string]string{"app": "web"})
	next("pod_added web-c", func(f wire.Frame) bool { return f.Type == wire.PodAdded && f.Pod == "web-c" })
	next("a line of web-c", func(f wire.Frame) bool { return f.Type == wire.Log && f.Pod == "web-c" })
	mark := "appended for " + t.Name()
	mustAppend(t, mark)
	got := map[string]bool{}
	next("the appended line from every pod", func(f wire.Frame) bool {
		if f.Type == wire.Log && f.Data == mark {
			got[f.Pod] = true
		}
		return got["web-a"] && got["web-b"] && got["web-c"]
	})
	e.deletePod(t, ns, "web-a")
	f := next("pod_removed web-a", func(f wire.Frame) bool { return f.Type == wire.PodRemoved && f.Pod == "web-a" })
	if !strings.Contains(f.Data, "web-a") || f.Namespace != ns {
		t.Fatalf("pod_removed frame %+v", f)
	}
}

func TestLogsFollowADeploymentOverWebSocket(t *testing.T) {
	e := logsSetup(t, nil)
	ns := "logs-ws"
	e.web(t, ns)
	s := dialLogs(t, e.api.URL, "/api/v1/logs/deployments/"+ns+"/web?follow=true&tailLines=1", "X-Cluster-Name", "test")
	workloadFollow(t, e, ns, s.until)
	// The socket answers the client's ping frame.
	if err := s.conn.WriteJSON(wire.Frame{Type: wire.Ping}); err != nil {
		t.Fatal(err)
	}
	s.until("pong", func(f wire.Frame) bool { return f.Type == wire.Pong })
}

func TestLogsFollowADeploymentOverSSE(t *testing.T) {
	e := logsSetup(t, nil)
	ns := "logs-sse"
	e.web(t, ns)
	s := e.stream(t, "/api/v1/logs/deployments.apps/"+ns+"/web?follow&tailLines=1", "X-Cluster-Name", "test",
		"Accept", "text/event-stream")
	if ct := s.res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	workloadFollow(t, e, ns, func(what string, ok func(wire.Frame) bool) wire.Frame {
		return s.event(what, func(_ string, f wire.Frame) bool { return ok(f) })
	})
}

func TestLogsCapOnPodsIsSaid(t *testing.T) {
	e := logsSetup(t, map[string]string{"KITEFN_LOGS_MAX_PODS": "1"})
	ns := "logs-cap"
	e.web(t, ns)
	got := e.stream(t, "/api/v1/logs/deploy/"+ns+"/web?tailLines=1", "X-Cluster-Name", "test").rest()
	last := fileLines(t, false)
	want := []string{"[kitefn] info: not following pod web-b: 1 pods are followed at once at most (KITEFN_LOGS_MAX_PODS)",
		"[web-a/c] " + last[len(last)-1]}
	if !slices.Equal(got, want) {
		t.Fatalf("over the cap: %q, want %q", got, want)
	}

	// Following: web-b waits its turn, and takes web-a's place when it goes.
	s := dialLogs(t, e.api.URL, "/api/v1/logs/deploy/"+ns+"/web?follow=true&tailLines=1", "X-Cluster-Name", "test")
	s.until("the cap said", func(f wire.Frame) bool {
		return f.Type == wire.Info && f.Pod == "web-b" && strings.Contains(f.Data, "KITEFN_LOGS_MAX_PODS")
	})
	s.until("a line of web-a", func(f wire.Frame) bool { return f.Type == wire.Log && f.Pod == "web-a" })
	e.deletePod(t, ns, "web-a")
	s.until("web-a removed", func(f wire.Frame) bool { return f.Type == wire.PodRemoved && f.Pod == "web-a" })
	s.until("web-b added", func(f wire.Frame) bool { return f.Type == wire.PodAdded && f.Pod == "web-b" })
	s.until("a line of web-b", func(f wire.Frame) bool { return f.Type == wire.Log && f.Pod == "web-b" })
	added := slices.IndexFunc(s.seen, func(f wire.Frame) bool { return f.Type == wire.PodAdded && f.Pod == "web-b" })
	if first := slices.IndexFunc(s.seen, func(f wire.Frame) bool { return f.Type == wire.Log && f.Pod == "web-b" }); first < added {
		t.Fatalf("web-b streamed while over the cap: %+v", s.seen)
	}
}

func TestLogsBytesPerSecondThrottleIsSaid(t *testing.T) {
	e := logsSetup(t, map[string]string{"KITEFN_LOGS_MAX_BYTES_PER_SECOND": "50"})
	e.pod(t, "logs-one", "solo", nil)
	// Two lines of 41 bytes: the second exceeds the second's budget and has to wait (about 0.6 s).
	mustAppend(t, "throttle me, a line of forty-one bytes 1")
	mustAppend(t, "throttle me, a line of forty-one bytes 2")
	got := e.stream(t, "/api/v1/logs/logs-one/solo?tailLines=2", "X-Cluster-Name", "test").rest()
	last := fileLines(t, false)
	i := slices.IndexFunc(got, func(l string) bool { return strings.HasPrefix(l, "[kitefn] info: ") })
	if i < 0 || !strings.Contains(got[i], "slowed to 50 bytes per second (KITEFN_LOGS_MAX_BYTES_PER_SECOND)") {
		t.Fatalf("no throttling said: %q", got)
	}
	// Slowed, not cut: every line arrives.
	lines := slices.Delete(slices.Clone(got), i, i+1)
	if !slices.Equal(lines, last[len(last)-2:]) {
		t.Fatalf("throttled lines %q, want %q", lines, last[len(last)-2:])
	}
}

func TestLogsErrors(t *testing.T) {
	e := logsSetup(t, nil)
	e.pod(t, "logs-one", "solo", nil)
	e.pod(t, "logs-scope", "mine", nil)
	e.namespace(t, "logs-wl")
	_, _ = e.cs.CoreV1().ConfigMaps("logs-wl").Create(t.Context(), configMap("cm"), metaCreate)
	cluster := []string{"X-Cluster-Name", "test"}
	for _, tc := range []struct {
		path   string
		status int
		code   string
		text   string
		field  string
	}{
		{"/api/v1/logs/logs-one/nope", 404, httpapi.CodeNotFound, `pods "nope" not found`, ""},
		{"/api/v1/logs/deployments/logs-one/nope", 404, httpapi.CodeNotFound, `"nope" not found`, ""},
		{"/api/v1/logs/frobnicators/logs-one/x", 404, httpapi.CodeNotFound, `resource "frobnicators" not found`, "resource"},
		{"/api/v1/logs/clonesets/logs-one/x", 404, httpapi.CodeNotFound, "please install OpenKruise", "resource"},
		{"/api/v1/logs/configmaps/logs-wl/cm", 400, httpapi.CodeBadRequest, "has no spec.selector", "resource"},
		{"/api/v1/logs/nodes/logs-one/x", 400, httpapi.CodeBadRequest, "cluster-scoped", "resource"},
		{"/api/v1/logs/logs-one/solo?tailLines=-1", 400, httpapi.CodeBadRequest, "tailLines", "tailLines"},
		{"/api/v1/logs/logs-one/solo?tailLines=ten", 400, httpapi.CodeBadRequest, "tailLines", "tailLines"},
		{"/api/v1/logs/logs-one/solo?sinceSeconds=0", 400, httpapi.CodeBadRequest, "sinceSeconds", "sinceSeconds"},
		{"/api/v1/logs/logs-one/solo?follow=maybe", 400, httpapi.CodeBadRequest, "follow", "follow"},
		{"/api/v1/logs/logs-one/solo?previous=2", 400, httpapi.CodeBadRequest, "previous", "previous"},
		{"/api/v1/logs/Bad_NS/solo", 400, httpapi.CodeBadRequest, "namespace", "namespace"},
		{"/api/v1/logs/logs-one", 404, httpapi.CodeNotFound, "/api/v1/logs/{namespace}/{pod}", ""},
		// The cluster's own 400 (kwok has no previous instance to read) keeps its status.
		{"/api/v1/logs/logs-one/solo?previous=true", 400, httpapi.CodeBadRequest, "", ""},
	} {
		r := e.api.Do(http.MethodGet, tc.path, nil, cluster...).Expect(t, tc.status, tc.code)
		errBody, _ := r.JSON["error"].(map[string]any)
		if !strings.Contains(r.Message(), tc.text) || (tc.field != "" && errBody["field"] != tc.field) {
			t.Errorf("GET %s: %s, want %q with field %q", tc.path, r.Body, tc.text, tc.field)
		}
	}
	// No cluster named.
	e.api.Do(http.MethodGet, "/api/v1/logs/logs-one/solo", nil).Expect(t, http.StatusBadRequest, httpapi.CodeBadRequest)

	// A viewer may read logs; a caller scoped to logs-scope reads there and nowhere else.
	r := e.api.Do(http.MethodGet, "/api/v1/logs/logs-one/solo?tailLines=1&cluster=test", nil, "Authorization", "Bearer "+viewerToken)
	if last := fileLines(t, false); r.Status != 200 || string(r.Body) != last[len(last)-1]+"\n" {
		t.Fatalf("viewer: %d %q", r.Status, r.Body)
	}
	e.api.Do(http.MethodGet, "/api/v1/logs/logs-scope/mine?tailLines=1&cluster=test", nil, "Authorization", "Bearer "+teamAToken).
		Expect(t, http.StatusOK, "")
	r = e.api.Do(http.MethodGet, "/api/v1/logs/logs-one/solo?cluster=test", nil, "Authorization", "Bearer "+teamAToken).
		Expect(t, http.StatusForbidden, httpapi.CodeForbidden)
	if !strings.Contains(r.Message(), `namespace "logs-one" is outside your namespace scope`) {
		t.Fatalf("outside the scope: %s", r.Body)
	}
	// Refused before any upgrade: a WebSocket dial gets the JSON 404.
	_, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.api.URL, "http")+"/api/v1/logs/logs-one/nope?cluster=test",
		http.Header{"Authorization": {"Bearer " + apitest.Token}})
	if err == nil || res == nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("WebSocket to an unknown pod: %v %v", err, res)
	}
}

func TestLogsShuttingDown(t *testing.T) {
	e := logsSetup(t, nil)
	e.pod(t, "logs-one", "solo", nil)
	fn, url := directLogs(t, e)
	sock := dialLogs(t, url, "/api/v1/logs/logs-one/solo?follow=true&tailLines=1&cluster=test")
	sock.until("a line", func(f wire.Frame) bool { return f.Type == wire.Log && f.Pod == "solo" })
	plain := openStream(t, url+"/api/v1/logs/logs-one/solo?follow=true&tailLines=1&cluster=test")
	plain.until("a line", func(string) bool { return true })

	fn.ShuttingDown()
	f := sock.until("the info frame", func(f wire.Frame) bool { return f.Type == wire.Info })
	if !strings.Contains(f.Data, "shutting down") {
		t.Fatalf("info frame %+v", f)
	}
	_, _, err := sock.conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after the info frame: %v, want close 1001", err)
	}
	rest := plain.rest() // the HTTP stream ends
	if !strings.Contains(rest[len(rest)-1], "[kitefn] info: kitefn is shutting down") {
		t.Fatalf("plain stream at shutdown: %q", rest)
	}
	// New requests are refused while the instance goes.
	res, err := http.Get(url + "/api/v1/logs/logs-one/solo?cluster=test")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a request after ShuttingDown: %d", res.StatusCode)
	}
}

func TestLogsWebSocketEndsWithTheLogs(t *testing.T) {
	e := logsSetup(t, nil)
	e.pod(t, "logs-one", "solo", nil)
	s := dialLogs(t, e.api.URL, "/api/v1/logs/logs-one/solo?tailLines=1", "X-Cluster-Name", "test")
	last := fileLines(t, false)
	f := s.until("the last line", func(f wire.Frame) bool { return f.Type == wire.Log })
	if f.Data != last[len(last)-1] || f.Pod != "solo" || f.Container != "c" || f.Namespace != "logs-one" {
		t.Fatalf("log frame %+v, want the file's last line from logs-one/solo/c", f)
	}
	_, _, err := s.conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the logs: %v, want close 1000", err)
	}
}

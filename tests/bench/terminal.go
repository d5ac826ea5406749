package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

// terminalOptions size the terminal part (-terminal-sessions, -terminal-log-mb).
type terminalOptions struct {
	sessions int // concurrent idle pod-terminal sessions
	logMB    int // size of the followed pod's log file, in MiB
}

const (
	termCluster    = "bench"
	termNamespace  = "bench-term"
	termPod        = "shell"
	termKeystrokes = 300 // per path (service, direct)
	termLogRounds  = 3   // alternating rounds per log transport
	termLogLine    = 200 // bytes of one log line's text
	termLastLine   = "kitefn-bench: the last line"
	termOpenConc   = 16 // sessions opened at once
	termWait       = 60 * time.Second
)

// benchTerminal runs the terminal service as its own process (FUNCTION_TARGET=terminal) against a real
// apiserver and kwok, and measures, in one run: its RSS with opts.sessions idle pod terminals, keystroke echo
// latency through it beside a direct client-go exec, and the throughput of one followed pod's logs through it
// beside client-go's GetLogs(follow) and kubectl logs -f.
func benchTerminal(ctx context.Context, tmp string, w *tabwriter.Writer, opts terminalOptions) error {
	// Each session holds fds in this process, kitefn, the apiserver and kwok (socket, exec stream, pty).
	soft, hard, err := raiseNoFile(uint64(8*opts.sessions + 4096))
	if err != nil {
		return err
	}
	fmt.Printf("open files limit (RLIMIT_NOFILE, inherited by kitefn, the apiserver and kwok): %d (hard %d)\n", soft, hard)

	fmt.Println("starting kube-apiserver and kwok, writing", opts.logMB, "MiB of pod logs…")
	kube, err := harness.Start(ctx)
	if err != nil {
		return err
	}
	defer kube.Stop()
	execDir := filepath.Join(tmp, "exec")
	if err := os.MkdirAll(execDir, 0o755); err != nil {
		return err
	}
	if execDir, err = filepath.EvalSymlinks(execDir); err != nil { // as /proc/<pid>/cwd shows it
		return err
	}
	// kwok runs every exec on this host in execDir and leaves it running when its client goes: whatever
	// is still there at the end is ours to end.
	defer killIn(execDir)
	logFile := filepath.Join(tmp, "pod.log")
	logs, err := writeLogFile(logFile, int64(opts.logMB)<<20, termLogLine)
	if err != nil {
		return err
	}
	if _, err := kube.StartKwok(ctx, harness.WithKwokExec(execDir), harness.WithKwokLogs(logFile)); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(kube.RESTConfig())
	if err != nil {
		return err
	}
	if err := runningPod(ctx, cs); err != nil {
		return err
	}

	proc, err := startTerminalProcess(ctx, tmp, kube, opts.sessions)
	if err != nil {
		return err
	}
	defer proc.kill()
	baseURL := "http://" + proc.addr

	idle, err := measureIdleSessions(ctx, proc, baseURL, execDir, opts.sessions)
	if err != nil {
		return fmt.Errorf("idle sessions: %w", err)
	}
	echo, err := measureEcho(ctx, baseURL, kube.RESTConfig(), cs)
	if err != nil {
		return fmt.Errorf("keystroke echo: %w", err)
	}
	kc := filepath.Join(tmp, "terminal-kubeconfig")
	if err := os.WriteFile(kc, kube.AdminKubeconfig(), 0o600); err != nil {
		return err
	}
	thr, err := measureLogs(ctx, baseURL, cs, kc, logs)
	if err != nil {
		return fmt.Errorf("log throughput: %w", err)
	}

	fmt.Println()
	fmt.Fprintf(w, "terminal process (%d idle sessions, command=sh)\tVmRSS\tVmHWM\tper session\tlive heap at last GC\tgoal\tmet\t\n", opts.sessions)
	for _, r := range idle.rows {
		heap := "-"
		if r.heap >= 0 {
			heap = mb(r.heap)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, mb(r.rss), mb(r.hwm), r.perSession, heap, r.goal, r.met)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("%d sessions opened in %s (%d at once), each answered a command; %d host processes in kwok's exec dir with them open, %d after they exited\n\n",
		opts.sessions, idle.open.Round(time.Millisecond), termOpenConc, idle.hostProcs, idle.hostProcsAfter)

	fmt.Fprintf(w, "keystroke echo, %d single keystrokes (sh, TTY)\tp50\tp99\tmax\tadded p50\tadded p99\tgoal\tmet\t\n", termKeystrokes)
	fmt.Fprintf(w, "direct: client-go WebSocket executor to the apiserver (baseline)\t%s\t%s\t%s\t\t\t\t\t\n",
		fmtDuration(echo.direct.p50()), fmtDuration(percentile(echo.direct.d, 0.99)), fmtDuration(maxOf(echo.direct.d)))
	addP50, addP99 := echo.service.p50()-echo.direct.p50(), percentile(echo.service.d, 0.99)-percentile(echo.direct.d, 0.99)
	fmt.Fprintf(w, "kitefn: stdin frame → stdout frame through the terminal service\t%s\t%s\t%s\t%s\t%s\t<= 5 ms\t%s\t\n",
		fmtDuration(echo.service.p50()), fmtDuration(percentile(echo.service.d, 0.99)), fmtDuration(maxOf(echo.service.d)),
		fmtDuration(addP50), fmtDuration(addP99), yes(addP50 <= 5*time.Millisecond && addP99 <= 5*time.Millisecond))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println()

	fmt.Fprintf(w, "follow one pod's logs (%s, %d lines), median of %d\tMB/s\tp50 time\tbytes\tvs client-go\t\n",
		mb(logs.bytes), logs.lines, termLogRounds)
	baseRate := thr[0].rate()
	for _, t := range thr {
		fmt.Fprintf(w, "%s\t%.1f\t%s\t%d\t%.2fx\t\n", t.name, t.rate()/1e6, t.p50().Round(time.Millisecond), t.bytes, t.rate()/baseRate)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println("(KITEFN_LOGS_MAX_BYTES_PER_SECOND=1Gi for the run: its default, 1Mi, would cap the stream at 1 MiB/s)")
	return nil
}

// raiseNoFile raises this process's soft open-files limit to need (at most the hard limit), so the servers it
// starts inherit it.
func raiseNoFile(need uint64) (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if l.Cur < need {
		l.Cur = min(need, l.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, 0, fmt.Errorf("setrlimit NOFILE %d: %w", l.Cur, err)
		}
	}
	if l.Cur < need {
		return l.Cur, l.Max, fmt.Errorf("open files limit %d (hard %d) is below the %d the sessions need: run `ulimit -n %d` as root first",
			l.Cur, l.Max, need, need)
	}
	return l.Cur, l.Max, nil
}

// logFile is what writeLogFile wrote: the text's size as a reader receives it (lines and newlines) and its
// line count, the last line being termLastLine.
type logFile struct {
	bytes int64
	lines int
}

// writeLogFile writes about size bytes of CRI-format lines (`<RFC3339Nano> stdout F <text>`) of lineLen
// bytes of text each, ending with termLastLine.
func writeLogFile(path string, size int64, lineLen int) (logFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return logFile{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var out logFile
	var written int64
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	filler := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", lineLen/36+1)
	for i := 0; ; i++ {
		text := termLastLine
		if written < size {
			head := fmt.Sprintf("line %08d ", i)
			text = head + filler[:max(0, lineLen-len(head))]
		}
		n, err := fmt.Fprintf(bw, "%s stdout F %s\n", ts.Add(time.Duration(i)*time.Microsecond).Format("2006-01-02T15:04:05.000000000Z07:00"), text)
		if err != nil {
			_ = f.Close()
			return logFile{}, err
		}
		written += int64(n)
		out.bytes += int64(len(text)) + 1
		out.lines++
		if text == termLastLine {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		_ = f.Close()
		return logFile{}, err
	}
	return out, f.Close()
}

// runningPod makes the fake node and the pod every session execs into, and waits for it to run.
func runningPod(ctx context.Context, cs kubernetes.Interface) error {
	if _, err := cs.CoreV1().Nodes().Create(ctx, harness.FakeNode("bench-node"), metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: termNamespace}},
		metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cs.CoreV1().Pods(termNamespace).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: termPod},
		Spec: corev1.PodSpec{NodeName: "bench-node", Containers: []corev1.Container{{Name: "c", Image: "none"}}}},
		metav1.CreateOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, termWait, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(termNamespace).Get(ctx, termPod, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
}

// startTerminalProcess registers the apiserver as termCluster in a bbolt file (through a platform in this
// process, closed again) and runs the kitefn binary on it with FUNCTION_TARGET=terminal.
func startTerminalProcess(ctx context.Context, tmp string, kube *harness.Cluster, sessions int) (*process, error) {
	env := map[string]string{"KITEFN_STORE": "bbolt", "KITEFN_BBOLT_PATH": filepath.Join(tmp, "terminal.db"),
		"KITEFN_DATA_DIR": tmp, "KITEFN_IMPORT_KUBECONFIG": "false", "K_SINK": "", "KITEFN_PROMETHEUS_URLS": "",
		"KITEFN_ENCRYPTION_KEY": apitest.EncryptionKey, "KITEFN_LOG_LEVEL": "warn", "FUNCTION_TARGET": "terminal"}
	for k, v := range env {
		os.Setenv(k, v)
	}
	var rcfg runtime.Config
	if err := envconfig.Process("kitefn", &rcfg); err != nil {
		return nil, err
	}
	cfg, err := platform.Load()
	if err != nil {
		return nil, err
	}
	p, err := platform.New(ctx, cfg, rcfg, zap.NewNop().Sugar())
	if err != nil {
		return nil, err
	}
	sealed, err := p.Sealer.Seal(kube.AdminKubeconfig())
	if err == nil {
		_, err = p.Store.Create(ctx, &store.Cluster{Name: termCluster, Server: kube.URL, Kubeconfig: sealed,
			Prometheus: store.Prometheus{Status: store.PrometheusPending}})
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("registering the cluster: %w", err)
	}
	fmt.Println("building kitefn…")
	bin, err := goBuild(tmp, "kitefn-terminal", ".", "")
	if err != nil {
		return nil, err
	}
	// The bench measures the service, not the per-caller rate limit or the logs' per-stream cap; a session
	// that is closed ends at once (no reconnect grace keeping its process).
	for k, v := range map[string]string{"KITEFN_API_TOKENS": token, "KITEFN_RATE_LIMIT": "0",
		"KITEFN_TERMINAL_MAX_SESSIONS": strconv.Itoa(sessions + 10), "KITEFN_TERMINAL_RECONNECT_GRACE": "0s",
		"KITEFN_LOGS_MAX_BYTES_PER_SECOND": "1Gi",
		// The runtime's GC lines give the live heap beside the RSS.
		"GODEBUG": "gctrace=1"} {
		env[k] = v
	}
	var procEnv []string
	for k, v := range env {
		procEnv = append(procEnv, k+"="+v)
	}
	return startReady(bin, procEnv)
}

// procStatus reads VmRSS and VmHWM of pid, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseProcStatus(b)
}

// parseProcStatus reads VmRSS and VmHWM (kB) of a /proc/<pid>/status, in bytes.
func parseProcStatus(b []byte) (rss, hwm int64, err error) {
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected %q", key, val)
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("no VmRSS and VmHWM in the status")
	}
	return rss, hwm, nil
}

// watched is output that a waiter can wait on: a session's stdout, through kitefn or direct.
type watched struct {
	mu      sync.Mutex
	out     []byte
	ended   error // set when the stream ended
	changed chan struct{}
}

func newWatched() *watched { return &watched{changed: make(chan struct{}, 1)} }

func (w *watched) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.out = append(w.out, p...)
	w.mu.Unlock()
	w.poke()
	return len(p), nil
}

func (w *watched) end(err error) {
	w.mu.Lock()
	if w.ended == nil {
		w.ended = err
	}
	w.mu.Unlock()
	w.poke()
}

func (w *watched) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.out)
}

// wait returns once ok holds for the output from offset on, or the stream ended, or d passed.
func (w *watched) wait(offset int, d time.Duration, ok func(out []byte) bool) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		w.mu.Lock()
		met, ended := ok(w.out[min(offset, len(w.out)):]), w.ended
		tail := string(w.out[max(0, len(w.out)-200):])
		w.mu.Unlock()
		if met {
			return nil
		}
		if ended != nil {
			return fmt.Errorf("ended (%v) before the output expected; output ends %q", ended, tail)
		}
		select {
		case <-w.changed:
		case <-timer.C:
			return fmt.Errorf("not within %s; output ends %q", d, tail)
		}
	}
}

func contains(s string) func([]byte) bool {
	return func(b []byte) bool { return bytes.Contains(b, []byte(s)) }
}

// termSession is a pod terminal through kitefn: stdout collected by a reader that also answers the server's
// pings.
type termSession struct {
	conn *websocket.Conn
	out  *watched
	exit chan struct{} // closed on the exit frame
}

var errExited = errors.New("exit frame")

func openSession(ctx context.Context, base, query string) (*termSession, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/terminal/pods/" + termNamespace + "/" + termPod +
		"?cluster=" + termCluster + "&" + query
	d := websocket.Dialer{HandshakeTimeout: termWait}
	conn, res, err := d.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		if res != nil {
			b, _ := io.ReadAll(res.Body)
			return nil, fmt.Errorf("dial: %w: %d %s", err, res.StatusCode, b)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	s := &termSession{conn: conn, out: newWatched(), exit: make(chan struct{})}
	_ = conn.SetReadDeadline(time.Now().Add(termWait))
	var hello wire.Frame
	if err := conn.ReadJSON(&hello); err != nil || hello.Type != wire.Connected {
		_ = conn.Close()
		return nil, fmt.Errorf("first frame %+v (%v), want connected", hello, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go s.read()
	if err := s.send(wire.Frame{Type: wire.Resize, Cols: 120, Rows: 40}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *termSession) read() {
	for {
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			s.out.end(err)
			return
		}
		var f wire.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			s.out.end(fmt.Errorf("not a frame: %q", b))
			return
		}
		switch f.Type {
		case wire.Stdout, wire.Stderr:
			_, _ = s.out.Write([]byte(f.Data))
		case wire.Exit:
			close(s.exit)
			s.out.end(errExited)
		case wire.Error:
			s.out.end(fmt.Errorf("error frame: %s", f.Data))
		}
	}
}

func (s *termSession) send(f wire.Frame) error { return s.conn.WriteJSON(f) }

// stdin types text and waits for want in the output that follows.
func (s *termSession) stdin(text, want string) error {
	off := s.out.size()
	if err := s.send(wire.Frame{Type: wire.Stdin, Data: text}); err != nil {
		return err
	}
	return s.out.wait(off, termWait, contains(want))
}

// quit ends the shell (exit, then the exit frame) and closes the socket.
func (s *termSession) quit() error {
	defer s.conn.Close()
	if err := s.send(wire.Frame{Type: wire.Stdin, Data: "\x15exit\n"}); err != nil {
		return err
	}
	select {
	case <-s.exit:
		return nil
	case <-time.After(termWait):
		return errors.New("no exit frame after exit")
	}
}

type rssRow struct {
	name, perSession, goal, met string
	rss, hwm                    int64
	heap                        int64 // live heap after the last GC before the reading (gctrace), -1 if none
}

var gcLine = regexp.MustCompile(`(?m)^gc \d+ @.* (\d+)->(\d+)->(\d+) MB`)

// lastGCHeap reads the live heap after the process's last GC from its GODEBUG=gctrace=1 output (the third
// figure of "A->B->C MB"), in bytes.
func lastGCHeap(out string) (int64, bool) {
	m := gcLine.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return -1, false
	}
	n, err := strconv.ParseInt(m[len(m)-1][3], 10, 64)
	return n << 20, err == nil
}

type idleResult struct {
	rows                      []rssRow
	open                      time.Duration
	hostProcs, hostProcsAfter int
}

// measureIdleSessions opens n idle sh sessions on the one kitefn process and reads its RSS before, with them
// and after they ended. A warm-up session first makes the cluster's client, a one-time cost.
func measureIdleSessions(ctx context.Context, proc *process, baseURL, execDir string, n int) (idleResult, error) {
	var res idleResult
	pid := proc.cmd.Process.Pid
	row := func(name string) (rssRow, error) {
		rss, hwm, err := procStatus(pid)
		heap, _ := lastGCHeap(proc.out.String())
		return rssRow{name: name, rss: rss, hwm: hwm, heap: heap}, err
	}
	start, err := row("started, no session")
	if err != nil {
		return res, err
	}
	warm, err := openSession(ctx, baseURL, "command=sh")
	if err == nil {
		err = warm.stdin("echo warm-$((40+2))\n", "warm-42")
	}
	if err == nil {
		err = warm.quit()
	}
	if err != nil {
		return res, fmt.Errorf("warm-up session: %w", err)
	}
	before, err := row("before: after one warm-up session ended")
	if err != nil {
		return res, err
	}

	fmt.Printf("opening %d idle pod-terminal sessions (command=sh)…\n", n)
	sessions := make([]*termSession, n)
	t0 := time.Now()
	err = parallel(n, termOpenConc, func(i int) error {
		s, err := openSession(ctx, baseURL, "command=sh")
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		sessions[i] = s
		// The prompt: the exec runs.
		if err := s.out.wait(0, termWait, func(b []byte) bool { return len(b) > 0 }); err != nil {
			return fmt.Errorf("session %d: no prompt: %w", i, err)
		}
		return nil
	})
	res.open = time.Since(t0)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				_ = s.conn.Close()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	with, err := row(fmt.Sprintf("after: %d sessions open, idle", n))
	if err != nil {
		return res, err
	}
	res.hostProcs = countIn(execDir)
	// Every session still answers: the figure is of n live terminals.
	if err := parallel(n, termOpenConc, func(i int) error {
		return sessions[i].stdin(fmt.Sprintf("echo live-$((%d+1))\n", i), fmt.Sprintf("live-%d", i+1))
	}); err != nil {
		return res, err
	}
	if err := parallel(n, termOpenConc, func(i int) error { return sessions[i].quit() }); err != nil {
		return res, err
	}
	ended, err := row("after the sessions ended")
	if err != nil {
		return res, err
	}
	res.hostProcsAfter = countIn(execDir)

	per := float64(with.rss-before.rss) / float64(n)
	with.perSession = fmt.Sprintf("%.0f kB", per/1e3)
	with.goal = "<= 200 MB"
	with.met = yes(with.rss <= 200e6)
	res.rows = []rssRow{start, before, with, ended}
	return res, nil
}

// parallel runs f(0..n-1), conc at a time, and returns the first error.
func parallel(n, conc int, f func(i int) error) error {
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// inDir lists the pids of this user's processes whose working directory is dir.
func inDir(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func countIn(dir string) int { return len(inDir(dir)) }

// killIn ends the processes kwok started in dir (exec commands outlive their clients).
func killIn(dir string) {
	for _, pid := range inDir(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

type echoResult struct{ service, direct samples }

// measureEcho times single keystrokes until their echo, through kitefn and through a direct exec, in
// alternating blocks so that both see the same machine.
func measureEcho(ctx context.Context, baseURL string, rc *rest.Config, cs kubernetes.Interface) (echoResult, error) {
	fmt.Printf("keystroke echo: %d keystrokes through kitefn, %d direct…\n", termKeystrokes, termKeystrokes)
	var res echoResult
	svc, err := openSession(ctx, baseURL, "command=sh")
	if err != nil {
		return res, err
	}
	defer svc.conn.Close()
	if err := svc.out.wait(0, termWait, func(b []byte) bool { return len(b) > 0 }); err != nil {
		return res, fmt.Errorf("kitefn session: no prompt: %w", err)
	}
	direct, err := startDirectExec(ctx, rc, cs)
	if err != nil {
		return res, err
	}
	defer direct.close()

	svcKey := func(ch string) error { return svc.send(wire.Frame{Type: wire.Stdin, Data: ch}) }
	dirKey := func(ch string) error { _, err := io.WriteString(direct.stdin, ch); return err }
	const block = 50
	for b := 0; b < termKeystrokes/block; b++ {
		for _, path := range []struct {
			out  *watched
			send func(string) error
			s    *samples
		}{{svc.out, svcKey, &res.service}, {direct.out, dirKey, &res.direct}} {
			for k := 0; k < block; k++ {
				ch := string(rune('a' + (b*block+k)%26))
				off := path.out.size()
				t0 := time.Now()
				if err := path.send(ch); err != nil {
					return res, err
				}
				if err := path.out.wait(off, 10*time.Second, contains(ch)); err != nil {
					return res, fmt.Errorf("echo of %q: %w", ch, err)
				}
				path.s.d = append(path.s.d, time.Since(t0))
			}
		}
	}
	if err := svc.quit(); err != nil {
		return res, fmt.Errorf("kitefn session: %w", err)
	}
	return res, direct.quit()
}

// directExec is a bare client-go exec with a TTY into the pod: the remotecommand WebSocket executor to the
// apiserver.
type directExec struct {
	stdin  *io.PipeWriter
	out    *watched
	done   chan error
	cancel context.CancelFunc
}

func startDirectExec(ctx context.Context, rc *rest.Config, cs kubernetes.Interface) (*directExec, error) {
	req := cs.CoreV1().RESTClient().Post().Namespace(termNamespace).Resource("pods").Name(termPod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "c", Command: []string{"sh"}, Stdin: true, Stdout: true, TTY: true},
			scheme.ParameterCodec)
	ex, err := remotecommand.NewWebSocketExecutor(rc, http.MethodGet, req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("direct exec: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	d := &directExec{stdin: pw, out: newWatched(), done: make(chan error, 1), cancel: cancel}
	go func() {
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: pr, Stdout: d.out, Tty: true})
		d.out.end(fmt.Errorf("stream ended: %v", err))
		d.done <- err
	}()
	if err := d.out.wait(0, termWait, func(b []byte) bool { return len(b) > 0 }); err != nil {
		d.close()
		return nil, fmt.Errorf("direct exec: no prompt: %w", err)
	}
	return d, nil
}

func (d *directExec) quit() error {
	if _, err := io.WriteString(d.stdin, "\x15exit\n"); err != nil {
		return err
	}
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("direct exec: %w", err)
		}
		return nil
	case <-time.After(termWait):
		return errors.New("direct exec: no end after exit")
	}
}

func (d *directExec) close() {
	d.cancel()
	_ = d.stdin.Close()
}

// throughput is one log transport's rounds: each the time from the request to the last line.
type throughput struct {
	name  string
	d     []time.Duration
	bytes int64
}

func (t throughput) p50() time.Duration { return median(t.d) }
func (t throughput) rate() float64      { return float64(t.bytes) / t.p50().Seconds() }

// measureLogs follows the pod's logs until the last line, termLogRounds times per transport, alternating.
func measureLogs(ctx context.Context, baseURL string, cs kubernetes.Interface, kc string, want logFile) ([]throughput, error) {
	fmt.Printf("following %s of logs, %d rounds per transport…\n", mb(want.bytes), termLogRounds)
	path := "/api/v1/logs/" + termNamespace + "/" + termPod + "?follow=true"
	variants := []struct {
		name string
		run  func(context.Context) (int64, int, error)
	}{
		{"client-go GetLogs(follow) from the apiserver (baseline)", func(ctx context.Context) (int64, int, error) {
			rc, err := cs.CoreV1().Pods(termNamespace).GetLogs(termPod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
			if err != nil {
				return 0, 0, err
			}
			defer rc.Close()
			return readLines(rc)
		}},
		{"kitefn GET " + path + " (plain text)", func(ctx context.Context) (int64, int, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("X-Cluster-Name", termCluster)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, 0, err
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(res.Body)
				return 0, 0, fmt.Errorf("%d %s", res.StatusCode, b)
			}
			return readLines(res.Body)
		}},
		{"kitefn, the same over WebSocket (log frames)", func(ctx context.Context) (int64, int, error) {
			u := "ws" + strings.TrimPrefix(baseURL, "http") + path + "&cluster=" + termCluster
			conn, _, err := websocket.DefaultDialer.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + token}})
			if err != nil {
				return 0, 0, err
			}
			defer conn.Close()
			var n int64
			lines := 0
			for {
				var f wire.Frame
				if err := conn.ReadJSON(&f); err != nil {
					return n, lines, err
				}
				if f.Type != wire.Log {
					return n, lines, fmt.Errorf("a %s frame: %s", f.Type, f.Data)
				}
				n += int64(len(f.Data)) + 1
				lines++
				if f.Data == termLastLine {
					return n, lines, nil
				}
			}
		}},
	}
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		variants = append(variants, struct {
			name string
			run  func(context.Context) (int64, int, error)
		}{"kubectl logs -f", func(ctx context.Context) (int64, int, error) {
			cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kc, "logs", "-f", "-n", termNamespace, termPod)
			out, err := cmd.StdoutPipe()
			if err != nil {
				return 0, 0, err
			}
			if err := cmd.Start(); err != nil {
				return 0, 0, err
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			return readLines(out)
		}})
	} else {
		fmt.Println("kubectl is not on the PATH: its row is left out")
	}
	out := make([]throughput, len(variants))
	for round := 0; round < termLogRounds; round++ {
		for i, v := range variants {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			t0 := time.Now()
			n, lines, err := v.run(rctx)
			d := time.Since(t0)
			cancel()
			if err == nil && (n != want.bytes || lines != want.lines) {
				err = fmt.Errorf("read %d bytes in %d lines up to the last line, want %d in %d", n, lines, want.bytes, want.lines)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.name, err)
			}
			out[i].name, out[i].bytes = v.name, n
			out[i].d = append(out[i].d, d)
		}
	}
	return out, nil
}

// readLines reads lines until termLastLine: the bytes (with newlines) and lines read.
func readLines(r io.Reader) (int64, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var n int64
	lines := 0
	for sc.Scan() {
		n += int64(len(sc.Bytes())) + 1
		lines++
		if sc.Text() == termLastLine {
			return n, lines, nil
		}
	}
	if err := sc.Err(); err != nil {
		return n, lines, err
	}
	return n, lines, errors.New("the stream ended before the last line")
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

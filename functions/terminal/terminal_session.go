package terminal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// The session layer: every pod terminal (and node shell) is a session with an id that outlives its socket.
// A dropped socket detaches; the process keeps running for the reconnect grace, its recent output kept in a
// bounded buffer, and `?session=<id>` from the same caller re-attaches to it and replays that output. After the
// grace, the session's context is cancelled, which ends the process.
//
// The API the node-shell route reuses:
//
//	f.terminals.open(w, r, target, start, onEnd)
//
// open does everything after the route's own checks (role, scope, target): it refuses a plain HTTP request
// (400) and a full instance (503) before the upgrade, upgrades (the Origin check), re-attaches for
// ?session=, or makes a new session: it records the audit start entry, sends `connected` with the session id,
// and runs start in the background with the session's context. start runs the process to its end, reading
// keystrokes from Pipes.Stdin, writing output to Pipes.Stdout, taking sizes from Pipes.Sizes, and may send
// progress (Pipes.Info, to whichever socket is attached); it returns the exit code, or an error for an
// `error` frame (an *httpapi.Error's message is shown as is). When start returns the attached socket gets
// `exit` (or `error`) and close 1000, the audit end entry is recorded with the duration, and onEnd runs
// (delete a node-shell pod there). start must end when its context is cancelled: that is how the grace
// period, SIGTERM and the idle limits end a session.

// Pipes are what a session hands the process it runs.
type Pipes struct {
	Stdin  io.Reader                        // keystrokes from whichever socket is attached
	Stdout io.Writer                        // output: sent as stdout frames and kept for a replay
	Sizes  remotecommand.TerminalSizeQueue  // resize frames; Next returns nil once the session ended
	Info   func(format string, args ...any) // an info frame to the attached socket, if any
}

// Starter runs a session's process until it ends (see open).
type Starter func(ctx context.Context, p Pipes) (code int, err error)

// Target is what a session is attached to, for audit entries and the session's own checks.
type Target struct {
	Cluster   string // the cluster's name
	Resource  string // audit resource: pods, nodes
	Namespace string
	Name      string // pod or node
	Container string
	Command   string // as shown in the audit detail
}

// session is one running process and the socket (if any) attached to it.
type session struct {
	id     string
	owner  string // access.Who of the caller: only they may re-attach
	target Target
	begun  time.Time
	cancel context.CancelFunc

	stdinW *io.PipeWriter
	sizes  *sizeQueue

	mu      sync.Mutex
	sock    *Socket // nil while detached
	gen     int     // bumped on every attach, so a stale socket's reader does not detach the new one
	buf     []byte  // recent output, at most maxReplay bytes (trimmed when it reaches twice that)
	readBuf []byte  // ReadFrom's buffer, made once
	carry   []byte  // an incomplete UTF-8 sequence held for the next write
	grace   *time.Timer
	ended   bool
	result  wire.Frame // the exit or error frame, once ended
	ownerCt context.Context
}

// terminals holds the sessions of this instance.
type terminals struct {
	cfg   TerminalConfig
	audit Recorder

	mu       sync.Mutex
	sessions map[string]*session
	closing  bool
	wg       sync.WaitGroup
}

func newTerminals(cfg TerminalConfig, audit Recorder) *terminals {
	return &terminals{cfg: cfg, audit: audit, sessions: map[string]*session{}}
}

// open serves a terminal socket: see the comment at the top of this file.
func (t *terminals) open(w http.ResponseWriter, r *http.Request, target Target, start Starter, onEnd func()) {
	if !websocket.IsWebSocketUpgrade(r) {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"%s is a WebSocket endpoint: connect with Upgrade: websocket (see the README, \"Terminal\")", r.URL.Path))
		return
	}
	if !t.cfg.checkOrigin(w, r) {
		return
	}
	resume := r.URL.Query().Get("session")
	t.mu.Lock()
	full, closing := len(t.sessions) >= t.cfg.MaxSessions, t.closing
	t.mu.Unlock()
	if closing || (full && resume == "") {
		w.Header().Set("Retry-After", "5")
		msg := fmt.Sprintf("this instance holds its maximum of %d terminal sessions (KITEFN_TERMINAL_MAX_SESSIONS); retry shortly",
			t.cfg.MaxSessions)
		if closing {
			msg = "this instance is shutting down; retry shortly"
		}
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "%s", msg))
		return
	}
	caller, _ := access.CallerFrom(r.Context())
	sock := t.cfg.upgrade(w, r)
	if sock == nil {
		return
	}
	if resume != "" {
		t.reattach(r.Context(), sock, access.Who(caller), resume, target)
		return
	}
	t.begin(r.Context(), sock, access.Who(caller), target, start, onEnd)
}

// begin makes a new session over sock and runs start.
func (t *terminals) begin(rctx context.Context, sock *Socket, owner string, target Target, start Starter, onEnd func()) {
	id := newSessionID()
	// The session outlives the request: its context keeps the request's values (caller, request id, logger)
	// for the audit and the cluster client, without its cancellation.
	ctx, cancel := context.WithCancel(context.WithoutCancel(rctx))
	pr, pw := io.Pipe()
	s := &session{id: id, owner: owner, target: target, begun: time.Now(), cancel: cancel,
		stdinW: pw, sizes: newSizeQueue(ctx), ownerCt: ctx}
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		cancel()
		sock.GoingAway("the terminal service is shutting down")
		return
	}
	if len(t.sessions) >= t.cfg.MaxSessions { // open checked before the upgrade; concurrent opens may have won
		t.mu.Unlock()
		cancel()
		_ = sock.Send(wire.Frame{Type: wire.Error, Data: fmt.Sprintf(
			"this instance holds its maximum of %d terminal sessions (KITEFN_TERMINAL_MAX_SESSIONS); retry shortly",
			t.cfg.MaxSessions)})
		sock.Close(websocket.CloseTryAgainLater, "full")
		return
	}
	t.sessions[id] = s
	t.wg.Add(1)
	t.mu.Unlock()

	t.audit.Record(ctx, store.AuditEntry{Verb: "exec", Resource: target.Resource, Cluster: target.Cluster,
		Namespace: target.Namespace, Name: target.Name, Outcome: http.StatusSwitchingProtocols,
		Detail: "session " + id + " started" + target.detail()})
	t.attach(s, sock, false)

	go func() {
		defer t.wg.Done()
		code, err := start(ctx, Pipes{Stdin: pr, Stdout: s, Sizes: s.sizes, Info: s.info})
		t.finish(s, code, err)
		if onEnd != nil {
			onEnd()
		}
	}()
}

// detail is the audit detail of the target: container and command.
func (tg Target) detail() string {
	out := ""
	if tg.Container != "" {
		out += ", container " + tg.Container
	}
	if tg.Command != "" {
		cmd := tg.Command
		if len(cmd) > 256 {
			cmd = cmd[:256] + "…"
		}
		out += ", command " + strconv.Quote(cmd)
	}
	return out
}

// reattach attaches sock to the caller's session id, or says it is gone.
func (t *terminals) reattach(ctx context.Context, sock *Socket, owner, id string, target Target) {
	t.mu.Lock()
	s := t.sessions[id]
	t.mu.Unlock()
	// Another caller's session, or one of another target, reads as unknown: ids are not probed.
	if s == nil || s.owner != owner || s.target.Resource != target.Resource || s.target.Cluster != target.Cluster ||
		s.target.Namespace != target.Namespace || s.target.Name != target.Name {
		_ = sock.Send(wire.Frame{Type: wire.Error, Session: id, Data: fmt.Sprintf(
			"terminal session %q is gone: it ended, or was not re-attached within %s; open a new one", id,
			t.cfg.ReconnectGrace)})
		sock.Close(websocket.CloseNormalClosure, "session gone")
		return
	}
	logger(ctx).Infow("terminal session re-attached", "session", id)
	t.attach(s, sock, true)
}

// attach makes sock the session's socket (closing a previous one), sends connected and, on a re-attach, the
// recent output; then reads the socket until it drops.
func (t *terminals) attach(s *session, sock *Socket, replay bool) {
	s.mu.Lock()
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	old := s.sock
	s.sock = sock
	s.gen++
	gen := s.gen
	hello := wire.Frame{Type: wire.Connected, Session: s.id, Namespace: s.target.Namespace, Container: s.target.Container,
		Data: fmt.Sprintf("session %s: %s", s.id, s.target.describe())}
	if replay {
		hello.Data += " (re-attached)"
	}
	err := sock.Send(hello)
	if err == nil && replay && len(s.buf) > 0 {
		kept := s.buf
		if len(kept) > maxReplay {
			kept = kept[len(kept)-maxReplay:]
		}
		err = sock.Send(wire.Frame{Type: wire.Stdout, Data: string(kept)})
	}
	ended, result := s.ended, s.result
	s.mu.Unlock()
	if old != nil {
		_ = old.Send(wire.Frame{Type: wire.Info, Data: "the session was attached from another connection"})
		old.Close(websocket.CloseNormalClosure, "attached elsewhere")
	}
	if ended {
		_ = sock.Send(result)
		sock.Close(websocket.CloseNormalClosure, "")
		t.remove(s)
		return
	}
	if err != nil {
		t.detach(s, gen, sock)
		return
	}
	go t.read(s, sock, gen)
}

// read forwards the socket's frames to the process until the socket drops, then detaches.
func (t *terminals) read(s *session, sock *Socket, gen int) {
	for {
		f, err := sock.Receive(s.ownerCt)
		if err != nil {
			if !IsClosed(err) {
				// Silent past the timeout (or a broken connection): say so if it still listens.
				sock.Close(websocket.CloseNormalClosure, "silent for "+t.cfg.SilenceTimeout.String())
			}
			t.detach(s, gen, sock)
			return
		}
		switch f.Type {
		case wire.Stdin:
			if _, err := io.WriteString(s.stdinW, f.Data); err != nil {
				return // the process ended: finish closes the socket
			}
		case wire.Resize:
			if f.Cols > 0 && f.Rows > 0 {
				s.sizes.push(f.Cols, f.Rows)
			}
		default:
			_ = sock.Send(wire.Frame{Type: wire.Error, Data: fmt.Sprintf(
				"unknown frame type %q: send stdin, resize or ping", f.Type)})
		}
	}
}

// detach drops sock from the session (if it is still the attached one) and starts the grace period.
func (t *terminals) detach(s *session, gen int, sock *Socket) {
	sock.Close(websocket.CloseNormalClosure, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.sock == nil {
		return
	}
	s.sock = nil
	if s.ended {
		go t.remove(s)
		return
	}
	s.grace = time.AfterFunc(t.cfg.ReconnectGrace, func() {
		logger(s.ownerCt).Infow("terminal session not re-attached within the grace period: ending it",
			"session", s.id, "grace", t.cfg.ReconnectGrace.String())
		s.cancel()
		t.remove(s)
	})
}

// finish is the process's end: the attached socket gets the exit or error frame and close 1000; a detached
// session keeps the frame for a re-attach within the grace.
func (t *terminals) finish(s *session, code int, err error) {
	result := wire.Frame{Type: wire.Exit, Session: s.id, Code: &code}
	if err != nil {
		result = wire.Frame{Type: wire.Error, Session: s.id, Data: httpapi.AsError(err).Message}
		if e := httpapi.AsError(err); e.Status == http.StatusInternalServerError {
			result.Data = err.Error()
		}
	}
	s.stdinW.Close() // the exec's stdin copy sees EOF, not an error
	s.mu.Lock()
	s.flushCarry()
	s.ended, s.result = true, result
	sock := s.sock
	s.sock = nil
	s.gen++
	s.mu.Unlock()
	s.cancel()
	outcome := "exit " + strconv.Itoa(code)
	if err != nil {
		outcome = "error: " + result.Data
	}
	t.audit.Record(s.ownerCt, store.AuditEntry{Verb: "exec", Resource: s.target.Resource, Cluster: s.target.Cluster,
		Namespace: s.target.Namespace, Name: s.target.Name, Outcome: http.StatusSwitchingProtocols,
		Detail: "session " + s.id + " ended (" + outcome + ")" + s.target.detail() + ", duration " +
			time.Since(s.begun).Round(time.Millisecond).String()})
	if sock != nil {
		_ = sock.Send(result)
		sock.Close(websocket.CloseNormalClosure, "")
		t.remove(s)
	} else {
		// Detached: the grace timer (or a re-attach) removes it; keep it that long for the exit frame.
		s.mu.Lock()
		if s.grace == nil {
			go t.remove(s)
		}
		s.mu.Unlock()
	}
}

func (t *terminals) remove(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[s.id] == s {
		delete(t.sessions, s.id)
	}
}

// shutdown is SIGTERM: every attached socket is told why and closed with 1001, every session ends.
func (t *terminals) shutdown(why string) {
	t.mu.Lock()
	t.closing = true
	all := make([]*session, 0, len(t.sessions))
	for _, s := range t.sessions {
		all = append(all, s)
	}
	t.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		sock := s.sock
		s.sock = nil
		s.gen++
		if s.grace != nil {
			s.grace.Stop()
		}
		s.mu.Unlock()
		if sock != nil {
			sock.GoingAway(why)
		}
		s.cancel()
		t.remove(s)
	}
}

// wait blocks until every session's process returned, or ctx ends.
func (t *terminals) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("terminal sessions still ending: %w", ctx.Err())
	}
}

// Write is the process's output: kept for a replay (the last maxReplay bytes) and sent to the attached socket.
// A write never fails: a socket that cannot take it is dropped and the session goes on detached.
func (s *session) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := p
	if len(s.carry) > 0 {
		data = append(s.carry, p...)
		s.carry = nil
	}
	// Frames carry text: hold back an incomplete UTF-8 sequence at the end until the next write completes it.
	if cut := incompleteTail(data); cut > 0 {
		s.carry = append([]byte(nil), data[len(data)-cut:]...)
		data = data[:len(data)-cut]
	}
	s.emit(data)
	return len(p), nil
}

// ReadFrom lets the exec's output copy (io.Copy) read into a small buffer of the session's rather than the 32 KiB
// one io.Copy would hold for each idle session: terminal output comes in small reads.
func (s *session) ReadFrom(r io.Reader) (int64, error) {
	if s.readBuf == nil { // one output copy at a time: the exec's
		s.readBuf = make([]byte, 2048)
	}
	buf := s.readBuf
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			total += int64(n)
			_, _ = s.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (s *session) flushCarry() {
	if len(s.carry) > 0 {
		s.emit(s.carry)
		s.carry = nil
	}
}

// emit keeps and sends data; s.mu is held.
func (s *session) emit(data []byte) {
	if len(data) == 0 {
		return
	}
	s.buf = append(s.buf, data...)
	// Trimmed only past twice the bound, in place: busy output copies the kept bytes once per maxReplay written,
	// not on every write.
	if len(s.buf) > 2*maxReplay {
		n := copy(s.buf, s.buf[len(s.buf)-maxReplay:])
		s.buf = s.buf[:n]
	}
	if s.sock != nil {
		if err := s.sock.Send(wire.Frame{Type: wire.Stdout, Data: string(data)}); err != nil {
			// The reader sees the broken socket too and detaches it.
			s.sock.Close(websocket.CloseGoingAway, "")
		}
	}
}

// info sends an info frame to the attached socket.
func (s *session) info(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sock != nil {
		_ = s.sock.Send(wire.Frame{Type: wire.Info, Data: fmt.Sprintf(format, args...)})
	}
}

// maxReplay is how much recent output a session keeps for a re-attach (a few screens).
const maxReplay = 64 << 10

// incompleteTail is the length of an incomplete UTF-8 sequence ending b (0 when b ends on a boundary or with
// bytes that are invalid anyway).
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

func (tg Target) describe() string {
	switch tg.Resource {
	case "nodes":
		return "node " + tg.Name + " of cluster " + tg.Cluster
	}
	out := "pod " + tg.Namespace + "/" + tg.Name
	if tg.Container != "" {
		out += ", container " + tg.Container
	}
	return out + " of cluster " + tg.Cluster
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sizeQueue is the TerminalSizeQueue of a session: the latest resize wins, Next ends with the session.
type sizeQueue struct {
	ctx context.Context
	ch  chan remotecommand.TerminalSize
}

func newSizeQueue(ctx context.Context) *sizeQueue {
	return &sizeQueue{ctx: ctx, ch: make(chan remotecommand.TerminalSize, 1)}
}

func (q *sizeQueue) push(cols, rows uint16) {
	sz := remotecommand.TerminalSize{Width: cols, Height: rows}
	for {
		select {
		case q.ch <- sz:
			return
		default:
			select { // full: drop the stale size and retry
			case <-q.ch:
			default:
			}
		}
	}
}

// Next blocks for the next size; nil (the end of resizing) once the session ended.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case sz := <-q.ch:
		return &sz
	case <-q.ctx.Done():
		return nil
	}
}

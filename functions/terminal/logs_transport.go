package terminal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kitefn/kitefn/functions/terminal/wire"
)

// logWriter is one wire form of a log stream: WebSocket frames, SSE events or plain text lines.
type logWriter interface {
	write(f wire.Frame) error
	flush() error
	keepalive() error
	// goingAway tells the client the instance is shutting down and why.
	goingAway(why string)
	// end closes the answer; done is true when the logs ended by themselves (not the client, not shutdown).
	end(done bool)
}

const shutdownMessage = "kitefn is shutting down (a restart or a rollout): reconnect to go on following the logs"

// transportLogs answers in the form the request asks for (an Upgrade: WebSocket; Accept: text/event-stream:
// SSE; else plain text) and pumps the session's frames into it, flushing whenever no frame is waiting.
func (f *Function) transportLogs(w http.ResponseWriter, r *http.Request, sess *logSession) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var out logWriter
	switch {
	case websocket.IsWebSocketUpgrade(r):
		sock := f.cfg.WSConfig.upgrade(w, r)
		if sock == nil {
			return
		}
		out = wsLogs{sock}
		go func() { // reads keep the socket alive (pongs, client pings) and see it close
			defer cancel()
			for {
				if _, err := sock.Receive(ctx); err != nil {
					return
				}
			}
		}()
	case strings.Contains(r.Header.Get("Accept"), "text/event-stream"):
		out = newSSELogs(w)
	default:
		out = newPlainLogs(w, sess.prefix)
	}

	frames := make(chan wire.Frame, 64)
	go sess.run(ctx, frames)
	defer func() { // every stream and the watch end before the handler does
		cancel()
		for range frames {
		}
	}()
	tick := time.NewTicker(f.cfg.WSConfig.PingInterval)
	defer tick.Stop()
	for {
		select {
		case fr, ok := <-frames:
			if !ok {
				out.end(true)
				return
			}
			if err := out.write(fr); err != nil {
				out.end(false)
				return
			}
			if len(frames) == 0 {
				if err := out.flush(); err != nil {
					out.end(false)
					return
				}
			}
		case <-tick.C:
			if err := out.keepalive(); err != nil {
				out.end(false)
				return
			}
		case <-f.logs.shutdown:
			out.goingAway(shutdownMessage)
			return
		case <-ctx.Done():
			out.end(false)
			return
		}
	}
}

// wsLogs sends each frame as a WebSocket text frame; the socket keeps itself alive.
type wsLogs struct{ s *Socket }

func (w wsLogs) write(f wire.Frame) error { return w.s.Send(f) }
func (w wsLogs) flush() error             { return nil }
func (w wsLogs) keepalive() error         { return nil }
func (w wsLogs) goingAway(why string)     { w.s.GoingAway(why) }
func (w wsLogs) end(done bool) {
	if done {
		w.s.Close(websocket.CloseNormalClosure, "end of the logs")
		return
	}
	w.s.Close(websocket.CloseNormalClosure, "")
}

// httpLogs is the streaming HTTP answer under SSE and plain text.
type httpLogs struct {
	w  io.Writer
	rc *http.ResponseController
}

func newHTTPLogs(w http.ResponseWriter, contentType string) httpLogs {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // nginx-style proxies would hold the stream back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client sees the answer start before the first line
	return httpLogs{w: w, rc: rc}
}

func (h httpLogs) flush() error { return h.rc.Flush() }

// sseLogs writes `event: <type>` / `data: <frame JSON>` events, and a comment as keepalive.
type sseLogs struct{ httpLogs }

func newSSELogs(w http.ResponseWriter) sseLogs { return sseLogs{newHTTPLogs(w, "text/event-stream")} }

func (s sseLogs) write(f wire.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding a %s event: %w", f.Type, err)
	}
	_, err = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", f.Type, b)
	return err
}

func (s sseLogs) keepalive() error {
	if _, err := io.WriteString(s.w, ": keepalive\n\n"); err != nil {
		return err
	}
	return s.flush()
}

func (s sseLogs) goingAway(why string) {
	_ = s.write(wire.Frame{Type: wire.Info, Data: why})
	_ = s.flush()
}

func (s sseLogs) end(bool) {}

// plainLogs writes the lines, `[pod/container] ` first when there is more than one stream, and what is not
// a line as `[kitefn] <type>: <text>`.
type plainLogs struct {
	httpLogs
	prefix bool
}

func newPlainLogs(w http.ResponseWriter, prefix bool) plainLogs {
	return plainLogs{newHTTPLogs(w, "text/plain; charset=utf-8"), prefix}
}

func (p plainLogs) write(f wire.Frame) error {
	var err error
	switch {
	case f.Type != wire.Log:
		_, err = fmt.Fprintf(p.w, "[kitefn] %s: %s\n", f.Type, f.Data)
	case p.prefix:
		_, err = fmt.Fprintf(p.w, "[%s/%s] %s\n", f.Pod, f.Container, f.Data)
	default:
		_, err = fmt.Fprintf(p.w, "%s\n", f.Data)
	}
	return err
}

func (p plainLogs) keepalive() error { return nil } // nothing can be written between lines of plain text

func (p plainLogs) goingAway(why string) {
	_ = p.write(wire.Frame{Type: wire.Info, Data: why})
	_ = p.flush()
}

func (p plainLogs) end(bool) {}

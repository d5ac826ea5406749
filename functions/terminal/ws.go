package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/httpapi"
)

// WSConfig is how every WebSocket of the service behaves.
type WSConfig struct {
	// PingInterval is how often the server pings a socket (a WebSocket ping control frame); SilenceTimeout
	// closes a socket from which nothing (a frame, a pong, a ping) arrived for that long.
	PingInterval   time.Duration `envconfig:"TERMINAL_PING_INTERVAL" default:"30s"`
	SilenceTimeout time.Duration `envconfig:"TERMINAL_SILENCE_TIMEOUT" default:"60s"`
	// Origins may open sockets besides the service's own origin (browsers send Origin; other clients
	// usually none, which is allowed). Exact scheme://host[:port] entries; KITEFN_CORS_ORIGINS is not
	// reused because a page allowed to call the API is not necessarily allowed to open shells.
	Origins []string `envconfig:"TERMINAL_ORIGINS"`

	// writeBuffers lends sockets a write buffer only while they write: a thousand idle sessions hold none.
	writeBuffers *sync.Pool
}

func (c *WSConfig) check() error {
	if c.PingInterval <= 0 || c.SilenceTimeout <= c.PingInterval {
		return fmt.Errorf("KITEFN_TERMINAL_PING_INTERVAL (%s) must be positive and below KITEFN_TERMINAL_SILENCE_TIMEOUT (%s)",
			c.PingInterval, c.SilenceTimeout)
	}
	origins, err := httpapi.ParseOrigins(c.Origins)
	if err != nil {
		return fmt.Errorf("KITEFN_TERMINAL_ORIGINS: %w", err)
	}
	c.Origins = origins
	c.writeBuffers = &sync.Pool{}
	return nil
}

// originAllowed admits no Origin (a non-browser client), the request's own host, and the allow-list.
func (c *WSConfig) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.Contains(c.Origins, strings.ToLower(u.Scheme+"://"+u.Host))
}

// checkOrigin answers 403 (before any upgrade) for an Origin not allowed; false means answered.
func (c *WSConfig) checkOrigin(w http.ResponseWriter, r *http.Request) bool {
	if c.originAllowed(r) {
		return true
	}
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
		"origin %q may not open terminal or log sockets (KITEFN_TERMINAL_ORIGINS)", r.Header.Get("Origin")))
	return false
}

// Socket is one upgraded connection speaking wire.Frame: writes are serialised, reads extend the silence
// deadline, and the server pings every PingInterval.
type Socket struct {
	conn   *websocket.Conn
	cfg    WSConfig
	mu     sync.Mutex // one writer at a time (gorilla allows one concurrent writer)
	closed chan struct{}
	once   sync.Once
}

const writeWait = 10 * time.Second

// upgrade checks the origin, upgrades, and starts the keepalive; nil when it answered with an error.
func (c *WSConfig) upgrade(w http.ResponseWriter, r *http.Request) *Socket {
	if !c.checkOrigin(w, r) {
		return nil
	}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 16384,
		CheckOrigin: func(*http.Request) bool { return true }} // checked above, with a JSON answer
	if c.writeBuffers != nil {
		up.WriteBufferPool = c.writeBuffers
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader has answered with its own 4xx
	}
	s := &Socket{conn: conn, cfg: *c, closed: make(chan struct{})}
	extend := func() { _ = conn.SetReadDeadline(time.Now().Add(c.SilenceTimeout)) }
	extend()
	conn.SetPongHandler(func(string) error { extend(); return nil })
	conn.SetPingHandler(func(data string) error {
		extend()
		s.mu.Lock()
		defer s.mu.Unlock()
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
	})
	go s.keepalive()
	return s
}

func (s *Socket) keepalive() {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			s.mu.Lock()
			err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait))
			s.mu.Unlock()
			if err != nil {
				s.Close(websocket.CloseGoingAway, "")
				return
			}
		}
	}
}

// Send writes one frame.
func (s *Socket) Send(f wire.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding a %s frame: %w", f.Type, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeWait))
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// Receive reads the next frame; a frame that is not JSON is an error frame sent back and skipped. It returns an
// error when the socket is closed or silent past SilenceTimeout. A client ping frame is answered here.
func (s *Socket) Receive(ctx context.Context) (wire.Frame, error) {
	for {
		if err := ctx.Err(); err != nil {
			return wire.Frame{}, err
		}
		_, b, err := s.conn.ReadMessage()
		if err != nil {
			return wire.Frame{}, err
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(s.cfg.SilenceTimeout))
		var f wire.Frame
		if err := json.Unmarshal(b, &f); err != nil || f.Type == "" {
			_ = s.Send(wire.Frame{Type: wire.Error, Data: `not a frame: send JSON {"type": "stdin", "data": "…"}`})
			continue
		}
		if f.Type == wire.Ping {
			if err := s.Send(wire.Frame{Type: wire.Pong}); err != nil {
				return wire.Frame{}, err
			}
			continue
		}
		return f, nil
	}
}

// Close sends a close frame with code and reason and closes the connection; later calls do nothing.
func (s *Socket) Close(code int, reason string) {
	s.once.Do(func() {
		close(s.closed)
		s.mu.Lock()
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(time.Second))
		s.mu.Unlock()
		_ = s.conn.Close()
	})
}

// GoingAway tells the client why in an info frame, then closes with 1001 (SIGTERM, a rollout).
func (s *Socket) GoingAway(why string) {
	_ = s.Send(wire.Frame{Type: wire.Info, Data: why})
	s.Close(websocket.CloseGoingAway, why)
}

// IsClosed reports whether err is the end of the connection rather than a fault worth logging.
func IsClosed(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) || errors.Is(err, websocket.ErrCloseSent) || errors.Is(err, net.ErrClosed)
}

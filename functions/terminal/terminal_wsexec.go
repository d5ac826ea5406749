package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// leanExec speaks the exec's v5.channel.k8s.io WebSocket protocol itself, with small buffers: client-go's
// WebSocket executor holds fixed 32 KiB read, write and demultiplexing buffers plus a 32 KiB stdin copy per
// exec, about 130 kB for every idle terminal, which a thousand sessions on one instance cannot afford. The
// protocol is small: every binary message is one byte of channel (0 stdin, 1 stdout, 2 stderr, 3 the error
// channel carrying the exit status as a metav1.Status, 4 resize as {"Width","Height"}) and the data. SPDY stays
// client-go's (the fallback), and so do authentication, TLS, proxies and impersonation: the handshake goes
// through client-go's HTTP wrappers for the cluster's rest.Config.

const (
	v5Protocol    = "v5.channel.k8s.io"
	chanStdin     = 0
	chanStdout    = 1
	chanStderr    = 2
	chanError     = 3
	chanResize    = 4
	leanBufSize   = 4096
	leanStdinSize = 1024
	leanPingEvery = 30 * time.Second // a dead connection to the cluster is noticed within two of these
)

// leanDialer is the last round tripper under client-go's wrappers (auth, impersonation, user agent): it dials
// the WebSocket with the headers they set and keeps the connection.
type leanDialer struct {
	dialer websocket.Dialer
	conn   *websocket.Conn
}

func (d *leanDialer) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	}
	conn, resp, err := d.dialer.DialContext(req.Context(), u.String(), req.Header)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) {
			cause := err
			if resp != nil {
				cause = fmt.Errorf("%w (%s)", err, resp.Status)
				_ = resp.Body.Close()
			}
			// What client-go's fallback predicate (and ours) reads as "try SPDY".
			return nil, &httpstream.UpgradeFailureError{Cause: cause}
		}
		return nil, err
	}
	if conn.Subprotocol() != v5Protocol {
		_ = conn.Close()
		return nil, &httpstream.UpgradeFailureError{Cause: fmt.Errorf("the cluster chose protocol %q, not %s",
			conn.Subprotocol(), v5Protocol)}
	}
	d.conn = conn
	return resp, nil
}

// leanExecutor is a remotecommand.Executor over leanDialer.
type leanExecutor struct {
	config *rest.Config
	url    *url.URL
}

var _ remotecommand.Executor = (*leanExecutor)(nil)

func (e *leanExecutor) Stream(o remotecommand.StreamOptions) error {
	return e.StreamWithContext(context.Background(), o)
}

// StreamWithContext runs the exec until the process ends (nil, or a utilexec.CodeExitError for a non-zero
// exit), the connection fails, or ctx ends. Only what a TTY session uses is supported: stdin, stdout (stderr
// merged by the TTY, still copied to Stderr or Stdout if the server sends it) and resizes.
func (e *leanExecutor) StreamWithContext(ctx context.Context, o remotecommand.StreamOptions) error {
	tc, err := e.config.TransportConfig()
	if err != nil {
		return err
	}
	tlsConfig, err := transport.TLSConfigFor(tc)
	if err != nil {
		return err
	}
	proxy := e.config.Proxy
	if proxy == nil {
		proxy = utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	}
	d := &leanDialer{dialer: websocket.Dialer{Proxy: proxy, TLSClientConfig: tlsConfig,
		Subprotocols: []string{v5Protocol}, ReadBufferSize: leanBufSize, WriteBufferSize: leanBufSize,
		HandshakeTimeout: 30 * time.Second}}
	rt, err := transport.HTTPWrappersForConfig(tc, d)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url.String(), nil)
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	conn := d.conn
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // unblocks the reader below
	defer stop()

	var wmu sync.Mutex // gorilla takes one writer at a time
	send := func(channel byte, data []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		w, err := conn.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte{channel}); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		return w.Close()
	}
	done := make(chan struct{})
	defer close(done)
	if o.Stdin != nil {
		go func() {
			buf := make([]byte, leanStdinSize)
			for {
				n, err := o.Stdin.Read(buf)
				if n > 0 && send(chanStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					return // the session ended (its pipe closed): the process ends with the connection
				}
			}
		}()
	}
	if o.TerminalSizeQueue != nil {
		go func() {
			for {
				size := o.TerminalSizeQueue.Next()
				if size == nil {
					return
				}
				b, _ := json.Marshal(size) // {"Width":…,"Height":…}, as the kubelet reads it
				if send(chanResize, b) != nil {
					return
				}
			}
		}()
	}
	// Pings keep idle terminals' connections alive through the cluster's proxies and notice dead ones.
	_ = conn.SetReadDeadline(time.Now().Add(2 * leanPingEvery))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(2 * leanPingEvery)) })
	go func() {
		t := time.NewTicker(leanPingEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				wmu.Lock()
				err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second))
				wmu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()

	var status error
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure {
				return status // the server closes after the error channel said how the process ended
			}
			if status != nil {
				return status
			}
			return fmt.Errorf("exec stream: %w", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * leanPingEvery))
		var ch [1]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			continue // an empty message: nothing to route
		}
		switch ch[0] {
		case chanStdout:
			if o.Stdout != nil {
				if _, err := io.Copy(o.Stdout, r); err != nil {
					return err
				}
			}
		case chanStderr:
			if w := o.Stderr; w != nil {
				_, _ = io.Copy(w, r)
			} else if o.Stdout != nil {
				_, _ = io.Copy(o.Stdout, r)
			}
		case chanError:
			b, err := io.ReadAll(io.LimitReader(r, 64<<10))
			if err != nil {
				return err
			}
			status = exitStatusOf(b)
			if status == nil {
				return nil
			}
		}
	}
}

// exitStatusOf reads the error channel's metav1.Status: nil for Success, a CodeExitError for a non-zero
// exit, else an error with the status's message.
func exitStatusOf(b []byte) error {
	var st metav1.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("exec: %s", b) // an older kubelet's plain text
	}
	if st.Status == metav1.StatusSuccess {
		return nil
	}
	if st.Reason == "NonZeroExitCode" && st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Type == "ExitCode" {
				if code, err := strconv.Atoi(c.Message); err == nil {
					return utilexec.CodeExitError{Err: errors.New(st.Message), Code: code}
				}
			}
		}
	}
	return errors.New(st.Message)
}

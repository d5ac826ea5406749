// Package wire is the terminal service's WebSocket message: one JSON text frame per message, the envelope
// {"type", "data"} Kite's UI speaks, so that client can attach to kitefn as it is.
package wire

// Frame is one message. Data carries keystrokes (stdin), output (stdout, stderr), a human-readable text (info,
// error, connected) or a log line; Cols/Rows only resize; Code only exit; Pod/Container/Namespace only the
// log frames.
type Frame struct {
	Type      string `json:"type"`
	Data      string `json:"data,omitempty"`
	Cols      uint16 `json:"cols,omitempty"`
	Rows      uint16 `json:"rows,omitempty"`
	Code      *int   `json:"code,omitempty"`
	Session   string `json:"session,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
}

// Client → server.
const (
	Stdin  = "stdin"
	Resize = "resize"
	Ping   = "ping"
)

// Server → client.
const (
	Connected = "connected"
	Stdout    = "stdout"
	Stderr    = "stderr"
	Info      = "info"
	Error     = "error"
	Exit      = "exit"
	Pong      = "pong"
	// Logs.
	Log        = "log"
	PodAdded   = "pod_added"
	PodRemoved = "pod_removed"
)

package apitest

import (
	"bytes"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logBuffer keeps every log line a test server wrote, JSON-encoded with all fields (tests grep it: the
// credential-leak test looks for secrets in it).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Sync() error { return nil }

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tee adds the buffer beside the test's own log core (t.Log), at every level.
func (b *logBuffer) tee(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), b,
			zapcore.DebugLevel))
	}))
}

// Logs returns every log line the server wrote so far (all functions, every level), one JSON object a line.
func (s *Server) Logs() string { return s.logs.String() }

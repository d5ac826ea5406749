package runtime

import (
	"fmt"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// NewLogger builds the zap logger knative.dev/pkg/logging carries in contexts: JSON in a cluster (what log
// collectors parse), console on a terminal.
func NewLogger(format, level string) (*zap.SugaredLogger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("KITEFN_LOG_LEVEL: %w", err)
	}
	var cfg zap.Config
	if format == "json" {
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "timestamp"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	} else {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building logger: %w", err)
	}
	return l.Sugar(), nil
}

// routeKlog sends client-go's klog lines (warnings outside a request, retries, throttling) to log, so they come
// out in the same format and level as everything else. klog is process-wide: Main calls this once.
func routeKlog(log *zap.SugaredLogger) {
	klog.SetLogger(zapr.NewLogger(log.Desugar().Named("client-go")))
}

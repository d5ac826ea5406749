package terminal_test

import (
	"strings"
	"testing"

	"github.com/kitefn/kitefn/functions/terminal"
)

func TestLogsConfig(t *testing.T) {
	cfg, err := terminal.LoadConfig()
	if err != nil || cfg.MaxPods != 20 || int64(cfg.MaxBytesPerSecond) != 1<<20 {
		t.Fatalf("defaults: %d pods, %d bytes/s, %v; want 20 and 1Mi", cfg.MaxPods, cfg.MaxBytesPerSecond, err)
	}
	t.Setenv("KITEFN_LOGS_MAX_BYTES_PER_SECOND", "500k")
	if cfg, err := terminal.LoadConfig(); err != nil || int64(cfg.MaxBytesPerSecond) != 500000 {
		t.Fatalf("500k: %d %v", cfg.MaxBytesPerSecond, err)
	}
	for env, want := range map[string]string{
		"KITEFN_LOGS_MAX_PODS=0":                "KITEFN_LOGS_MAX_PODS (0) must be at least 1",
		"KITEFN_LOGS_MAX_BYTES_PER_SECOND=lots": `"lots" is not a quantity`,
		"KITEFN_LOGS_MAX_BYTES_PER_SECOND=0":    "KITEFN_LOGS_MAX_BYTES_PER_SECOND (0) must be at least 1",
	} {
		t.Run(env, func(t *testing.T) {
			k, v, _ := strings.Cut(env, "=")
			t.Setenv(k, v)
			if err := terminal.CheckConfig(); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: %v, want %q", env, err, want)
			}
		})
	}
}

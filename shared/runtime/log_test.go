package runtime

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/klog/v2"
)

func TestKlogGoesThroughZap(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	routeKlog(zap.New(core).Sugar())
	t.Cleanup(klog.ClearLogger)

	klog.Warningf("throttled for %s", "1s")
	klog.V(4).Info("too chatty for info")
	klog.Flush()
	got := logs.All()
	if len(got) != 1 || got[0].Message != "throttled for 1s" || got[0].LoggerName != "client-go" {
		t.Fatalf("klog lines through zap: %+v", got)
	}
}

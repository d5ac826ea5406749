package terminal_test

import (
	"testing"

	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

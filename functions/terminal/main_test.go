package terminal_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

// One kwok serves the package's fake nodes: every kwok manages every annotated node, so two would fight over
// them. Exec runs commands on this host in a temp dir; every fake pod's logs are logsFile's lines.
var (
	kwokOnce   sync.Once
	kwokErr    error
	logsFile   string
	logsFileMu sync.Mutex
)

// startKwok starts the package's kwok (once) with the nodes the tests use: term-node and logs-node.
func startKwok(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(kube.ToolsDir, "kwok")); err != nil {
		t.Fatalf("kwok not built in %s (make tools builds it): %v", kube.ToolsDir, err)
	}
	kwokOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kitefn-terminal-kwok-")
		if err != nil {
			kwokErr = err
			return
		}
		logsFile = filepath.Join(dir, "pods.log")
		if kwokErr = os.WriteFile(logsFile, nil, 0o644); kwokErr != nil {
			return
		}
		for _, l := range initialLines {
			if kwokErr = appendLine(l); kwokErr != nil {
				return
			}
		}
		if _, kwokErr = kube.StartKwok(context.Background(), harness.WithKwokExec(dir),
			harness.WithKwokLogs(logsFile)); kwokErr != nil {
			return
		}
		for _, node := range []string{"term-node", logsNode} {
			if _, kwokErr = cs.CoreV1().Nodes().Create(context.Background(), harness.FakeNode(node),
				metav1.CreateOptions{}); kwokErr != nil {
				return
			}
		}
	})
	if kwokErr != nil {
		t.Fatal(kwokErr)
	}
}

package clusters_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

const testToken = "test-token-0123456789abcdef"

// kube is the real kube-apiserver every test in this package shares.
var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

func needKube(t *testing.T) {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
}

// startAPI runs the clusters function (and extra functions) in one-process mode on a bbolt file.
func startAPI(t *testing.T, env map[string]string, extra ...apitest.Fn) *apitest.Server {
	t.Helper()
	return apitest.Start(t, env, append([]apitest.Fn{apitest.Function("clusters")}, extra...)...)
}

// count returns how many clusters the registry holds, read through the API.
func count(t *testing.T, a *apitest.Server) int {
	t.Helper()
	return len(a.Do(http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "").Items())
}

func register(name string, kubeconfig []byte) map[string]any {
	return map[string]any{"name": name, "kubeconfig": string(kubeconfig)}
}

// mutate returns kc changed by fn.
func mutate(t *testing.T, kc []byte, fn func(*clientcmdapi.Config)) []byte {
	t.Helper()
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		t.Fatal(err)
	}
	fn(cfg)
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("condition not met within %s: %v", timeout, err)
	}
}

func metav1ListOptions() metav1.ListOptions { return metav1.ListOptions{Limit: 1} }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

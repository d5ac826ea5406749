package clusterhttp

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/bolt"
	"github.com/kitefn/kitefn/tests/harness"
)

var cluster *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &cluster) }

// setup is a client cache over a fresh registry holding one cluster, "east" (ID 1), with the admin kubeconfig.
func setup(t *testing.T) (*kube.Cache, store.Store) {
	t.Helper()
	if cluster == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	st, err := bolt.Open(context.Background(), filepath.Join(t.TempDir(), "kitefn.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	sealer, err := kubeconfig.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealer.Seal(cluster.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(context.Background(), &store.Cluster{Name: "east", Server: cluster.URL,
		Kubeconfig: sealed, Prometheus: store.Prometheus{Status: store.PrometheusPending}}); err != nil {
		t.Fatal(err)
	}
	c, err := kube.NewCache(st, sealer, kube.Config{CacheSize: 8, Revalidate: 30 * time.Second, QPS: 50,
		Burst: 100, Timeout: 10 * time.Second, UserAgent: "kitefn-test", ImpersonationCacheSize: 16,
		ImpersonateTokenPrefix: "token:", ImpersonateOIDCPrefix: "oidc:"})
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}

package kube

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/bolt"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

// countingRegistry counts registry reads, to show what the cache saves.
type countingRegistry struct {
	store.Store
	gets atomic.Int32
}

func (r *countingRegistry) Get(ctx context.Context, id uint64) (*store.Cluster, error) {
	r.gets.Add(1)
	return r.Store.Get(ctx, id)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T) (*Cache, *countingRegistry, *kubeconfig.Sealer, *fakeClock) {
	t.Helper()
	if kube == nil {
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
	reg := &countingRegistry{Store: st}
	c, err := NewCache(reg, sealer, Config{CacheSize: 8, Revalidate: 30 * time.Second, QPS: 50, Burst: 100,
		Timeout: 10 * time.Second, UserAgent: "kitefn-test"})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	c.now = clock.Now
	return c, reg, sealer, clock
}

func mustCreate(t *testing.T, reg store.Store, sealer *kubeconfig.Sealer, name string, kc []byte) *store.Cluster {
	t.Helper()
	sealed, err := sealer.Seal(kc)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := reg.Create(context.Background(), &store.Cluster{Name: name, Server: kube.URL, Kubeconfig: sealed,
		Prometheus: store.Prometheus{Status: store.PrometheusPending}})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestClientAnswersVersionAndIsCached(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	rec := mustCreate(t, reg, sealer, "alpha", kube.AdminKubeconfig())
	ctx := context.Background()

	cl, err := c.Client(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cl.Kubernetes.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != "v1.37.2" {
		t.Fatalf("gitVersion %s", info.GitVersion)
	}
	if cl.REST.QPS != 50 || cl.REST.Burst != 100 {
		t.Fatalf("QPS/Burst not set explicitly: %v/%d", cl.REST.QPS, cl.REST.Burst)
	}
	before := reg.gets.Load()
	for _, ref := range []string{"alpha", "1", "alpha"} {
		again, err := c.Client(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if again != cl {
			t.Fatalf("Client(%q) built a new client within the revalidation interval", ref)
		}
	}
	if n := reg.gets.Load() - before; n != 0 {
		t.Fatalf("%d registry reads for fresh cached lookups, want 0", n)
	}
	if rec.ID != cl.ID || cl.Version != 1 {
		t.Fatalf("client for id %d version %d", cl.ID, cl.Version)
	}
}

func TestRevalidationPicksUpUpdatesAndDeletes(t *testing.T) {
	c, reg, sealer, clock := setup(t)
	rec := mustCreate(t, reg, sealer, "beta", kube.AdminKubeconfig())
	ctx := context.Background()
	cl, err := c.Client(ctx, "beta")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Kubernetes.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("admin: %v", err)
	}

	// Another replica rotates the kubeconfig to a user that may not list secrets.
	sealed, err := sealer.Seal(kube.Kubeconfig(harness.ViewerUser))
	if err != nil {
		t.Fatal(err)
	}
	next := rec.Clone()
	next.Kubeconfig = sealed
	if _, err := reg.Update(ctx, next); err != nil {
		t.Fatal(err)
	}

	clock.Add(29 * time.Second)
	if same, _ := c.Client(ctx, "1"); same != cl {
		t.Fatal("re-validated before the interval passed")
	}
	clock.Add(2 * time.Second)
	fresh, err := c.Client(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if fresh == cl || fresh.Version != 2 {
		t.Fatalf("after the interval: version %d, same client %v", fresh.Version, fresh == cl)
	}
	_, err = fresh.Kubernetes.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("rotated client should be the viewer (403), got %v", err)
	}

	// Unchanged record after the interval: one registry read, same client.
	clock.Add(31 * time.Second)
	before := reg.gets.Load()
	if same, _ := c.Client(ctx, "1"); same != fresh {
		t.Fatal("unchanged record rebuilt its client")
	}
	if n := reg.gets.Load() - before; n != 1 {
		t.Fatalf("%d registry reads for a revalidation, want 1", n)
	}

	if err := reg.Delete(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	clock.Add(31 * time.Second)
	_, err = c.Client(ctx, "1")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted cluster: %v", err)
	}
	if _, err := c.Client(ctx, "beta"); !errors.As(err, &nf) {
		t.Fatalf("deleted cluster by name: %v", err)
	}
	if c.Len() != 0 {
		t.Fatalf("cache still holds %d clients", c.Len())
	}
}

func TestConcurrentLookupsBuildOnce(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	mustCreate(t, reg, sealer, "gamma", kube.AdminKubeconfig())
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]*Client, 50)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := c.Client(ctx, "1")
			if err != nil {
				t.Error(err)
			}
			got[i] = cl
		}()
	}
	wg.Wait()
	for _, cl := range got {
		if cl != got[0] {
			t.Fatal("concurrent lookups built more than one client")
		}
	}
	if n := reg.gets.Load(); n > 2 {
		t.Fatalf("%d registry reads for 50 concurrent lookups, want at most 2", n)
	}
}

func TestRenameAndUnknown(t *testing.T) {
	c, reg, sealer, clock := setup(t)
	rec := mustCreate(t, reg, sealer, "delta", kube.AdminKubeconfig())
	ctx := context.Background()
	if _, err := c.Client(ctx, "delta"); err != nil {
		t.Fatal(err)
	}
	next := rec.Clone()
	next.Name = "epsilon"
	if _, err := reg.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	clock.Add(31 * time.Second)
	var nf *NotFoundError
	if _, err := c.Client(ctx, "delta"); !errors.As(err, &nf) || nf.Ref != "delta" {
		t.Fatalf("old name after rename: %v", err)
	}
	if cl, err := c.Client(ctx, "epsilon"); err != nil || cl.Name != "epsilon" {
		t.Fatalf("new name: %v", err)
	}
	for _, ref := range []string{"nope", "999", ""} {
		if _, err := c.Client(ctx, ref); !errors.As(err, &nf) {
			t.Fatalf("Client(%q): %v, want NotFoundError", ref, err)
		}
	}
}

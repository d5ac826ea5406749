package kube

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/bolt"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

// countingRegistry counts registry reads, to show what the cache saves. It can also hold a read after it read
// the record (a build in flight while the record changes) and answer an old record (a lagging replica).
type countingRegistry struct {
	store.Store
	gets atomic.Int32

	mu      sync.Mutex
	hold    chan struct{} // when set, Get waits for it to close (or its ctx) before answering
	entered chan struct{} // Get sends here once it has read and starts holding
	stale   *store.Cluster
}

func (r *countingRegistry) Get(ctx context.Context, id uint64) (*store.Cluster, error) {
	r.gets.Add(1)
	rec, err := r.Store.Get(ctx, id)
	r.mu.Lock()
	hold, entered, stale := r.hold, r.entered, r.stale
	r.mu.Unlock()
	if stale != nil {
		return stale.Clone(), nil
	}
	if hold != nil {
		entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return rec, err
}

// holdGets makes the next Gets hold; it returns a channel that receives once per held Get, and release.
func (r *countingRegistry) holdGets() (<-chan struct{}, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold, r.entered = make(chan struct{}), make(chan struct{}, 16)
	hold, entered := r.hold, r.entered
	var once sync.Once
	return entered, func() {
		once.Do(func() {
			r.mu.Lock()
			r.hold = nil
			r.mu.Unlock()
			close(hold)
		})
	}
}

func (r *countingRegistry) answerStale(rec *store.Cluster) {
	r.mu.Lock()
	r.stale = rec
	r.mu.Unlock()
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

func testConfig() Config {
	return Config{CacheSize: 8, Revalidate: 30 * time.Second, QPS: 50, Burst: 100, Timeout: 10 * time.Second,
		UserAgent: "kitefn-test", ImpersonationCacheSize: 16, ImpersonateTokenPrefix: "token:",
		ImpersonateOIDCPrefix: "oidc:"}
}

func setup(t *testing.T) (*Cache, *countingRegistry, *kubeconfig.Sealer, *fakeClock) {
	t.Helper()
	return setupWith(t, testConfig())
}

func setupWith(t *testing.T, cfg Config) (*Cache, *countingRegistry, *kubeconfig.Sealer, *fakeClock) {
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
	c, err := NewCache(reg, sealer, cfg)
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

// update changes a record the way another replica would and returns the new version.
func update(t *testing.T, reg store.Store, id uint64, change func(*store.Cluster)) *store.Cluster {
	t.Helper()
	rec, err := reg.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	next := rec.Clone()
	change(next)
	out, err := reg.Update(context.Background(), next)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sealed(t *testing.T, sealer *kubeconfig.Sealer, kc []byte) []byte {
	t.Helper()
	b, err := sealer.Seal(kc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// receive waits for one value, failing the test after a deadline instead of hanging it.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func canListSecrets(t *testing.T, cl *Client) bool {
	t.Helper()
	_, err := cl.Kubernetes.CoreV1().Secrets("default").List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil && !apierrors.IsForbidden(err) {
		t.Fatalf("listing secrets: %v", err)
	}
	return err == nil
}

func TestInvalidateDuringBuildIsNotUndone(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	rec := mustCreate(t, reg, sealer, "racing", kube.AdminKubeconfig())
	ctx := context.Background()

	entered, release := reg.holdGets()
	defer release()
	first := make(chan *Client, 1)
	go func() {
		cl, err := c.Client(ctx, "1")
		if err != nil {
			t.Error(err)
		}
		first <- cl
	}()
	receive(t, entered, "the build to read the record") // it holds version 1 now
	update(t, reg.Store, rec.ID, func(r *store.Cluster) { r.Kubeconfig = sealed(t, sealer, kube.Kubeconfig(harness.ViewerUser)) })
	c.Invalidate(rec.ID)
	release()
	if old := receive(t, first, "the first lookup"); old == nil || old.Version != 1 {
		t.Fatalf("the lookup that came before the change: %+v", old)
	}

	cl, err := c.Client(ctx, "1") // within the revalidation interval
	if err != nil {
		t.Fatal(err)
	}
	if cl.Version != 2 || canListSecrets(t, cl) {
		t.Fatalf("after Invalidate the cache answers version %d with the old admin credentials", cl.Version)
	}
}

func TestLaggingReadKeepsNewerClient(t *testing.T) {
	c, reg, sealer, clock := setup(t)
	rec := mustCreate(t, reg, sealer, "lagging", kube.AdminKubeconfig())
	ctx := context.Background()
	update(t, reg.Store, rec.ID, func(r *store.Cluster) { r.Kubeconfig = sealed(t, sealer, kube.Kubeconfig(harness.ViewerUser)) })
	cl, err := c.Client(ctx, "1")
	if err != nil || cl.Version != 2 {
		t.Fatalf("version %v, %v", cl, err)
	}

	reg.answerStale(rec) // a replica that has not seen version 2 yet
	clock.Add(31 * time.Second)
	again, err := c.Client(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if again != cl || canListSecrets(t, again) {
		t.Fatalf("a read of version 1 replaced the client of version 2 (now version %d)", again.Version)
	}
	if _, err := c.Client(ctx, "lagging"); err != nil { // GetByName is not lagging here: version 2 again
		t.Fatal(err)
	}
}

func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	mustCreate(t, reg, sealer, "shared", kube.AdminKubeconfig())

	entered, release := reg.holdGets()
	defer release()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	errA := make(chan error, 1)
	go func() {
		_, err := c.Client(ctxA, "1")
		errA <- err
	}()
	receive(t, entered, "the build to start")
	type result struct {
		cl  *Client
		err error
	}
	resB := make(chan result, 1)
	go func() {
		cl, err := c.Client(context.Background(), "1")
		resB <- result{cl, err}
	}()

	cancelA()
	if err := receive(t, errA, "the cancelled caller"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	release()
	b := receive(t, resB, "the other caller")
	if b.err != nil {
		t.Fatalf("the other caller failed with the first one's cancellation: %v", b.err)
	}
	if _, err := b.cl.Kubernetes.Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
	if n := reg.gets.Load(); n != 1 {
		t.Fatalf("%d registry reads, want 1 shared build", n)
	}
}

func TestRecordChangesKeepTheConnection(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	rec := mustCreate(t, reg, sealer, "steady", kube.AdminKubeconfig())
	ctx := context.Background()
	builds := 0
	attached := func(cl *Client) any {
		t.Helper()
		v, err := cl.Attached("mapper", func(*Client) (any, error) { builds++; return new(int), nil })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first, err := c.Client(ctx, "steady")
	if err != nil {
		t.Fatal(err)
	}
	state := attached(first)

	for _, tc := range []struct {
		what   string
		change func(*store.Cluster)
		ref    string
	}{
		{"a label edit", func(r *store.Cluster) { r.Labels = map[string]string{"env": "prod"} }, "steady"},
		{"a rename", func(r *store.Cluster) { r.Name = "steady-2" }, "steady-2"},
		{"a status write", func(r *store.Cluster) { r.Prometheus.Status = store.PrometheusFound }, "1"},
		{"the same kubeconfig sealed again", func(r *store.Cluster) {
			r.Kubeconfig = sealed(t, sealer, kube.AdminKubeconfig())
		}, "1"},
	} {
		next := update(t, reg.Store, rec.ID, tc.change)
		c.Invalidate(rec.ID) // as the clusters function does after its write
		cl, err := c.Client(ctx, tc.ref)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if cl.Version != next.Version || cl.Name != next.Name {
			t.Fatalf("%s: view of version %d %q, want %d %q", tc.what, cl.Version, cl.Name, next.Version, next.Name)
		}
		if cl.Conn != first.Conn || attached(cl) != state || builds != 1 {
			t.Fatalf("%s rebuilt the connection (attached built %d times)", tc.what, builds)
		}
	}

	update(t, reg.Store, rec.ID, func(r *store.Cluster) { r.Kubeconfig = sealed(t, sealer, kube.Kubeconfig(harness.ViewerUser)) })
	c.Invalidate(rec.ID)
	rotated, err := c.Client(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Conn == first.Conn || attached(rotated) == state || builds != 2 || canListSecrets(t, rotated) {
		t.Fatal("a new token kept the old connection")
	}
}

func TestOneRateLimiterPerCluster(t *testing.T) {
	cfg := testConfig()
	cfg.QPS, cfg.Burst = 0.001, 3 // three requests, then none for the test's lifetime
	c, reg, sealer, _ := setupWith(t, cfg)
	mustCreate(t, reg, sealer, "limited", kube.AdminKubeconfig())
	cl, err := c.Client(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	if cl.REST.RateLimiter == nil || cl.Stream.REST.RateLimiter != cl.REST.RateLimiter {
		t.Fatal("the request and stream clients do not share one limiter")
	}
	for range 3 {
		if _, err := cl.Kubernetes.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nsGVR := corev1.SchemeGroupVersion.WithResource("namespaces")
	for name, call := range map[string]func(context.Context) error{
		"dynamic": func(ctx context.Context) error {
			_, err := cl.Dynamic.Resource(nsGVR).Get(ctx, "default", metav1.GetOptions{})
			return err
		},
		"metadata": func(ctx context.Context) error {
			_, err := cl.Metadata.Resource(nsGVR).Get(ctx, "default", metav1.GetOptions{})
			return err
		},
		"stream typed": func(ctx context.Context) error {
			_, err := cl.Stream.Kubernetes.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := call(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "rate limiter") {
			t.Fatalf("%s client after the typed one used the burst: %v, want the shared limiter to refuse", name, err)
		}
	}
}

// forwarder is a TCP proxy in front of the apiserver that counts the connections open through it.
type forwarder struct {
	addr string
	open atomic.Int32
}

func startForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	f := &forwarder{addr: ln.Addr().String()}
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = down.Close()
				continue
			}
			f.open.Add(1)
			var once sync.Once
			done := func() {
				once.Do(func() {
					_ = down.Close()
					_ = up.Close()
					f.open.Add(-1)
				})
			}
			go func() { _, _ = io.Copy(up, down); done() }()
			go func() { _, _ = io.Copy(down, up); done() }()
		}
	}()
	return f
}

// kubeconfigVia is user's kubeconfig with the server reached through f.
func kubeconfigVia(t *testing.T, f *forwarder, user string) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://" + f.addr, CertificateAuthorityData: kube.CAData}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: kube.Token(user)}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitOpen(t *testing.T, f *forwarder, want int32, what string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return f.open.Load() == want, nil })
	if err != nil {
		t.Fatalf("%s: %d connections open, want %d", what, f.open.Load(), want)
	}
}

func TestReplacedAndDroppedClientsCloseTheirConnections(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	u, err := url.Parse(kube.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := startForwarder(t, u.Host)
	rec := mustCreate(t, reg, sealer, "pooled", kubeconfigVia(t, f, harness.AdminUser))
	ctx := context.Background()
	cl, err := c.Client(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Kubernetes.Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, f, 1, "after a request")

	update(t, reg.Store, rec.ID, func(r *store.Cluster) {
		r.Kubeconfig = sealed(t, sealer, kubeconfigVia(t, f, harness.ViewerUser))
	})
	c.Invalidate(rec.ID)
	if _, err := c.Client(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, f, 0, "after the kubeconfig was replaced")

	cl, err = c.Client(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Kubernetes.Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, f, 1, "after a request with the new kubeconfig")
	if err := reg.Delete(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	c.Invalidate(rec.ID)
	var nf *NotFoundError
	if _, err := c.Client(ctx, "1"); !errors.As(err, &nf) {
		t.Fatalf("deleted cluster: %v", err)
	}
	waitOpen(t, f, 0, "after the cluster was deleted")
}

func TestStreamClientOutlivesTheRequestTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = time.Second
	c, reg, sealer, _ := setupWith(t, cfg)
	mustCreate(t, reg, sealer, "streaming", kube.AdminKubeconfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := c.Client(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	name := "stream-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	opts := metav1.ListOptions{FieldSelector: "metadata.name=" + name}
	long, err := cl.Stream.Kubernetes.CoreV1().ConfigMaps("default").Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Stop()
	short, err := cl.Kubernetes.CoreV1().ConfigMaps("default").Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer short.Stop()
	started := time.Now()

	// The bounded client's watch ends with KITEFN_KUBE_TIMEOUT: that is the clock for the other.
	waitClosed(t, short.ResultChan(), "the bounded watch")
	if took := time.Since(started); took > 15*time.Second {
		t.Fatalf("the bounded watch lasted %s with a 1s timeout", took)
	}
	cms := cl.Kubernetes.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cms.Delete(context.Background(), name, metav1.DeleteOptions{}) }()
	var ev watch.Event
	ok := false
	select {
	case ev, ok = <-long.ResultChan():
	case <-time.After(20 * time.Second):
	}
	if !ok || ev.Type != watch.Added {
		t.Fatalf("the stream watch after %s: %v %v, want the ADDED event", time.Since(started), ok, ev.Type)
	}
	if cm, _ := ev.Object.(*corev1.ConfigMap); cm == nil || cm.Name != name {
		t.Fatalf("event for %v", ev.Object)
	}
}

// waitClosed drains ch until it closes, failing the test if it stays open for too long.
func waitClosed[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s still open after 20s", what)
		}
	}
}

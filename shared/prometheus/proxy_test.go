package prometheus_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/prometheus"
	"github.com/kitefn/kitefn/shared/prometheus/prometheustest"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/harness"
	"github.com/kitefn/kitefn/tests/netns"
)

// cluster is the real kube-apiserver the service-proxy tests share (nil in -short mode).
var cluster *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &cluster) }

// clientFor builds the kube.Client the functions would use for a user of the test cluster.
func clientFor(t *testing.T, user string) *kube.Client {
	t.Helper()
	rc, err := kube.RESTConfig(cluster.Kubeconfig(user), kube.Config{QPS: 50, Burst: 100, Timeout: 30 * time.Second,
		UserAgent: "kitefn-test"})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kube.NewClient(&store.Cluster{ID: 1, Name: "test"}, rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.HTTP.CloseIdleConnections)
	return cl
}

// The apiserver refuses loopback endpoints, so the fake Prometheus runs in a network namespace the test makes,
// behind a selector-less Service whose EndpointSlice points at it.
func TestQueriesThroughTheServiceProxy(t *testing.T) {
	if cluster == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	ctx := t.Context()
	ns := netns.MustNew(t)
	admin, err := kubernetes.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	fake := &prometheustest.Server{Version: "2.53.0"}
	live, err := ns.StartHTTP(netip.AddrPortFrom(ns.Addrs()[0], 9090), fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	expose := func(addr netip.Addr, name string) {
		cleanup, err := netns.Expose(ctx, admin, addr, netns.ServiceSpec{Namespace: "monitoring", Name: name,
			Port: 80, TargetPort: 9090, PortName: "http"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cleanup(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	expose(ns.Addrs()[0], "prometheus-server")
	deadAddr, err := ns.AddAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expose(deadAddr, "prometheus-dead") // an address with nothing listening
	if err := netns.WaitProxied(ctx, admin, "monitoring", "prometheus-server", 80, "/api/v1/status/buildinfo"); err != nil {
		t.Fatal(err)
	}

	saved := prometheus.ServiceRef{Namespace: "monitoring", Name: "prometheus-server", Port: "80"}.Path()
	c, err := prometheus.New(clientFor(t, harness.AdminUser), saved)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ViaServiceProxy() || c.URL() != saved {
		t.Fatalf("client for %s: proxied %v, URL %s", saved, c.ViaServiceProxy(), c.URL())
	}
	info, err := c.BuildInfo(ctx)
	if err != nil || info.Version != "2.53.0" {
		t.Fatalf("BuildInfo through the proxy = %+v, %v", info, err)
	}
	d, err := c.Query(ctx, "up", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if vec, err := d.Vector(); err != nil || len(vec) != 1 || vec[0].Value != 1 {
		t.Fatalf("vector %+v, %v", vec, err)
	}
	now := time.Now().Truncate(time.Second)
	d, err = c.QueryRange(ctx, "up", prometheus.Range{Start: now.Add(-time.Minute), End: now, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := d.Matrix(); err != nil || len(m) != 1 || len(m[0].Points) != 3 {
		t.Fatalf("matrix %+v, %v", m, err)
	}
	// Prometheus's own errors come back as such, through the proxy too.
	var apiErr *prometheus.APIError
	if _, err := c.Query(ctx, "nope(", time.Time{}); !errors.As(err, &apiErr) || apiErr.Type != "bad_data" {
		t.Fatalf("bad query through the proxy: %v", err)
	}
	// The apiserver authenticates the caller and does not pass its credentials on.
	if auth := fake.AuthorizationHeaders(); len(auth) > 0 {
		t.Fatalf("the backend received Authorization headers: %d", len(auth))
	}

	// What the apiserver says when it cannot proxy is a *ProxyError.
	var pe *prometheus.ProxyError
	dead, _ := prometheus.New(clientFor(t, harness.AdminUser),
		prometheus.ServiceRef{Namespace: "monitoring", Name: "prometheus-dead", Port: "80"}.Path())
	if _, err := dead.Probe(ctx); !errors.As(err, &pe) || pe.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("service with nothing listening: %v", err)
	}
	missing, _ := prometheus.New(clientFor(t, harness.AdminUser),
		prometheus.ServiceRef{Namespace: "monitoring", Name: "nothing-here", Port: "80"}.Path())
	if _, err := missing.Probe(ctx); !errors.As(err, &pe) || pe.StatusCode != http.StatusNotFound {
		t.Fatalf("missing service: %v", err)
	}
	viewer, _ := prometheus.New(clientFor(t, harness.ViewerUser), saved)
	if _, err := viewer.Probe(ctx); !errors.As(err, &pe) || !pe.Forbidden() {
		t.Fatalf("a user without services/proxy: %v", err)
	}
}

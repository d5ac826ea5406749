package discovery_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/netip"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/prometheus/prometheustest"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
	"github.com/kitefn/kitefn/tests/netns"
)

// kube is the real kube-apiserver the tests of this package share, one after the other: discovery searches a
// whole cluster, so every test removes the Services it made before the next one starts.
var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

// world is the test cluster as one test arranges it: fake Prometheus servers in a network namespace of the
// test's own, behind Services the apiserver proxies to.
type world struct {
	t     *testing.T
	ns    *netns.Namespace
	admin kubernetes.Interface
	used  bool // the first namespace address is taken
}

func needKube(t *testing.T) {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	needKube(t)
	admin, err := kubernetes.NewForConfig(kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, ns: netns.MustNew(t), admin: admin}
}

func (w *world) addr() netip.Addr {
	w.t.Helper()
	if !w.used {
		w.used = true
		return w.ns.Addrs()[0]
	}
	a, err := w.ns.AddAddr(w.t.Context())
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

func (w *world) expose(addr netip.Addr, spec netns.ServiceSpec) {
	w.t.Helper()
	cleanup, err := netns.Expose(w.t.Context(), w.admin, addr, spec)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cleanup(ctx); err != nil {
			w.t.Error(err)
		}
	})
}

// prom serves a fake Prometheus on its own address inside the namespace, exposes it as spec and waits until
// the apiserver's proxy reaches it.
func (w *world) prom(spec netns.ServiceSpec) *prometheustest.Server {
	w.t.Helper()
	fake := &prometheustest.Server{}
	addr := w.addr()
	target := spec.TargetPort
	if target == 0 {
		target = spec.Port
	}
	srv, err := w.ns.StartHTTP(netip.AddrPortFrom(addr, uint16(target)), fake)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = srv.Close() })
	w.expose(addr, spec)
	if err := netns.WaitProxied(w.t.Context(), w.admin, spec.Namespace, spec.Name, spec.Port,
		"/api/v1/status/buildinfo"); err != nil {
		w.t.Fatal(err)
	}
	return fake
}

// dead exposes a Service whose endpoint address has nothing listening (the proxy answers 503).
func (w *world) dead(spec netns.ServiceSpec) {
	w.t.Helper()
	w.expose(w.addr(), spec)
}

// server is one running kitefn process: the discovery function alone (as deployed on Knative), or every
// given function in one process.
// server is a running kitefn with the discovery function.
type server struct {
	*apitest.Server
	t *testing.T
}

// deploy runs the discovery function alone (FUNCTION_TARGET=discovery).
func deploy(t *testing.T, env map[string]string) *server {
	t.Helper()
	e := map[string]string{"FUNCTION_TARGET": "discovery"}
	for k, v := range env {
		e[k] = v
	}
	return &server{Server: apitest.Start(t, e, apitest.Function("discovery")), t: t}
}

// replica runs another discovery replica over s's store, with its own client cache and memory of events.
func (s *server) replica(t *testing.T) *server {
	t.Helper()
	return &server{Server: s.Replica(t, apitest.Function("discovery")), t: t}
}

// startAll runs the clusters and discovery functions in one process (make run), events delivered in-process.
func startAll(t *testing.T, env map[string]string) *server {
	t.Helper()
	return &server{Server: apitest.Start(t, env,
		apitest.Function("clusters"), apitest.Function("discovery")), t: t}
}

// register stores a cluster for the test apiserver directly, as the clusters function would.
func (s *server) register(name string, prom store.Prometheus) *store.Cluster {
	s.t.Helper()
	return s.registerAs(name, harness.AdminUser, prom)
}

// registerAs registers the test apiserver with the credentials of one of its users.
func (s *server) registerAs(name, user string, prom store.Prometheus) *store.Cluster {
	s.t.Helper()
	sealed, err := s.Platform.Sealer.Seal(kube.Kubeconfig(user))
	if err != nil {
		s.t.Fatal(err)
	}
	if prom.Status == "" {
		prom.Status = store.PrometheusPending
	}
	rec, err := s.Platform.Store.Create(s.t.Context(), &store.Cluster{Name: name, Server: kube.URL, Kubeconfig: sealed,
		Prometheus: prom})
	if err != nil {
		s.t.Fatal(err)
	}
	return rec
}

func (s *server) record(id uint64) *store.Cluster {
	s.t.Helper()
	rec, err := s.Platform.Store.Get(s.t.Context(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return rec
}

// send delivers an event with the project's own sender (binary mode, retries on 5xx/429/404 as towards a
// Broker) and returns its error.
func (s *server) send(e cloudevents.Event) error {
	s.t.Helper()
	sender, err := events.NewSender(events.SenderConfig{Sink: s.URL, Attempts: 4, Backoff: 10 * time.Millisecond,
		Timeout: 60 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	return sender.Send(s.t.Context(), e)
}

func createdEvent(t *testing.T, rec *store.Cluster) cloudevents.Event {
	t.Helper()
	e, err := events.NewClusterEvent(events.TypeClusterCreated, events.ClusterData{Cluster: events.ClusterFromRecord(rec)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// assertNoSecrets fails if a body carries the test cluster's credentials or a kubeconfig.
func assertNoSecrets(t *testing.T, body []byte) {
	t.Helper()
	for _, secret := range []string{kube.Token(harness.AdminUser), base64.StdEncoding.EncodeToString(kube.CAData),
		`"kubeconfig":`, "certificate-authority-data"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Fatalf("body leaks %q: %s", secret, body)
		}
	}
}

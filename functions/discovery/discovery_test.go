package discovery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/prometheus"
	"github.com/kitefn/kitefn/shared/prometheus/prometheustest"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
	"github.com/kitefn/kitefn/tests/netns"
)

func proxyPath(ns, name string, port int) string {
	return prometheus.ServiceRef{Namespace: ns, Name: name, Port: strconv.Itoa(port)}.Path()
}

// A chart's prometheus-server (port 80 → 9090) in monitoring, found from the cluster.created event; the URL
// it saves works with the shared client; dev.kitefn.prometheus.discovered goes to the sink.
func TestFoundByName(t *testing.T) {
	w := newWorld(t)
	fake := w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 80, TargetPort: 9090,
		PortName: "http"})
	fake.Version = "2.55.1"
	sk := apitest.StartSink(t)
	s := deploy(t, map[string]string{"K_SINK": sk.URL})
	rec := s.register("prod", store.Prometheus{})

	if err := s.send(createdEvent(t, rec)); err != nil {
		t.Fatalf("event not accepted: %v", err)
	}
	got := s.record(rec.ID)
	p := got.Prometheus
	want := proxyPath("monitoring", "prometheus-server", 80)
	if p.Status != store.PrometheusFound || p.URL != want || p.CheckedAt == nil {
		t.Fatalf("prometheus %+v, want found at %s", p, want)
	}
	if !strings.Contains(p.Message, "Prometheus 2.55.1") || !strings.Contains(p.Message, "monitoring/prometheus-server") {
		t.Fatalf("message %q", p.Message)
	}
	if got.Name != "prod" || got.Version != rec.Version+1 {
		t.Fatalf("record %s v%d after discovery, want prod v%d", got.Name, got.Version, rec.Version+1)
	}
	if auth := fake.AuthorizationHeaders(); len(auth) > 0 {
		t.Fatal("the cluster's credentials reached the Prometheus server")
	}

	// The other functions' client uses the saved URL as is, with the cluster's credentials.
	cl, err := s.Platform.Clients.Client(t.Context(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := prometheus.New(cl, p.URL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pc.Query(t.Context(), "up", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if vec, err := d.Vector(); err != nil || len(vec) != 1 {
		t.Fatalf("query through the saved URL: %v %v", vec, err)
	}

	evs := sk.Events()
	if len(evs) != 1 || evs[0].Type() != events.TypePrometheusDiscovered || evs[0].Source() != events.SourceDiscovery ||
		evs[0].Subject() != strconv.FormatUint(rec.ID, 10) {
		t.Fatalf("sink got %d events: %v", len(evs), evs)
	}
	var data events.ClusterData
	if err := evs[0].DataAs(&data); err != nil || data.Cluster == nil || data.Cluster.Prometheus.URL != want {
		t.Fatalf("event data %s (%v)", evs[0].Data(), err)
	}
	assertNoSecrets(t, evs[0].Data())
}

// A Service named like nothing known, outside the preferred namespaces, labelled app.kubernetes.io/name=
// prometheus, on port 8080: found in the all-namespaces pass, from a structured-mode event.
func TestFoundByLabelOnNonStandardPort(t *testing.T) {
	w := newWorld(t)
	w.prom(netns.ServiceSpec{Namespace: "apps", Name: "metrics-store", Port: 8080, PortName: "api",
		Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}})
	w.dead(netns.ServiceSpec{Namespace: "apps", Name: "billing", Port: 8080}) // not a candidate at all
	s := deploy(t, nil)
	rec := s.register("labelled", store.Prometheus{})

	body, err := json.Marshal(createdEvent(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	// Structured mode; a Trigger sends no bearer token, and events at / need none.
	r := s.Do(http.MethodPost, "/", body, "Content-Type", "application/cloudevents+json", "Authorization", "").
		Expect(t, http.StatusOK, "")
	if r.JSON["result"] != "found" {
		t.Fatalf("answer %s", r.Body)
	}
	p := s.record(rec.ID).Prometheus
	if p.Status != store.PrometheusFound || p.URL != proxyPath("apps", "metrics-store", 8080) {
		t.Fatalf("prometheus %+v", p)
	}
}

// Two candidates, the better-named one does not answer: the one that does is chosen, and the re-detect route
// shows both with why.
func TestOnlyTheAnsweringCandidateIsChosen(t *testing.T) {
	w := newWorld(t)
	w.dead(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 9090, PortName: "http"})
	w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-operated", Port: 9090, PortName: "web",
		Labels: map[string]string{"operated-prometheus": "true"}})
	s := deploy(t, nil)
	rec := s.register("two", store.Prometheus{})
	if err := s.send(createdEvent(t, rec)); err != nil {
		t.Fatal(err)
	}
	p := s.record(rec.ID).Prometheus
	if p.Status != store.PrometheusFound || p.URL != proxyPath("monitoring", "prometheus-operated", 9090) {
		t.Fatalf("prometheus %+v", p)
	}

	r := s.Do(http.MethodPost, "/api/v1/clusters/two/prometheus/discover", nil).Expect(t, http.StatusOK, "")
	assertNoSecrets(t, r.Body)
	var out struct {
		Status     string `json:"status"`
		Candidates []struct {
			Service   string   `json:"service"`
			Reachable bool     `json:"reachable"`
			Error     string   `json:"error"`
			Why       []string `json:"why"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != "found" || len(out.Candidates) != 2 {
		t.Fatalf("re-detect answer: %s", r.Body)
	}
	first, second := out.Candidates[0], out.Candidates[1]
	if first.Service != "prometheus-operated" || !first.Reachable || second.Service != "prometheus-server" ||
		second.Reachable || !strings.Contains(second.Error, "503") {
		t.Fatalf("candidates: %s", r.Body)
	}
}

// A LoadBalancer whose address answers is preferred over a better-scored ClusterIP Service and saved as that
// address; when the address stops answering, re-detect keeps the Service but falls back to the proxy path.
func TestLoadBalancerIsPreferred(t *testing.T) {
	w := newWorld(t)
	w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 9090})
	lbAddr := w.addr()
	lbSrv, err := w.ns.StartHTTP(netip.AddrPortFrom(lbAddr, 9090), &prometheustest.Server{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lbSrv.Close() })
	w.prom(netns.ServiceSpec{Namespace: "observability", Name: "metrics", Port: 9090, PortName: "web",
		Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: lbAddr.String(),
		Labels: map[string]string{"app": "prometheus"}})
	s := deploy(t, nil)
	rec := s.register("lb", store.Prometheus{})
	if err := s.send(createdEvent(t, rec)); err != nil {
		t.Fatal(err)
	}
	p := s.record(rec.ID).Prometheus
	if want := "http://" + lbAddr.String() + ":9090"; p.Status != store.PrometheusFound || p.URL != want {
		t.Fatalf("prometheus %+v, want found at %s", p, want)
	}
	if !strings.Contains(p.Message, "LoadBalancer") {
		t.Fatalf("message %q", p.Message)
	}

	_ = lbSrv.Close()
	r := s.Do(http.MethodPost, "/api/v1/clusters/"+strconv.FormatUint(rec.ID, 10)+"/prometheus/discover", nil).
		Expect(t, http.StatusOK, "")
	p = s.record(rec.ID).Prometheus
	if p.Status != store.PrometheusFound || p.URL != proxyPath("observability", "metrics", 9090) ||
		!strings.Contains(p.Message, "did not answer from here") {
		t.Fatalf("after the LoadBalancer address went away: %+v (answer %s)", p, r.Body)
	}
}

// Nothing that looks like Prometheus: not_found, with a message a user can act on; re-detect says the same.
func TestNotFound(t *testing.T) {
	w := newWorld(t)
	w.dead(netns.ServiceSpec{Namespace: "default", Name: "web", Port: 80}) // not a candidate
	s := deploy(t, nil)
	rec := s.register("empty", store.Prometheus{})
	if err := s.send(createdEvent(t, rec)); err != nil {
		t.Fatal(err)
	}
	p := s.record(rec.ID).Prometheus
	if p.Status != store.PrometheusNotFound || p.URL != "" || p.CheckedAt == nil ||
		!strings.Contains(p.Message, "monitoring, prometheus, kube-prometheus, observability, kube-system") {
		t.Fatalf("prometheus %+v", p)
	}
	r := s.Do(http.MethodPost, "/api/v1/clusters/empty/prometheus/discover", nil).Expect(t, http.StatusOK, "")
	if r.JSON["status"] != "not_found" {
		t.Fatalf("re-detect: %s", r.Body)
	}
	s.Do(http.MethodPost, "/api/v1/clusters/nope/prometheus/discover", nil).Expect(t, http.StatusNotFound, "not_found")
	s.Do(http.MethodGet, "/api/v1/clusters/empty/prometheus/discover", nil).
		Expect(t, http.StatusMethodNotAllowed, "method_not_allowed")
	s.Do(http.MethodPost, "/api/v1/clusters/empty/prometheus/discover", nil, "Authorization", "").
		Expect(t, http.StatusUnauthorized, "unauthorized")

	// Both re-detects are audited (the refused requests never reached the function).
	entries, _, err := s.Platform.Store.ListAudit(context.Background(), store.AuditFilter{Verb: "discover"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %s %d %s", e.Who, e.Name, e.Outcome, e.Detail))
	}
	if want := []string{"bootstrap nope 404 ", "bootstrap empty 200 prometheus not_found"}; !slices.Equal(got, want) {
		t.Fatalf("audit entries %q, want %q", got, want)
	}
}

// Credentials that may not list Services make a failed discovery that says why.
func TestFailedWithoutPermission(t *testing.T) {
	w := newWorld(t)
	w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 9090})
	s := deploy(t, nil)
	rec := s.registerAs("viewer", harness.ViewerUser, store.Prometheus{})
	if err := s.send(createdEvent(t, rec)); err != nil {
		t.Fatalf("a failed discovery is done, not retried: %v", err)
	}
	p := s.record(rec.ID).Prometheus
	if p.Status != store.PrometheusFailed || !strings.Contains(p.Message, "could not list Services") ||
		!strings.Contains(p.Message, "forbidden") {
		t.Fatalf("prometheus %+v", p)
	}
	assertNoSecrets(t, []byte(p.Message))
}

// make run: the local kubeconfig's contexts are imported while the functions start, before discovery can take
// events; discovery's start finds them pending and discovers them.
func TestStartDiscoversImportedClusters(t *testing.T) {
	w := newWorld(t)
	w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 9090})
	home := t.TempDir()
	s := startAll(t, map[string]string{"KITEFN_IMPORT_KUBECONFIG": "true", "HOME": home,
		"KUBECONFIG": kube.KubeconfigFile(harness.AdminUser)})
	r := s.Do(http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "")
	items := r.JSON["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("imported %d clusters: %s", len(items), r.Body)
	}
	id := uint64(items[0].(map[string]any)["id"].(float64))
	if p := waitStatus(t, s, id, store.PrometheusPending); p["status"] != "found" ||
		p["url"] != proxyPath("monitoring", "prometheus-server", 9090) {
		t.Fatalf("imported cluster: %v", p)
	}
}

// A URL a user typed is never replaced, by events or by re-detect, and nothing is probed; one from
// KITEFN_PROMETHEUS_URLS wins over discovery too.
func TestManualURLIsUntouched(t *testing.T) {
	w := newWorld(t)
	fake := w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 9090})
	before := fake.Requests()
	s := deploy(t, map[string]string{"KITEFN_PROMETHEUS_URLS": "mapped=https://prometheus.mapped.example.com"})
	manual := s.register("manual", store.Prometheus{Status: store.PrometheusManual, URL: "https://prom.example.com"})

	if err := s.send(createdEvent(t, manual)); err != nil {
		t.Fatal(err)
	}
	r := s.Do(http.MethodPost, "/api/v1/clusters/manual/prometheus/discover", nil).Expect(t, http.StatusOK, "")
	if r.JSON["status"] != "manual" || !strings.Contains(r.JSON["skipped"].(string), "by hand") {
		t.Fatalf("re-detect of a manual URL: %s", r.Body)
	}
	got := s.record(manual.ID)
	if got.Version != manual.Version || got.Prometheus.URL != "https://prom.example.com" ||
		got.Prometheus.Status != store.PrometheusManual {
		t.Fatalf("manual record changed: v%d %+v", got.Version, got.Prometheus)
	}

	mapped := s.register("mapped", store.Prometheus{})
	if err := s.send(createdEvent(t, mapped)); err != nil {
		t.Fatal(err)
	}
	p := s.record(mapped.ID).Prometheus
	if p.Status != store.PrometheusManual || p.URL != "https://prometheus.mapped.example.com" ||
		p.Message != "set by KITEFN_PROMETHEUS_URLS" {
		t.Fatalf("mapped cluster: %+v", p)
	}
	if n := fake.Requests(); n != before {
		t.Fatalf("the candidate was probed %d times; manual URLs need no discovery", n-before)
	}
}

// The same event delivered twice (and to a second replica, and concurrently) runs one discovery.
func TestDuplicateEventRunsOneDiscovery(t *testing.T) {
	w := newWorld(t)
	fake := w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-server", Port: 9090})
	base := fake.Requests()
	a := deploy(t, nil)
	rec := a.register("dup", store.Prometheus{})
	e := createdEvent(t, rec)

	if err := a.send(e); err != nil {
		t.Fatal(err)
	}
	once := fake.Requests() - base
	if once < 1 {
		t.Fatal("the first delivery probed nothing")
	}
	v := a.record(rec.ID).Version
	body, _ := json.Marshal(e)
	r := a.Do(http.MethodPost, "/", body, "Content-Type", "application/cloudevents+json").Expect(t, http.StatusOK, "")
	if r.JSON["result"] != "duplicate" {
		t.Fatalf("redelivery to the same replica: %s", r.Body)
	}
	// Another replica has not seen the event: the registry says discovery already ran.
	b := a.replica(t)
	r = b.Do(http.MethodPost, "/", body, "Content-Type", "application/cloudevents+json").Expect(t, http.StatusOK, "")
	if r.JSON["result"] != "found" || !strings.Contains(r.JSON["detail"].(string), "already ran") {
		t.Fatalf("redelivery to another replica: %s", r.Body)
	}
	if n := fake.Requests() - base; n != once {
		t.Fatalf("%d probe requests after redeliveries, want %d (one discovery)", n, once)
	}
	if got := a.record(rec.ID).Version; got != v {
		t.Fatalf("record version %d after redeliveries, want %d", got, v)
	}

	// Concurrent deliveries of one event to a fresh replica: still one discovery.
	c := a.replica(t)
	rec2 := c.register("dup2", store.Prometheus{})
	body2, _ := json.Marshal(createdEvent(t, rec2))
	before := fake.Requests()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Do(http.MethodPost, "/", body2, "Content-Type", "application/cloudevents+json")
		}()
	}
	wg.Wait()
	if n := fake.Requests() - before; n != once {
		t.Fatalf("%d probe requests for 5 concurrent deliveries, want %d", n, once)
	}
	if got := c.record(rec2.ID); got.Version != rec2.Version+1 || got.Prometheus.Status != store.PrometheusFound {
		t.Fatalf("after concurrent deliveries: v%d %+v", got.Version, got.Prometheus)
	}
}

// An event for a deleted cluster is refused with a 4xx the sender does not retry; malformed events too.
func TestEventsThatMustNotBeRetried(t *testing.T) {
	needKube(t)
	s := deploy(t, nil)
	gone := &store.Cluster{ID: 42, Name: "gone", Version: 1, Prometheus: store.Prometheus{Status: store.PrometheusPending}}

	before := s.Hits.Load()
	err := s.send(createdEvent(t, gone))
	if err == nil || !strings.Contains(err.Error(), "410") {
		t.Fatalf("event for a deleted cluster: %v", err)
	}
	if n := s.Hits.Load() - before; n != 1 {
		t.Fatalf("the sender tried %d times; a 410 must not be retried", n)
	}
	body, _ := json.Marshal(createdEvent(t, gone))
	s.Do(http.MethodPost, "/", body, "Content-Type", "application/cloudevents+json").Expect(t, http.StatusGone, "gone")

	bad := func(e cloudevents.Event) []byte {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := createdEvent(t, gone)
	other.SetType(events.TypeClusterDeleted)
	noData := createdEvent(t, gone)
	_ = noData.SetData(cloudevents.ApplicationJSON, map[string]string{"hello": "world"})
	wrongSubject := createdEvent(t, gone)
	wrongSubject.SetSubject("7")
	for name, tc := range map[string]struct {
		body []byte
		ct   string
	}{
		"broken structured":  {[]byte(`{"specversion": "1.0"`), "application/cloudevents+json"},
		"another type":       {bad(other), "application/cloudevents+json"},
		"no cluster in data": {bad(noData), "application/cloudevents+json"},
		"wrong subject":      {bad(wrongSubject), "application/cloudevents+json"},
	} {
		r := s.Do(http.MethodPost, "/", tc.body, "Content-Type", tc.ct, "Authorization", "")
		if r.Status != http.StatusBadRequest {
			t.Fatalf("%s: status %d: %s", name, r.Status, r.Body)
		}
		r.Expect(t, http.StatusBadRequest, "bad_request")
	}
	huge := append([]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"dev.kitefn.cluster.created","data":"`),
		bytes.Repeat([]byte("a"), 2<<20)...)
	s.Do(http.MethodPost, "/", append(huge, `"}`...), "Content-Type", "application/cloudevents+json").
		Expect(t, http.StatusRequestEntityTooLarge, "payload_too_large")
	// Not an event at all: without a token it meets the bearer check, with one it is refused as no event.
	s.Do(http.MethodPost, "/", []byte(`{"name": "x"}`), "Authorization", "").
		Expect(t, http.StatusUnauthorized, "unauthorized")
	s.Do(http.MethodPost, "/", []byte(`{"name": "x"}`)).Expect(t, http.StatusBadRequest, "bad_request")

	// An update that changed only labels is none of discovery's business.
	rec := s.register("labels", store.Prometheus{})
	upd, err := events.NewClusterEvent(events.TypeClusterUpdated, events.ClusterData{Cluster: events.ClusterFromRecord(rec), Changed: []string{"labels"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.send(upd); err != nil {
		t.Fatal(err)
	}
	if got := s.record(rec.ID); got.Version != rec.Version || got.Prometheus.Status != store.PrometheusPending {
		t.Fatalf("a labels update ran discovery: %+v", got.Prometheus)
	}
}

// A store that is down is a transient failure: 503, and the sender tries again.
func TestStoreDownIsRetried(t *testing.T) {
	needKube(t)
	s := deploy(t, nil)
	rec := s.register("later", store.Prometheus{})
	if err := s.Platform.Store.Close(); err != nil {
		t.Fatal(err)
	}
	before := s.Hits.Load()
	err := s.send(createdEvent(t, rec))
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("event while the store is down: %v", err)
	}
	if n := s.Hits.Load() - before; n != 4 {
		t.Fatalf("the sender tried %d times, want all 4 attempts for a 503", n)
	}
	body, _ := json.Marshal(createdEvent(t, rec))
	s.Do(http.MethodPost, "/", body, "Content-Type", "application/cloudevents+json").
		Expect(t, http.StatusServiceUnavailable, "store_unavailable")
}

// End to end in one process: register a cluster over HTTP and see prometheus.status=found without any other
// call; clearing the URL later runs discovery again, a typed URL stays.
func TestEndToEndInOneProcess(t *testing.T) {
	w := newWorld(t)
	w.prom(netns.ServiceSpec{Namespace: "monitoring", Name: "prometheus-k8s", Port: 9090, PortName: "web"})
	s := startAll(t, nil)
	reg, _ := json.Marshal(map[string]any{"name": "e2e", "kubeconfig": string(kube.AdminKubeconfig())})
	r := s.Do(http.MethodPost, "/api/v1/clusters", reg).Expect(t, http.StatusCreated, "")
	if r.JSON["warnings"] != nil {
		t.Fatalf("registration warnings: %s", r.Body)
	}
	id := uint64(r.JSON["id"].(float64))
	want := proxyPath("monitoring", "prometheus-k8s", 9090)
	p := waitStatus(t, s, id, store.PrometheusPending)
	if p["status"] != "found" || p["url"] != want {
		t.Fatalf("prometheus %v, want found at %s", p, want)
	}

	// Clearing the URL (even a found one) lets discovery run again, from the .updated event.
	r = s.Do(http.MethodPatch, "/api/v1/clusters/e2e", []byte(`{"prometheusURL": "https://typed.example.com"}`)).
		Expect(t, http.StatusOK, "")
	r = s.Do(http.MethodPatch, "/api/v1/clusters/e2e", []byte(`{"prometheusURL": ""}`)).Expect(t, http.StatusOK, "")
	if pr := r.JSON["prometheus"].(map[string]any); pr["status"] != "pending" {
		t.Fatalf("after clearing: %s", r.Body)
	}
	if p := waitStatus(t, s, id, store.PrometheusPending); p["status"] != "found" || p["url"] != want {
		t.Fatalf("after clearing the URL: %v", p)
	}
	// The re-detect route is served in one process next to the clusters API.
	r = s.Do(http.MethodPost, "/api/v1/clusters/e2e/prometheus/discover", nil).Expect(t, http.StatusOK, "")
	if r.JSON["status"] != "found" {
		t.Fatalf("re-detect: %s", r.Body)
	}
	assertNoSecrets(t, r.Body)
	r = s.Do(http.MethodGet, "/api/v1/clusters/e2e", nil).Expect(t, http.StatusOK, "")
	if r.JSON["prometheus"].(map[string]any)["status"] != "found" {
		t.Fatalf("clusters API: %s", r.Body)
	}
}

// waitStatus polls the clusters API until the cluster's Prometheus status is no longer from (discovery runs
// in the background in one-process mode) and returns the prometheus object.
func waitStatus(t *testing.T, s *server, id uint64, from store.PrometheusStatus) map[string]any {
	t.Helper()
	var p map[string]any
	var body string
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 60*time.Second, true,
		func(context.Context) (bool, error) {
			r := s.Do(http.MethodGet, fmt.Sprintf("/api/v1/clusters/%d", id), nil).Expect(t, http.StatusOK, "")
			p, body = r.JSON["prometheus"].(map[string]any), string(r.Body)
			return p["status"] != string(from), nil
		})
	if err != nil {
		t.Fatalf("cluster %d still %s after 60s: %s", id, from, body)
	}
	return p
}

package prometheus_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/prometheus"
	"github.com/kitefn/kitefn/shared/prometheus/prometheustest"
)

// direct serves a fake Prometheus on loopback, under an optional path prefix, and returns a client for it.
func direct(t *testing.T, fake *prometheustest.Server, prefix string, opts ...prometheus.Option) *prometheus.Client {
	t.Helper()
	var h http.Handler = fake
	if prefix != "" {
		h = http.StripPrefix(prefix, fake)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	c, err := prometheus.New(nil, ts.URL+prefix+"/", opts...)
	if err != nil {
		t.Fatal(err)
	}
	if c.ViaServiceProxy() {
		t.Fatal("an absolute URL must not go through the service proxy")
	}
	return c
}

func TestQueriesAgainstADirectURL(t *testing.T) {
	fake := &prometheustest.Server{Version: "3.1.0"}
	c := direct(t, fake, "/prometheus")
	ctx := t.Context()

	info, err := c.BuildInfo(ctx)
	if err != nil || info.Version != "3.1.0" {
		t.Fatalf("BuildInfo = %+v, %v", info, err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 500_000_000, time.UTC)
	d, err := c.Query(ctx, "up", at)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := d.Vector()
	if err != nil || len(vec) != 1 || vec[0].Value != 1 || !vec[0].Time.Equal(at) || vec[0].Metric["job"] != "prometheus" {
		t.Fatalf("vector %+v, %v", vec, err)
	}
	if _, err := d.Matrix(); err == nil {
		t.Fatal("a vector decoded as a matrix")
	}

	r := prometheus.Range{Start: at, End: at.Add(time.Minute), Step: 15 * time.Second}
	d, err = c.QueryRange(ctx, "up", r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Matrix()
	if err != nil || len(m) != 1 || len(m[0].Points) != 5 || !m[0].Points[4].Time.Equal(at.Add(time.Minute)) {
		t.Fatalf("matrix %+v, %v", m, err)
	}
	if got := fake.Paths(); strings.Join(got, ",") != "/api/v1/status/buildinfo,/api/v1/query,/api/v1/query_range" {
		t.Fatalf("paths asked (prefix kept?): %v", got)
	}
	if _, err := c.QueryRange(ctx, "up", prometheus.Range{Start: at, End: at, Step: 0}); err == nil {
		t.Fatal("a range without a step was sent")
	}
}

func TestPrometheusErrorsAreTyped(t *testing.T) {
	c := direct(t, &prometheustest.Server{}, "")
	_, err := c.Query(t.Context(), "rate(", time.Time{})
	var apiErr *prometheus.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Type != "bad_data" {
		t.Fatalf("bad query: %v", err)
	}

	other := direct(t, &prometheustest.Server{NotPrometheus: true}, "")
	if _, err := other.BuildInfo(t.Context()); !errors.Is(err, prometheus.ErrNotPrometheus) {
		t.Fatalf("an HTML page: %v", err)
	}
	if _, err := other.Probe(t.Context()); !errors.Is(err, prometheus.ErrNotPrometheus) {
		t.Fatalf("probe of an HTML page: %v", err)
	}
}

// An old Prometheus without buildinfo still answers the probe, through the query.
func TestProbeFallsBackToAQuery(t *testing.T) {
	fake := &prometheustest.Server{NoBuildInfo: true}
	c := direct(t, fake, "")
	info, err := c.Probe(t.Context())
	if err != nil || info.Version != "" {
		t.Fatalf("Probe = %+v, %v", info, err)
	}
	if got := strings.Join(fake.Paths(), ","); got != "/api/v1/status/buildinfo,/api/v1/query" {
		t.Fatalf("paths %s", got)
	}
}

func TestProbeOfNothingFailsOnce(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	addr := ts.URL
	ts.Close() // nothing listens there any more
	c, err := prometheus.New(nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Probe(t.Context())
	if err == nil || strings.Contains(err.Error(), "query up") {
		t.Fatalf("a refused connection should fail without a second request: %v", err)
	}
}

func TestAnswerSizeIsBounded(t *testing.T) {
	c := direct(t, &prometheustest.Server{}, "", prometheus.WithMaxResponseBytes(64))
	if _, err := c.Query(t.Context(), "up", time.Time{}); err == nil || !strings.Contains(err.Error(), "larger than 64") {
		t.Fatalf("oversized answer: %v", err)
	}
}

func TestTimeoutAppliesWithoutADeadline(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); ts.Close() })
	c, err := prometheus.New(nil, ts.URL, prometheus.WithTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.BuildInfo(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := prometheus.New(nil, "/api/v1/namespaces/m/services/p:9090/proxy"); err == nil {
		t.Fatal("a service-proxy path without a cluster client was accepted")
	}
	if _, err := prometheus.New(nil, "https://u:secret@p.example.com"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("credentials in the URL: %v", err)
	}
}

func TestPointJSON(t *testing.T) {
	var p prometheus.Point
	if err := p.UnmarshalJSON([]byte(`[1712345678.123,"NaN"]`)); err != nil || !math.IsNaN(p.Value) ||
		p.Time.UnixMilli() != 1712345678123 {
		t.Fatalf("%+v %v", p, err)
	}
	if err := p.UnmarshalJSON([]byte(`[1,"+Inf"]`)); err != nil || !math.IsInf(p.Value, 1) {
		t.Fatalf("%+v %v", p, err)
	}
	if err := p.UnmarshalJSON([]byte(`[1,2]`)); err == nil {
		t.Fatal("a number value was accepted (Prometheus writes strings)")
	}
	out, err := prometheus.Point{Time: time.UnixMilli(1500), Value: 2.5}.MarshalJSON()
	if err != nil || string(out) != `[1.5,"2.5"]` {
		t.Fatalf("%s %v", out, err)
	}
}

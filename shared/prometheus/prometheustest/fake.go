// Package prometheustest is a Prometheus HTTP API stand-in for tests: buildinfo, instant and range queries of
// the `up` series, and Prometheus-shaped errors. It is a real HTTP handler; serve it on loopback (httptest) or
// inside a network namespace (tests/netns) to put it behind a Kubernetes Service.
package prometheustest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server answers the Prometheus API. Set its fields before serving.
type Server struct {
	// Version is what buildinfo reports ("2.55.1" when empty).
	Version string
	// NoBuildInfo answers buildinfo with a plain 404, like a Prometheus older than 2.14.
	NoBuildInfo bool
	// NotPrometheus answers every path with an HTML page, like some other web server.
	NotPrometheus bool

	requests atomic.Int64
	mu       sync.Mutex
	paths    []string
	auth     []string
}

// Requests is how many requests it has answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Paths lists the paths it was asked for, in order.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

// AuthorizationHeaders lists every non-empty Authorization header it received: a proxy in front must not
// pass the caller's credentials on.
func (s *Server) AuthorizationHeaders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

// ServeHTTP implements the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	if a := r.Header.Get("Authorization"); a != "" {
		s.auth = append(s.auth, a)
	}
	s.mu.Unlock()
	if s.NotPrometheus {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>Welcome</body></html>")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/api/v1/status/buildinfo":
		if s.NoBuildInfo {
			http.NotFound(w, r)
			return
		}
		v := s.Version
		if v == "" {
			v = "2.55.1"
		}
		ok(w, map[string]string{"version": v, "revision": "test", "branch": "HEAD", "goVersion": "go1.26"})
	case "/api/v1/query":
		q := r.FormValue("query")
		if q != "up" && q != "vector(1)" {
			fail(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("unknown query %q (the fake knows up and vector(1))", q))
			return
		}
		at := time.Now()
		if t := r.FormValue("time"); t != "" {
			f, err := strconv.ParseFloat(t, 64)
			if err != nil {
				fail(w, http.StatusBadRequest, "bad_data", "invalid time "+t)
				return
			}
			at = time.UnixMilli(int64(f * 1e3))
		}
		ok(w, map[string]any{"resultType": "vector", "result": []any{map[string]any{
			"metric": map[string]string{"__name__": "up", "job": "prometheus", "instance": "localhost:9090"},
			"value":  []any{float64(at.UnixMilli()) / 1e3, "1"},
		}}})
	case "/api/v1/query_range":
		start, err1 := strconv.ParseFloat(r.FormValue("start"), 64)
		end, err2 := strconv.ParseFloat(r.FormValue("end"), 64)
		step, err3 := strconv.ParseFloat(r.FormValue("step"), 64)
		if err1 != nil || err2 != nil || err3 != nil || step <= 0 || end < start {
			fail(w, http.StatusBadRequest, "bad_data", "invalid start, end or step")
			return
		}
		if r.FormValue("query") != "up" {
			fail(w, http.StatusBadRequest, "bad_data", "unknown query")
			return
		}
		var values []any
		for t := start; t <= end; t += step {
			values = append(values, []any{t, "1"})
		}
		ok(w, map[string]any{"resultType": "matrix", "result": []any{map[string]any{
			"metric": map[string]string{"__name__": "up", "job": "prometheus"},
			"values": values,
		}}})
	default:
		http.NotFound(w, r)
	}
}

func ok(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

func fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": typ, "error": msg})
}

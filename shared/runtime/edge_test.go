package runtime

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kitefn/kitefn/shared/access"
)

func TestEdgeOrderHeadersCORSAuthLimit(t *testing.T) {
	const origin = "https://console.example.com"
	cfg := Config{Target: "all", ShutdownTimeout: time.Second, RateLimit: 0.01, RateBurst: 2,
		CORSOrigins: []string{origin}}
	if err := cfg.Validate([]string{"fn"}); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(cfg, zaptest.NewLogger(t).Sugar(), []Function{{Name: "fn", Value: newFn()}}, []string{token},
		testAccess(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	do := func(method, path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	secure := func(what string, rec *httptest.ResponseRecorder) {
		t.Helper()
		if rec.Header().Get("X-Frame-Options") != "DENY" || rec.Header().Get("Cache-Control") != "no-store" ||
			rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s: security headers missing: %v", what, rec.Header())
		}
	}
	// Preflight: answered before auth (no token), with CORS headers.
	rec := do("OPTIONS", "/fn/x", "Origin", origin, "Access-Control-Request-Method", "DELETE")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("preflight: %d %v", rec.Code, rec.Header())
	}
	secure("preflight", rec)
	// A 401 still carries CORS (the page can read why) and security headers.
	rec = do("GET", "/fn/x", "Origin", origin)
	if rec.Code != 401 || rec.Header().Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("401: %d %v", rec.Code, rec.Header())
	}
	secure("401", rec)
	// Unauthenticated requests never reach the limiter: they cannot use up a caller's bucket.
	for range 5 {
		do("GET", "/fn/x")
	}
	auth := []string{"Authorization", "Bearer " + token}
	for i := range 2 {
		if rec = do("GET", "/fn/x", auth...); rec.Code != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec = do("GET", "/fn/x", auth...)
	if rec.Code != 429 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"rate_limited"`) ||
		!strings.Contains(rec.Body.String(), `"requestId"`) {
		t.Fatalf("over the limit: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	secure("429", rec)
	// Health is never limited and gets the headers too.
	for range 5 {
		if rec = do("GET", "/health/readiness"); rec.Code != 200 {
			t.Fatalf("health limited: %d", rec.Code)
		}
	}
	secure("health", rec)
}

func TestCallerKey(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	if got := callerKey(r); got != "ip:192.0.2.7" {
		t.Fatalf("no caller: %q", got)
	}
	r = r.WithContext(access.WithCaller(r.Context(), &access.Caller{Name: "token:ci"}))
	if got := callerKey(r); got != "caller:token:ci" {
		t.Fatalf("with caller: %q", got)
	}
}

func TestEdgeConfigValidation(t *testing.T) {
	base := Config{Target: "all", ShutdownTimeout: time.Second}
	for name, c := range map[string]func(*Config){
		"negative rate":   func(c *Config) { c.RateLimit = -1 },
		"negative burst":  func(c *Config) { c.RateBurst = -1 },
		"rate, no burst":  func(c *Config) { c.RateLimit = 5 },
		"wildcard origin": func(c *Config) { c.CORSOrigins = []string{"*"} },
		"origin w/ path":  func(c *Config) { c.CORSOrigins = []string{"https://x/app"} },
	} {
		cfg := base
		c(&cfg)
		if err := cfg.Validate([]string{"fn"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := base
	ok.RateLimit, ok.RateBurst, ok.CORSOrigins = 20, 40, []string{"https://a.example", "http://localhost:3000"}
	if err := ok.Validate([]string{"fn"}); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

package httpapi

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRateLimitPerCallerWithRetryAfter(t *testing.T) {
	h, err := RateLimit{PerSecond: 0.5, Burst: 2}.Limit(func(r *http.Request) string { return r.Header.Get("Who") }, ok)
	if err != nil {
		t.Fatal(err)
	}
	req := func(who string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("Who", who)
		return serve(h, r)
	}
	for i := range 2 {
		if rec := req("alice"); rec.Code != 200 {
			t.Fatalf("alice request %d within the burst: %d", i, rec.Code)
		}
	}
	rec := req("alice")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("alice over the burst: %d, want 429", rec.Code)
	}
	// 0.5/s: the next token is 2 s away.
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %q, want 2", got)
	}
	var body struct {
		Error Error `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != CodeRateLimited ||
		body.Error.Status != 429 || !strings.Contains(body.Error.Message, "retry in 2 s") {
		t.Fatalf("429 body: %v %s", err, rec.Body)
	}
	// Refused requests give their reservation back: a refused flood does not push the wait further out.
	for range 5 {
		req("alice")
	}
	if got := req("alice").Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After after refused requests %q, want still 2", got)
	}
	if rec := req("bob"); rec.Code != 200 {
		t.Fatalf("bob has his own bucket: %d", rec.Code)
	}
}

func TestRateLimitForgetsLeastRecentCaller(t *testing.T) {
	h, err := RateLimit{PerSecond: 0.001, Burst: 1, Callers: 1}.Limit(
		func(r *http.Request) string { return r.Header.Get("Who") }, ok)
	if err != nil {
		t.Fatal(err)
	}
	call := func(who string) int {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("Who", who)
		return serve(h, r).Code
	}
	if call("a") != 200 || call("a") != 429 {
		t.Fatal("a: want 200 then 429")
	}
	if call("b") != 200 { // evicts a: one limiter kept
		t.Fatal("b: want 200")
	}
	if call("a") != 200 {
		t.Fatal("a after eviction: want a fresh bucket")
	}
}

func TestRateLimitOff(t *testing.T) {
	h, err := RateLimit{}.Limit(func(*http.Request) string { return "" }, ok)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if rec := serve(h, httptest.NewRequest("GET", "/", nil)); rec.Code != 200 {
			t.Fatalf("limit off: %d", rec.Code)
		}
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins([]string{" https://Console.example.com ", "", "http://localhost:3000/"})
	if err != nil || strings.Join(got, ",") != "https://console.example.com,http://localhost:3000" {
		t.Fatalf("ParseOrigins = %v, %v", got, err)
	}
	for _, bad := range []string{"*", "https://*.example.com", "console.example.com", "ftp://x", "https://x/path",
		"https://user@x", "https://x?q=1"} {
		if _, err := ParseOrigins([]string{bad}); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
}

func TestCORS(t *testing.T) {
	const good = "https://console.example.com"
	h := CORS([]string{good}, ok)

	pre := httptest.NewRequest("OPTIONS", "/api/v1/clusters", nil)
	pre.Header.Set("Origin", good)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	rec := serve(h, pre)
	hd := rec.Header()
	if rec.Code != 204 || hd.Get("Access-Control-Allow-Origin") != good ||
		!strings.Contains(hd.Get("Access-Control-Allow-Methods"), "PATCH") ||
		hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, X-Cluster-Name, X-Request-Id" ||
		hd.Get("Access-Control-Max-Age") != strconv.Itoa(corsMaxAge) || hd.Get("Access-Control-Allow-Credentials") != "" ||
		!strings.Contains(strings.Join(hd.Values("Vary"), ","), "Origin") || rec.Body.Len() != 0 {
		t.Fatalf("allowed preflight: %d %v %q", rec.Code, hd, rec.Body)
	}

	pre.Header.Set("Origin", "https://evil.example.com")
	rec = serve(h, pre)
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "" ||
		rec.Header().Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("foreign preflight must get no CORS headers: %d %v", rec.Code, rec.Header())
	}

	get := httptest.NewRequest("GET", "/api/v1/clusters", nil)
	get.Header.Set("Origin", good)
	rec = serve(h, get)
	if rec.Body.String() != "ok" || rec.Header().Get("Access-Control-Allow-Origin") != good ||
		!strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-Request-Id") ||
		rec.Header().Get("Vary") != "Origin" {
		t.Fatalf("allowed GET: %q %v", rec.Body, rec.Header())
	}
	get.Header.Set("Origin", "https://evil.example.com")
	if rec = serve(h, get); rec.Body.String() != "ok" || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign GET: %q %v", rec.Body, rec.Header())
	}
	// A plain OPTIONS (no preflight headers) is not CORS: it goes to the API.
	if rec = serve(h, httptest.NewRequest("OPTIONS", "/x", nil)); rec.Body.String() != "ok" {
		t.Fatalf("plain OPTIONS: %d %q", rec.Code, rec.Body)
	}

	// No origins: no CORS at all, preflights included.
	rec = serve(CORS(nil, ok), pre)
	if rec.Body.String() != "ok" || rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Header().Get("Vary") != "" {
		t.Fatalf("CORS off: %q %v", rec.Body, rec.Header())
	}
}

func TestSecurityHeaders(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
	})
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"Cache-Control":           "no-store",
	}
	rec := serve(SecurityHeaders(ok), httptest.NewRequest("GET", "/", nil))
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if rec.Header().Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain HTTP")
	}
	viaProxy := httptest.NewRequest("GET", "/", nil)
	viaProxy.Header.Set("X-Forwarded-Proto", "https")
	direct := httptest.NewRequest("GET", "/", nil)
	direct.TLS = &tls.ConnectionState{}
	for _, r := range []*http.Request{viaProxy, direct} {
		if got := serve(SecurityHeaders(ok), r).Header().Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
			t.Errorf("HSTS over HTTPS: %q", got)
		}
	}
	if got := serve(SecurityHeaders(page), httptest.NewRequest("GET", "/", nil)).Header().Get("Content-Security-Policy"); got != "default-src 'self'" {
		t.Errorf("a page's own CSP must win: %q", got)
	}
}

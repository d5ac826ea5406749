package terminal_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/tests/apitest"
)

// TestPageBundleIsCurrent recomputes web/dist/SOURCES.sha256 (as web/build.mjs writes it) from the page's
// sources, package.json, the lock file, the build script and the built files: a source changed without
// `make page`, or a hand-edited bundle, fails here, without npm or the network.
func TestPageBundleIsCurrent(t *testing.T) {
	web := "web"
	files := []string{"build.mjs", "package.json", "package-lock.json"}
	for _, dir := range []string{"src", "dist"} {
		entries, err := os.ReadDir(filepath.Join(web, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "SOURCES.sha256" {
				files = append(files, dir+"/"+e.Name())
			}
		}
	}
	slices.Sort(files)
	var want strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(web, f))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&want, "%s  %s\n", hex.EncodeToString(sum[:]), f)
	}
	got, err := os.ReadFile(filepath.Join(web, "dist", "SOURCES.sha256"))
	if err != nil {
		t.Fatalf("the page bundle has no SOURCES.sha256: run make page (%v)", err)
	}
	if string(got) != want.String() {
		t.Fatalf("functions/terminal/web/dist is not built from the current sources: run make page\nrecorded:\n%s\nnow:\n%s",
			got, want.String())
	}
}

// TestPageServedWithoutToken: the page's files load without a token, with the page's CSP and the runtime's other
// security headers; only the bundle's own files exist; the page holds no inline script; anything else under
// /terminal/ (another method, a dot segment) still needs a token.
func TestPageServedWithoutToken(t *testing.T) {
	s := apitest.Start(t, nil, apitest.Function("terminal"))
	noToken := []string{"Authorization", ""}

	index := s.Do(http.MethodGet, "/terminal/", nil, noToken...)
	if index.Status != 200 || !strings.HasPrefix(index.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(index.Body), `<script defer src="app.js"></script>`) ||
		!strings.Contains(string(index.Body), `<link rel="stylesheet" href="app.css">`) {
		t.Fatalf("GET /terminal/: %d %s\n%s", index.Status, index.Header, index.Body)
	}
	csp := index.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-eval") || strings.Contains(strings.SplitN(csp, "script-src", 2)[1], "unsafe-inline;") {
		t.Errorf("CSP allows inline or eval'd script: %q", csp)
	}
	if index.Header.Get("X-Content-Type-Options") != "nosniff" || index.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("security headers missing: %v", index.Header)
	}
	// No inline script and no inline handler: the CSP would block them.
	for _, m := range regexp.MustCompile(`<script([^>]*)>([^<]*)</script>`).FindAllStringSubmatch(string(index.Body), -1) {
		if !strings.Contains(m[1], " src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("the page has inline script: %q", m[0])
		}
	}
	if m := regexp.MustCompile(`\son[a-z]+=`).FindString(string(index.Body)); m != "" {
		t.Errorf("the page has an inline handler: %q", m)
	}

	for name, ctype := range map[string]string{"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"} {
		r := s.Do(http.MethodGet, "/terminal/"+name, nil, noToken...)
		want, err := os.ReadFile(filepath.Join("web", "dist", name))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) || string(r.Body) != string(want) {
			t.Errorf("GET /terminal/%s: %d %q, %d bytes (want %d)", name, r.Status, r.Header.Get("Content-Type"),
				len(r.Body), len(want))
		}
	}
	if r := s.Do(http.MethodGet, "/terminal/app.js", nil, noToken...); !strings.Contains(string(r.Body), "xterm") {
		t.Errorf("app.js does not bundle xterm.js")
	}
	for _, name := range []string{"nope.js", "SOURCES.sha256", "src/app.js"} {
		s.Do(http.MethodGet, "/terminal/"+name, nil, noToken...).Expect(t, http.StatusNotFound, "not_found")
	}
	if r := s.Do(http.MethodHead, "/terminal/app.js", nil, noToken...); r.Status != 200 || len(r.Body) != 0 {
		t.Errorf("HEAD /terminal/app.js: %d, %d bytes", r.Status, len(r.Body))
	}
	s.Do(http.MethodPost, "/terminal/", nil, noToken...).Expect(t, http.StatusUnauthorized, "unauthorized")
	s.Do(http.MethodGet, "/terminal/%2e%2e/api/v1/clusters", nil, noToken...).Expect(t, http.StatusUnauthorized, "unauthorized")
	// Navigating to /terminal lands on the page.
	if r := s.Do(http.MethodGet, "/terminal", nil, noToken...); r.Status != 200 || !strings.Contains(string(r.Body), "app.js") {
		t.Errorf("GET /terminal: %d %s", r.Status, r.Body)
	}
}

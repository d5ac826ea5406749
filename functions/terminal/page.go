package terminal

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// The browser page at /terminal/: web/dist is built by `make page` (npm + esbuild) from web/src and committed;
// page_test.go checks it is current without npm.
//
//go:embed web/dist
var pageFiles embed.FS

// pagePattern is the page's one route, public: a browser loads it by navigation, without a token.
const pagePattern = "/terminal/{path...}"

// pageCSP replaces the runtime's default-src 'none' on the page: script and style from the page's own origin
// only, no inline script, API calls and WebSockets to the same origin. xterm.js adds <style> elements at run
// time (its theme and cell sizes), which needs 'unsafe-inline' for styles, never for scripts.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// PublicRoutes are the routes the runtime serves without authentication: the page's static files. Everything
// the page does after loading goes to the authenticated API with the token.
func (f *Function) PublicRoutes() []string { return []string{http.MethodGet + " " + pagePattern} }

func (f *Function) routePage() {
	dist, err := fs.Sub(pageFiles, "web/dist")
	if err != nil {
		panic(err) // the embed pattern above names this directory: it always exists
	}
	f.mux.Handle(http.MethodGet, pagePattern, func(w http.ResponseWriter, r *http.Request) {
		servePage(dist, w, r)
	})
}

// servePage answers one file of the page; "" is index.html. Only the bundle's own files exist: no listing, no
// path outside dist (fs.FS refuses ".." and absolute names).
func servePage(dist fs.FS, w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	if name == "" {
		name = "index.html"
	}
	body, err := fs.ReadFile(dist, name)
	if err != nil || name == "SOURCES.sha256" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"the terminal page has no file %q", name))
		return
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

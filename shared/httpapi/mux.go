package httpapi

import (
	"net/http"
	"sort"
)

// Mux is a ServeMux that answers unknown paths (404) and wrong methods (405, with Allow) in the JSON error
// shape, where the standard mux answers in plain text, and lists its paths so one-process mode can route to it.
type Mux struct {
	mux   *http.ServeMux
	paths map[string]bool
}

// NewMux makes an empty Mux.
func NewMux() *Mux {
	return &Mux{mux: http.NewServeMux(), paths: map[string]bool{}}
}

// Handle registers h for method and path (a ServeMux path pattern such as /api/v1/clusters/{ref}).
func (m *Mux) Handle(method, path string, h http.HandlerFunc) {
	m.mux.HandleFunc(method+" "+path, h)
	m.paths[path] = true
}

// Paths lists the registered path patterns (without methods), sorted.
func (m *Mux) Paths() []string {
	out := make([]string, 0, len(m.paths))
	for p := range m.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ServeHTTP dispatches to the registered handlers.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := m.mux.Handler(r)
	if pattern != "" {
		m.mux.ServeHTTP(w, r) // not h: only ServeHTTP sets the request's path values
		return
	}
	// No match: let the standard mux decide between 404 and 405 (it knows the Allow list), then answer in JSON.
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		WriteError(w, r, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		return
	}
	WriteError(w, r, Errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// headerProbe records the status and headers a handler chose and drops its body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

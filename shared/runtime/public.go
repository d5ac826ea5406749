package runtime

import (
	"fmt"
	"net/http"
	"path"
	"strings"
)

// publicMux is the mux of the functions' public routes (PublicRouter), or nil when none has any. A pattern must
// be "GET /<literal>/..." outside /api, /k8s and /health, so a function can publish its own page and nothing of
// the API.
func publicMux(fns []Function) (*http.ServeMux, error) {
	var mux *http.ServeMux
	for _, f := range fns {
		p, ok := f.Value.(PublicRouter)
		if !ok {
			continue
		}
		for _, pattern := range p.PublicRoutes() {
			if err := checkPublic(pattern); err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
			if mux == nil {
				mux = http.NewServeMux()
			}
			if err := register(mux, pattern, handlerOf(f.Value)); err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
		}
	}
	return mux, nil
}

func checkPublic(pattern string) error {
	method, path, _ := strings.Cut(pattern, " ")
	if method != http.MethodGet {
		return fmt.Errorf("public route %q: only GET patterns (\"GET /page/...\") may be public", pattern)
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("public route %q: the path must start with / (no host)", pattern)
	}
	first, _, _ := strings.Cut(path[1:], "/")
	switch {
	case first == "" || strings.ContainsAny(first, "{}"):
		return fmt.Errorf("public route %q: the first path segment must be a literal name", pattern)
	case first == "api" || first == "k8s" || first == "health":
		return fmt.Errorf("public route %q: /%s stays authenticated", pattern, first)
	}
	return nil
}

// register adds a pattern, turning ServeMux's panic on a malformed or conflicting one into an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("public route %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// withPublic serves GET and HEAD requests a public route matches with public (no authentication); everything
// else, another method on a public path or a path with dot segments (even percent-encoded ones the mux would
// match literally) included, goes to rest.
func withPublic(mux *http.ServeMux, public, rest http.Handler) http.Handler {
	if mux == nil {
		return rest
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && clean(r.URL.Path) {
			if _, pattern := mux.Handler(r); pattern != "" {
				public.ServeHTTP(w, r)
				return
			}
		}
		rest.ServeHTTP(w, r)
	})
}

// clean reports whether the decoded path has no empty, "." or ".." segment.
func clean(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

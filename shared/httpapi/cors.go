package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// CORS policy: what a browser page on an allowed origin may send. The API's credential is a bearer token in the
// Authorization header (never a cookie), so Access-Control-Allow-Credentials is not sent and origins are exact:
// "*" is refused, a wildcard would let any web page drive the API with a token it got hold of.
const (
	corsMethods = "GET, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, X-Cluster-Name, X-Request-Id"
	corsExpose  = "X-Request-Id, Retry-After, Warning"
	corsMaxAge  = 600 // seconds a browser may cache a preflight answer
)

// ParseOrigins checks an allow-list of exact origins (scheme://host[:port], no path) and returns them
// normalised to lower case.
func ParseOrigins(origins []string) ([]string, error) {
	var out []string
	for _, o := range origins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" || strings.Contains(o, "*") {
			return nil, fmt.Errorf("CORS origin %q: wildcards are not allowed, list exact origins", o)
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("CORS origin %q must be scheme://host[:port], e.g. https://console.example.com", o)
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out, nil
}

// CORS answers preflights and adds CORS headers for the allowed origins (from ParseOrigins). With none it
// returns next unchanged: no CORS headers at all. A request from an origin not on the list gets none either,
// so the browser keeps the answer from the page.
func CORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin") // the answer depends on Origin: shared caches must not mix them
		ok := origin != "" && allowed[strings.ToLower(origin)]
		preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			// Answered here, before authentication: browsers send preflights without the Authorization header.
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if ok {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Methods", corsMethods)
				h.Set("Access-Control-Allow-Headers", corsHeaders)
				h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", corsExpose)
		}
		next.ServeHTTP(w, r)
	})
}

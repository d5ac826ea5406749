package runtime

import (
	"net"
	"net/http"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
)

// rateLimited wraps the functions' handler in the per-caller limit (it runs after authentication, so the
// caller is known).
func rateLimited(cfg Config, api http.Handler) (http.Handler, error) {
	return httpapi.RateLimit{PerSecond: cfg.RateLimit, Burst: cfg.RateBurst}.Limit(callerKey, api)
}

// callerKey names the caller the authentication middleware found; without one (bootstrap-token auth that sets
// no caller) the client address. X-Forwarded-For is not trusted: any client can set it.
func callerKey(r *http.Request) string {
	if c, ok := access.CallerFrom(r.Context()); ok && c.Name != "" {
		return "caller:" + c.Name
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// edge wraps the root handler: security headers on every answer (health included), then CORS, which answers
// preflights before authentication.
func edge(cfg Config, root http.Handler) (http.Handler, error) {
	origins, err := httpapi.ParseOrigins(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	return httpapi.SecurityHeaders(httpapi.CORS(origins, root)), nil
}

package httpapi

import (
	"net/http"
	"strings"
)

// SecurityHeaders sets the headers that keep a browser from misusing an API answer: no MIME sniffing, no
// referrer, no framing, no scripts or subresources (CSP default-src 'none'), no caching of answers that may
// hold cluster data, and HSTS when the request came over HTTPS (directly or via a TLS-terminating proxy). They
// are set before next runs, so a handler serving a page (the terminal) can replace CSP with its own.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

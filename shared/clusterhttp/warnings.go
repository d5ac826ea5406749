package clusterhttp

import (
	"net/http"

	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/kitefn/kitefn/shared/kube"
)

// Warnings installs a collector (kube.WithWarnings) for the cluster calls of a request and sends what it
// collected as `Warning: 299 - "<text>"` headers, as the apiserver does. Headers must precede the status, so
// only warnings collected before the handler writes its status (or first flushes) are sent.
func Warnings(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := kube.WarningsFrom(r.Context()); ok {
			next.ServeHTTP(w, r) // an outer Warnings already sends them
			return
		}
		ctx, warnings := kube.WithWarnings(r.Context())
		next.ServeHTTP(&warningWriter{ResponseWriter: w, warnings: warnings}, r.WithContext(ctx))
	})
}

// warningWriter adds the warnings when the status is written. Unwrap lets http.ResponseController reach the
// underlying writer (Hijack, deadlines); Flush is its own, since flushing writes the status.
type warningWriter struct {
	http.ResponseWriter
	warnings *kube.Warnings
	wrote    bool
}

func (w *warningWriter) addHeaders() {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.ResponseWriter.Header()
	for _, text := range w.warnings.List() {
		if v, err := utilnet.NewWarningHeader(299, "-", text); err == nil {
			h.Add("Warning", v)
		}
	}
}

func (w *warningWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: the real status is still to come
		return
	}
	w.addHeaders()
	w.ResponseWriter.WriteHeader(code)
}

func (w *warningWriter) Write(b []byte) (int, error) {
	w.addHeaders()
	return w.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController.Flush calls.
func (w *warningWriter) FlushError() error {
	w.addHeaders()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush serves callers that assert http.Flusher.
func (w *warningWriter) Flush() { _ = w.FlushError() }

func (w *warningWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

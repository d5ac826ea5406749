package access

import (
	"context"
	"net/http"

	"github.com/kitefn/kitefn/shared/store"
)

// EntryRecorder writes audit entries (a *Recorder; a nil one records nothing).
type EntryRecorder interface {
	Record(ctx context.Context, e store.AuditEntry)
}

// RequestAudit is the entry Audited records for one request. The handler fills in what it learns while serving
// (the name it resolved, what changed) through AuditOf; Off means the handler records its own entries (one per
// document or per context) and this one is dropped.
type RequestAudit struct {
	store.AuditEntry
	Off bool
}

type requestAuditKey struct{}

// AuditOf is the request's audit entry, or a throwaway one when the request is not audited, so handlers fill
// it in without checking.
func AuditOf(ctx context.Context) *RequestAudit {
	if a, ok := ctx.Value(requestAuditKey{}).(*RequestAudit); ok {
		return a
	}
	return &RequestAudit{}
}

// Audited records one entry per request to h, starting from base: the handler completes it through AuditOf, and
// the status it answers is the outcome. The entry is written just before that status goes out, so a client that
// has its answer finds the entry in the log; a handler that writes nothing is recorded as 200 when it returns.
// A nil rec records nothing.
func Audited(rec EntryRecorder, base store.AuditEntry, h http.HandlerFunc) http.HandlerFunc {
	if rec == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		a := &RequestAudit{AuditEntry: base}
		ctx := context.WithValue(r.Context(), requestAuditKey{}, a)
		sw := &auditWriter{ResponseWriter: w, record: func(status int) {
			if !a.Off {
				a.Outcome = status
				rec.Record(ctx, a.AuditEntry)
			}
		}}
		h(sw, r.WithContext(ctx))
		sw.answered(http.StatusOK)
	}
}

// auditWriter calls record once, with the first final status, before it is written.
type auditWriter struct {
	http.ResponseWriter
	record func(status int)
	done   bool
}

func (w *auditWriter) answered(status int) {
	if !w.done {
		w.done = true
		w.record(status)
	}
}

func (w *auditWriter) WriteHeader(status int) {
	if status >= 200 { // 1xx are informational: the final status is still to come
		w.answered(status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	w.answered(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack through the writer.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

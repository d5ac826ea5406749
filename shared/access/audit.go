package access

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// DefaultAuditTimeout bounds one audit write (KITEFN_AUDIT_TIMEOUT).
const DefaultAuditTimeout = 2 * time.Second

// AuditLog is the part of the store the Recorder writes to.
type AuditLog interface {
	AppendAudit(ctx context.Context, e *store.AuditEntry) error
}

// Recorder writes audit entries without ever failing or holding up the request beyond its timeout: a write
// that fails or times out is logged and counted, and the request goes on.
type Recorder struct {
	log      AuditLog
	timeout  time.Duration
	failures atomic.Uint64
}

// NewRecorder records into log; timeout <= 0 means DefaultAuditTimeout.
func NewRecorder(log AuditLog, timeout time.Duration) *Recorder {
	if timeout <= 0 {
		timeout = DefaultAuditTimeout
	}
	return &Recorder{log: log, timeout: timeout}
}

// Record writes e, filling Who from the caller and RequestID from the request when they are empty. It waits at
// most the recorder's timeout, and keeps going when the request's own context is cancelled: the action
// happened, so it is recorded. A nil Recorder records nothing.
func (r *Recorder) Record(ctx context.Context, e store.AuditEntry) {
	if r == nil {
		return
	}
	if e.Who == "" {
		c, _ := CallerFrom(ctx)
		e.Who = Who(c)
	}
	if e.RequestID == "" {
		e.RequestID = httpapi.RequestIDFrom(ctx)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	if err := r.log.AppendAudit(wctx, &e); err != nil {
		r.failures.Add(1)
		// The entry's fields name who and what, never a credential; Detail is left out of the log.
		logging.FromContext(ctx).Errorw("audit entry not recorded", "error", err, "who", e.Who, "verb", e.Verb,
			"cluster", e.Cluster, "resource", e.Resource, "namespace", e.Namespace, "name", e.Name,
			"outcome", e.Outcome, "requestId", e.RequestID)
	}
}

// Failures is how many entries could not be recorded since the start.
func (r *Recorder) Failures() uint64 {
	if r == nil {
		return 0
	}
	return r.failures.Load()
}

// Who is how an audit entry names the caller: "<kind>:<name>" ("token:ci", "oidc:alice"), the name alone when
// it already carries its kind or is the kind ("bootstrap"), and "anonymous" without a caller (authentication
// off).
func Who(c *Caller) string {
	switch {
	case c == nil:
		return "anonymous"
	case c.Kind == "" || c.Name == c.Kind || strings.HasPrefix(c.Name, c.Kind+":"):
		return c.Name
	case c.Name == "":
		return c.Kind
	}
	return c.Kind + ":" + c.Name
}

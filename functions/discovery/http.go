package discovery

import (
	"context"
	"errors"
	"net/http"
	"slices"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterapi"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// Error codes of this function, beside httpapi's.
const (
	// codeGone: the event is about a cluster deleted since; it must not be retried.
	codeGone = "gone"
	// codeNotReady: the function has not started yet; retry.
	codeNotReady = "not_ready"
)

// eventAnswer is the body of the answer to a CloudEvent.
type eventAnswer struct {
	// Result is the Prometheus status after the event, or accepted, duplicate, ignored.
	Result     string                 `json:"result"`
	Cluster    uint64                 `json:"cluster,omitempty"`
	Detail     string                 `json:"detail,omitempty"`
	Prometheus *clusterapi.Prometheus `json:"prometheus,omitempty"`
}

// receive takes a cluster CloudEvent (binary or structured mode). 2xx when done, found or not; 4xx for events
// that must never be retried (not a CloudEvent, another type, bad data, a deleted cluster); 5xx only for
// transient failures (the store is down).
func (f *Function) receive(w http.ResponseWriter, r *http.Request) {
	if !f.started.Load() {
		if f.allMode {
			// The clusters function emits while importing at start, before this Start ran; the start-up sweep
			// finds those clusters pending.
			httpapi.WriteJSON(w, http.StatusAccepted, eventAnswer{Result: "accepted",
				Detail: "discovery has not started yet; when it starts it discovers every pending cluster"})
			return
		}
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusServiceUnavailable, codeNotReady,
			"the discovery function is starting"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes)
	e, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusRequestEntityTooLarge, httpapi.CodePayloadTooLarge,
				"the event is larger than %d bytes", httpapi.MaxBodyBytes))
			return
		}
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"expected a CloudEvent (binary or structured mode): %v", err))
		return
	}
	if err := e.Validate(); err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"invalid CloudEvent: %v", err))
		return
	}
	if !slices.Contains(f.ConsumesEvents(), e.Type()) {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"event type %q is not one discovery takes (%s, %s)", e.Type(), events.TypeClusterCreated,
			events.TypeClusterUpdated))
		return
	}
	data, err := events.DecodeClusterData(*e)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%v", err))
		return
	}
	id := data.Cluster.ID
	t, relevant := classify(e.Type(), data)
	if !relevant {
		httpapi.WriteJSON(w, http.StatusOK, eventAnswer{Result: "ignored", Cluster: id,
			Detail: "the update changed nothing discovery depends on"})
		return
	}
	key := e.Source() + "\x00" + e.ID()
	if f.seen.Contains(key) {
		httpapi.WriteJSON(w, http.StatusOK, eventAnswer{Result: "duplicate", Cluster: id,
			Detail: "event " + e.ID() + " was handled already"})
		return
	}
	ctx := context.WithoutCancel(r.Context())
	if f.allMode {
		f.receiveInBackground(ctx, w, r, key, id, t, "event "+e.ID())
		return
	}
	out, err := f.runShared(ctx, id, t, "event "+e.ID())
	if err != nil {
		f.eventError(w, r, id, err)
		return
	}
	f.seen.Add(key, struct{}{})
	httpapi.WriteJSON(w, http.StatusOK, eventAnswer{Result: string(out.Status), Cluster: id, Detail: out.Skipped,
		Prometheus: &out.Cluster.Prometheus})
}

// receiveInBackground answers an in-process event at once: the clusters function waits for the answer
// inside the user's registration request. A deleted cluster is still a 4xx, and an already decided one a 200.
func (f *Function) receiveInBackground(ctx context.Context, w http.ResponseWriter, r *http.Request, key string,
	id uint64, t trigger, source string) {
	rec, err := f.get(ctx, id)
	if err != nil {
		f.eventError(w, r, id, err)
		return
	}
	if ok, why := eligible(rec, t); !ok {
		f.seen.Add(key, struct{}{})
		httpapi.WriteJSON(w, http.StatusOK, eventAnswer{Result: string(rec.Prometheus.Status), Cluster: id,
			Detail: why, Prometheus: new(clusterapi.PrometheusFromRecord(rec.Prometheus))})
		return
	}
	f.seen.Add(key, struct{}{})
	started := f.spawn(func(ctx context.Context) {
		if _, err := f.runShared(ctx, id, t, source); err != nil && !errors.Is(err, errGone) {
			f.seen.Remove(key) // transient: a redelivery may try again
			f.log.Warnw("discovery failed", "cluster", id, "error", err)
		}
	})
	if !started {
		f.seen.Remove(key)
		f.eventError(w, r, id, errStopped)
		return
	}
	httpapi.WriteJSON(w, http.StatusAccepted, eventAnswer{Result: "accepted", Cluster: id,
		Detail: "discovery runs in the background"})
}

// classify says which trigger an event is, or that discovery does not care about it.
func classify(eventType string, data events.ClusterData) (trigger, bool) {
	if eventType == events.TypeClusterCreated {
		return onPending, true
	}
	if slices.Contains(data.Changed, "prometheus") && data.Cluster.Prometheus.Status == string(store.PrometheusPending) {
		return onPending, true
	}
	if slices.Contains(data.Changed, "kubeconfig") {
		return onNewCredentials, true
	}
	return 0, false
}

func (f *Function) eventError(w http.ResponseWriter, r *http.Request, id uint64, err error) {
	switch {
	case errors.Is(err, errGone):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusGone, codeGone,
			"cluster %d does not exist (deleted since the event was sent); the event is dropped", id))
	case errors.Is(err, errBusy), errors.Is(err, errStopped):
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusServiceUnavailable, codeNotReady,
			"cluster %d: %v; try again", id, err))
	default:
		httpapi.WriteError(w, r, err) // store unavailable: 503; anything else: 500
	}
}

// redetect runs discovery now, whatever the record's state (but a URL typed by a user), and answers with the
// outcome: the dashboard's "re-detect" button.
func (f *Function) redetect(w http.ResponseWriter, r *http.Request) {
	if !f.started.Load() {
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusServiceUnavailable, codeNotReady,
			"the discovery function is starting"))
		return
	}
	ref := r.PathValue("ref")
	rec, err := f.lookup(r.Context(), ref)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	a := access.AuditOf(r.Context())
	a.Cluster, a.Name = rec.Name, rec.Name
	out, err := f.runShared(context.WithoutCancel(r.Context()), rec.ID, onRequest, "request")
	if err == nil {
		a.Detail = "prometheus " + string(out.Cluster.Prometheus.Status)
	}
	switch {
	case errors.Is(err, errGone):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"cluster %q not found", ref))
		return
	case errors.Is(err, errBusy):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict,
			"cluster %q kept changing during discovery; try again", ref))
		return
	case err != nil:
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// lookup finds a cluster by ID or name (404 naming it when unknown).
func (f *Function) lookup(ctx context.Context, ref string) (*store.Cluster, error) {
	return clusterhttp.Lookup(ctx, f.reg, ref)
}

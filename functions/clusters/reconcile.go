package clusters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// TypePing is the CloudEvent type a Knative PingSource sends.
const TypePing = "dev.knative.sources.ping"

// reconcileItem is one cluster the reconcile sent an event for, or failed to.
type reconcileItem struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
	// Status is the Prometheus status that made the cluster due: pending or failed.
	Status  store.PrometheusStatus `json:"status"`
	Event   string                 `json:"event,omitempty"`
	EventID string                 `json:"eventId,omitempty"`
	Error   string                 `json:"error,omitempty"`
}

type reconcileResponse struct {
	Resent []reconcileItem `json:"resent"`
	Failed []reconcileItem `json:"failed"`
}

// reconcileRoute is POST /api/v1/clusters/reconcile.
func (f *Function) reconcileRoute(w http.ResponseWriter, r *http.Request) {
	out, err := f.reconcile(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// receivePing takes a PingSource's CloudEvent at POST / and runs the reconcile. The runtime lets CloudEvents
// at POST / through without a bearer token (an EventConsumer deployed alone), so only a service the operator
// made cluster-local and marked with KITEFN_RECONCILE_ON_PING=true takes it; every other answers 401, as it
// would have without a token.
func (f *Function) receivePing(w http.ResponseWriter, r *http.Request) {
	if !f.cfg.ReconcileOnPing {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeUnauthorized,
			"this service takes no CloudEvents without a token (KITEFN_RECONCILE_ON_PING is off); "+
				"the reconcile is POST /api/v1/clusters/reconcile with a bearer token"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes)
	e, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"expected a CloudEvent: %v", err))
		return
	}
	if e.Type() != TypePing {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"event type %q is not one this service takes (%s)", e.Type(), TypePing))
		return
	}
	f.reconcileRoute(w, r)
}

// reconcile re-sends the events that evidently got lost: cluster.created for a cluster still pending after
// KITEFN_RECONCILE_PENDING_AGE (a fresher one may have its event in flight), and for a cluster whose discovery
// failed more than KITEFN_RECONCILE_FAILED_AGE ago a reset to pending with its cluster.updated (changed:
// prometheus), the event discovery takes to run again.
//
// Event IDs stay deterministic so receivers (discovery dedupes on source + id) drop duplicates: the pending
// re-send is "<the created event's id>-reconcile-<start of the current KITEFN_RECONCILE_INTERVAL window>", the
// same for every run and replica within a window, new in the next one (discovery then runs again, and
// itself only acts on a record still pending). The failed reset writes a new version, so its updated event
// has a new ordinary ID; a concurrent reset by another replica loses the compare-and-set and sends nothing.
func (f *Function) reconcile(ctx context.Context) (reconcileResponse, error) {
	out := reconcileResponse{Resent: []reconcileItem{}, Failed: []reconcileItem{}}
	list, err := f.reg.List(ctx)
	if err != nil {
		return out, registryError(err)
	}
	now := time.Now()
	window := now.Truncate(f.cfg.ReconcileInterval).Unix()
	for _, c := range inScope(ctx, list) {
		var item reconcileItem
		var err error
		switch {
		case c.Prometheus.Status == store.PrometheusPending && now.Sub(c.UpdatedAt) >= f.cfg.ReconcilePendingAge:
			item, err = f.resendCreated(ctx, c, window)
		case c.Prometheus.Status == store.PrometheusFailed && now.Sub(failedAt(c)) >= f.cfg.ReconcileFailedAge:
			item, err = f.retryFailed(ctx, c)
		default:
			continue
		}
		if err != nil {
			item.Error = err.Error()
			f.log.Warnw("reconcile: event not sent", "id", c.ID, "status", c.Prometheus.Status, "error", err)
			out.Failed = append(out.Failed, item)
			continue
		}
		f.log.Infow("reconcile: event re-sent", "id", c.ID, "type", item.Event, "eventId", item.EventID)
		out.Resent = append(out.Resent, item)
	}
	return out, nil
}

func failedAt(c *store.Cluster) time.Time {
	if c.Prometheus.CheckedAt != nil {
		return *c.Prometheus.CheckedAt
	}
	return c.UpdatedAt
}

// reconcileEventID is the ID of a reconcile's re-send of a cluster's created event within one window.
func reconcileEventID(c *store.Cluster, window int64) string {
	return fmt.Sprintf("%s-reconcile-%d", events.ClusterEventID(events.TypeClusterCreated, c.ID, c.Version), window)
}

func (f *Function) resendCreated(ctx context.Context, c *store.Cluster, window int64) (reconcileItem, error) {
	item := reconcileItem{ID: c.ID, Name: c.Name, Status: c.Prometheus.Status, Event: events.TypeClusterCreated,
		EventID: reconcileEventID(c, window)}
	e, err := events.NewClusterEvent(events.TypeClusterCreated, events.ClusterData{Cluster: events.ClusterFromRecord(c)})
	if err != nil {
		return item, err
	}
	e.SetID(item.EventID)
	return item, f.send(ctx, e)
}

func (f *Function) retryFailed(ctx context.Context, c *store.Cluster) (reconcileItem, error) {
	item := reconcileItem{ID: c.ID, Name: c.Name, Status: c.Prometheus.Status, Event: events.TypeClusterUpdated}
	if f.events == nil {
		return item, errEventsOff
	}
	next := c.Clone()
	next.Prometheus = store.Prometheus{Status: store.PrometheusPending,
		Message: "discovery runs again (reconcile); it had failed: " + c.Prometheus.Message}
	updated, err := f.reg.Update(ctx, next)
	f.recordReconcile(ctx, c, err)
	if errors.Is(err, store.ErrConflict) {
		return item, errors.New("the cluster changed while reconciling; the next run looks at it again")
	}
	if err != nil {
		return item, registryError(err)
	}
	changed := []string{"prometheus"}
	e, err := events.NewClusterEvent(events.TypeClusterUpdated, events.ClusterData{Cluster: events.ClusterFromRecord(updated), Changed: changed})
	if err != nil {
		return item, err
	}
	item.EventID = e.ID()
	// If this send fails too, the record is pending now, and the next run re-sends it as such.
	return item, f.send(ctx, e)
}

var errEventsOff = errors.New("events are off: no K_SINK is set (bind the service to a Broker with a SinkBinding)")

// send delivers one event, whatever the request's context does meanwhile.
func (f *Function) send(ctx context.Context, e cloudevents.Event) error {
	if f.events == nil {
		return errEventsOff
	}
	return f.events.Send(context.WithoutCancel(ctx), e)
}

// startReconcileLoop runs the reconcile every KITEFN_RECONCILE_INTERVAL in one-process mode, where no
// PingSource calls the route; Stop ends it.
func (f *Function) startReconcileLoop(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	f.stopLoop, f.loopDone = cancel, done
	go func() {
		defer close(done)
		t := time.NewTicker(f.cfg.ReconcileInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := f.reconcile(ctx); err != nil {
					f.log.Warnw("reconcile failed", "error", err)
				}
			}
		}
	}()
}

// Stop ends the reconcile loop and waits for a run in progress, within ctx.
func (f *Function) Stop(ctx context.Context) error {
	if f.stopLoop == nil {
		return nil
	}
	f.stopLoop()
	select {
	case <-f.loopDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reconcile loop did not stop: %w", ctx.Err())
	}
}

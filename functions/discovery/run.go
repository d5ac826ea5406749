package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/clusterapi"
	"github.com/kitefn/kitefn/shared/store"
)

// trigger is why a discovery runs; it decides which registry states it may change.
type trigger int

const (
	// onPending: cluster.created, an .updated that cleared the URL, the start-up sweep. Only a pending record:
	// any other state means a discovery (or a user) already decided, which is what makes redelivery harmless
	// across replicas.
	onPending trigger = iota
	// onNewCredentials: an .updated that replaced the kubeconfig. A pending or failed record.
	onNewCredentials
	// onRequest: the re-detect route. Any record but one whose URL a user typed.
	onRequest
)

func (t trigger) String() string {
	switch t {
	case onPending:
		return "pending"
	case onNewCredentials:
		return "new credentials"
	}
	return "request"
}

// writeBackoff bounds the compare-and-set retries when the record changes under a discovery (5 attempts).
var writeBackoff = wait.Backoff{Steps: 5, Duration: 5 * time.Millisecond, Factor: 2, Jitter: 0.5}

var (
	// errGone: the cluster was deleted; the event must not be retried.
	errGone = errors.New("the cluster was deleted")
	// errBusy: the record kept changing; worth another try later.
	errBusy = errors.New("the cluster kept changing during discovery")
	// errStopped: the function is stopping; nothing was saved.
	errStopped = errors.New("discovery was stopped")
)

// Outcome is what one discovery did: the record after it, and what it looked at.
type Outcome struct {
	// Status is the cluster's Prometheus status after the run.
	Status store.PrometheusStatus `json:"status"`
	// Skipped says why nothing was searched or saved (the record was already decided, the URL is manual, …).
	Skipped    string              `json:"skipped,omitempty"`
	Cluster    *clusterapi.Cluster `json:"cluster"`
	Candidates []*Candidate        `json:"candidates"`
	Duration   string              `json:"duration"`
	Warnings   []string            `json:"warnings,omitempty"`
}

// eligible says whether a discovery for this trigger may change the record, and why not.
func eligible(rec *store.Cluster, t trigger) (bool, string) {
	p := rec.Prometheus
	if p.Status == store.PrometheusManual && p.Message != envMessage {
		return false, "the Prometheus URL was set by hand and discovery never replaces it " +
			"(PATCH prometheusURL to \"\" to let discovery run)"
	}
	switch t {
	case onPending:
		if p.Status != store.PrometheusPending {
			return false, fmt.Sprintf("discovery already ran (status %s)", p.Status)
		}
	case onNewCredentials:
		if p.Status != store.PrometheusPending && p.Status != store.PrometheusFailed {
			return false, fmt.Sprintf("new credentials do not change a %s status", p.Status)
		}
	}
	return true, ""
}

// runShared is run with concurrent callers for the same cluster and trigger sharing one discovery.
func (f *Function) runShared(ctx context.Context, id uint64, t trigger, source string) (*Outcome, error) {
	v, err, _ := f.flight.Do(fmt.Sprintf("%d/%d", id, t), func() (any, error) {
		return f.run(ctx, id, t, source)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Outcome), nil
}

// run discovers one cluster's Prometheus if the record is still eligible, saves the outcome with
// compare-and-set and emits dev.kitefn.prometheus.discovered when a URL was found.
func (f *Function) run(ctx context.Context, id uint64, t trigger, source string) (*Outcome, error) {
	began := f.now()
	rec, err := f.get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Cluster: clusterapi.FromRecord(rec), Status: rec.Prometheus.Status, Candidates: []*Candidate{}}
	if ok, why := eligible(rec, t); !ok {
		out.Skipped, out.Duration = why, f.since(began)
		return out, nil
	}

	var res result
	fromEnv := false
	if u, ok := f.urls[rec.Name]; ok {
		now := f.now().UTC()
		res.Prometheus = store.Prometheus{URL: u, Status: store.PrometheusManual, Message: envMessage, CheckedAt: &now}
		fromEnv = true
	} else if res, err = f.search(ctx, rec); err != nil {
		return nil, err
	}
	out.Candidates = res.Candidates

	before, updated, skipped, err := f.save(ctx, rec, t, res.Prometheus, fromEnv)
	if err != nil {
		return nil, err
	}
	out.Duration = f.since(began)
	if skipped != "" {
		out.Cluster, out.Status, out.Skipped = clusterapi.FromRecord(before), before.Prometheus.Status, skipped
		return out, nil
	}
	out.Cluster, out.Status = clusterapi.FromRecord(updated), updated.Prometheus.Status
	f.log.Infow("prometheus discovery", "cluster", updated.ID, "name", updated.Name, "trigger", t.String(),
		"source", source, "status", updated.Prometheus.Status, "url", updated.Prometheus.URL,
		"message", updated.Prometheus.Message, "duration", out.Duration)
	p, q := before.Prometheus, updated.Prometheus
	if q.URL != "" && (q.URL != p.URL || q.Status != p.Status) {
		if w := f.emit(ctx, updated); w != "" {
			out.Warnings = append(out.Warnings, w)
		}
	}
	return out, nil
}

// search runs the strategy within the discovery budget. A parent context cancelled (the function stopping)
// saves nothing; a budget spent is a failed discovery, saved.
func (f *Function) search(ctx context.Context, rec *store.Cluster) (result, error) {
	budget, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	now := f.now().UTC()
	cl, err := f.clients.Client(budget, strconv.FormatUint(rec.ID, 10))
	switch {
	case ctx.Err() != nil:
		return result{}, errStopped
	case errors.Is(err, store.ErrNotFound):
		return result{}, errGone
	case errors.Is(err, store.ErrUnavailable):
		return result{}, err
	case err != nil:
		return result{Prometheus: store.Prometheus{Status: store.PrometheusFailed, CheckedAt: &now,
			Message: clip("no client for the cluster: " + err.Error())}, Candidates: []*Candidate{}}, nil
	}
	s := &searcher{cfg: f.cfg, cl: cl, direct: f.direct, now: now}
	res := s.search(budget)
	if ctx.Err() != nil {
		return result{}, errStopped
	}
	if res.Candidates == nil {
		res.Candidates = []*Candidate{}
	}
	return res, nil
}

// save writes p over the record with compare-and-set, re-reading and re-checking on a lost race: a user may
// have renamed the cluster, typed a URL or replaced the kubeconfig meanwhile, and none of that is overwritten.
// It returns the record it last read, and the saved one or why nothing was saved.
func (f *Function) save(ctx context.Context, rec *store.Cluster, t trigger, p store.Prometheus, fromEnv bool) (
	before, updated *store.Cluster, skipped string, err error) {
	// A finished discovery is saved even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	cur := rec
	attempt := 0
	err = retry.OnError(writeBackoff, isStale, func() error {
		if attempt++; attempt > 1 {
			var gerr error
			if cur, gerr = f.get(ctx, rec.ID); gerr != nil {
				return gerr
			}
			if ok, why := eligible(cur, t); !ok {
				skipped = "the cluster changed during discovery: " + why
				return nil
			}
			if !bytes.Equal(cur.Kubeconfig, rec.Kubeconfig) {
				skipped = "the cluster's kubeconfig was replaced during discovery; discovery runs again for the new one"
				return nil
			}
			if fromEnv && cur.Name != rec.Name {
				skipped = "the cluster was renamed during discovery"
				return nil
			}
		}
		next := cur.Clone()
		next.Prometheus = p
		var uerr error
		updated, uerr = f.reg.Update(ctx, next)
		return uerr
	})
	switch {
	case err == nil && skipped != "":
		return cur, nil, skipped, nil
	case err == nil:
		return cur, updated, "", nil
	case isStale(err):
		return nil, nil, "", errBusy
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errGone):
		return nil, nil, "", errGone
	}
	return nil, nil, "", fmt.Errorf("saving the discovery of cluster %d: %w", rec.ID, err)
}

// isStale: the record changed since it was read (a compare-and-set that lost), worth a re-read and a retry.
func isStale(err error) bool { return errors.Is(err, store.ErrConflict) }

func (f *Function) get(ctx context.Context, id uint64) (*store.Cluster, error) {
	rec, err := f.reg.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errGone
	}
	if err != nil {
		return nil, fmt.Errorf("reading cluster %d: %w", id, err)
	}
	return rec, nil
}

// emit sends dev.kitefn.prometheus.discovered; a failed delivery is a warning, never a rollback.
func (f *Function) emit(ctx context.Context, rec *store.Cluster) string {
	if f.events == nil {
		return ""
	}
	e := cloudevents.NewEvent()
	// Deterministic, like the cluster events: a re-send of the same change carries the same id.
	e.SetID(fmt.Sprintf("prometheus-%d-v%d-discovered", rec.ID, rec.Version))
	e.SetType(events.TypePrometheusDiscovered)
	e.SetSource(events.SourceDiscovery)
	e.SetSubject(events.Subject(rec.ID))
	e.SetTime(f.now().UTC())
	err := e.SetData(cloudevents.ApplicationJSON, events.ClusterData{Cluster: events.ClusterFromRecord(rec), Changed: []string{"prometheus"}})
	if err == nil {
		err = f.events.Send(context.WithoutCancel(ctx), e)
	}
	if err != nil {
		f.log.Errorw("prometheus event not delivered", "cluster", rec.ID, "error", err)
		return fmt.Sprintf("event %s was not delivered: %v", events.TypePrometheusDiscovered, err)
	}
	return ""
}

func (f *Function) since(t time.Time) string {
	return f.now().Sub(t).Round(time.Millisecond).String()
}

package clusters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/clusterapi"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/store"
)

// createRequest registers one cluster. Context picks a context of a multi-context kubeconfig (default: its
// current-context).
type createRequest struct {
	Name          string            `json:"name"`
	Kubeconfig    string            `json:"kubeconfig"`
	Context       string            `json:"context,omitempty"`
	PrometheusURL string            `json:"prometheusURL,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	// Impersonate makes kitefn act on the cluster as each caller (README, "Register a cluster").
	Impersonate bool `json:"impersonate,omitempty"`
}

// updateRequest changes what it names; absent fields stay. Version, or an If-Match header, makes the update
// conditional (409 when someone else changed the cluster first).
type updateRequest struct {
	Name          *string            `json:"name,omitempty"`
	Kubeconfig    *string            `json:"kubeconfig,omitempty"`
	Context       string             `json:"context,omitempty"`
	PrometheusURL *string            `json:"prometheusURL,omitempty"`
	Labels        *map[string]string `json:"labels,omitempty"`
	Impersonate   *bool              `json:"impersonate,omitempty"`
	Version       *uint64            `json:"version,omitempty"`
}

// clusterResponse is the public record, plus warnings about things that went wrong after it was saved.
type clusterResponse struct {
	*clusterapi.Cluster
	Warnings []string `json:"warnings,omitempty"`
}

type listResponse struct {
	Items []*clusterapi.Cluster `json:"items"`
}

func (f *Function) list(w http.ResponseWriter, r *http.Request) {
	items, err := f.reg.List(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, listResponse{Items: clusterapi.List(inScope(r.Context(), items))})
}

func (f *Function) get(w http.ResponseWriter, r *http.Request) {
	rec, err := f.lookup(r.Context(), r.PathValue("ref"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	writeCluster(w, http.StatusOK, rec, nil)
}

// writeCluster answers a record with its version as the ETag, which If-Match takes back.
func writeCluster(w http.ResponseWriter, status int, rec *store.Cluster, warnings []string) {
	w.Header().Set("ETag", `"`+strconv.FormatUint(rec.Version, 10)+`"`)
	httpapi.WriteJSON(w, status, clusterResponse{Cluster: clusterapi.FromRecord(rec), Warnings: warnings})
}

func (f *Function) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	verify, err := decodeRequest(w, r, &req)
	noteCluster(r.Context(), req.Name)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	rec, warnings, err := f.register(r.Context(), req, verify)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/clusters/"+strconv.FormatUint(rec.ID, 10))
	writeCluster(w, http.StatusCreated, rec, warnings)
}

// register validates, optionally verifies, seals and stores one cluster, then emits cluster.created. Nothing is
// stored unless every check passed; an event that cannot be delivered becomes a warning, never a rollback.
func (f *Function) register(ctx context.Context, req createRequest, verify bool) (*store.Cluster, []string, error) {
	rec, err := f.prepare(ctx, req, verify)
	if err != nil {
		return nil, nil, err
	}
	return f.save(ctx, rec)
}

// prepare is everything register does before storing: the checks, the optional verification, the sealing.
func (f *Function) prepare(ctx context.Context, req createRequest, verify bool) (*store.Cluster, error) {
	if err := validateName(req.Name); err != nil {
		return nil, err
	}
	if err := checkScope(ctx, req.Name); err != nil {
		return nil, err
	}
	if err := validateLabels(req.Labels); err != nil {
		return nil, err
	}
	if err := validatePrometheusURL(req.PrometheusURL); err != nil {
		return nil, err
	}
	kc, err := f.parseKubeconfig(req.Kubeconfig, req.Context)
	if err != nil {
		return nil, err
	}
	sealed, err := f.admitKubeconfig(ctx, kc, verify)
	if err != nil {
		return nil, err
	}
	return &store.Cluster{Name: req.Name, Server: kc.Server, Kubeconfig: sealed, Labels: req.Labels,
		Prometheus: prometheusFor(req.PrometheusURL), Impersonate: req.Impersonate}, nil
}

// admitKubeconfig refuses a kubeconfig whose server kitefn must not contact, verifies it when asked, and
// seals it for the store.
func (f *Function) admitKubeconfig(ctx context.Context, kc kubeconfig.Context, verify bool) ([]byte, error) {
	if err := f.servers.check(ctx, kc.Config); err != nil {
		return nil, err
	}
	if verify {
		if err := f.verifyKubeconfig(ctx, kc.Config); err != nil {
			return nil, err
		}
	}
	sealed, err := f.sealer.Seal(kc.Config)
	if err != nil {
		return nil, fmt.Errorf("sealing kubeconfig: %w", err)
	}
	return sealed, nil
}

// save stores a prepared record and emits cluster.created.
func (f *Function) save(ctx context.Context, rec *store.Cluster) (*store.Cluster, []string, error) {
	created, err := f.reg.Create(ctx, rec)
	if err != nil {
		return nil, nil, registryError(err)
	}
	f.log.Infow("cluster registered", "id", created.ID, "name", created.Name, "server", created.Server)
	return created, f.emit(ctx, events.TypeClusterCreated, created, nil), nil
}

func (f *Function) update(w http.ResponseWriter, r *http.Request) {
	var req updateRequest
	verify, err := decodeRequest(w, r, &req)
	noteUpdate(r.Context(), req)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	want, err := expectedVersion(r, req.Version)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	rec, err := f.lookup(ctx, r.PathValue("ref"))
	if err == nil {
		noteCluster(ctx, rec.Name)
	}
	if err == nil && want != 0 && want != rec.Version {
		err = store.StaleVersion(rec.ID, want)
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	p, err := f.preparePatch(ctx, req, verify)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	updated, changed, err := f.commit(ctx, rec, p, want)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	noteChanged(ctx, rec, updated, changed)
	if len(changed) == 0 {
		writeCluster(w, http.StatusOK, updated, nil)
		return
	}
	f.clients.Invalidate(updated.ID)
	f.log.Infow("cluster updated", "id", updated.ID, "name", updated.Name, "changed", changed)
	writeCluster(w, http.StatusOK, updated, f.emit(ctx, events.TypeClusterUpdated, updated, changed))
}

// patch is a validated update, its kubeconfig already checked and sealed, ready to apply to any version of the
// record.
type patch struct {
	name        *string
	labels      *map[string]string
	prometheus  *store.Prometheus
	impersonate *bool
	kubeconfig  []byte
	server      string
}

// preparePatch validates the requested changes once, however often commit has to re-apply them.
func (f *Function) preparePatch(ctx context.Context, req updateRequest, verify bool) (patch, error) {
	var p patch
	if req.Name != nil {
		if err := validateName(*req.Name); err != nil {
			return p, err
		}
		if err := checkScope(ctx, *req.Name); err != nil {
			return p, err
		}
		p.name = req.Name
	}
	if req.Labels != nil {
		if err := validateLabels(*req.Labels); err != nil {
			return p, err
		}
		p.labels = req.Labels
	}
	if req.PrometheusURL != nil {
		if err := validatePrometheusURL(*req.PrometheusURL); err != nil {
			return p, err
		}
		prom := prometheusFor(*req.PrometheusURL)
		p.prometheus = &prom
	}
	p.impersonate = req.Impersonate
	if req.Kubeconfig == nil {
		if req.Context != "" {
			return p, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"context is only meaningful together with kubeconfig").WithField("context")
		}
		return p, nil
	}
	kc, err := f.parseKubeconfig(*req.Kubeconfig, req.Context)
	if err != nil {
		return p, err
	}
	if p.kubeconfig, err = f.admitKubeconfig(ctx, kc, verify); err != nil {
		return p, err
	}
	p.server = kc.Server
	return p, nil
}

// apply returns rec with the patch applied and the names of the fields it changed.
func (p patch) apply(rec *store.Cluster) (*store.Cluster, []string) {
	next := rec.Clone()
	var changed []string
	if p.name != nil && *p.name != rec.Name {
		next.Name = *p.name
		changed = append(changed, "name")
	}
	if p.labels != nil {
		next.Labels = *p.labels
		changed = append(changed, "labels")
	}
	if p.prometheus != nil {
		next.Prometheus = *p.prometheus
		changed = append(changed, "prometheus")
	}
	if p.impersonate != nil && *p.impersonate != rec.Impersonate {
		next.Impersonate = *p.impersonate
		changed = append(changed, "impersonate")
	}
	if p.kubeconfig != nil {
		next.Kubeconfig, next.Server = p.kubeconfig, p.server
		changed = append(changed, "kubeconfig")
	}
	return next, changed
}

// staleWrite marks a write that lost to a newer version of the record: worth re-applying.
type staleWrite struct{ error }

func (e staleWrite) Unwrap() error { return e.error }

// commit writes p over rec. A conditional update (want != 0: a version or If-Match) is one compare-and-set
// and a lost race is a 409. Otherwise a write that lost to another writer (discovery saving its result, another
// replica) re-reads the record and re-applies the patch, as client-go's RetryOnConflict does; a taken name is
// a conflict too (store.ErrConflict), but not a race, so it is never retried.
func (f *Function) commit(ctx context.Context, rec *store.Cluster, p patch, want uint64) (*store.Cluster,
	[]string, error) {
	var out *store.Cluster
	var changed []string
	cur := rec
	err := retry.OnError(retry.DefaultRetry, func(err error) bool { return errors.As(err, new(staleWrite)) },
		func() error {
			next, ch := p.apply(cur)
			if len(ch) == 0 {
				out = cur
				return nil
			}
			updated, err := f.reg.Update(ctx, next)
			if err == nil {
				out, changed = updated, ch
				return nil
			}
			if want != 0 || !errors.Is(err, store.ErrConflict) {
				return registryError(err)
			}
			// A stale version and a taken name are both conflicts: only a newer stored version tells them apart.
			fresh, gerr := f.reg.Get(ctx, cur.ID)
			if gerr != nil {
				return registryError(gerr)
			}
			if fresh.Version == cur.Version {
				return err
			}
			cur = fresh
			return staleWrite{err}
		})
	return out, changed, err
}

func (f *Function) delete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec, err := f.lookup(ctx, r.PathValue("ref"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	noteCluster(ctx, rec.Name)
	if err := f.reg.Delete(ctx, rec.ID); err != nil {
		httpapi.WriteError(w, r, registryError(err))
		return
	}
	f.clients.Invalidate(rec.ID)
	f.log.Infow("cluster deleted", "id", rec.ID, "name", rec.Name)
	if warnings := f.emit(ctx, events.TypeClusterDeleted, rec, nil); len(warnings) > 0 {
		httpapi.WriteJSON(w, http.StatusOK, clusterResponse{Cluster: clusterapi.FromRecord(rec), Warnings: warnings})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// verify checks a registered cluster through the cached client: the dashboard's "test connection". It answers
// the cluster's version and who the cluster takes kitefn's credentials for.
func (f *Function) verify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec, err := f.lookup(ctx, r.PathValue("ref"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	c, err := f.clients.Client(ctx, strconv.FormatUint(rec.ID, 10))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	version, id, err := checkCluster(ctx, c, f.cfg.VerifyTimeout)
	if err != nil {
		httpapi.WriteError(w, r, verifyError(rec.Name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, verifyResponse{Cluster: clusterapi.FromRecord(rec), Version: version, Identity: id})
}

// verifyKubeconfig contacts the cluster a kubeconfig names before it is stored (?verify=true).
func (f *Function) verifyKubeconfig(ctx context.Context, kc []byte) error {
	rc, err := kube.RESTConfig(kc, f.kube)
	if err != nil {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidKubeconfig, "%v", err).WithField("kubeconfig")
	}
	c, err := kube.NewClient(&store.Cluster{Name: "verify"}, rc)
	if err != nil {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidKubeconfig, "%v", err).WithField("kubeconfig")
	}
	defer c.CloseIdle()
	if _, _, err := checkCluster(ctx, c, f.cfg.VerifyTimeout); err != nil {
		return kubeconfigVerifyError(rc.Host, err)
	}
	return nil
}

// lookup finds a cluster by ID or name (404 naming it when unknown).
func (f *Function) lookup(ctx context.Context, ref string) (*store.Cluster, error) {
	rec, err := clusterhttp.Lookup(ctx, f.reg, ref)
	return rec, registryError(err)
}

func (f *Function) parseKubeconfig(raw, context string) (kubeconfig.Context, error) {
	if len(raw) > maxKubeconfigBytes {
		return kubeconfig.Context{}, httpapi.Errorf(http.StatusRequestEntityTooLarge, httpapi.CodePayloadTooLarge,
			"the kubeconfig is %d bytes; at most %d KiB is accepted (a cluster is one store record, and "+
				"DynamoDB items are limited to 400 KB)", len(raw), maxKubeconfigBytes>>10).WithField("kubeconfig")
	}
	if strings.TrimSpace(raw) == "" {
		return kubeconfig.Context{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidKubeconfig,
			"kubeconfig is required: the kubeconfig YAML as a string").WithField("kubeconfig")
	}
	cfg, err := kubeconfig.Parse([]byte(raw), f.parseOptions())
	if err != nil {
		return kubeconfig.Context{}, invalidKubeconfig(err)
	}
	kc, err := kubeconfig.Extract(cfg, context)
	if err != nil {
		return kubeconfig.Context{}, invalidKubeconfig(err)
	}
	return kc, nil
}

func invalidKubeconfig(err error) error {
	if kubeconfig.IsInvalid(err) {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidKubeconfig, "%v", err).WithField("kubeconfig")
	}
	return err
}

// emit sends a cluster event and turns a failed delivery into a warning for the response: the change is saved
// whatever happens to its event.
func (f *Function) emit(ctx context.Context, eventType string, rec *store.Cluster, changed []string) []string {
	if f.events == nil {
		return nil
	}
	e, err := events.NewClusterEvent(eventType, events.ClusterData{Cluster: events.ClusterFromRecord(rec), Changed: changed})
	if err == nil {
		err = f.events.Send(context.WithoutCancel(ctx), e)
	}
	if err != nil {
		f.log.Errorw("cluster event not delivered", "type", eventType, "id", rec.ID, "error", err)
		return []string{fmt.Sprintf("event %s was not delivered: %v", eventType, err)}
	}
	return nil
}

// maxKubeconfigBytes bounds one cluster's kubeconfig so that its sealed record fits every store backend
// (DynamoDB's 400 KB item limit is the smallest); real kubeconfigs are a few KB.
const maxKubeconfigBytes = 256 << 10

var digitsOnly = regexp.MustCompile(`^[0-9]+$`)

func validateName(name string) error {
	if name == "" {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidName, "name is required").WithField("name")
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidName, "name %q is not valid: %s",
			name, strings.Join(errs, "; ")).WithField("name")
	}
	if digitsOnly.MatchString(name) {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidName,
			"name %q is all digits, which would read as a cluster ID", name).WithField("name")
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	for k, v := range labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "label key %q is not valid: %s",
				k, strings.Join(errs, "; ")).WithField("labels")
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "label %q value %q is not valid: %s",
				k, v, strings.Join(errs, "; ")).WithField("labels")
		}
	}
	return nil
}

func validatePrometheusURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"prometheusURL %q is not an http(s) URL", raw).WithField("prometheusURL")
	}
	if u.User != nil {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"prometheusURL must not carry credentials").WithField("prometheusURL")
	}
	return nil
}

// prometheusFor: a URL typed by a user is manual and discovery never overwrites it; none means discovery runs.
func prometheusFor(url string) store.Prometheus {
	if url != "" {
		return store.Prometheus{URL: url, Status: store.PrometheusManual}
	}
	return store.Prometheus{Status: store.PrometheusPending}
}

// decodeRequest reads a JSON body into v and the ?verify flag every write takes.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) (verify bool, err error) {
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, v); err != nil {
		return false, err
	}
	return httpapi.BoolParam(r, "verify")
}

// expectedVersion reads the caller's compare-and-set version from the body or an If-Match header ("3" or "\"3\"").
func expectedVersion(r *http.Request, body *uint64) (uint64, error) {
	if body != nil {
		return *body, nil
	}
	h := strings.Trim(strings.TrimPrefix(r.Header.Get("If-Match"), "W/"), `"`)
	if h == "" || h == "*" {
		return 0, nil
	}
	v, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		return 0, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"If-Match must be a cluster version number, got %q", r.Header.Get("If-Match"))
	}
	return v, nil
}

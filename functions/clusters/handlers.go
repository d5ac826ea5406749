package clusters

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"

	"github.com/kitefn/kitefn/events"
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
}

// updateRequest changes what it names; absent fields stay. Version, or an If-Match header, makes the update
// conditional (409 when someone else changed the cluster first).
type updateRequest struct {
	Name          *string            `json:"name,omitempty"`
	Kubeconfig    *string            `json:"kubeconfig,omitempty"`
	Context       string             `json:"context,omitempty"`
	PrometheusURL *string            `json:"prometheusURL,omitempty"`
	Labels        *map[string]string `json:"labels,omitempty"`
	Version       *uint64            `json:"version,omitempty"`
}

// clusterResponse is the public record, plus warnings about things that went wrong after it was saved.
type clusterResponse struct {
	*store.Cluster
	Warnings []string `json:"warnings,omitempty"`
}

type listResponse struct {
	Items []*store.Cluster `json:"items"`
}

func (f *Function) list(w http.ResponseWriter, r *http.Request) {
	items, err := f.reg.List(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if items == nil {
		items = []*store.Cluster{}
	}
	httpapi.WriteJSON(w, http.StatusOK, listResponse{Items: items})
}

func (f *Function) get(w http.ResponseWriter, r *http.Request) {
	rec, err := f.lookup(r.Context(), r.PathValue("ref"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, clusterResponse{Cluster: rec})
}

func (f *Function) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	verify, err := decodeRequest(w, r, &req)
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
	httpapi.WriteJSON(w, http.StatusCreated, clusterResponse{Cluster: rec, Warnings: warnings})
}

// register validates, optionally verifies, seals and stores one cluster, then emits cluster.created. Nothing is
// stored unless every check passed; an event that cannot be delivered becomes a warning, never a rollback.
func (f *Function) register(ctx context.Context, req createRequest, verify bool) (*store.Cluster, []string, error) {
	if err := validateName(req.Name); err != nil {
		return nil, nil, err
	}
	if err := validateLabels(req.Labels); err != nil {
		return nil, nil, err
	}
	if err := validatePrometheusURL(req.PrometheusURL); err != nil {
		return nil, nil, err
	}
	kc, err := f.parseKubeconfig(req.Kubeconfig, req.Context)
	if err != nil {
		return nil, nil, err
	}
	if verify {
		if err := f.verifyKubeconfig(ctx, kc.Config); err != nil {
			return nil, nil, err
		}
	}
	sealed, err := f.sealer.Seal(kc.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("sealing kubeconfig: %w", err)
	}
	rec := &store.Cluster{Name: req.Name, Server: kc.Server, Kubeconfig: sealed, Labels: req.Labels,
		Prometheus: prometheusFor(req.PrometheusURL)}
	created, err := f.reg.Create(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	f.log.Infow("cluster registered", "id", created.ID, "name", created.Name, "server", created.Server)
	return created, f.emit(ctx, events.TypeClusterCreated, created, nil), nil
}

func (f *Function) update(w http.ResponseWriter, r *http.Request) {
	var req updateRequest
	verify, err := decodeRequest(w, r, &req)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	rec, err := f.lookup(ctx, r.PathValue("ref"))
	if err == nil {
		var version uint64
		if version, err = expectedVersion(r, req.Version); err == nil && version != 0 && version != rec.Version {
			err = store.StaleVersion(rec.ID, version)
		}
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	next, changed, err := f.applyUpdate(ctx, rec, req, verify)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if len(changed) == 0 {
		httpapi.WriteJSON(w, http.StatusOK, clusterResponse{Cluster: rec})
		return
	}
	updated, err := f.reg.Update(ctx, next)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	f.clients.Invalidate(updated.ID)
	f.log.Infow("cluster updated", "id", updated.ID, "name", updated.Name, "changed", changed)
	warnings := f.emit(ctx, events.TypeClusterUpdated, updated, changed)
	httpapi.WriteJSON(w, http.StatusOK, clusterResponse{Cluster: updated, Warnings: warnings})
}

// applyUpdate validates the requested changes and returns the new record and the names of the changed fields.
func (f *Function) applyUpdate(ctx context.Context, rec *store.Cluster, req updateRequest, verify bool) (
	*store.Cluster, []string, error) {
	next := rec.Clone()
	var changed []string
	if req.Name != nil && *req.Name != rec.Name {
		if err := validateName(*req.Name); err != nil {
			return nil, nil, err
		}
		next.Name = *req.Name
		changed = append(changed, "name")
	}
	if req.Labels != nil {
		if err := validateLabels(*req.Labels); err != nil {
			return nil, nil, err
		}
		next.Labels = *req.Labels
		changed = append(changed, "labels")
	}
	if req.PrometheusURL != nil {
		if err := validatePrometheusURL(*req.PrometheusURL); err != nil {
			return nil, nil, err
		}
		next.Prometheus = prometheusFor(*req.PrometheusURL)
		changed = append(changed, "prometheus")
	}
	if req.Kubeconfig == nil {
		if req.Context != "" {
			return nil, nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"context is only meaningful together with kubeconfig").WithField("context")
		}
		return next, changed, nil
	}
	kc, err := f.parseKubeconfig(*req.Kubeconfig, req.Context)
	if err != nil {
		return nil, nil, err
	}
	if verify {
		if err := f.verifyKubeconfig(ctx, kc.Config); err != nil {
			return nil, nil, err
		}
	}
	if next.Kubeconfig, err = f.sealer.Seal(kc.Config); err != nil {
		return nil, nil, fmt.Errorf("sealing kubeconfig: %w", err)
	}
	next.Server = kc.Server
	return next, append(changed, "kubeconfig"), nil
}

func (f *Function) delete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec, err := f.lookup(ctx, r.PathValue("ref"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if err := f.reg.Delete(ctx, rec.ID); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	f.clients.Invalidate(rec.ID)
	f.log.Infow("cluster deleted", "id", rec.ID, "name", rec.Name)
	if warnings := f.emit(ctx, events.TypeClusterDeleted, rec, nil); len(warnings) > 0 {
		httpapi.WriteJSON(w, http.StatusOK, clusterResponse{Cluster: rec, Warnings: warnings})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// verifyResponse reports what the cluster said about itself.
type verifyResponse struct {
	Cluster *store.Cluster `json:"cluster"`
	Version any            `json:"version"`
}

// verify asks a registered cluster for /version through the cached client: the dashboard's "test connection".
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
	info, err := serverVersion(ctx, c.Kubernetes.Discovery(), f.cfg.VerifyTimeout)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadGateway, httpapi.CodeClusterUnreachable,
			"cluster %q did not answer /version: %v", rec.Name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, verifyResponse{Cluster: rec, Version: info})
}

func serverVersion(ctx context.Context, d discovery.DiscoveryInterface, timeout time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		body, err := d.RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		if err != nil {
			done <- result{err: err}
			return
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			done <- result{err: fmt.Errorf("decoding /version: %w", err)}
			return
		}
		done <- result{v: v}
	}()
	select {
	case res := <-done:
		return res.v, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer within %s", timeout)
	}
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
	if _, err := serverVersion(ctx, c.Kubernetes.Discovery(), f.cfg.VerifyTimeout); err != nil {
		return httpapi.Errorf(http.StatusUnprocessableEntity, httpapi.CodeClusterUnreachable,
			"verify: the cluster at %s did not answer /version: %v", rc.Host, err)
	}
	return nil
}

// lookup finds a cluster by ID or name (404 naming it when unknown).
func (f *Function) lookup(ctx context.Context, ref string) (*store.Cluster, error) {
	return clusterhttp.Lookup(ctx, f.reg, ref)
}

func (f *Function) parseKubeconfig(raw, context string) (kubeconfig.Context, error) {
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
	e, err := events.NewClusterEvent(eventType, events.ClusterData{Cluster: rec, Changed: changed})
	if err == nil {
		err = f.events.Send(context.WithoutCancel(ctx), e)
	}
	if err != nil {
		f.log.Errorw("cluster event not delivered", "type", eventType, "id", rec.ID, "error", err)
		return []string{fmt.Sprintf("event %s was not delivered: %v", eventType, err)}
	}
	return nil
}

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

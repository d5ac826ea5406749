package resources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kitefn/kitefn/shared/crd"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// FieldManager owns the fields kitefn applies, as kubectl's is "kubectl".
const FieldManager = "kitefn"

// RestartAnnotation is set on a workload's pod template to roll its pods, as `kubectl rollout restart` does
// with its own annotation.
const RestartAnnotation = "kitefn.dev/restartedAt"

// planned is one document of an apply and the resource it goes to.
type planned struct {
	obj *unstructured.Unstructured
	t   target
}

// applyResult is the outcome for one document.
type applyResult struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Namespace  string         `json:"namespace,omitempty"`
	Name       string         `json:"name"`
	DryRun     bool           `json:"dryRun,omitempty"`
	Object     map[string]any `json:"object"`
}

// apply server-side-applies one or many YAML or JSON documents (field manager kitefn). Every document is
// parsed, then dry-run on the server, before any is applied: a bad document — unparsable or refused by the
// apiserver — leaves the cluster unchanged. ?force=true takes over conflicting fields, ?dryRun=true stops after
// the dry run, ?namespace= is the default namespace for namespaced objects that name none.
func (f *Function) apply(w http.ResponseWriter, r *http.Request) {
	force, err := httpapi.BoolParam(r, "force")
	if err == nil {
		var dry bool
		if dry, err = httpapi.BoolParam(r, "dryRun"); err == nil {
			err = f.applyDocs(w, r, client(r), force, dry)
		}
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
	}
}

func (f *Function) applyDocs(w http.ResponseWriter, r *http.Request, c *kube.Client, force, dryOnly bool) error {
	ctx := r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.cfg.MaxApplyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return httpapi.Errorf(http.StatusRequestEntityTooLarge, httpapi.CodePayloadTooLarge,
				"apply body is larger than %d bytes", f.cfg.MaxApplyBytes)
		}
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "reading body: %v", err)
	}
	docs, err := parseDocuments(body)
	if err != nil {
		return err
	}
	defaultNS := r.URL.Query().Get("namespace")
	if defaultNS == "" {
		defaultNS = "default"
	}
	plan := make([]planned, 0, len(docs))
	for i, obj := range docs {
		gvk := obj.GroupVersionKind()
		t, err := f.resolveKind(ctx, c, gvk.Group, gvk.Version, gvk.Kind)
		if err != nil {
			return docError(i, obj, err)
		}
		if t.namespaced {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(defaultNS)
			}
		} else {
			obj.SetNamespace("")
		}
		plan = append(plan, planned{obj: obj, t: t})
	}
	var results []applyResult
	for _, pass := range []bool{true, false} { // dry run everything first, then apply for real
		if !pass && dryOnly {
			break
		}
		results = results[:0]
		for i, p := range plan {
			opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: force}
			if pass {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			out, err := c.Dynamic.Resource(p.t.gvr).Namespace(p.obj.GetNamespace()).Apply(ctx, p.obj.GetName(), p.obj, opts)
			if err != nil {
				return docError(i, p.obj, kube.APIError(c.Name, err))
			}
			out.SetManagedFields(nil)
			results = append(results, applyResult{APIVersion: out.GetAPIVersion(), Kind: out.GetKind(),
				Namespace: out.GetNamespace(), Name: out.GetName(), DryRun: pass, Object: out.Object})
		}
	}
	if !dryOnly {
		f.forgetCRDs(c, plan)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": results})
	return nil
}

// forgetCRDs drops what this instance cached about CRDs it just applied (a "not installed" answer would
// otherwise outlive the install by the cache TTL) and lets discovery refresh for their kinds.
func (f *Function) forgetCRDs(c *kube.Client, plan []planned) {
	st, err := f.state(c)
	if err != nil {
		return
	}
	for _, p := range plan {
		if p.obj.GetKind() == "CustomResourceDefinition" && p.t.gvr.Group == "apiextensions.k8s.io" {
			st.crds.Forget(p.obj.GetName())
			st.mapper.Reset()
		}
	}
}

// resolveKind finds the resource of a document's apiVersion and kind: a family kind through its CRD (so a
// missing CRD gets the install hint), anything else as its lower-cased kind — the singular resource name, which
// discovery maps as kubectl does.
func (f *Function) resolveKind(ctx context.Context, c *kube.Client, group, version, kind string) (target, error) {
	ref := strings.ToLower(kind)
	if k, ok := familyKind(group, kind); ok {
		ref = k.Plural + "." + k.Group
	} else if group != "" {
		ref += "." + group
	}
	t, err := f.resolve(ctx, c, ref)
	if err != nil || version == "" || t.gvr.Version == version {
		return t, err
	}
	if t.crd != "" {
		st, err := f.state(c)
		if err != nil {
			return target{}, err
		}
		return f.fromCRD(ctx, st, t.crd, version)
	}
	t.gvr.Version = version // a built-in version discovery did not prefer: the apiserver says if it serves it
	return t, nil
}

// familyKind finds a family kind by API group and kind.
func familyKind(group, kind string) (crd.Kind, bool) {
	for _, fam := range crd.Families() {
		for _, k := range fam.Kinds {
			if k.Group == group && strings.EqualFold(k.Kind, kind) {
				return k, true
			}
		}
	}
	return crd.Kind{}, false
}

// docError names the document an error is about.
func docError(i int, obj *unstructured.Unstructured, err error) error {
	apiErr := httpapi.AsError(err)
	out := *apiErr
	if apiErr.Status == http.StatusInternalServerError && apiErr.Code == httpapi.CodeInternal {
		out.Message = err.Error()
	}
	ref := obj.GetKind() + " " + obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		ref = obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	out.Message = fmt.Sprintf("document %d (%s): %s", i+1, ref, out.Message)
	return &out
}

// parseDocuments reads YAML or JSON documents (a `kind: List` is flattened into its items) and checks each
// names apiVersion, kind and name, so nothing is applied when any document is malformed.
func parseDocuments(body []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(body), 4096)
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"document %d is not valid YAML or JSON: %v", i+1, err)
		}
		if len(m) == 0 {
			continue // an empty document between separators
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "document %d: %v", i+1, err)
			}
			for j := range list.Items {
				out = append(out, &list.Items[j])
			}
			continue
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "no document to apply")
	}
	for i, obj := range out {
		var missing []string
		if obj.GetAPIVersion() == "" {
			missing = append(missing, "apiVersion")
		}
		if obj.GetKind() == "" {
			missing = append(missing, "kind")
		}
		if obj.GetName() == "" {
			missing = append(missing, "metadata.name")
		}
		if len(missing) > 0 {
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"document %d has no %s", i+1, strings.Join(missing, ", "))
		}
	}
	return out, nil
}

func (f *Function) delete(w http.ResponseWriter, r *http.Request) {
	req, err := f.parse(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if req.name == "" || req.subresource != "" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"DELETE names one object: /api/v1/resources/{resource}/{namespace}/{name}"))
		return
	}
	opts := metav1.DeleteOptions{}
	switch p := r.URL.Query().Get("propagationPolicy"); p {
	case "":
	case string(metav1.DeletePropagationBackground), string(metav1.DeletePropagationForeground),
		string(metav1.DeletePropagationOrphan):
		pol := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pol
	default:
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"propagationPolicy must be Background, Foreground or Orphan, got %q", p).WithField("propagationPolicy"))
		return
	}
	if s := r.URL.Query().Get("gracePeriodSeconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"gracePeriodSeconds must be a number >= 0, got %q", s).WithField("gracePeriodSeconds"))
			return
		}
		opts.GracePeriodSeconds = &n
	}
	if dry, err := httpapi.BoolParam(r, "dryRun"); err != nil {
		httpapi.WriteError(w, r, err)
		return
	} else if dry {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	c := client(r)
	if err := c.Dynamic.Resource(req.gvr).Namespace(req.namespace).Delete(r.Context(), req.name, opts); err != nil {
		httpapi.WriteError(w, r, kube.APIError(c.Name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"deleted": map[string]string{
		"resource": req.gvr.Resource, "namespace": req.namespace, "name": req.name}, "dryRun": opts.DryRun != nil})
}

// action serves POST .../{name}/scale and .../{name}/restart.
func (f *Function) action(w http.ResponseWriter, r *http.Request) {
	req, err := f.parse(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	switch {
	case req.name != "" && req.subresource == "scale":
		f.scale(w, r, req)
	case req.name != "" && req.subresource == "restart":
		f.restart(w, r, req)
	default:
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"POST supports .../{name}/scale and .../{name}/restart; apply is POST /api/v1/apply"))
	}
}

type scaleRequest struct {
	Replicas *int32 `json:"replicas"`
}

// scale sets replicas through the scale subresource, so it works for every kind that has one: Deployments,
// StatefulSets, ReplicaSets, CloneSets, Advanced StatefulSets, any CRD declaring it.
func (f *Function) scale(w http.ResponseWriter, r *http.Request, req request) {
	var body scaleRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if body.Replicas == nil || *body.Replicas < 0 {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"replicas must be a number >= 0").WithField("replicas"))
		return
	}
	c := client(r)
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"replicas": *body.Replicas}})
	out, err := c.Dynamic.Resource(req.gvr).Namespace(req.namespace).Patch(r.Context(), req.name,
		types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}, "scale")
	if err != nil {
		apiErr := kube.APIError(c.Name, err)
		if apiErr.Status == http.StatusNotFound {
			if _, gerr := c.Metadata.Resource(req.gvr).Namespace(req.namespace).Get(r.Context(), req.name, metav1.GetOptions{}); gerr == nil {
				apiErr = httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s cannot be scaled: it has no scale subresource", req.gvr.Resource)
			}
		}
		httpapi.WriteError(w, r, apiErr)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out.Object)
}

// restart rolls a workload's pods by stamping its pod template, as `kubectl rollout restart` does.
func (f *Function) restart(w http.ResponseWriter, r *http.Request, req request) {
	c := client(r)
	ctx := r.Context()
	res := c.Dynamic.Resource(req.gvr).Namespace(req.namespace)
	obj, err := res.Get(ctx, req.name, metav1.GetOptions{})
	if err != nil {
		httpapi.WriteError(w, r, kube.APIError(c.Name, err))
		return
	}
	if _, found, _ := unstructured.NestedMap(obj.Object, "spec", "template"); !found {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"%s %s has no pod template (spec.template), so it cannot be restarted", obj.GetKind(), req.name))
		return
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{
			RestartAnnotation: f.now().UTC().Format(time.RFC3339)}}}}})
	out, err := res.Patch(ctx, req.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		httpapi.WriteError(w, r, kube.APIError(c.Name, err))
		return
	}
	out.SetManagedFields(nil)
	httpapi.WriteJSON(w, http.StatusOK, out.Object)
}

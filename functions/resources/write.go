package resources

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// RestartAnnotation is set on a workload's pod template to roll its pods, as `kubectl rollout restart` does
// with its own annotation.
const RestartAnnotation = "kitefn.dev/restartedAt"

func (f *Function) delete(w http.ResponseWriter, r *http.Request) {
	req, err := f.parse(r)
	if err == nil && req.name != "" {
		err = scopeWrite(r.Context(), req, "delete")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	noteTarget(r.Context(), req)
	if req.name == "" || req.subresource != "" {
		writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
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
		writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"propagationPolicy must be Background, Foreground or Orphan, got %q", p).WithField("propagationPolicy"))
		return
	}
	if s := r.URL.Query().Get("gracePeriodSeconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"gracePeriodSeconds must be a number >= 0, got %q", s).WithField("gracePeriodSeconds"))
			return
		}
		opts.GracePeriodSeconds = &n
	}
	if dry, err := httpapi.BoolParam(r, "dryRun"); err != nil {
		writeError(w, r, err)
		return
	} else if dry {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	noteDelete(r.Context(), opts)
	c := client(r)
	if err := c.Dynamic.Resource(req.gvr).Namespace(req.namespace).Delete(r.Context(), req.name, opts); err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"deleted": map[string]string{
		"resource": req.gvr.Resource, "namespace": req.namespace, "name": req.name}, "dryRun": opts.DryRun != nil})
}

// action serves POST .../{name}/scale and .../{name}/restart.
func (f *Function) action(w http.ResponseWriter, r *http.Request) {
	req, err := f.parse(r)
	if err == nil && req.name != "" && (req.subresource == "scale" || req.subresource == "restart") {
		err = scopeWrite(r.Context(), req, req.subresource)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	noteTarget(r.Context(), req)
	switch {
	case req.name != "" && req.subresource == "scale":
		f.scale(w, r, req)
	case req.name != "" && req.subresource == "restart":
		f.restart(w, r, req)
	default:
		writeError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
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
		writeError(w, r, err)
		return
	}
	if body.Replicas == nil || *body.Replicas < 0 {
		writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"replicas must be a number >= 0").WithField("replicas"))
		return
	}
	c := client(r)
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"replicas": *body.Replicas}})
	from := replicasBefore(r.Context(), c.Dynamic.Resource(req.gvr).Namespace(req.namespace), req.name)
	out, err := c.Dynamic.Resource(req.gvr).Namespace(req.namespace).Patch(r.Context(), req.name,
		types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}, "scale")
	if err != nil {
		apiErr := kube.APIError(c.Name, err)
		if apiErr.Status == http.StatusNotFound {
			if _, gerr := c.Metadata.Resource(req.gvr).Namespace(req.namespace).Get(r.Context(), req.name, metav1.GetOptions{}); gerr == nil {
				apiErr = httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s cannot be scaled: it has no scale subresource", req.gvr.Resource)
			}
		}
		writeError(w, r, apiErr)
		return
	}
	noteScale(r.Context(), from, *body.Replicas)
	httpapi.WriteJSON(w, http.StatusOK, out.Object)
}

// restart rolls a workload's pods by stamping its pod template, as `kubectl rollout restart` does. Only kinds
// whose controller replaces pods when the template changes are restarted: for the others the stamp would be
// a change that rolls nothing, and the answer a false success.
func (f *Function) restart(w http.ResponseWriter, r *http.Request, req request) {
	if err := restartable(req.gvr.Group, req.kind); err != nil {
		writeError(w, r, err)
		return
	}
	c := client(r)
	ctx := r.Context()
	res := c.Dynamic.Resource(req.gvr).Namespace(req.namespace)
	obj, err := res.Get(ctx, req.name, metav1.GetOptions{})
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	if _, found, _ := unstructured.NestedMap(obj.Object, "spec", "template"); !found {
		writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"%s %s has no pod template (spec.template), so it cannot be restarted", obj.GetKind(), req.name))
		return
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{
			RestartAnnotation: f.now().UTC().Format(time.RFC3339)}}}}})
	out, err := res.Patch(ctx, req.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	out.SetManagedFields(nil)
	access.AuditOf(ctx).Detail = "pod template restarted (" + RestartAnnotation + ")"
	httpapi.WriteJSON(w, http.StatusOK, out.Object)
}

// rollingKinds roll their pods on a pod-template change, by API group and kind.
var rollingKinds = map[string][]string{
	"apps":           {"Deployment", "StatefulSet", "DaemonSet"},
	"apps.kruise.io": {"CloneSet", "StatefulSet", "DaemonSet"}, // OpenKruise CloneSet, Advanced StatefulSet/DaemonSet
	"argoproj.io":    {"Rollout"},
}

// restartable refuses kinds without a pod-template rollout, saying what to do instead.
func restartable(group, kind string) error {
	if slices.Contains(rollingKinds[group], kind) {
		return nil
	}
	var instead string
	switch {
	case group == "apps" && kind == "ReplicaSet", group == "" && kind == "ReplicationController":
		instead = "its controller does not replace pods when the template changes: restart the Deployment " +
			"that owns it, or delete its pods to have them re-created"
	case group == "batch" && kind == "Job":
		instead = "a Job runs to completion and is not rolled: delete it and create it again"
	case group == "batch" && kind == "CronJob":
		instead = "a CronJob's pods come from the Jobs it creates: create a Job from it " +
			"(kubectl create job --from=cronjob/NAME) or wait for its next run"
	default:
		instead = "it has no pod-template rollout (restart works for Deployments, StatefulSets, DaemonSets, " +
			"OpenKruise CloneSets, Advanced StatefulSets and Advanced DaemonSets, and Argo Rollouts)"
	}
	return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s cannot be restarted: %s", kindName(group, kind), instead)
}

func kindName(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

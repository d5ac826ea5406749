package graph

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status is a short state of an object where its own content tells it cheaply: a Pod's phase, "ready 2/3" for
// replicated workloads, a Job's outcome, a PVC's or PV's phase, a Node's readiness. "" when there is none.
func Status(x *unstructured.Unstructured) string {
	if x.GetDeletionTimestamp() != nil {
		return "Terminating"
	}
	obj := x.Object
	gk := x.GroupVersionKind().GroupKind()
	switch {
	case gk == nodeGK:
		for _, c := range slice(obj, "status", "conditions") {
			if str(c, "type") == "Ready" {
				if str(c, "status") == "True" {
					return "Ready"
				}
				return "NotReady"
			}
		}
		return ""
	case gk.Kind == "DaemonSet":
		return ready(obj, "numberReady", "desiredNumberScheduled")
	case gk.Kind == "Job" && gk.Group == "batch":
		for _, c := range slice(obj, "status", "conditions") {
			if (str(c, "type") == "Complete" || str(c, "type") == "Failed") && str(c, "status") == "True" {
				return str(c, "type")
			}
		}
		if n, _, _ := unstructured.NestedInt64(obj, "status", "active"); n > 0 {
			return "Running"
		}
		return ""
	}
	if phase := str(obj, "status", "phase"); phase != "" {
		return phase
	}
	if want, ok, _ := unstructured.NestedInt64(obj, "spec", "replicas"); ok {
		got, _, _ := unstructured.NestedInt64(obj, "status", "readyReplicas")
		return fmt.Sprintf("ready %d/%d", got, want)
	}
	return ""
}

func ready(obj map[string]any, got, want string) string {
	g, _, _ := unstructured.NestedInt64(obj, "status", got)
	w, _, _ := unstructured.NestedInt64(obj, "status", want)
	return fmt.Sprintf("ready %d/%d", g, w)
}

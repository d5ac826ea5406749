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
		if n, _ := integer(obj, "status", "active"); n > 0 {
			return "Running"
		}
		return ""
	}
	if phase := str(obj, "status", "phase"); phase != "" {
		return phase
	}
	if want, ok := integer(obj, "spec", "replicas"); ok {
		got, _ := integer(obj, "status", "readyReplicas")
		return fmt.Sprintf("ready %d/%d", got, want)
	}
	return ""
}

func ready(obj map[string]any, got, want string) string {
	g, _ := integer(obj, "status", got)
	w, _ := integer(obj, "status", want)
	return fmt.Sprintf("ready %d/%d", g, w)
}

// integer reads a whole number as any decoder leaves it: int64 (client-go's unstructured JSON), float64
// (encoding/json, YAML through JSON) or int.
func integer(obj map[string]any, path ...string) (int64, bool) {
	raw, ok, err := unstructured.NestedFieldNoCopy(obj, path...)
	if err != nil || !ok {
		return 0, false
	}
	switch n := raw.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

package resources_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kitefn/kitefn/tests/apitest"
)

// bundle is the commonest `kubectl apply -f` shape: a Namespace and objects in it, a CRD and an object of it.
// The custom resource holds an int64 beyond float64's exact range.
func bundle(ns, group string) string {
	return `apiVersion: v1
kind: Namespace
metadata: {name: ` + ns + `}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + ns + `}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: settings.` + group + `}
spec:
  group: ` + group + `
  scope: Namespaced
  names: {plural: settings, singular: setting, kind: Setting}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                big: {type: integer, format: int64}
                replicas: {type: integer}
---
apiVersion: ` + group + `/v1
kind: Setting
metadata: {name: limits, namespace: ` + ns + `}
spec: {big: 9007199254740993, replicas: 3}
`
}

// items decodes an answer's items keeping numbers exact.
func exactItems(t *testing.T, r apitest.Response) []map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var ans struct {
		Items []map[string]any `json:"items"`
	}
	if err := dec.Decode(&ans); err != nil {
		t.Fatal(err)
	}
	return ans.Items
}

func statuses(items []map[string]any) string {
	var out []string
	for _, it := range items {
		out = append(out, it["status"].(string))
	}
	return strings.Join(out, ",")
}

func TestApplyInDocumentOrder(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	body := bundle("order-ns", "order.kitefn.dev")

	// Dry run: what depends on an earlier document of the request is reported as such, naming it.
	r := e.do(http.MethodPost, "/api/v1/apply?dryRun=true", body, "Content-Type", "application/yaml").Expect(t, 200, "")
	if got := statuses(r.Items()); got != "dry-run,depends,dry-run,depends" {
		t.Fatalf("dry run statuses %s: %s", got, r.Body)
	}
	if m := r.Items()[1]["message"].(string); !strings.Contains(m, "document 1 (Namespace order-ns)") {
		t.Fatalf("depends message: %q", m)
	}
	if m := r.Items()[3]["message"].(string); !strings.Contains(m, "document 3 (CustomResourceDefinition settings.order.kitefn.dev)") {
		t.Fatalf("depends message: %q", m)
	}
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, "order-ns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry run created the namespace: %v", err)
	}

	r = e.do(http.MethodPost, "/api/v1/apply", body, "Content-Type", "application/yaml").Expect(t, 200, "")
	if got := statuses(r.Items()); got != "applied,applied,applied,applied" || r.JSON["applied"] != float64(4) {
		t.Fatalf("apply: %s", r.Body)
	}
	items := exactItems(t, r)
	for i, it := range items {
		if it["index"] != json.Number(string(rune('1'+i))) {
			t.Fatalf("item %d index %v", i, it["index"])
		}
	}
	spec := items[3]["object"].(map[string]any)["spec"].(map[string]any)
	if spec["big"] != json.Number("9007199254740993") || spec["replicas"] != json.Number("3") {
		t.Fatalf("custom resource answer lost its integers: %v", spec)
	}
	if rep := items[1]["object"].(map[string]any)["spec"].(map[string]any)["replicas"]; rep != json.Number("3") {
		t.Fatalf("deployment replicas %v", rep)
	}
	stored, err := e.dyn.Resource(schema.GroupVersionResource{Group: "order.kitefn.dev", Version: "v1", Resource: "settings"}).
		Namespace("order-ns").Get(ctx, "limits", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if big := stored.Object["spec"].(map[string]any)["big"]; big != int64(9007199254740993) {
		t.Fatalf("stored %T %v, want int64 9007199254740993", big, big)
	}
	if d, err := e.cs.AppsV1().Deployments("order-ns").Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 3 {
		t.Fatalf("deployment: %v", err)
	}

	// Again: nothing changes, and the server says so.
	r = e.do(http.MethodPost, "/api/v1/apply", body, "Content-Type", "application/yaml").Expect(t, 200, "")
	if got := statuses(r.Items()); got != "unchanged,unchanged,unchanged,unchanged" || r.JSON["unchanged"] != float64(4) {
		t.Fatalf("re-apply: %s", r.Body)
	}
	// Now that the namespace and the CRD exist, a dry run checks every document.
	r = e.do(http.MethodPost, "/api/v1/apply?dryRun=true", strings.Replace(body, "replicas: 3}", "replicas: 4}", 1),
		"Content-Type", "application/yaml").Expect(t, 200, "")
	if got := statuses(r.Items()); got != "dry-run,dry-run,dry-run,dry-run" {
		t.Fatalf("dry run after install: %s", r.Body)
	}
}

func TestApplyAtomic(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	bad := "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid, namespace: default}\n"
	body := bundle("atomic-ns", "atomic.kitefn.dev")

	// One refused document: nothing is applied, and the answer is the dry-run report with the error shape.
	r := e.do(http.MethodPost, "/api/v1/apply?atomic=true", body+bad, "Content-Type", "application/yaml").Expect(t, 422, "invalid")
	if got := statuses(r.Items()); got != "dry-run,depends,dry-run,depends,failed" || r.JSON["failed"] != float64(1) {
		t.Fatalf("atomic refused: %s", r.Body)
	}
	if !strings.HasPrefix(r.Message(), "document 5 (ConfigMap default/Not_Valid): ") || r.JSON["requestId"] == "" {
		t.Fatalf("error: %s", r.Body)
	}
	if item := r.Items()[4]["error"].(map[string]any); item["code"] != "invalid" || item["status"] != float64(422) {
		t.Fatalf("item error: %v", item)
	}
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, "atomic-ns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused atomic apply created its namespace: %v", err)
	}

	// All valid: applied in order, waiting for the CRD; what could not be dry-run says so.
	r = e.do(http.MethodPost, "/api/v1/apply?atomic=true", body, "Content-Type", "application/yaml").Expect(t, 200, "")
	if got := statuses(r.Items()); got != "applied,applied,applied,applied" {
		t.Fatalf("atomic apply: %s", r.Body)
	}
	if m, _ := r.Items()[3]["message"].(string); !strings.Contains(m, "without a dry run") {
		t.Fatalf("depends note: %q", m)
	}
}

func TestApplyStopsAtTheFirstFailure(t *testing.T) {
	e := setup(t)
	e.namespace(t, "partial-ns")
	ctx := context.Background()
	cm := func(name string) string {
		return "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: partial-ns}\ndata: {a: b}\n"
	}

	// Applied, then refused: 207, and what follows is not attempted.
	r := e.do(http.MethodPost, "/api/v1/apply", cm("first")+cm("Bad_Name")+cm("third"), "Content-Type", "application/yaml").Expect(t, 207, "")
	if got := statuses(r.Items()); got != "applied,failed,skipped" {
		t.Fatalf("statuses %s: %s", got, r.Body)
	}
	if r.JSON["applied"] != float64(1) || r.JSON["failed"] != float64(1) || r.JSON["skipped"] != float64(1) || r.JSON["error"] != nil {
		t.Fatalf("summary: %s", r.Body)
	}
	if item := r.Items()[1]["error"].(map[string]any); item["code"] != "invalid" || !strings.Contains(item["message"].(string), "Bad_Name") {
		t.Fatalf("item error: %v", item)
	}
	if _, err := e.cs.CoreV1().ConfigMaps("partial-ns").Get(ctx, "first", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().ConfigMaps("partial-ns").Get(ctx, "third", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a document after the failure was applied: %v", err)
	}

	// The first refused: its own status and the error shape, nothing applied.
	r = e.do(http.MethodPost, "/api/v1/apply", cm("Bad_Name")+cm("fourth"), "Content-Type", "application/yaml").Expect(t, 422, "invalid")
	if got := statuses(r.Items()); got != "failed,skipped" || !strings.HasPrefix(r.Message(), "document 1 (ConfigMap partial-ns/Bad_Name)") {
		t.Fatalf("first failed: %s", r.Body)
	}
	// Unchanged documents before a failure changed nothing either.
	r = e.do(http.MethodPost, "/api/v1/apply", cm("first")+cm("Bad_Name"), "Content-Type", "application/yaml").Expect(t, 422, "invalid")
	if got := statuses(r.Items()); got != "unchanged,failed" {
		t.Fatalf("unchanged then failed: %s", r.Body)
	}
	// A field another manager set: the apiserver's 409 conflict, until ?force=true takes it over.
	_, err := e.cs.CoreV1().ConfigMaps("partial-ns").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owned"},
		Data: map[string]string{"a": "theirs"}}, metav1.CreateOptions{FieldManager: "someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	r = e.do(http.MethodPost, "/api/v1/apply", cm("owned"), "Content-Type", "application/yaml").Expect(t, 409, "conflict")
	if !strings.Contains(r.Message(), "someone-else") || r.Items()[0]["error"].(map[string]any)["code"] != "conflict" {
		t.Fatalf("conflict: %s", r.Body)
	}
	r = e.do(http.MethodPost, "/api/v1/apply?force=true", cm("owned"), "Content-Type", "application/yaml").Expect(t, 200, "")
	if got := statuses(r.Items()); got != "applied" {
		t.Fatalf("forced: %s", r.Body)
	}
	// A missing namespace is the apiserver's 404.
	r = e.do(http.MethodPost, "/api/v1/apply", strings.Replace(cm("x"), "partial-ns", "no-such-ns", 1), "Content-Type", "application/yaml").Expect(t, 404, "not_found")
	if !strings.Contains(r.Message(), `namespaces "no-such-ns" not found`) {
		t.Fatalf("missing namespace: %q", r.Message())
	}
}

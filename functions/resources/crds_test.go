package resources_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
)

// installCRDs applies testdata/crds.yaml through the API itself and waits until every CRD is Established.
func (e *env) installCRDs(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("testdata/crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.do(http.MethodPost, "/api/v1/apply", data, "Content-Type", "application/yaml").Expect(t, 200, "")
	for _, name := range []string{"clonesets.apps.kruise.io", "ingressroutes.traefik.io", "proxyclasses.tailscale.com", "plans.upgrade.cattle.io"} {
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true,
			func(ctx context.Context) (bool, error) {
				obj, err := e.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
				return err == nil && established(obj), nil
			})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", name, err)
		}
	}
}

func established(obj *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func TestCRDFamilies(t *testing.T) {
	e := setup(t)

	// Before the CRDs exist: the install hint.
	r := e.do(http.MethodGet, "/api/v1/resources/clonesets.apps.kruise.io", nil).Expect(t, 404, "not_found")
	if !strings.HasPrefix(r.Message(), "CustomResourceDefinition clonesets.apps.kruise.io not found, please install ") ||
		!strings.Contains(strings.ToLower(r.Message()), "kruise") {
		t.Fatalf("missing CRD message: %q", r.Message())
	}
	r = e.do(http.MethodGet, "/api/v1/resources/CloneSet", nil).Expect(t, 404, "not_found")
	if !strings.Contains(r.Message(), "clonesets.apps.kruise.io") {
		t.Fatalf("missing CRD by kind: %q", r.Message())
	}

	e.installCRDs(t)
	e.namespace(t, "kruise-a")
	e.namespace(t, "kruise-b")
	clone := func(ns, name string) string {
		return "apiVersion: apps.kruise.io/v1alpha1\nkind: CloneSet\nmetadata: {name: " + name + ", namespace: " + ns +
			"}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: {labels: {app: " +
			name + "}}\n    spec: {containers: [{name: c, image: nginx}]}\n"
	}
	e.do(http.MethodPost, "/api/v1/apply", clone("kruise-a", "one")+"---\n"+clone("kruise-b", "two"), "Content-Type", "application/yaml").Expect(t, 200, "")

	for _, ref := range []string{"clonesets.apps.kruise.io", "CloneSet", "clonesets", "clone", "apps.kruise.io/v1alpha1/clonesets"} {
		items := e.do(http.MethodGet, "/api/v1/resources/"+ref+"?namespace=_all", nil).Expect(t, 200, "").Items()
		if len(items) != 2 {
			t.Fatalf("%s across namespaces: %d items", ref, len(items))
		}
	}
	if items := e.do(http.MethodGet, "/api/v1/resources/clonesets/kruise-b", nil).Expect(t, 200, "").Items(); len(items) != 1 {
		t.Fatalf("one namespace: %d items", len(items))
	}
	e.do(http.MethodGet, "/api/v1/resources/apps.kruise.io/v1beta1/clonesets", nil).Expect(t, 404, "not_found")

	// Scale a CloneSet through its scale subresource; restart stamps its template.
	e.do(http.MethodPost, "/api/v1/resources/clonesets/kruise-a/one/scale", map[string]any{"replicas": 4}).Expect(t, 200, "")
	got := e.do(http.MethodGet, "/api/v1/resources/clonesets/kruise-a/one", nil).Expect(t, 200, "")
	if got.JSON["spec"].(map[string]any)["replicas"] != float64(4) {
		t.Fatalf("CloneSet replicas after scale: %s", got.Body)
	}
	e.do(http.MethodPost, "/api/v1/resources/clonesets/kruise-a/one/restart", nil).Expect(t, 200, "")

	// Tailscale kinds are cluster-scoped: a namespace is ignored.
	e.do(http.MethodPost, "/api/v1/apply?namespace=kruise-a", "apiVersion: tailscale.com/v1alpha1\nkind: ProxyClass\nmetadata: {name: prod, namespace: kruise-a}\nspec: {}\n", "Content-Type", "application/yaml").Expect(t, 200, "")
	for _, path := range []string{"/api/v1/resources/proxyclasses?namespace=kruise-a", "/api/v1/resources/proxyclasses.tailscale.com"} {
		items := e.do(http.MethodGet, path, nil).Expect(t, 200, "").Items()
		if len(items) != 1 || items[0]["metadata"].(map[string]any)["namespace"] != nil {
			t.Fatalf("%s: %v", path, items)
		}
	}
	e.do(http.MethodGet, "/api/v1/resources/proxyclasses/prod", nil).Expect(t, 200, "")

	// Plans: the CRD serves only v2, newer than the family knows; full CRUD still works, and the apiserver's
	// validation comes back as a 422 naming the field.
	plan := "apiVersion: upgrade.cattle.io/v2\nkind: Plan\nmetadata: {name: k3s, namespace: kruise-a}\nspec: {concurrency: 1, version: v1.30.0}\n"
	e.do(http.MethodPost, "/api/v1/apply", plan, "Content-Type", "application/yaml").Expect(t, 200, "")
	e.do(http.MethodPost, "/api/v1/apply", strings.Replace(plan, "concurrency: 1", "concurrency: 2", 1), "Content-Type", "application/yaml").Expect(t, 200, "")
	p := e.do(http.MethodGet, "/api/v1/resources/plans/kruise-a/k3s", nil).Expect(t, 200, "")
	if p.JSON["apiVersion"] != "upgrade.cattle.io/v2" || p.JSON["spec"].(map[string]any)["concurrency"] != float64(2) {
		t.Fatalf("plan: %s", p.Body)
	}
	r = e.do(http.MethodPost, "/api/v1/apply", strings.Replace(plan, "concurrency: 1", "concurrency: 0", 1), "Content-Type", "application/yaml").Expect(t, 422, "invalid")
	if !strings.Contains(r.Message(), "spec.concurrency") {
		t.Fatalf("422 without the field: %q", r.Message())
	}
	if n := len(e.do(http.MethodGet, "/api/v1/resources/plans.upgrade.cattle.io", nil).Expect(t, 200, "").Items()); n != 1 {
		t.Fatalf("%d plans", n)
	}
	e.do(http.MethodDelete, "/api/v1/resources/plans/kruise-a/k3s", nil).Expect(t, 200, "")
	e.do(http.MethodGet, "/api/v1/resources/plans/kruise-a/k3s", nil).Expect(t, 404, "not_found")

	// Traefik: namespaced; the legacy group's CRD is not installed here.
	e.do(http.MethodGet, "/api/v1/resources/ingressroutes.traefik.io?namespace=_all", nil).Expect(t, 200, "")
	r = e.do(http.MethodGet, "/api/v1/resources/middlewares.traefik.io", nil).Expect(t, 404, "not_found")
	if !strings.Contains(strings.ToLower(r.Message()), "traefik") {
		t.Fatalf("traefik install hint: %q", r.Message())
	}

	// The CRD list and the families menu.
	crds := e.do(http.MethodGet, "/api/v1/crds", nil).Expect(t, 200, "")
	if len(crds.Items()) < 4 {
		t.Fatalf("/api/v1/crds: %s", crds.Body)
	}
	fams := e.do(http.MethodGet, "/api/v1/crds/families", nil).Expect(t, 200, "")
	if !strings.Contains(string(fams.Body), "CloneSet") || !strings.Contains(string(fams.Body), `"count":2`) {
		t.Fatalf("families: %s", fams.Body)
	}
}

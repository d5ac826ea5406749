package crd

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/metadata"

	"github.com/kitefn/kitefn/tests/harness"
)

func nsResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
}

func TestResolveFamilyKinds(t *testing.T) {
	t.Parallel() // its first create waits out the apiserver's 2 s pause after a CRD is established
	e := newEnv(t)
	ns := e.namespace("resolve-families")
	for _, tc := range []struct {
		ref, crd, version, family string
		served                    []string
		namespaced, scale         bool
	}{
		{"clonesets.apps.kruise.io", "clonesets.apps.kruise.io", "v1alpha1", OpenKruise, []string{"v1alpha1"}, true, true},
		{"clone", "clonesets.apps.kruise.io", "v1alpha1", OpenKruise, []string{"v1alpha1"}, true, true},
		{"asts", "statefulsets.apps.kruise.io", "v1beta1", OpenKruise, []string{"v1beta1", "v1alpha1"}, true, true},
		{"daemonsets.apps.kruise.io", "daemonsets.apps.kruise.io", "v1alpha1", OpenKruise, []string{"v1alpha1"}, true, false},
		{"BroadcastJob", "broadcastjobs.apps.kruise.io", "v1alpha1", OpenKruise, []string{"v1alpha1"}, true, false},
		{"sidecarsets.apps.kruise.io", "sidecarsets.apps.kruise.io", "v1alpha1", OpenKruise, []string{"v1alpha1"}, false, false},
		{"pub", "podunavailablebudgets.policy.kruise.io", "v1alpha1", OpenKruise, []string{"v1alpha1"}, true, false},
		{"ingressroutes.traefik.io", "ingressroutes.traefik.io", "v1alpha1", Traefik, []string{"v1alpha1"}, true, false},
		{"middleware", "middlewares.traefik.io", "v1alpha1", Traefik, []string{"v1alpha1"}, true, false},
		{"ingressroutes.traefik.containo.us", "ingressroutes.traefik.containo.us", "v1alpha1", TraefikLegacy, []string{"v1alpha1"}, true, false},
		{"proxyclasses.tailscale.com", "proxyclasses.tailscale.com", "v1alpha1", Tailscale, []string{"v1alpha1"}, false, false},
		{"plans.upgrade.cattle.io", "plans.upgrade.cattle.io", "v1", SystemUpgrade, []string{"v1"}, true, false},
	} {
		res, err := e.resolver.Resolve(t.Context(), tc.ref)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.ref, err)
			continue
		}
		if res.CRD != tc.crd || res.Version != tc.version || res.Family != tc.family ||
			res.Namespaced != tc.namespaced || res.HasScale != tc.scale || !res.HasStatus ||
			!slices.Equal(res.Served, tc.served) || res.Terminating {
			t.Errorf("Resolve(%q) = %+v; want %s %s family %s served %v namespaced %v scale %v", tc.ref, res,
				tc.crd, tc.version, tc.family, tc.served, tc.namespaced, tc.scale)
			continue
		}
		// The answer works: create, read back, delete an object of every kind.
		obj := object(res.Group+"/"+res.Version, res.Kind, ns, "kitefn-"+res.Plural, map[string]any{"x": "y"})
		c := res.Client(e.dyn, ns)
		if _, err := c.Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) { // the same kind under another name in this table
				continue
			}
			t.Errorf("%s: create: %v", tc.ref, err)
			continue
		}
		got, err := c.Get(t.Context(), obj.GetName(), metav1.GetOptions{})
		if err != nil || got.GetAPIVersion() != res.Group+"/"+res.Version {
			t.Errorf("%s: get: %v %v", tc.ref, got, err)
		}
		if err := c.Delete(t.Context(), obj.GetName(), metav1.DeleteOptions{}); err != nil {
			t.Errorf("%s: delete: %v", tc.ref, err)
		}
	}
}

func TestPlansFullCRUD(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace("plans-crud")
	res, err := e.resolver.Resolve(t.Context(), "plans.upgrade.cattle.io")
	if err != nil {
		t.Fatal(err)
	}
	c := res.Client(e.dyn, ns)
	plan := object("upgrade.cattle.io/v1", "Plan", ns, "k3s-server", map[string]any{
		"concurrency": int64(1), "version": "v1.37.2+k3s1",
		"nodeSelector": map[string]any{"matchExpressions": []any{map[string]any{
			"key": "node-role.kubernetes.io/control-plane", "operator": "In", "values": []any{"true"}}}},
		"upgrade": map[string]any{"image": "rancher/k3s-upgrade"},
	})
	created, err := c.Create(t.Context(), plan, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := unstructured.SetNestedField(created.Object, int64(2), "spec", "concurrency"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(t.Context(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	patched, err := c.Patch(t.Context(), "k3s-server", types.MergePatchType,
		[]byte(`{"spec":{"version":"v1.37.3+k3s1"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	conc, _, _ := unstructured.NestedInt64(patched.Object, "spec", "concurrency")
	v, _, _ := unstructured.NestedString(patched.Object, "spec", "version")
	if conc != 2 || v != "v1.37.3+k3s1" {
		t.Fatalf("after update and patch: concurrency %d, version %s", conc, v)
	}
	list, err := c.List(t.Context(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if err := c.Delete(t.Context(), "k3s-server", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Get(t.Context(), "k3s-server", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestTraefikAllNamespaces(t *testing.T) {
	e := newEnv(t)
	a, b := e.namespace("traefik-a"), e.namespace("traefik-b")
	res, err := e.resolver.Resolve(t.Context(), "ingressroutes.traefik.io")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{a, b} {
		ir := object("traefik.io/v1alpha1", "IngressRoute", ns, "web", map[string]any{
			"entryPoints": []any{"web"},
			"routes": []any{map[string]any{"match": "Host(`example.com`)", "kind": "Rule",
				"services": []any{map[string]any{"name": "web", "port": int64(80)}}}},
		})
		if _, err := res.Client(e.dyn, ns).Create(t.Context(), ir, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create in %s: %v", ns, err)
		}
	}
	all, err := res.Client(e.dyn, "").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range all.Items {
		got = append(got, it.GetNamespace()+"/"+it.GetName())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"traefik-a/web", "traefik-b/web"}) {
		t.Fatalf("all namespaces: %v", got)
	}
	// The legacy group is a different resource: nothing there.
	legacy, err := e.resolver.Resolve(t.Context(), "ingressroutes.traefik.containo.us")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := legacy.Client(e.dyn, "").List(t.Context(), metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Fatalf("legacy list: %d items, %v", len(l.Items), err)
	}
}

func TestClusterScopedIgnoresNamespace(t *testing.T) {
	e := newEnv(t)
	res, err := e.resolver.Resolve(t.Context(), "proxyclasses.tailscale.com")
	if err != nil {
		t.Fatal(err)
	}
	if res.Namespaced {
		t.Fatal("ProxyClass resolved as namespaced")
	}
	pc := object("tailscale.com/v1alpha1", "ProxyClass", "", "prod", map[string]any{
		"statefulSet": map[string]any{"labels": map[string]any{"team": "net"}}})
	created, err := res.Client(e.dyn, "some-namespace").Create(t.Context(), pc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create with a namespace given: %v", err)
	}
	t.Cleanup(func() { _ = res.Client(e.dyn, "").Delete(context.Background(), "prod", metav1.DeleteOptions{}) })
	if created.GetNamespace() != "" {
		t.Fatalf("cluster-scoped object got namespace %q", created.GetNamespace())
	}
	if _, err := res.Client(e.dyn, "another-namespace").Get(t.Context(), "prod", metav1.GetOptions{}); err != nil {
		t.Fatalf("get with another namespace given: %v", err)
	}
}

func TestResolveVersionFamilyDoesNotKnow(t *testing.T) {
	t.Parallel() // its first create waits out the apiserver's 2 s pause after a CRD is established
	e := newEnv(t)
	// Tailscale's connectors at v1 only: the family knows v1alpha1; the CRD decides.
	e.createCRD(testCRD("tailscale.com", "Connector", "connectors", "Cluster", ver{"v1", true, true}), true)
	res, err := e.resolver.Resolve(t.Context(), "cn")
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != "v1" || res.Family != Tailscale || res.Namespaced || !slices.Equal(res.Served, []string{"v1"}) {
		t.Fatalf("got %+v", res)
	}
	cn := object("tailscale.com/v1", "Connector", "", "exit", map[string]any{"exitNode": true})
	if _, err := res.Client(e.dyn, "ignored").Create(t.Context(), cn, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create at v1: %v", err)
	}
}

func TestResolvePrefersServedStorageVersion(t *testing.T) {
	e := newEnv(t)
	e.createCRD(testCRD("example.kitefn.io", "Widget", "widgets", "Namespaced",
		ver{"v1beta1", true, true}, ver{"v1", true, false}), true)
	res, err := e.resolver.Resolve(t.Context(), "Widgets.Example.Kitefn.IO")
	if err != nil {
		t.Fatal(err)
	}
	if res.CRD != "widgets.example.kitefn.io" || res.Version != "v1beta1" || res.Storage != "v1beta1" ||
		!slices.Equal(res.Served, []string{"v1", "v1beta1"}) || res.Family != "" || !res.Namespaced {
		t.Fatalf("got %+v", res)
	}
	v1, ok := res.WithVersion("v1")
	if !ok || v1.Version != "v1" || v1.GVR() != (schema.GroupVersionResource{Group: "example.kitefn.io",
		Version: "v1", Resource: "widgets"}) {
		t.Fatalf("WithVersion(v1) = %+v, %v", v1, ok)
	}
	if _, ok := res.WithVersion("v2"); ok {
		t.Fatal("WithVersion(v2) accepted a version the CRD does not serve")
	}

	// Storage not served: the newest served version.
	e.createCRD(testCRD("example.kitefn.io", "Gear", "gears", "Namespaced",
		ver{"v1", false, true}, ver{"v1alpha1", true, false}, ver{"v1beta1", true, false}), true)
	res, err = e.resolver.Resolve(t.Context(), "gears.example.kitefn.io")
	if err != nil || res.Version != "v1beta1" || res.Storage != "v1" {
		t.Fatalf("storage not served: %+v, %v", res, err)
	}
}

func TestResolveMissing(t *testing.T) {
	e := newEnv(t)
	for ref, want := range map[string]string{
		"uniteddeployments.apps.kruise.io": "CustomResourceDefinition uniteddeployments.apps.kruise.io not found, " +
			"please install OpenKruise (https://openkruise.io/docs/installation)",
		"ud": "CustomResourceDefinition uniteddeployments.apps.kruise.io not found, " +
			"please install OpenKruise (https://openkruise.io/docs/installation)",
		"recorders.tailscale.com": "CustomResourceDefinition recorders.tailscale.com not found, please install " +
			"the Tailscale Kubernetes operator (https://tailscale.com/kb/1236/kubernetes-operator)",
		"middlewaretcps.traefik.containo.us": "CustomResourceDefinition middlewaretcps.traefik.containo.us not " +
			"found, please install the Traefik v2 CRDs (https://doc.traefik.io/traefik/v2.11/providers/kubernetes-crd/)",
		"nothings.example.kitefn.io": "CustomResourceDefinition nothings.example.kitefn.io not found",
		"statefulsets":               "CustomResourceDefinition statefulsets not found", // built-in, never a CRD
	} {
		_, err := e.resolver.Resolve(t.Context(), ref)
		var nf *NotFoundError
		if !errors.As(err, &nf) || err.Error() != want {
			t.Errorf("Resolve(%q): got %v, want %q", ref, err, want)
		}
	}
	var nf *NotFoundError
	_, err := e.resolver.Resolve(t.Context(), "uniteddeployments.apps.kruise.io")
	if !errors.As(err, &nf) || nf.Family != OpenKruise || nf.CRD != "uniteddeployments.apps.kruise.io" {
		t.Fatalf("NotFoundError fields: %+v", nf)
	}
	// Names that cannot be CRDs are refused without asking: 4 distinct CRD names above.
	if got := e.crdGets.Load(); got != 4 {
		t.Fatalf("%d CRD GETs, want 4", got)
	}
}

func TestNegativeCacheExpires(t *testing.T) {
	e := newEnv(t)
	const name = "latecomers.example.kitefn.io"
	var nf *NotFoundError
	if _, err := e.resolver.Resolve(t.Context(), name); !errors.As(err, &nf) {
		t.Fatalf("before install: %v", err)
	}
	e.createCRD(testCRD("example.kitefn.io", "Latecomer", "latecomers", "Namespaced", ver{"v1", true, true}), true)

	e.clock.Add(9 * time.Second) // within the 10 s TTL: the cached answer, no API call
	if _, err := e.resolver.Resolve(t.Context(), name); !errors.As(err, &nf) {
		t.Fatalf("within TTL: want the cached not-found, got %v", err)
	}
	if got := e.crdGets.Load(); got != 1 {
		t.Fatalf("within TTL: %d CRD GETs, want 1", got)
	}

	e.clock.Add(time.Second)
	res, err := e.resolver.Resolve(t.Context(), name)
	if err != nil || res.Version != "v1" {
		t.Fatalf("after TTL: %+v, %v", res, err)
	}
	if _, err := e.resolver.Resolve(t.Context(), name); err != nil || e.crdGets.Load() != 2 {
		t.Fatalf("positive answer not cached: %v, %d GETs", err, e.crdGets.Load())
	}

	e.resolver.Forget(name)
	if _, err := e.resolver.Resolve(t.Context(), name); err != nil || e.crdGets.Load() != 3 {
		t.Fatalf("Forget did not drop the entry: %v, %d GETs", err, e.crdGets.Load())
	}
}

func TestConcurrentResolvesShareOneRead(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			res, err := e.resolver.Resolve(t.Context(), "clonesets.apps.kruise.io")
			if err == nil && res.Version != "v1alpha1" {
				err = errors.New("wrong version " + res.Version)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := e.crdGets.Load(); got != 1 {
		t.Fatalf("%d CRD GETs for 32 concurrent resolves, want 1", got)
	}
}

func TestResolveUnusableCRDs(t *testing.T) {
	e := newEnv(t)
	// Same kind as another CRD of the group: the apiserver refuses the names and never establishes it.
	e.createCRD(testCRD("conflict.kitefn.io", "Gadget", "gadgets", "Namespaced", ver{"v1", true, true}), true)
	gizmos := testCRD("conflict.kitefn.io", "Gadget", "gizmos", "Namespaced", ver{"v1", true, true})
	if err := unstructured.SetNestedField(gizmos.Object, "GizmoList", "spec", "names", "listKind"); err != nil {
		t.Fatal(err)
	}
	e.createCRD(gizmos, false)
	var ue *UnavailableError
	var err error
	// The apiserver reports the conflict within moments of creation; until then the CRD is "not established yet".
	settled := func(ctx context.Context) (bool, error) {
		_, err = e.resolver.Resolve(ctx, "gizmos.conflict.kitefn.io")
		return errors.As(err, &ue) &&
			err.Error() != "CustomResourceDefinition gizmos.conflict.kitefn.io is not established yet", nil
	}
	_ = wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, settled)
	want := `CustomResourceDefinition gizmos.conflict.kitefn.io is not established: its names were not accepted ` +
		`(KindConflict: "Gadget" is already in use)`
	if !errors.As(err, &ue) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	// Not cached: every call asks again, so the CRD works as soon as it is fixed.
	before := e.crdGets.Load()
	_, _ = e.resolver.Resolve(t.Context(), "gizmos.conflict.kitefn.io")
	if e.crdGets.Load() != before+1 {
		t.Fatal("an unusable CRD was cached")
	}

	// Every version switched off (the apiserver allows it).
	e.createCRD(testCRD("example.kitefn.io", "Ghost", "ghosts", "Namespaced", ver{"v1", false, true}), true)
	_, err = e.resolver.Resolve(t.Context(), "ghosts.example.kitefn.io")
	want = "CustomResourceDefinition ghosts.example.kitefn.io serves no version (no spec.versions[].served)"
	if !errors.As(err, &ue) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestResolveTerminatingCRD(t *testing.T) {
	t.Parallel() // its first create waits out the apiserver's 2 s pause after a CRD is established
	e := newEnv(t)
	u := testCRD("example.kitefn.io", "Leaver", "leavers", "Namespaced", ver{"v1", true, true})
	u.SetFinalizers([]string{"kitefn.test/hold"}) // keeps it terminating until the test lets go
	e.createCRD(u, true)
	crds := e.admin.Resource(crdResource())
	t.Cleanup(func() {
		_, _ = crds.Patch(context.Background(), u.GetName(), types.JSONPatchType,
			[]byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{})
	})
	ns := e.namespace("terminating")
	res, err := e.resolver.Resolve(t.Context(), u.GetName())
	if err != nil {
		t.Fatal(err)
	}
	obj := object("example.kitefn.io/v1", "Leaver", ns, "one", map[string]any{})
	if _, err := res.Client(e.dyn, ns).Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := crds.Delete(t.Context(), u.GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	res, err = e.resolver.Resolve(t.Context(), u.GetName())
	if err != nil || !res.Terminating || res.Version != "v1" {
		t.Fatalf("terminating CRD: %+v, %v", res, err)
	}
	// What Terminating promises: lists still work, creates get the apiserver's own refusal.
	if _, err := res.Client(e.dyn, "").List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Fatalf("list while terminating: %v", err)
	}
	_, err = res.Client(e.dyn, ns).Create(t.Context(), object("example.kitefn.io/v1", "Leaver", ns, "two",
		map[string]any{}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "custom resource definition is terminating") {
		t.Fatalf("create while terminating: want the apiserver's 403, got %v", err)
	}
}

func TestFamiliesStatus(t *testing.T) {
	e := newEnv(t)
	e.resolver.pageSize = 2 // pages through CRDs and objects
	a, b := e.namespace("status-a"), e.namespace("status-b")
	cs, err := e.resolver.Resolve(t.Context(), "clonesets.apps.kruise.io")
	if err != nil {
		t.Fatal(err)
	}
	create := func(ns, name string) {
		t.Helper()
		obj := object("apps.kruise.io/v1alpha1", "CloneSet", ns, name, map[string]any{"replicas": int64(1)})
		if _, err := cs.Client(e.dyn, ns).Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(a, "one")
	create(a, "two")
	create(b, "three")

	st, err := e.resolver.FamiliesStatus(t.Context(), e.md)
	if err != nil {
		t.Fatal(err)
	}
	kruise := familyStatus(t, st, OpenKruise)
	if kruise.Installed != InstalledSome || kruise.InstallHint == "" || len(kruise.Kinds) != 18 {
		t.Fatalf("openkruise: installed %s, %d kinds", kruise.Installed, len(kruise.Kinds))
	}
	clone := kindStatus(t, kruise, "clonesets.apps.kruise.io")
	if !clone.Installed || clone.Version != "v1alpha1" || !clone.Namespaced || !clone.Scalable ||
		clone.Count == nil || *clone.Count != 3 || clone.Error != "" {
		t.Fatalf("CloneSet: %+v (count %v)", clone, deref(clone.Count))
	}
	asts := kindStatus(t, kruise, "statefulsets.apps.kruise.io")
	if asts.Version != "v1beta1" || !slices.Equal(asts.Served, []string{"v1beta1", "v1alpha1"}) ||
		asts.Count == nil || *asts.Count != 0 {
		t.Fatalf("Advanced StatefulSet: %+v", asts)
	}
	if ss := kindStatus(t, kruise, "sidecarsets.apps.kruise.io"); ss.Namespaced || !ss.Installed {
		t.Fatalf("SidecarSet: %+v", ss)
	}
	if ud := kindStatus(t, kruise, "uniteddeployments.apps.kruise.io"); ud.Installed || ud.Count != nil ||
		ud.Version != "" || !ud.Scalable {
		t.Fatalf("UnitedDeployment (not installed): %+v", ud)
	}
	if p := familyStatus(t, st, SystemUpgrade); p.Installed != InstalledAll {
		t.Fatalf("system-upgrade-controller: %+v", p)
	}
	if tr := familyStatus(t, st, Traefik); tr.Installed != InstalledSome {
		t.Fatalf("traefik: %s", tr.Installed)
	}

	// Cached for the status TTL, then read again.
	create(b, "four")
	st[0].Kinds[0].Count = nil // the caller's copy: must not reach the cache
	e.clock.Add(29 * time.Second)
	st, err = e.resolver.FamiliesStatus(t.Context(), e.md)
	if err != nil {
		t.Fatal(err)
	}
	if c := kindStatus(t, familyStatus(t, st, OpenKruise), "clonesets.apps.kruise.io").Count; c == nil || *c != 3 {
		t.Fatalf("within the TTL: count %v, want the cached 3", deref(c))
	}
	e.clock.Add(time.Second)
	st, err = e.resolver.FamiliesStatus(t.Context(), e.md)
	if err != nil {
		t.Fatal(err)
	}
	if c := kindStatus(t, familyStatus(t, st, OpenKruise), "clonesets.apps.kruise.io").Count; c == nil || *c != 4 {
		t.Fatalf("after the TTL: count %v, want 4", deref(c))
	}
}

func TestFamiliesStatusReportsCountErrorsPerKind(t *testing.T) {
	e := newEnv(t, WithStatusTTL(time.Minute))
	viewer, err := metadata.NewForConfig(kube.RESTConfigFor(harness.ViewerUser)) // may list nothing
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.resolver.FamiliesStatus(t.Context(), viewer)
	if err != nil {
		t.Fatalf("one kind's failure failed the whole answer: %v", err)
	}
	clone := kindStatus(t, familyStatus(t, st, OpenKruise), "clonesets.apps.kruise.io")
	if !clone.Installed || clone.Count != nil || clone.Version != "v1alpha1" ||
		!strings.Contains(clone.Error, "counting clonesets.apps.kruise.io: ") || !strings.Contains(clone.Error, "forbidden") {
		t.Fatalf("CloneSet: %+v", clone)
	}
	e.clock.Add(59 * time.Second) // WithStatusTTL: still the cached answer, even for another client
	if st, err = e.resolver.FamiliesStatus(t.Context(), e.md); err != nil {
		t.Fatal(err)
	}
	if kindStatus(t, familyStatus(t, st, OpenKruise), "clonesets.apps.kruise.io").Error == "" {
		t.Fatal("status TTL of a minute not honoured")
	}
}

func TestList(t *testing.T) {
	e := newEnv(t)
	e.resolver.pageSize = 3
	e.createCRD(testCRD("example.kitefn.io", "Sprocket", "sprockets", "Cluster",
		ver{"v1beta1", true, true}, ver{"v1", true, false}, ver{"v1alpha1", false, false}), true)
	infos, err := e.resolver.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("not sorted by name")
	}
	byName := map[string]Info{}
	for _, in := range infos {
		byName[in.Name] = in
	}
	for _, name := range []string{"clonesets.apps.kruise.io", "statefulsets.apps.kruise.io",
		"sidecarsets.apps.kruise.io", "ingressroutes.traefik.io", "ingressroutes.traefik.containo.us",
		"proxyclasses.tailscale.com", "plans.upgrade.cattle.io", "sprockets.example.kitefn.io"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("List lacks %s", name)
		}
	}
	asts := byName["statefulsets.apps.kruise.io"]
	if asts.Kind != "StatefulSet" || asts.Group != "apps.kruise.io" || asts.Plural != "statefulsets" ||
		asts.Scope != "Namespaced" || asts.Version != "v1beta1" || asts.Storage != "v1beta1" ||
		!slices.Equal(asts.Served, []string{"v1beta1", "v1alpha1"}) || !asts.Established ||
		asts.Family != OpenKruise || !slices.Equal(asts.ShortNames, []string{"sts", "asts"}) || asts.Created.IsZero() {
		t.Errorf("Advanced StatefulSet: %+v", asts)
	}
	if pc := byName["proxyclasses.tailscale.com"]; pc.Scope != "Cluster" || pc.Family != Tailscale {
		t.Errorf("ProxyClass: %+v", pc)
	}
	if l := byName["ingressroutes.traefik.containo.us"]; l.Family != TraefikLegacy {
		t.Errorf("legacy IngressRoute: %+v", l)
	}
	sp := byName["sprockets.example.kitefn.io"]
	if sp.Family != "" || sp.Scope != "Cluster" || sp.Version != "v1beta1" ||
		!slices.Equal(sp.Served, []string{"v1", "v1beta1"}) {
		t.Errorf("Sprocket: %+v", sp)
	}
	// List primed the cache: resolving a listed CRD costs no GET.
	if _, err := e.resolver.Resolve(t.Context(), "sprockets.example.kitefn.io"); err != nil || e.crdGets.Load() != 0 {
		t.Fatalf("resolve after list: %v, %d GETs", err, e.crdGets.Load())
	}
}

func familyStatus(t *testing.T, st []FamilyStatus, name string) FamilyStatus {
	t.Helper()
	for _, f := range st {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no status for family %s", name)
	return FamilyStatus{}
}

func kindStatus(t *testing.T, f FamilyStatus, crd string) KindStatus {
	t.Helper()
	for _, k := range f.Kinds {
		if k.CRD == crd {
			return k
		}
	}
	t.Fatalf("family %s has no kind %s", f.Name, crd)
	return KindStatus{}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

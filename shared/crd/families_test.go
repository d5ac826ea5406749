package crd

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestFamiliesAreConsistent(t *testing.T) {
	lower := regexp.MustCompile(`^[a-z0-9]+$`)
	seenFamily, seenCRD := map[string]bool{}, map[string]string{}
	for _, f := range Families() {
		if f.Name == "" || f.Title == "" || !strings.Contains(f.InstallHint, "(https://") {
			t.Errorf("family %+v: name, title and an install hint with a URL are required", f.Name)
		}
		if seenFamily[f.Name] {
			t.Errorf("family %s listed twice", f.Name)
		}
		seenFamily[f.Name] = true
		if len(f.Kinds) == 0 {
			t.Errorf("family %s has no kinds", f.Name)
		}
		for _, k := range f.Kinds {
			where := f.Name + "/" + k.CRD()
			if k.Kind == "" || k.Title == "" || !lower.MatchString(k.Plural) || strings.Count(k.Group, ".") < 1 {
				t.Errorf("%s: kind, title, lower-case plural and a dotted group are required: %+v", where, k)
			}
			if errs := validation.IsDNS1123Subdomain(k.CRD()); len(errs) > 0 || !validName(k.CRD()) {
				t.Errorf("%s: not a valid CRD name: %v", where, errs)
			}
			if other, dup := seenCRD[k.CRD()]; dup {
				t.Errorf("%s: CRD also in family %s", where, other)
			}
			seenCRD[k.CRD()] = f.Name
			if len(k.Versions) == 0 {
				t.Errorf("%s: no versions", where)
			}
			sorted := slices.Clone(k.Versions)
			sortVersions(sorted)
			if !slices.Equal(sorted, k.Versions) {
				t.Errorf("%s: versions %v are not newest first (%v)", where, k.Versions, sorted)
			}
			for _, s := range k.ShortNames {
				if !lower.MatchString(s) {
					t.Errorf("%s: short name %q is not lower-case", where, s)
				}
			}
			// Every name of a kind reaches it, unless Kubernetes owns the name. Bare names of the legacy
			// Traefik group reach its traefik.io twin instead.
			names := []string{k.CRD(), strings.ToLower(k.Kind) + "." + k.Group}
			if f.Name != TraefikLegacy {
				names = append(append(names, k.Title), k.ShortNames...)
			}
			for _, name := range names {
				if builtinName(strings.ToLower(name)) {
					continue
				}
				if _, kk, ok := FindKind(name); !ok || kk.CRD() != k.CRD() {
					t.Errorf("FindKind(%q) = %s, %v; want %s", name, kk.CRD(), ok, k.CRD())
				}
			}
		}
	}
	if got := len(mustFamily(t, OpenKruise).Kinds); got != 18 {
		t.Errorf("OpenKruise has %d kinds, kruise-api v1.8.0 defines 18", got)
	}
}

func mustFamily(t *testing.T, name string) Family {
	t.Helper()
	for _, f := range Families() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no family %s", name)
	return Family{}
}

func TestFamiliesAreFreshEachCall(t *testing.T) {
	a := Families()
	a[0].Name = "changed"
	a[0].Kinds[0].Versions[0] = "changed"
	a[0].Kinds[0].ShortNames = append(a[0].Kinds[0].ShortNames[:0], "changed")
	b := Families()
	if b[0].Name != OpenKruise || b[0].Kinds[0].Versions[0] != "v1alpha1" || b[0].Kinds[0].ShortNames[0] != "clone" {
		t.Fatalf("changing one answer changed the next: %+v", b[0].Kinds[0])
	}
}

func TestFindKind(t *testing.T) {
	for _, tc := range []struct {
		ref, crd, family string // crd "" = not found
	}{
		{"clonesets.apps.kruise.io", "clonesets.apps.kruise.io", OpenKruise},
		{"CloneSet", "clonesets.apps.kruise.io", OpenKruise},
		{"cloneset", "clonesets.apps.kruise.io", OpenKruise},
		{" clone ", "clonesets.apps.kruise.io", OpenKruise},
		{"CloneSet.apps.kruise.io", "clonesets.apps.kruise.io", OpenKruise},
		// Built-in names stay built-in.
		{"statefulsets", "", ""},
		{"StatefulSet", "", ""},
		{"sts", "", ""},
		{"daemonsets", "", ""},
		{"DaemonSet", "", ""},
		{"ds", "", ""},
		{"statefulsets.apps", "", ""},
		{"pods", "", ""},
		// Qualified or distinct names reach the Advanced kinds.
		{"statefulsets.apps.kruise.io", "statefulsets.apps.kruise.io", OpenKruise},
		{"sts.apps.kruise.io", "statefulsets.apps.kruise.io", OpenKruise},
		{"asts", "statefulsets.apps.kruise.io", OpenKruise},
		{"Advanced StatefulSet", "statefulsets.apps.kruise.io", OpenKruise},
		{"advanced-statefulset", "statefulsets.apps.kruise.io", OpenKruise},
		{"daemonsets.apps.kruise.io", "daemonsets.apps.kruise.io", OpenKruise},
		{"ads", "daemonsets.apps.kruise.io", OpenKruise},
		{"pub", "podunavailablebudgets.policy.kruise.io", OpenKruise},
		{"podunavailablebudgets.apps.kruise.io", "", ""}, // wrong group
		// Traefik: bare names are traefik.io; the legacy group needs its name.
		{"ingressroute", "ingressroutes.traefik.io", Traefik},
		{"IngressRouteTCP", "ingressroutetcps.traefik.io", Traefik},
		{"ingressroutes.traefik.containo.us", "ingressroutes.traefik.containo.us", TraefikLegacy},
		{"Middleware.traefik.containo.us", "middlewares.traefik.containo.us", TraefikLegacy},
		{"serverstransporttcps.traefik.containo.us", "", ""}, // v3 only
		{"pg", "proxygroups.tailscale.com", Tailscale},
		{"ProxyClass", "proxyclasses.tailscale.com", Tailscale},
		{"plans", "plans.upgrade.cattle.io", SystemUpgrade},
		{"plan.upgrade.cattle.io", "plans.upgrade.cattle.io", SystemUpgrade},
		{"", "", ""},
		{"widgets.example.com", "", ""},
		{"nothing", "", ""},
	} {
		f, k, ok := FindKind(tc.ref)
		if ok != (tc.crd != "") || ok && (k.CRD() != tc.crd || f.Name != tc.family) {
			t.Errorf("FindKind(%q) = %s/%s, %v; want %s/%s", tc.ref, f.Name, k.CRD(), ok, tc.family, tc.crd)
		}
	}
}

func TestSortVersions(t *testing.T) {
	vs := []string{"v1alpha1", "v1", "v2beta1", "v1beta2", "v1beta1", "v2", "v10", "foo"}
	sortVersions(vs)
	want := []string{"v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"}
	if !slices.Equal(vs, want) {
		t.Fatalf("got %v, want %v", vs, want)
	}
}

// crdMap is a CRD as the apiserver returns it, for resolve's unit tests.
func crdMap(name string, versions []any, conditions ...any) *unstructured.Unstructured {
	group, plural := name[strings.Index(name, ".")+1:], name[:strings.Index(name, ".")]
	return &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"group": group, "scope": "Namespaced", "versions": versions,
			"names": map[string]any{"kind": "Widget", "plural": plural}},
		"status": map[string]any{"conditions": conditions},
	}}
}

func TestResolvePicksVersion(t *testing.T) {
	established := map[string]any{"type": "Established", "status": "True"}
	v := func(name string, served, storage bool) any {
		return map[string]any{"name": name, "served": served, "storage": storage}
	}
	for _, tc := range []struct {
		name     string
		versions []any
		want     string
		served   []string
	}{
		{"storage served wins over newer", []any{v("v1beta1", true, true), v("v1", true, false)}, "v1beta1",
			[]string{"v1", "v1beta1"}},
		{"storage not served: newest served", []any{v("v1", false, true), v("v1alpha1", true, false),
			v("v1beta1", true, false)}, "v1beta1", []string{"v1beta1", "v1alpha1"}},
		{"only a version the family does not know", []any{v("v3", true, true)}, "v3", []string{"v3"}},
	} {
		res, err := parseCRD(crdMap("widgets.example.com", tc.versions, established)).resolve()
		if err != nil || res.Version != tc.want || !slices.Equal(res.Served, tc.served) {
			t.Errorf("%s: got %s %v (%v), want %s %v", tc.name, res.Version, res.Served, err, tc.want, tc.served)
		}
	}

	_, err := parseCRD(crdMap("widgets.example.com", []any{v("v1", false, true)}, established)).resolve()
	var ue *UnavailableError
	if !errors.As(err, &ue) ||
		err.Error() != "CustomResourceDefinition widgets.example.com serves no version (no spec.versions[].served)" {
		t.Errorf("no served version: got %v", err)
	}

	_, err = parseCRD(crdMap("widgets.example.com", []any{v("v1", true, true)},
		map[string]any{"type": "NamesAccepted", "status": "False", "reason": "KindConflict",
			"message": `"Widget" is already in use`},
		map[string]any{"type": "Established", "status": "False", "reason": "NotAccepted"})).resolve()
	if !errors.As(err, &ue) || err.Error() != `CustomResourceDefinition widgets.example.com is not established: `+
		`its names were not accepted (KindConflict: "Widget" is already in use)` {
		t.Errorf("names conflict: got %v", err)
	}

	_, err = parseCRD(crdMap("widgets.example.com", []any{v("v1", true, true)})).resolve()
	if !errors.As(err, &ue) || err.Error() != "CustomResourceDefinition widgets.example.com is not established yet" {
		t.Errorf("no conditions yet: got %v", err)
	}
}

func TestNotFoundMessages(t *testing.T) {
	for ref, want := range map[string]string{
		"uniteddeployments.apps.kruise.io": "CustomResourceDefinition uniteddeployments.apps.kruise.io not found, " +
			"please install OpenKruise (https://openkruise.io/docs/installation)",
		"widgets.example.com": "CustomResourceDefinition widgets.example.com not found",
	} {
		if got := notFound(ref).Error(); got != want {
			t.Errorf("notFound(%q) = %q, want %q", ref, got, want)
		}
	}
}

package clusters_test

import (
	"net/http"
	"testing"
)

// impersonateOf reads the impersonate flag of a cluster answer, failing when it is missing or not a boolean.
func impersonateOf(t *testing.T, v any) bool {
	t.Helper()
	m, _ := v.(map[string]any)
	b, ok := m["impersonate"].(bool)
	if !ok {
		t.Fatalf("no boolean impersonate in %v", v)
	}
	return b
}

func TestImpersonateSetting(t *testing.T) {
	needKube(t)
	a := startAPI(t, nil)
	kc := kube.AdminKubeconfig()

	r := a.Do(http.MethodPost, "/api/v1/clusters", map[string]any{"name": "imp", "kubeconfig": string(kc),
		"impersonate": true}).Expect(t, http.StatusCreated, "")
	if !impersonateOf(t, r.JSON) {
		t.Fatalf("created without impersonate: %s", r.Body)
	}
	r = a.Do(http.MethodPost, "/api/v1/clusters", register("plain", kc)).Expect(t, http.StatusCreated, "")
	if impersonateOf(t, r.JSON) {
		t.Fatalf("impersonate is on by default: %s", r.Body)
	}
	if got := a.Do(http.MethodGet, "/api/v1/clusters/imp", nil).Expect(t, http.StatusOK, ""); !impersonateOf(t, got.JSON) {
		t.Fatalf("GET lost impersonate: %s", got.Body)
	}
	items := a.Do(http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "").Items()
	if len(items) != 2 || !impersonateOf(t, items[0]) || impersonateOf(t, items[1]) {
		t.Fatalf("list: %v", items)
	}

	// Not a boolean: 400 naming the field, on create and on update; nothing stored or changed.
	for _, bad := range []any{"yes", 1, map[string]any{}} {
		r = a.Do(http.MethodPost, "/api/v1/clusters", map[string]any{"name": "bad", "kubeconfig": string(kc),
			"impersonate": bad}).Expect(t, http.StatusBadRequest, "bad_request")
		if e := r.JSON["error"].(map[string]any); e["field"] != "impersonate" {
			t.Fatalf("create with impersonate %v: %s", bad, r.Body)
		}
		r = a.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"impersonate": bad}).
			Expect(t, http.StatusBadRequest, "bad_request")
		if e := r.JSON["error"].(map[string]any); e["field"] != "impersonate" {
			t.Fatalf("patch with impersonate %v: %s", bad, r.Body)
		}
	}
	if n := count(t, a); n != 2 {
		t.Fatalf("%d clusters after refused creates, want 2", n)
	}

	// Update with the version compare-and-set: a stale version is a 409 and changes nothing.
	a.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"impersonate": false, "version": 7}).
		Expect(t, http.StatusConflict, "conflict")
	r = a.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"impersonate": false, "version": 1}).
		Expect(t, http.StatusOK, "")
	if impersonateOf(t, r.JSON) || r.JSON["version"] != float64(2) {
		t.Fatalf("turning impersonate off: %s", r.Body)
	}
	r = a.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"impersonate": true}, "If-Match", `"2"`).
		Expect(t, http.StatusOK, "")
	if !impersonateOf(t, r.JSON) || r.JSON["version"] != float64(3) {
		t.Fatalf("turning impersonate on with If-Match: %s", r.Body)
	}
	// The same value again is no change: the version stays.
	r = a.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"impersonate": true}).Expect(t, http.StatusOK, "")
	if r.JSON["version"] != float64(3) {
		t.Fatalf("an unchanged impersonate bumped the version: %s", r.Body)
	}
	// Other changes leave it alone.
	r = a.Do(http.MethodPatch, "/api/v1/clusters/imp", map[string]any{"labels": map[string]string{"a": "b"}}).
		Expect(t, http.StatusOK, "")
	if !impersonateOf(t, r.JSON) {
		t.Fatalf("a label edit turned impersonate off: %s", r.Body)
	}

	// Import: a top-level field for every imported context.
	r = a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(kc),
		"names": map[string]string{}, "impersonate": true}).Expect(t, http.StatusOK, "")
	results := r.JSON["results"].([]any)
	if r.JSON["created"] != float64(len(results)) || len(results) == 0 {
		t.Fatalf("import: %s", r.Body)
	}
	for _, x := range results {
		if !impersonateOf(t, x.(map[string]any)["cluster"]) {
			t.Fatalf("imported without impersonate: %s", r.Body)
		}
	}
	r = a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(kc),
		"impersonate": "true"}).Expect(t, http.StatusBadRequest, "bad_request")
	if e := r.JSON["error"].(map[string]any); e["field"] != "impersonate" {
		t.Fatalf("import with a string impersonate: %s", r.Body)
	}
}

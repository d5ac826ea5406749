package clusterhttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestClusterWarningsBecomeWarningHeaders creates objects with an unknown field under fieldValidation=Warn:
// the real apiserver's warning must reach the caller once, before a status written after a flush through
// http.ResponseController.
func TestClusterWarningsBecomeWarningHeaders(t *testing.T) {
	c, _ := setup(t)
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	name := "warned-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv := httptest.NewServer(Select(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl, _ := ClientFrom(r.Context())
		for i := range 2 { // the same warning twice: one header
			obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": name + "-" + strconv.Itoa(i)}, "bogus": "x"}}
			if _, err := cl.Dynamic.Resource(cms).Namespace("default").Create(r.Context(), obj,
				metav1.CreateOptions{FieldValidation: "Warn"}); err != nil {
				t.Error(err)
			}
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the warnings writer: %v", err)
		}
		_, _ = w.Write([]byte("created"))
	})))
	defer srv.Close()
	t.Cleanup(func() {
		cl, err := c.Client(t.Context(), "east")
		if err == nil {
			for i := range 2 {
				_ = cl.Dynamic.Resource(cms).Namespace("default").Delete(t.Context(), name+"-"+strconv.Itoa(i),
					metav1.DeleteOptions{})
			}
		}
	})

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/?cluster=east", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	want := []string{`299 - "unknown field \"bogus\""`}
	if got := resp.Header.Values("Warning"); resp.StatusCode != http.StatusOK || string(body) != "created" ||
		!slices.Equal(got, want) {
		t.Fatalf("%d %s, Warning %q, want %q", resp.StatusCode, body, got, want)
	}
}

// TestWarningsWithoutClusterCalls: no warning, no header; an error status still goes through.
func TestWarningsWithoutClusterCalls(t *testing.T) {
	rec := httptest.NewRecorder()
	Warnings(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusTeapot || len(rec.Header().Values("Warning")) != 0 {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}

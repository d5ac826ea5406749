package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMux(t *testing.T) {
	m := NewMux()
	m.Handle(http.MethodGet, "/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("item " + r.PathValue("id")))
	})
	m.Handle(http.MethodDelete, "/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	for _, tc := range []struct {
		method, path string
		status       int
		body, allow  string
	}{
		{"GET", "/items/42", 200, "item 42", ""},
		{"DELETE", "/items/42", 204, "", ""},
		{"POST", "/items/42", 405, "", "DELETE, GET, HEAD"},
		{"GET", "/nothing", 404, "", ""},
	} {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status {
			t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
		if tc.body != "" && rec.Body.String() != tc.body {
			t.Fatalf("%s %s: body %q, want %q (path values lost?)", tc.method, tc.path, rec.Body, tc.body)
		}
		if tc.status >= 400 {
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Status != tc.status {
				t.Fatalf("%s %s: not the JSON error shape: %s", tc.method, tc.path, rec.Body)
			}
		}
		if tc.allow != "" && rec.Header().Get("Allow") != tc.allow {
			t.Fatalf("Allow %q, want %q", rec.Header().Get("Allow"), tc.allow)
		}
	}
	if got := m.Paths(); len(got) != 1 || got[0] != "/items/{id}" {
		t.Fatalf("Paths %v", got)
	}
}

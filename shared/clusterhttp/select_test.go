package clusterhttp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/shared/httpapi"
)

func TestSelectMiddleware(t *testing.T) {
	c, _ := setup(t)
	h := Select(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl, ok := ClientFrom(r.Context())
		if !ok {
			t.Error("no client in context")
			return
		}
		info, err := cl.Kubernetes.Discovery().ServerVersion()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = w.Write([]byte(cl.Name + " " + info.GitVersion))
	}))
	for _, tc := range []struct {
		name, target, header, headerValue string
		status                            int
		want                              string
	}{
		{"header by name", "/", "X-Cluster-Name", "east", 200, "east v1.37.2"},
		{"Kite's lower-case header", "/", "x-cluster-name", "east", 200, "east v1.37.2"},
		{"header by id", "/", "X-Cluster-Name", "1", 200, "east v1.37.2"},
		{"query", "/?cluster=east", "", "", 200, "east v1.37.2"},
		{"query x-cluster-name", "/?x-cluster-name=1", "", "", 200, "east v1.37.2"},
		{"none", "/", "", "", 400, "no cluster selected"},
		{"unknown name", "/", "X-Cluster-Name", "west", 404, `cluster \"west\" not found`},
		{"unknown id", "/?cluster=42", "", "", 404, `cluster \"42\" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.target, nil)
			if tc.header != "" {
				req.Header.Set(tc.header, tc.headerValue)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("%d %s, want %d containing %s", rec.Code, rec.Body, tc.status, tc.want)
			}
			if tc.status >= 400 && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("error body is not JSON: %s", rec.Body)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	_, st := setup(t)
	for _, ref := range []string{"east", "1"} {
		rec, err := Lookup(context.Background(), st, ref)
		if err != nil || rec.Name != "east" {
			t.Fatalf("Lookup(%q): %v %v", ref, rec, err)
		}
	}
	_, err := Lookup(context.Background(), st, "west")
	var apiErr *httpapi.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Message != `cluster "west" not found` {
		t.Fatalf("unknown: %v", err)
	}
}

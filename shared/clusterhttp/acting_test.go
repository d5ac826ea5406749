package clusterhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/kube"
)

func TestPrincipalOf(t *testing.T) {
	for _, tc := range []struct {
		caller *access.Caller
		want   *kube.Principal
	}{
		{nil, nil},
		{&access.Caller{Name: "bootstrap", Kind: access.KindBootstrap, Roles: []access.Role{access.Admin}}, nil},
		{&access.Caller{Name: "alice", Kind: access.KindToken, Groups: []string{"ops"}},
			&kube.Principal{Kind: kube.PrincipalToken, Name: "alice", Groups: []string{"ops"}}},
		{&access.Caller{Name: "bob@example.com", Kind: access.KindOIDC, Groups: []string{"devs", "sre"}},
			&kube.Principal{Kind: kube.PrincipalOIDC, Name: "bob@example.com", Groups: []string{"devs", "sre"}}},
		{&access.Caller{Name: "x", Kind: "future"}, &kube.Principal{Kind: "future", Name: "x"}},
	} {
		if got := PrincipalOf(tc.caller); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PrincipalOf(%+v) = %+v, want %+v", tc.caller, got, tc.want)
		}
	}
}

// Select hands the route the client acting as the request's caller on a cluster that impersonates: an OIDC
// caller as oidc:<name> with their groups, the bootstrap caller as the kubeconfig.
func TestSelectActsAsTheCaller(t *testing.T) {
	c, st := setup(t)
	rec, err := st.GetByName(context.Background(), "east")
	if err != nil {
		t.Fatal(err)
	}
	rec.Impersonate = true
	if _, err := st.Update(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	c.Invalidate(rec.ID)
	var seen *kube.Identity
	h := Select(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl, _ := ClientFrom(r.Context())
		seen = cl.As
	}))
	for _, tc := range []struct {
		caller *access.Caller
		want   *kube.Identity
	}{
		{&access.Caller{Name: "bob", Kind: access.KindOIDC, Groups: []string{"devs"}},
			&kube.Identity{User: "oidc:bob", Groups: []string{"devs"}}},
		{&access.Caller{Name: "alice", Kind: access.KindToken}, &kube.Identity{User: "token:alice"}},
		{&access.Caller{Name: "root", Kind: access.KindBootstrap}, nil},
	} {
		seen = nil
		req := httptest.NewRequest(http.MethodGet, "/?cluster=east", nil)
		req = req.WithContext(access.WithCaller(req.Context(), tc.caller))
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != 200 || !reflect.DeepEqual(seen, tc.want) {
			t.Errorf("%s caller: %d, acting as %+v, want %+v", tc.caller.Kind, rr.Code, seen, tc.want)
		}
	}
	// A caller the cluster cannot be told about is refused, not let through as the kubeconfig.
	req := httptest.NewRequest(http.MethodGet, "/?cluster=east", nil)
	req = req.WithContext(access.WithCaller(req.Context(), &access.Caller{Name: "x", Kind: "future"}))
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusForbidden {
		t.Fatalf("unknown caller kind: %d %s", rr.Code, rr.Body)
	}
}

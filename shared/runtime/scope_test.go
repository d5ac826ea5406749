package runtime

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
)

type scopedCaller struct{}

func (scopedCaller) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	if credential != "not-prod" {
		return nil, nil
	}
	return &access.Caller{Name: "np", Kind: access.KindToken, Roles: []access.Role{access.Viewer},
		Clusters: []string{"!prod"}}, nil
}

// TestClusterScopeFailsClosed: a cluster named by ID whose name cannot be resolved (the store is down) is
// refused, not checked as the digits — "5" matches no negation, so a "!prod" scope would otherwise admit
// prod's ID.
func TestClusterScopeFailsClosed(t *testing.T) {
	table, err := access.NewTable([]access.Rule{{Method: "GET", Pattern: "/fn/{cluster}", Verb: "get",
		Resource: "fn", Role: access.Viewer}})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"5": "prod", "6": "dev"}
	down := false
	resolve := func(_ context.Context, ref string) (string, error) {
		if down {
			return "", httpapi.Errorf(http.StatusServiceUnavailable, "store_unavailable", "the store is down")
		}
		if n, ok := names[ref]; ok {
			return n, nil
		}
		return "", errors.New("unexpected ref " + ref)
	}
	s, err := NewServer(Config{Target: "all", ShutdownTimeout: time.Second}, zaptest.NewLogger(t).Sugar(),
		[]Function{{Name: "fn", Value: newFn()}}, []string{token},
		WithAccess(AccessConfig{Table: table, ClusterName: resolve, Authenticators: []access.Authenticator{scopedCaller{}}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	auth := []string{"Authorization", "Bearer not-prod"}
	if code, body := status(t, h, "GET", "/fn/6", auth...); code != 200 {
		t.Fatalf("dev by ID: %d %s", code, body)
	}
	if code, body := status(t, h, "GET", "/fn/5", auth...); code != 403 || !strings.Contains(body, `cluster \"prod\"`) {
		t.Fatalf("prod by ID: %d %s, want 403 naming prod", code, body)
	}
	down = true
	if code, body := status(t, h, "GET", "/fn/6", auth...); code != 503 || !strings.Contains(body, "store_unavailable") {
		t.Fatalf("an ID while the store is down: %d %s, want 503 (fail closed)", code, body)
	}
}

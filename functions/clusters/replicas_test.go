package clusters_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

// Two replicas over one registry: a kubeconfig rotated through B reaches A's cached client once A re-validates
// (here every 200 ms), without any broadcast between them.
func TestUpdateThroughAnotherReplica(t *testing.T) {
	needKube(t)
	a := startAPI(t, map[string]string{"KITEFN_CLIENT_REVALIDATE": "200ms"})
	b := a.Replica(t, apitest.Function("clusters"))

	a.Do(http.MethodPost, "/api/v1/clusters", register("shared", kube.AdminKubeconfig())).Expect(t, http.StatusCreated, "")
	ctx := t.Context()
	c, err := a.Platform.Clients.Client(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubernetes.CoreV1().Secrets("kube-system").List(ctx, metav1ListOptions()); err != nil {
		t.Fatalf("admin client cannot list secrets: %v", err)
	}

	b.Do(http.MethodPatch, "/api/v1/clusters/shared", map[string]any{
		"kubeconfig": string(kube.Kubeconfig(harness.ViewerUser)),
	}).Expect(t, http.StatusOK, "")

	// Replica A still uses version 1 until it re-validates.
	eventually(t, 10*time.Second, func() bool {
		c, err = a.Platform.Clients.Client(ctx, "shared")
		if err != nil {
			t.Fatal(err)
		}
		return c.Version == 2
	})
	if _, err := c.Kubernetes.CoreV1().Secrets("kube-system").List(ctx, metav1ListOptions()); err == nil {
		t.Fatal("after rotation to the viewer kubeconfig, listing secrets still works: old credentials in use")
	}

	b.Do(http.MethodDelete, "/api/v1/clusters/shared", nil).Expect(t, http.StatusNoContent, "")
	// Replica A stops serving a client for the cluster B deleted.
	eventually(t, 10*time.Second, func() bool {
		_, err := a.Platform.Clients.Client(ctx, "1")
		return err != nil
	})
}

// A store that cannot be reached answers 503 naming the backend, and the request leaves nothing behind.
func TestStoreUnavailable(t *testing.T) {
	needKube(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := startAPI(t, map[string]string{
		"KITEFN_STORE":              "dynamodb",
		"KITEFN_DYNAMODB_ENDPOINT":  "http://" + addr,
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_EC2_METADATA_DISABLED": "true",
	})
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/api/v1/clusters", nil},
		{http.MethodPost, "/api/v1/clusters", register("x", kube.AdminKubeconfig())},
		{http.MethodGet, "/api/v1/clusters/x", nil},
	} {
		r := a.Do(tc.method, tc.path, tc.body).Expect(t, http.StatusServiceUnavailable, "store_unavailable")
		if msg := r.Message(); !contains(msg, "dynamodb") {
			t.Fatalf("%s %s: message %q does not name the backend", tc.method, tc.path, msg)
		}
	}
}

package kube

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/tests/harness"
)

// TestAPIErrorKeepsTheClusterAnswer drives real failures through client-go and checks the API error each
// becomes.
func TestAPIErrorKeepsTheClusterAnswer(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "https://" + closed.Addr().String()
	_ = closed.Close()

	cfg := testConfig()
	cfg.Timeout = 5 * time.Second
	for _, tc := range []struct {
		name   string
		rc     func() *rest.Config
		status int
		code   string
		want   string
	}{
		{"RBAC denial", func() *rest.Config { return kube.RESTConfigFor(harness.ViewerUser) },
			http.StatusForbidden, "forbidden", `User "viewer" cannot list resource "secrets"`},
		{"credentials refused", func() *rest.Config {
			rc := kube.RESTConfig()
			rc.BearerToken = "not-a-token"
			return rc
		}, http.StatusBadGateway, "cluster_unauthorized", "rejected kitefn's credentials"},
		{"connection refused", func() *rest.Config {
			rc := kube.RESTConfig()
			rc.Host = refused
			return rc
		}, http.StatusBadGateway, "cluster_unreachable", "connection refused"},
		{"unknown certificate authority", func() *rest.Config {
			rc := kube.RESTConfig()
			rc.CAData = nil
			return rc
		}, http.StatusBadGateway, "cluster_unreachable", "certificate"},
		{"credential plugin missing", func() *rest.Config {
			rc := kube.RESTConfig()
			rc.BearerToken = ""
			rc.ExecProvider = &clientcmdExec
			return rc
		}, http.StatusBadGateway, "cluster_error", "kitefn-no-such-plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := tc.rc()
			rc.QPS, rc.Burst, rc.Timeout = cfg.QPS, cfg.Burst, cfg.Timeout
			cl, err := newConn("c", rc, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.Kubernetes.CoreV1().Secrets("default").List(context.Background(), metav1.ListOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			got := APIError("c", err)
			if got.Status != tc.status || got.Code != tc.code || !strings.Contains(got.Message, tc.want) {
				t.Fatalf("%v became %d %s %q, want %d %s containing %q", err, got.Status, got.Code, got.Message,
					tc.status, tc.code, tc.want)
			}
		})
	}

	got := APIError("c", fmt.Errorf("listing: %w", context.DeadlineExceeded))
	if got.Status != http.StatusGatewayTimeout || got.Code != "cluster_timeout" {
		t.Fatalf("deadline became %d %s", got.Status, got.Code)
	}
	nf := &NotFoundError{Ref: "west"}
	if nf.HTTPStatus() != http.StatusNotFound || nf.Code() != "not_found" {
		t.Fatalf("NotFoundError maps to %d %s", nf.HTTPStatus(), nf.Code())
	}
}

var clientcmdExec = clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1",
	Command: "kitefn-no-such-plugin", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}

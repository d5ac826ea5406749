package resources_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// TestProxyPortForward: `kubectl port-forward` through /k8s/clusters/…, over SPDY and over WebSocket tunnelling
// (what kubectl tries first since 1.31), reaches the pod's port; a viewer is refused before any stream opens.
func TestProxyPortForward(t *testing.T) {
	e := proxySetup(t)
	e.fakePod(t, "proxy-pf", "web")
	pfURL, err := url.Parse(e.url + "/k8s/clusters/test/api/v1/namespaces/proxy-pf/pods/web/portforward")
	if err != nil {
		t.Fatal(err)
	}
	dialers := map[string]func(*rest.Config) (httpstream.Dialer, error){
		"spdy": func(c *rest.Config) (httpstream.Dialer, error) {
			rt, upgrader, err := spdy.RoundTripperFor(c)
			if err != nil {
				return nil, err
			}
			return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, pfURL), nil
		},
		"websocket": func(c *rest.Config) (httpstream.Dialer, error) {
			return portforward.NewSPDYOverWebsocketDialer(pfURL, c)
		},
	}
	for name, dial := range dialers {
		t.Run(name, func(t *testing.T) {
			d, err := dial(e.config("operator-token", "test"))
			if err != nil {
				t.Fatal(err)
			}
			if got := forwardAndGet(t, d); got != forwardReply {
				t.Fatalf("through the forwarded port: %q, want %q", got, forwardReply)
			}

			d, err = dial(e.config("viewer-token", "test"))
			if err != nil {
				t.Fatal(err)
			}
			stop, ready := make(chan struct{}), make(chan struct{})
			defer close(stop)
			pf, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{"0:80"}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if err := pf.ForwardPorts(); err == nil || !strings.Contains(err.Error(), "needs the operator role") &&
				!strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "Forbidden") {
				t.Fatalf("viewer port-forward: %v, want refused", err)
			}
		})
	}
}

// forwardAndGet forwards a local port to the pod's port 80 and GETs / through it.
func forwardAndGet(t *testing.T, d httpstream.Dialer) string {
	t.Helper()
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{"0:80"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("port-forward ended with %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("port-forward failed before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("port-forward not ready in 30s")
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports: %v %v", ports, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET through the forwarded port: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

package terminal_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/tests/harness"
)

// TestPodTerminalFallsBackToSPDY: a cluster reached through a proxy that cannot upgrade to WebSockets (an older
// gateway) still gets a working terminal: the exec falls back to SPDY.
func TestPodTerminalFallsBackToSPDY(t *testing.T) {
	e := setup(t, nil)
	target, err := url.Parse(kube.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(kube.CAData)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: false}
	var refused, spdy atomic.Int32
	gw := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch up := strings.ToLower(r.Header.Get("Upgrade")); {
		case up == "websocket":
			refused.Add(1)
			http.Error(w, "this gateway does not do WebSockets", http.StatusBadRequest)
			return
		case strings.HasPrefix(up, "spdy"):
			spdy.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gw"] = &clientcmdapi.Cluster{Server: gw.URL,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: gw.Certificate().Raw})}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: kube.Token(harness.AdminUser)}
	cfg.Contexts["gw"] = &clientcmdapi.Context{Cluster: "gw", AuthInfo: "admin"}
	cfg.CurrentContext = "gw"
	kc, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.api.AddCluster("old-gateway", kc)

	c, _ := e.mustDial(t, shellPath+"?cluster=old-gateway&command=sh", "operator-token")
	c.stdin("echo spdy-$((20+1))\n")
	c.waitOutput("spdy-21")
	c.stdin("exit 4\n")
	if f := c.until(wire.Exit); f.Code == nil || *f.Code != 4 {
		t.Fatalf("exit frame %+v, want code 4", f)
	}
	if refused.Load() == 0 || spdy.Load() == 0 {
		t.Fatalf("WebSocket upgrades refused %d, SPDY upgrades %d: want the fallback taken", refused.Load(), spdy.Load())
	}
}

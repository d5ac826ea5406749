package prometheus_test

import (
	"strings"
	"testing"

	"github.com/kitefn/kitefn/shared/prometheus"
)

func TestServiceProxyPathRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		ref  prometheus.ServiceRef
		path string
	}{
		{prometheus.ServiceRef{Namespace: "monitoring", Name: "prometheus-server", Port: "80"},
			"/api/v1/namespaces/monitoring/services/prometheus-server:80/proxy"},
		{prometheus.ServiceRef{Namespace: "openshift-monitoring", Name: "thanos-querier", Port: "9091", Scheme: "https"},
			"/api/v1/namespaces/openshift-monitoring/services/https:thanos-querier:9091/proxy"},
		{prometheus.ServiceRef{Namespace: "m", Name: "prometheus", Port: "web"},
			"/api/v1/namespaces/m/services/prometheus:web/proxy"},
		{prometheus.ServiceRef{Namespace: "m", Name: "prometheus"},
			"/api/v1/namespaces/m/services/prometheus/proxy"},
	} {
		if got := tc.ref.Path(); got != tc.path {
			t.Errorf("%+v.Path() = %s, want %s", tc.ref, got, tc.path)
		}
		for _, p := range []string{tc.path, tc.path + "/"} {
			back, err := prometheus.ParseServiceProxyPath(p)
			if err != nil || back != tc.ref {
				t.Errorf("ParseServiceProxyPath(%s) = %+v, %v; want %+v", p, back, err, tc.ref)
			}
			if !prometheus.IsServiceProxyPath(p) || prometheus.CheckURL(p) != nil {
				t.Errorf("%s not accepted as a saved URL", p)
			}
		}
	}
	// "http:" is the default scheme and normalises away.
	ref, err := prometheus.ParseServiceProxyPath("/api/v1/namespaces/m/services/http:p:9090/proxy")
	if err != nil || ref.Scheme != "" || ref.Name != "p" || ref.Port != "9090" {
		t.Fatalf("http scheme: %+v, %v", ref, err)
	}
}

func TestSavedURLsThatAreRefused(t *testing.T) {
	for _, bad := range []string{
		"",
		"prometheus:9090",
		"ftp://prometheus",
		"https://user:pass@prometheus.example.com",
		"https://prometheus.example.com/?x=1",
		"/api/v1/namespaces/monitoring/secrets/x/proxy",
		"/api/v1/namespaces/monitoring/services/prometheus:9090",
		"/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/../../secrets",
		"/api/v1/namespaces/Monitoring/services/prometheus:9090/proxy",
		"/api/v1/namespaces/monitoring/services/prometheus:99999/proxy",
		"/api/v1/namespaces/monitoring/services/gopher:prometheus:9090/proxy",
		"/api/v1/namespaces/monitoring/services/a:b:c:d/proxy",
		"/api/v1/namespaces/monitoring/services/prom%2Fx:9090/proxy",
		"/api/v1/nodes/n1/proxy",
	} {
		if err := prometheus.CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), "pass") {
			t.Errorf("CheckURL(%q) error quotes the credentials: %v", bad, err)
		}
	}
	for _, good := range []string{"http://10.0.0.1:9090", "https://prom.example.com/prometheus", "http://[fd00::1]:9090/"} {
		if err := prometheus.CheckURL(good); err != nil {
			t.Errorf("CheckURL(%q): %v", good, err)
		}
	}
}

package discovery

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/store"
)

func svc(ns, name string, labels map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports}}
}

func port(name string, p int32, target int) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, TargetPort: intstr.FromInt(target), Protocol: corev1.ProtocolTCP}
}

// What the common installs look like, and what must not be taken for a Prometheus.
func TestCandidatesOfCommonInstalls(t *testing.T) {
	for _, tc := range []struct {
		svc   *corev1.Service
		ports []int32 // candidate ports, best first; none: not a candidate
	}{
		// prometheus-community/prometheus chart: port 80 → 9090.
		{svc("monitoring", "prometheus-server", map[string]string{"app.kubernetes.io/name": "prometheus"},
			port("http", 80, 9090)), []int32{80}},
		// The operator's governing Service (headless), with a Thanos sidecar's gRPC port.
		{svc("monitoring", "prometheus-operated", map[string]string{"operated-prometheus": "true"},
			port("web", 9090, 9090), port("grpc", 10901, 10901)), []int32{9090}},
		// kube-prometheus-stack with a release name, and its config reloader's port.
		{svc("monitoring", "kps-kube-prometheus-stack-prometheus", nil,
			port("http-web", 9090, 9090), port("reloader-web", 8080, 8080)), []int32{9090}},
		{svc("monitoring", "prometheus-kube-prometheus-prometheus", nil, port("http-web", 9090, 9090)), []int32{9090}},
		// Compatible servers.
		{svc("monitoring", "vmsingle-main", nil, port("http", 8429, 8429)), []int32{8429}},
		{svc("monitoring", "thanos-query", nil, port("http", 10902, 10902), port("grpc", 10901, 10901)), []int32{10902}},
		// A label on a non-standard single port.
		{svc("apps", "metrics-store", map[string]string{"app": "prometheus"}, port("api", 8080, 8080)), []int32{8080}},
		// Only port 9090.
		{svc("default", "tsdb", nil, port("", 9090, 9090)), []int32{9090}},
		// Not a Prometheus: the ecosystem's other parts, an old chart's labels on them, unrelated Services.
		{svc("monitoring", "prometheus-alertmanager", map[string]string{"app": "prometheus", "component": "alertmanager"},
			port("http", 80, 9093)), nil},
		{svc("monitoring", "prometheus-prometheus-node-exporter", nil, port("metrics", 9100, 9100)), nil},
		{svc("monitoring", "kps-kube-prometheus-stack-operator", nil, port("https", 443, 10250)), nil},
		{svc("kube-system", "kps-kube-prometheus-stack-kubelet", nil, port("https-metrics", 10250, 10250)), nil},
		{svc("monitoring", "prometheus-pushgateway", nil, port("http", 9091, 9091)), nil},
		{svc("monitoring", "grafana", nil, port("http", 80, 3000)), nil},
		{svc("default", "kubernetes", nil, port("https", 443, 6443)), nil},
		{svc("default", "prometheus-exporter-for-app", nil, port("http", 9090, 9090)), nil},
	} {
		got := candidatesOf(tc.svc, 0)
		slices.SortStableFunc(got, byScore)
		var ports []int32
		for _, c := range got {
			ports = append(ports, c.Port)
		}
		if !slices.Equal(ports, tc.ports) {
			t.Errorf("%s/%s: candidate ports %v, want %v", tc.svc.Namespace, tc.svc.Name, ports, tc.ports)
		}
	}
	external := svc("monitoring", "prometheus", nil, port("web", 9090, 9090))
	external.Spec.Type = corev1.ServiceTypeExternalName
	if got := candidatesOf(external, 0); len(got) != 0 {
		t.Errorf("an ExternalName Service cannot be proxied to, got %d candidates", len(got))
	}
}

func TestScoresOrderTheUsualSuspects(t *testing.T) {
	score := func(s *corev1.Service) int {
		c := candidatesOf(s, 0)
		if len(c) == 0 {
			t.Fatalf("%s is no candidate", s.Name)
		}
		return c[0].Score
	}
	named := score(svc("m", "prometheus-server", nil, port("http", 80, 9090)))
	suffixed := score(svc("m", "kps-kube-prometheus-stack-prometheus", nil, port("http-web", 9090, 9090)))
	labelled := score(svc("m", "metrics", map[string]string{"app": "prometheus"}, port("web", 9090, 9090)))
	compatible := score(svc("m", "thanos-query", nil, port("http", 9090, 9090)))
	bare := score(svc("m", "tsdb", nil, port("", 9090, 9090)))
	if !(named > suffixed && suffixed > labelled && labelled > compatible && compatible > bare && bare > 0) {
		t.Fatalf("scores: name %d, suffix %d, label %d, compatible %d, port only %d", named, suffixed, labelled,
			compatible, bare)
	}
	https := candidatesOf(svc("m", "prometheus-k8s", nil, port("https", 9091, 9091)), 0)
	if len(https) != 1 || !strings.Contains(https[0].URL, "/services/https:prometheus-k8s:9091/proxy") {
		t.Fatalf("https port: %+v", https)
	}
}

func TestPickOrder(t *testing.T) {
	c := func(reachable bool, exp Exposure, score, ns int, name string) *Candidate {
		return &Candidate{Service: name, Reachable: reachable, Exposure: exp, Score: score, nsOrder: ns}
	}
	all := []*Candidate{
		c(false, ExposureLoadBalancer, 200, 0, "unreachable-lb"),
		c(true, ExposureClusterIP, 115, 0, "clusterip-best-score"),
		c(true, ExposureNodePort, 20, 1, "nodeport"),
		c(true, ExposureIngress, 20, 3, "ingress"),
		c(true, ExposureLoadBalancer, 15, 4, "lb"),
		c(true, ExposureClusterIP, 115, 2, "clusterip-later-namespace"),
	}
	slices.SortStableFunc(all, better)
	var names []string
	for _, x := range all {
		names = append(names, x.Service)
	}
	want := []string{"lb", "ingress", "nodeport", "clusterip-best-score", "clusterip-later-namespace", "unreachable-lb"}
	if !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
}

func TestExposureAndExternalURLs(t *testing.T) {
	lb := svc("m", "prom", nil, port("web", 9090, 9090))
	lb.Spec.Type = corev1.ServiceTypeLoadBalancer
	lb.Spec.Ports[0].NodePort = 30090
	if e := exposureOf(lb, lb.Spec.Ports[0], nil); e != ExposureNodePort {
		t.Fatalf("a LoadBalancer without an address is reachable on its node port only: %s", e)
	}
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "prom.elb.example.com"}}
	if e := exposureOf(lb, lb.Spec.Ports[0], nil); e != ExposureLoadBalancer {
		t.Fatalf("exposure %s", e)
	}
	if u, ok := loadBalancerURL(lb, lb.Spec.Ports[0]); !ok || u != "http://prom.elb.example.com:9090" {
		t.Fatalf("LoadBalancer URL %q", u)
	}
	if u, ok := nodePortURL(lb.Spec.Ports[0], "fd00::7"); !ok || u != "http://[fd00::7]:30090" {
		t.Fatalf("node port URL %q", u)
	}

	cip := svc("m", "prom", nil, port("web", 9090, 9090))
	prefix := networkingv1.PathTypePrefix
	ing := networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "m", Name: "prom"},
		Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"prom.example.com"}}},
			Rules: []networkingv1.IngressRule{{Host: "prom.example.com", IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/prometheus/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "prom", Port: networkingv1.ServiceBackendPort{Name: "web"}}},
				}}},
			}}},
		}}
	if e := exposureOf(cip, cip.Spec.Ports[0], []networkingv1.Ingress{ing}); e != ExposureIngress {
		t.Fatalf("exposure %s", e)
	}
	if u, ok := ingressURL(cip, cip.Spec.Ports[0], []networkingv1.Ingress{ing}); !ok || u != "https://prom.example.com/prometheus" {
		t.Fatalf("Ingress URL %q", u)
	}
	other := ing.DeepCopy()
	other.Namespace = "elsewhere"
	if e := exposureOf(cip, cip.Spec.Ports[0], []networkingv1.Ingress{*other}); e != ExposureClusterIP {
		t.Fatalf("an Ingress of another namespace counted: %s", e)
	}
}

func TestParseURLs(t *testing.T) {
	got, err := ParseURLs(" prod=https://prom.prod.example.com , dev=/api/v1/namespaces/monitoring/services/prometheus-k8s:9090/proxy,")
	if err != nil || len(got) != 2 || got["prod"] != "https://prom.prod.example.com" ||
		got["dev"] != "/api/v1/namespaces/monitoring/services/prometheus-k8s:9090/proxy" {
		t.Fatalf("ParseURLs = %v, %v", got, err)
	}
	if got, err := ParseURLs(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"prod", "prod=", "=https://x", "Prod=https://x", "prod=ftp://x",
		"prod=https://a,prod=https://b", "prod=https://admin:hunter2@x"} {
		_, err := ParseURLs(bad)
		if err == nil {
			t.Errorf("ParseURLs(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes a password: %v", err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	t.Setenv("KITEFN_PROMETHEUS_URLS", "")
	cfg, _, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 30*time.Second || cfg.ProbeTimeout != 2*time.Second || !cfg.AllNamespaces || !cfg.ExternalURLs ||
		strings.Join(cfg.Namespaces, ",") != "monitoring,prometheus,kube-prometheus,observability,kube-system" {
		t.Fatalf("defaults: %+v", cfg)
	}
	for name, env := range map[string]map[string]string{
		"probe longer than budget": {"KITEFN_DISCOVERY_PROBE_TIMEOUT": "1m"},
		"no budget":                {"KITEFN_DISCOVERY_TIMEOUT": "0s"},
		"bad namespace":            {"KITEFN_DISCOVERY_NAMESPACES": "Monitoring"},
		"nowhere to look":          {"KITEFN_DISCOVERY_NAMESPACES": "", "KITEFN_DISCOVERY_ALL_NAMESPACES": "false"},
		"bad URL map":              {"KITEFN_PROMETHEUS_URLS": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			if _, _, err := LoadConfig(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestWhichEventsAndStatesRunDiscovery(t *testing.T) {
	rec := func(st store.PrometheusStatus, msg string) *store.Cluster {
		return &store.Cluster{ID: 1, Prometheus: store.Prometheus{Status: st, Message: msg}}
	}
	for _, tc := range []struct {
		rec  *store.Cluster
		t    trigger
		want bool
	}{
		{rec(store.PrometheusPending, ""), onPending, true},
		{rec(store.PrometheusFound, ""), onPending, false},
		{rec(store.PrometheusNotFound, ""), onPending, false},
		{rec(store.PrometheusFailed, ""), onNewCredentials, true},
		{rec(store.PrometheusNotFound, ""), onNewCredentials, false},
		{rec(store.PrometheusFound, ""), onRequest, true},
		{rec(store.PrometheusManual, ""), onRequest, false},
		{rec(store.PrometheusManual, ""), onPending, false},
		{rec(store.PrometheusManual, envMessage), onRequest, true},
	} {
		if got, _ := eligible(tc.rec, tc.t); got != tc.want {
			t.Errorf("eligible(%s %q, %s) = %v", tc.rec.Prometheus.Status, tc.rec.Prometheus.Message, tc.t, got)
		}
	}
	pending := events.ClusterFromRecord(&store.Cluster{ID: 1, Prometheus: store.Prometheus{Status: store.PrometheusPending}})
	manual := events.ClusterFromRecord(&store.Cluster{ID: 1, Prometheus: store.Prometheus{Status: store.PrometheusManual,
		URL: "https://x"}})
	for _, tc := range []struct {
		typ     string
		data    events.ClusterData
		trigger trigger
		run     bool
	}{
		{events.TypeClusterCreated, events.ClusterData{Cluster: pending}, onPending, true},
		{events.TypeClusterUpdated, events.ClusterData{Cluster: pending, Changed: []string{"prometheus"}}, onPending, true},
		{events.TypeClusterUpdated, events.ClusterData{Cluster: manual, Changed: []string{"prometheus"}}, 0, false},
		{events.TypeClusterUpdated, events.ClusterData{Cluster: manual, Changed: []string{"kubeconfig"}}, onNewCredentials, true},
		{events.TypeClusterUpdated, events.ClusterData{Cluster: pending, Changed: []string{"name", "labels"}}, 0, false},
	} {
		got, run := classify(tc.typ, tc.data)
		if run != tc.run || (run && got != tc.trigger) {
			t.Errorf("classify(%s, %v) = %s, %v", tc.typ, tc.data.Changed, got, run)
		}
	}
}

// Addresses a cluster reports are probed from kitefn's own network: never this host or link-local ones.
func TestDirectProbesRefuseThisHostAndLinkLocal(t *testing.T) {
	c := directClient(time.Second)
	for _, u := range []string{"http://127.0.0.1:9090/", "http://[::1]:9090/", "http://169.254.169.254/",
		"http://0.0.0.0:9090/", "http://[fe80::1]:9090/"} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
			t.Errorf("%s was dialled", u)
		} else if !strings.Contains(err.Error(), "refusing to dial") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestClipKeepsUTF8(t *testing.T) {
	s := strings.Repeat("é", maxMessage)
	out := clip(s)
	if len(out) > maxMessage+len("…") || !strings.HasSuffix(out, "…") || !strings.HasPrefix(out, "é") {
		t.Fatalf("clip: %d bytes", len(out))
	}
	for _, r := range out {
		if r == '\uFFFD' {
			t.Fatal("clip cut a character in two")
		}
	}
}

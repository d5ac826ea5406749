package discovery

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kitefn/kitefn/shared/prometheus"
)

// Read-only tables of the strategy.
var (
	// serverNames are the Service names of the common installs, best first: the prometheus-community chart,
	// the operator's governing Service, kube-prometheus, kube-prometheus-stack, and a hand-made one.
	serverNames = []string{"prometheus-server", "prometheus-operated", "prometheus-k8s",
		"kube-prometheus-stack-prometheus", "prometheus"}
	// compatibleNames serve the Prometheus query API too: VictoriaMetrics single and Thanos Query.
	compatibleNames = []string{"vmsingle", "victoria-metrics-single", "thanos-query", "thanos-querier",
		"thanos-query-frontend"}
	// notServers are the Prometheus ecosystem's other components, whose names and labels look alike.
	notServers = []string{"alertmanager", "pushgateway", "exporter", "operator", "adapter", "kube-state-metrics",
		"grafana", "blackbox", "webhook", "sidecar", "thanos-store", "thanos-compact", "thanos-rule", "kubelet",
		"coredns", "kube-etcd", "kube-proxy", "kube-scheduler", "kube-controller-manager"}
	// webPortNames are the names charts give the HTTP port of a Prometheus.
	webPortNames = []string{"web", "http-web", "http", "http-query", "prometheus", "http-prometheus"}
)

// Exposure says how a Service is reachable from outside its cluster, best first.
type Exposure string

// Exposures, best first.
const (
	ExposureLoadBalancer Exposure = "LoadBalancer"
	ExposureIngress      Exposure = "Ingress"
	ExposureNodePort     Exposure = "NodePort"
	ExposureClusterIP    Exposure = "ClusterIP"
)

func (e Exposure) rank() int {
	switch e {
	case ExposureLoadBalancer:
		return 3
	case ExposureIngress:
		return 2
	case ExposureNodePort:
		return 1
	}
	return 0
}

// Candidate is one Service port that may be a Prometheus, and what probing it found.
type Candidate struct {
	Namespace string   `json:"namespace"`
	Service   string   `json:"service"`
	Port      int32    `json:"port"`
	PortName  string   `json:"portName,omitempty"`
	Exposure  Exposure `json:"exposure"`
	Score     int      `json:"score"`
	// Why lists what made it a candidate ("name prometheus-server", "label app=prometheus", "port 9090").
	Why       []string `json:"why"`
	Probed    bool     `json:"probed"`
	Reachable bool     `json:"reachable"`
	// Version is what /api/v1/status/buildinfo said (empty when only the query answered).
	Version string `json:"version,omitempty"`
	// URL is the saved form this candidate would get: the service-proxy path, or an external address.
	URL   string `json:"url,omitempty"`
	Error string `json:"error,omitempty"`

	ref       prometheus.ServiceRef
	svc       *corev1.Service
	port      corev1.ServicePort
	nsOrder   int
	forbidden bool
}

// candidatesOf scores the ports of one Service. nsOrder is the namespace's place in the search order.
func candidatesOf(svc *corev1.Service, nsOrder int) []*Candidate {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil // the apiserver cannot proxy to it
	}
	name := strings.ToLower(svc.Name)
	var score int
	var why []string
	strong := false
	for i, n := range serverNames {
		if name == n {
			score, strong = 100-2*i, true
			why = append(why, "name "+n)
			break
		}
	}
	for _, n := range serverNames {
		if strong {
			break
		}
		if strings.HasSuffix(name, "-"+n) {
			// Charts prefix the release name: kps-kube-prometheus-stack-prometheus, linkerd-prometheus.
			score, strong = 80, true
			if n == "prometheus" {
				score = 70
			}
			why = append(why, "name ends in "+n)
		}
	}
	if label, ok := prometheusLabel(svc.Labels); ok {
		if strong {
			score += 10
		} else {
			score, strong = 60, true
		}
		why = append(why, "label "+label)
	}
	if !strong {
		if n, ok := compatible(name, svc.Labels); ok {
			score, strong = 50, true
			why = append(why, n)
		}
	}
	exactName := slices.Contains(serverNames, name)
	if !exactName && (excluded(name) || excludedComponent(svc.Labels)) {
		return nil
	}
	weak := !strong && (strings.Contains(name, "prometheus") || strings.Contains(name, "thanos") ||
		strings.Contains(name, "victoria"))

	var out []*Candidate
	var tcp []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			tcp = append(tcp, p)
		}
	}
	for _, p := range tcp {
		bonus, pwhy := portScore(p, name)
		switch {
		case strong && bonus > 0:
		case strong && len(tcp) == 1:
			pwhy = fmt.Sprintf("only port %d", p.Port)
		case weak && bonus > 0:
			score = 20
			if !slices.Contains(why, "name contains a Prometheus word") {
				why = append(why, "name contains a Prometheus word")
			}
		case !strong && !weak && is9090(p):
			score = 0
		default:
			continue
		}
		out = append(out, newCandidate(svc, p, nsOrder, score+bonus, append(slices.Clone(why), pwhy)))
	}
	if strong && len(out) == 0 && len(tcp) > 0 {
		// A Service that is clearly a Prometheus but whose ports say nothing: try its first one.
		out = append(out, newCandidate(svc, tcp[0], nsOrder, score,
			append(slices.Clone(why), fmt.Sprintf("first port %d", tcp[0].Port))))
	}
	return out
}

func newCandidate(svc *corev1.Service, p corev1.ServicePort, nsOrder, score int, why []string) *Candidate {
	c := &Candidate{Namespace: svc.Namespace, Service: svc.Name, Port: p.Port, PortName: p.Name, Score: score,
		Why: why, Exposure: exposureOf(svc, p, nil), svc: svc, port: p, nsOrder: nsOrder}
	c.ref = prometheus.ServiceRef{Namespace: svc.Namespace, Name: svc.Name, Port: fmt.Sprint(p.Port),
		Scheme: portScheme(p)}
	c.URL = c.ref.Path()
	return c
}

func is9090(p corev1.ServicePort) bool {
	return p.Port == 9090 || (p.TargetPort.IntValue() == 9090)
}

// portScore says how much a port looks like a Prometheus HTTP port.
func portScore(p corev1.ServicePort, svcName string) (int, string) {
	switch {
	case is9090(p):
		return 15, "port 9090"
	case slices.Contains(webPortNames, strings.ToLower(p.Name)):
		return 5, "port named " + p.Name
	case p.Port == 8428 && strings.Contains(svcName, "v"):
		return 5, "VictoriaMetrics port 8428"
	case p.Port == 10902 && strings.Contains(svcName, "thanos"):
		return 5, "Thanos HTTP port 10902"
	}
	return 0, ""
}

// portScheme is "https" for a port that says it serves TLS.
func portScheme(p corev1.ServicePort) string {
	if strings.Contains(strings.ToLower(p.Name), "https") ||
		(p.AppProtocol != nil && strings.EqualFold(*p.AppProtocol, "https")) {
		return "https"
	}
	return ""
}

func prometheusLabel(labels map[string]string) (string, bool) {
	switch {
	case labels["app.kubernetes.io/name"] == "prometheus":
		return "app.kubernetes.io/name=prometheus", true
	case labels["app"] == "prometheus":
		return "app=prometheus", true
	case labels["operated-prometheus"] == "true":
		return "operated-prometheus=true", true
	}
	return "", false
}

// compatible recognises VictoriaMetrics single and Thanos Query by name or label.
func compatible(name string, labels map[string]string) (string, bool) {
	for _, n := range compatibleNames {
		if name == n || strings.HasPrefix(name, n+"-") || strings.HasSuffix(name, "-"+n) ||
			strings.Contains(name, "-"+n+"-") {
			return "Prometheus-compatible name " + n, true
		}
		if labels["app.kubernetes.io/name"] == n || labels["app"] == n {
			return "Prometheus-compatible label " + n, true
		}
	}
	if labels["app.kubernetes.io/name"] == "thanos" && labels["app.kubernetes.io/component"] == "query" {
		return "Prometheus-compatible label thanos query", true
	}
	return "", false
}

func excluded(name string) bool {
	for _, w := range notServers {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

func excludedComponent(labels map[string]string) bool {
	for _, k := range []string{"component", "app.kubernetes.io/component"} {
		if v := labels[k]; v != "" && excluded(v) {
			return true
		}
	}
	return false
}

// better orders candidates: reachable first, then exposure, then score, then search order.
func better(a, b *Candidate) int {
	switch {
	case a.Reachable != b.Reachable:
		if a.Reachable {
			return -1
		}
		return 1
	case a.Exposure.rank() != b.Exposure.rank():
		return b.Exposure.rank() - a.Exposure.rank()
	case a.Score != b.Score:
		return b.Score - a.Score
	case a.nsOrder != b.nsOrder:
		return a.nsOrder - b.nsOrder
	case a.Namespace != b.Namespace:
		return strings.Compare(a.Namespace, b.Namespace)
	case a.Service != b.Service:
		return strings.Compare(a.Service, b.Service)
	}
	return int(a.Port) - int(b.Port)
}

// byScore orders candidates for probing: score, then search order.
func byScore(a, b *Candidate) int {
	if a.Score != b.Score {
		return b.Score - a.Score
	}
	if a.nsOrder != b.nsOrder {
		return a.nsOrder - b.nsOrder
	}
	return better(a, b)
}

// exposureOf classifies a Service: a LoadBalancer with an address, an Ingress routing to the port, a node
// port, or only a cluster IP.
func exposureOf(svc *corev1.Service, p corev1.ServicePort, ingresses []networkingv1.Ingress) Exposure {
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) > 0 {
		return ExposureLoadBalancer
	}
	if _, ok := ingressURL(svc, p, ingresses); ok {
		return ExposureIngress
	}
	if (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) &&
		p.NodePort != 0 {
		return ExposureNodePort
	}
	return ExposureClusterIP
}

// loadBalancerURL is the address a LoadBalancer Service's port has outside the cluster.
func loadBalancerURL(svc *corev1.Service, p corev1.ServicePort) (string, bool) {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		host := in.IP
		if host == "" {
			host = in.Hostname
		}
		if host == "" {
			continue
		}
		return schemeOf(p) + "://" + joinHostPort(host, p.Port), true
	}
	return "", false
}

// nodePortURL is the port's address on a node with an external IP.
func nodePortURL(p corev1.ServicePort, nodeIP string) (string, bool) {
	if p.NodePort == 0 || nodeIP == "" {
		return "", false
	}
	return schemeOf(p) + "://" + joinHostPort(nodeIP, p.NodePort), true
}

// ingressURL finds an Ingress rule routing to the Service port and returns its URL: the rule's host, or the
// Ingress's load balancer address for a rule without one, plus the path prefix.
func ingressURL(svc *corev1.Service, p corev1.ServicePort, ingresses []networkingv1.Ingress) (string, bool) {
	routes := func(b *networkingv1.IngressServiceBackend) bool {
		return b != nil && b.Name == svc.Name &&
			((b.Port.Number != 0 && b.Port.Number == p.Port) || (b.Port.Name != "" && b.Port.Name == p.Name))
	}
	for _, ing := range ingresses {
		if ing.Namespace != svc.Namespace {
			continue
		}
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, path := range rule.HTTP.Paths {
				if !routes(path.Backend.Service) {
					continue
				}
				host := rule.Host
				if host == "" {
					host = ingressAddress(ing)
				}
				if host == "" || strings.HasPrefix(host, "*") || strings.ContainsAny(path.Path, "()*[]^$?") {
					continue
				}
				scheme := "http"
				for _, tls := range ing.Spec.TLS {
					if slices.Contains(tls.Hosts, rule.Host) && rule.Host != "" {
						scheme = "https"
					}
				}
				return scheme + "://" + host + strings.TrimSuffix(path.Path, "/"), true
			}
		}
		if ing.Spec.DefaultBackend != nil && routes(ing.Spec.DefaultBackend.Service) {
			if host := ingressAddress(ing); host != "" {
				return "http://" + host, true
			}
		}
	}
	return "", false
}

func ingressAddress(ing networkingv1.Ingress) string {
	for _, in := range ing.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			return in.IP
		}
		if in.Hostname != "" {
			return in.Hostname
		}
	}
	return ""
}

func schemeOf(p corev1.ServicePort) string {
	if portScheme(p) == "https" {
		return "https"
	}
	return "http"
}

func joinHostPort(host string, port int32) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

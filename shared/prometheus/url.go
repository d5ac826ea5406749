// Package prometheus is the small Prometheus HTTP API client the functions share, and the two URL forms the
// registry keeps for a cluster's Prometheus:
//
//   - an absolute http(s) URL (typed by a user, or a LoadBalancer / Ingress / NodePort address discovery
//     reached directly), used as is;
//   - a Kubernetes service-proxy path, /api/v1/namespaces/NS/services/[https:]NAME:PORT/proxy, used through the
//     cluster's own kube-apiserver with the cluster's credentials. That is how an API hosted outside a cluster
//     reaches a Prometheus that is only a ClusterIP Service inside it.
package prometheus

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	proxyPrefix = "/api/v1/namespaces/"
	proxySuffix = "/proxy"
)

// ServiceRef names the Service port the apiserver proxies to.
type ServiceRef struct {
	Namespace string
	Name      string
	// Port is the Service port: its number (or its name). Empty means the Service's only port.
	Port string
	// Scheme is "https" for a port that serves TLS; empty means http.
	Scheme string
}

// String is namespace/name:port, for messages.
func (s ServiceRef) String() string {
	out := s.Namespace + "/" + s.Name
	if s.Port != "" {
		out += ":" + s.Port
	}
	return out
}

// Path is the service-proxy path of s, without a trailing slash: API paths are appended to it.
func (s ServiceRef) Path() string {
	id := s.Name
	if s.Scheme != "" {
		id = s.Scheme + ":" + id
	}
	if s.Port != "" {
		id += ":" + s.Port
	}
	return proxyPrefix + url.PathEscape(s.Namespace) + "/services/" + url.PathEscape(id) + proxySuffix
}

// IsServiceProxyPath reports whether a saved URL is the service-proxy form (checked by ParseServiceProxyPath).
func IsServiceProxyPath(saved string) bool { return strings.HasPrefix(saved, proxyPrefix) }

// ParseServiceProxyPath reads a path made by ServiceRef.Path (a trailing slash is allowed). Anything else is
// refused, so a saved URL can never point the cluster's credentials at another apiserver endpoint.
func ParseServiceProxyPath(p string) (ServiceRef, error) {
	bad := func(why string) (ServiceRef, error) {
		return ServiceRef{}, fmt.Errorf("%q is not a service-proxy path "+
			"(/api/v1/namespaces/NAMESPACE/services/[https:]NAME:PORT/proxy): %s", p, why)
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(p, "/"), proxyPrefix)
	if !ok {
		return bad("wrong prefix")
	}
	rest, ok = strings.CutSuffix(rest, proxySuffix)
	if !ok {
		return bad("it must end in /proxy")
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[1] != "services" {
		return bad("wrong shape")
	}
	ns, err := url.PathUnescape(parts[0])
	if err != nil {
		return bad("bad escaping")
	}
	id, err := url.PathUnescape(parts[2])
	if err != nil {
		return bad("bad escaping")
	}
	var ref ServiceRef
	ref.Namespace = ns
	fields := strings.Split(id, ":")
	switch {
	case len(fields) == 3:
		ref.Scheme, ref.Name, ref.Port = fields[0], fields[1], fields[2]
	case len(fields) == 2 && (fields[0] == "http" || fields[0] == "https"):
		ref.Scheme, ref.Name = fields[0], fields[1]
	case len(fields) == 2:
		ref.Name, ref.Port = fields[0], fields[1]
	case len(fields) == 1:
		ref.Name = fields[0]
	default:
		return bad("too many colons")
	}
	if ref.Scheme != "" && ref.Scheme != "http" && ref.Scheme != "https" {
		return bad("the scheme must be http or https")
	}
	if ref.Scheme == "http" {
		ref.Scheme = ""
	}
	if len(validation.IsDNS1123Label(ref.Namespace)) > 0 {
		return bad("the namespace is not a DNS-1123 label")
	}
	if len(validation.IsDNS1035Label(ref.Name)) > 0 {
		return bad("the service name is not a DNS-1035 label")
	}
	if ref.Port != "" {
		if n, err := strconv.Atoi(ref.Port); err == nil {
			if n < 1 || n > 65535 {
				return bad("the port is out of range")
			}
		} else if len(validation.IsValidPortName(ref.Port)) > 0 {
			return bad("the port is neither a number nor a port name")
		}
	}
	return ref, nil
}

// CheckURL validates a saved URL of either form: an absolute http(s) URL without credentials, or a
// service-proxy path.
func CheckURL(saved string) error {
	if IsServiceProxyPath(saved) {
		_, err := ParseServiceProxyPath(saved)
		return err
	}
	u, err := url.Parse(saved)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is neither an http(s) URL nor a service-proxy path", saved)
	}
	if u.User != nil {
		return fmt.Errorf("the Prometheus URL must not carry credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("the Prometheus URL must not have a query or fragment: API paths are appended to it")
	}
	return nil
}

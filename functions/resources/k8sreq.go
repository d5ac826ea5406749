package resources

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/kitefn/kitefn/shared/access"
)

// k8sRequest is what a Kubernetes API request asks for, read from its method, path and query the way the
// apiserver's RequestInfo reads them — only as far as authorising it needs.
type k8sRequest struct {
	// Discovery is a read of the API's own description (/api, /apis/g/v, /version, /openapi/…): every
	// authenticated caller needs it for kubectl to work at all.
	Discovery bool
	// Resource is false for other non-resource paths (/metrics, /logs, /healthz…).
	Resource    bool
	Verb        string // get list watch create update patch delete deletecollection, or the subresource verb
	Group       string
	Name        string
	Namespace   string // "" for cluster-scoped objects and for lists across all namespaces
	Kind        string // the resource ("pods")
	Subresource string // "log", "exec", "proxy", "status"…
}

// subresourceVerbs are the subresources that are verbs of their own (connections), not reads or writes.
var subresourceVerbs = map[string]bool{"exec": true, "attach": true, "portforward": true, "proxy": true}

// parseK8sRequest reads method + path (without the /k8s/clusters/{c} prefix) + query into a k8sRequest.
func parseK8sRequest(method, path string, query url.Values) k8sRequest {
	parts := splitPath(path)
	if len(parts) == 0 {
		return k8sRequest{}
	}
	read := method == http.MethodGet || method == http.MethodHead
	out := k8sRequest{Resource: true}
	switch parts[0] {
	case "version", "openapi":
		return k8sRequest{Discovery: read, Verb: "get"}
	case "api":
		if len(parts) <= 2 { // /api, /api/v1
			return k8sRequest{Discovery: read, Verb: "get"}
		}
		parts = parts[2:]
	case "apis":
		if len(parts) <= 3 { // /apis, /apis/g, /apis/g/v
			return k8sRequest{Discovery: read, Verb: "get"}
		}
		out.Group, parts = parts[1], parts[3:]
	default:
		return k8sRequest{Verb: strings.ToLower(method)}
	}
	watchPath := false
	if len(parts) > 0 && parts[0] == "watch" { // the deprecated /api/v1/watch/… form
		watchPath, parts = true, parts[1:]
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		if len(parts) == 2 { // the Namespace object itself is in its own namespace (as the apiserver sees it)
			out.Namespace, out.Kind, out.Name = parts[1], "namespaces", parts[1]
			parts = nil
		} else if len(parts) == 3 && (parts[2] == "finalize" || parts[2] == "status") {
			out.Namespace, out.Kind, out.Name, out.Subresource = parts[1], "namespaces", parts[1], parts[2]
			parts = nil
		} else {
			out.Namespace, parts = parts[1], parts[2:]
		}
	}
	if len(parts) > 0 {
		out.Kind = parts[0]
	}
	if len(parts) > 1 {
		out.Name = parts[1]
	}
	if len(parts) > 2 {
		out.Subresource = parts[2]
	}
	switch {
	case subresourceVerbs[out.Subresource]:
		out.Verb = out.Subresource
	case read && (watchPath || isTrue(query.Get("watch"))):
		out.Verb = "watch"
	case read && out.Name == "":
		out.Verb = "list"
	case read:
		out.Verb = "get"
	case method == http.MethodPost:
		out.Verb = "create"
	case method == http.MethodPut:
		out.Verb = "update"
	case method == http.MethodPatch:
		out.Verb = "patch"
	case method == http.MethodDelete && out.Name == "":
		out.Verb = "deletecollection"
	case method == http.MethodDelete:
		out.Verb = "delete"
	default:
		out.Verb = strings.ToLower(method)
	}
	return out
}

func splitPath(path string) []string {
	var out []string
	for _, p := range strings.Split(path, "/") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isTrue(v string) bool { return v == "1" || strings.EqualFold(v, "true") }

// readVerbs are what a viewer may do.
var readVerbs = map[string]bool{"get": true, "list": true, "watch": true}

// authorise decides whether caller may make req on cluster; the answer is "" when allowed, else why not, in
// words kubectl shows the user.
func authorise(caller *access.Caller, cluster string, req k8sRequest) string {
	if caller == nil {
		return "no authenticated caller on the request"
	}
	if !caller.AllowsCluster(cluster) {
		return "cluster " + quote(cluster) + " is outside your cluster scope"
	}
	if req.Discovery {
		return ""
	}
	if !req.Resource {
		if caller.Has(access.Admin) {
			return ""
		}
		return "non-resource paths other than discovery (/api, /apis, /version, /openapi) need the admin role"
	}
	what := describe(req)
	var need access.Role
	switch {
	case req.Subresource == "proxy" && (req.Kind == "services" || req.Kind == "nodes"):
		// The service and node proxies reach anything behind the cluster's network (and the kubelet API).
		need = access.Admin
	case subresourceVerbs[req.Subresource] && req.Kind == "pods":
		need = access.Operator // exec, attach, port-forward, pod proxy: the pod terminals
	case subresourceVerbs[req.Subresource]:
		need = access.Admin
	case readVerbs[req.Verb]:
		need = access.Viewer
	default:
		need = access.Operator
	}
	if !caller.Has(need) {
		return what + " needs the " + string(need) + " role"
	}
	if err := caller.CheckNamespace(what, req.Namespace); err != nil {
		return err.Error()
	}
	return ""
}

// describe names the request as the apiserver's RBAC messages do: verb, resource, namespace.
func describe(req k8sRequest) string {
	res := req.Kind
	if req.Subresource != "" {
		res += "/" + req.Subresource
	}
	if req.Group != "" {
		res += "." + req.Group
	}
	return req.Verb + " " + res
}

func quote(s string) string { return `"` + s + `"` }

package access

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Rule is what one route needs: the role and, for audit and error messages, the verb and resource it acts on.
type Rule struct {
	Method   string // "GET" also admits HEAD, as ServeMux does
	Pattern  string // a ServeMux path pattern
	Verb     string
	Resource string
	Role     Role
}

// Routes returns kitefn's authorisation table: every route of every function, and the runtime's own
// /api/v1/me. A function, not a variable, so no caller can change the table another one reads.
// A route missing here is denied before any function sees it. Finer checks stay with the function serving the
// route (the /k8s proxy refuses service and node proxying unless admin; the proxy and the resources routes
// apply namespace scopes; the registry filters its list and checks cluster names in bodies).
func Routes() []Rule {
	return []Rule{
		// The caller itself (served by the runtime on every service).
		{"GET", "/api/v1/me", "get", "me", Viewer},

		// CloudEvents posted with a token to an event-consuming function (a Trigger's deliveries carry none and
		// bypass authentication on cluster-local services only).
		{"POST", "/{$}", "deliver", "events", Admin},

		// Cluster registry (functions/clusters, functions/discovery).
		{"GET", "/api/v1/clusters", "list", "clusters", Viewer},
		{"GET", "/api/v1/clusters/{ref}", "get", "clusters", Viewer},
		{"POST", "/api/v1/clusters", "create", "clusters", Admin},
		{"POST", "/api/v1/clusters/import", "import", "clusters", Admin},
		{"POST", "/api/v1/clusters/reconcile", "reconcile", "clusters", Admin},
		{"PATCH", "/api/v1/clusters/{ref}", "update", "clusters", Admin},
		{"DELETE", "/api/v1/clusters/{ref}", "delete", "clusters", Admin},
		{"POST", "/api/v1/clusters/{ref}/verify", "verify", "clusters", Admin},
		{"POST", "/api/v1/clusters/{ref}/prometheus/discover", "discover", "clusters", Admin},

		// Prometheus queries and the kubeconfig handout of one cluster.
		{"GET", "/api/v1/clusters/{ref}/prometheus/query", "query", "prometheus", Viewer},
		{"GET", "/api/v1/clusters/{ref}/prometheus/query_range", "query", "prometheus", Viewer},
		{"GET", "/api/v1/clusters/{ref}/kubeconfig", "get", "kubeconfig", Viewer},

		// Kubernetes objects (functions/resources).
		{"GET", "/api/v1/resources/{path...}", "get", "resources", Viewer},
		{"GET", "/api/v1/crds", "list", "crds", Viewer},
		{"GET", "/api/v1/crds/families", "list", "crds", Viewer},
		{"POST", "/api/v1/apply", "apply", "resources", Operator},
		{"POST", "/api/v1/resources/{path...}", "action", "resources", Operator}, // scale, restart
		{"DELETE", "/api/v1/resources/{path...}", "delete", "resources", Operator},

		// Search and relations (functions/search).
		{"GET", "/api/v1/search", "search", "search", Viewer},
		{"GET", "/api/v1/search/status", "get", "search", Viewer},
		{"GET", "/api/v1/relations/{path...}", "get", "relations", Viewer},

		// Logs and terminals (the terminal function): logs are reads, pod terminals writes, node shells admin.
		{"GET", "/api/v1/logs/{path...}", "logs", "pods", Viewer},
		{"GET", "/api/v1/terminal/pods/{path...}", "exec", "pods", Operator},
		{"GET", "/api/v1/terminal/nodes/{path...}", "exec", "nodes", Admin},
		// A ticket for one socket; the function asks the role of its target (pod operator, node admin, logs viewer).
		{"POST", "/api/v1/terminal/tickets", "create", "tickets", Viewer},

		// The Kubernetes API proxy: reads viewer, writes operator; the proxy refines (exec, service/node proxy).
		{"GET", "/k8s/clusters/{cluster}/{path...}", "get", "proxy", Viewer},
		{"POST", "/k8s/clusters/{cluster}/{path...}", "create", "proxy", Operator},
		{"PUT", "/k8s/clusters/{cluster}/{path...}", "update", "proxy", Operator},
		{"PATCH", "/k8s/clusters/{cluster}/{path...}", "patch", "proxy", Operator},
		{"DELETE", "/k8s/clusters/{cluster}/{path...}", "delete", "proxy", Operator},

		// API tokens and the audit log (the store's routes).
		{"GET", "/api/v1/tokens", "list", "tokens", Admin},
		{"POST", "/api/v1/tokens", "create", "tokens", Admin},
		{"GET", "/api/v1/tokens/{name}", "get", "tokens", Admin},
		{"DELETE", "/api/v1/tokens/{name}", "delete", "tokens", Admin},
		{"GET", "/api/v1/audit", "list", "audit", Admin},
	}
}

// Table finds the rule of a request.
type Table struct {
	mux *http.ServeMux
}

// NewTable builds a table over rules; conflicting or malformed patterns are reported.
func NewTable(rules []Rule) (t *Table, err error) {
	defer func() {
		if p := recover(); p != nil { // ServeMux panics on a bad or conflicting pattern
			t, err = nil, fmt.Errorf("authorisation table: %v", p)
		}
	}()
	mux := http.NewServeMux()
	for _, r := range rules {
		if !r.Role.Valid() {
			return nil, fmt.Errorf("authorisation table: %s %s has no valid role", r.Method, r.Pattern)
		}
		mux.Handle(r.Method+" "+r.Pattern, found{rule: r})
	}
	return &Table{mux: mux}, nil
}

// DefaultTable is the table over Routes().
func DefaultTable() *Table {
	t, err := NewTable(Routes())
	if err != nil {
		panic(err) // Routes is a constant of the program: a test builds it
	}
	return t
}

// RouteMatch is a request's rule and the cluster its path names ({cluster} or {ref}), if any.
type RouteMatch struct {
	Rule    Rule
	Cluster string
}

// found is a table entry as a handler, so the mux's own matching (methods, wildcards, precedence) decides.
type found struct{ rule Rule }

func (f found) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p, ok := w.(*probe); ok {
		p.match = &RouteMatch{Rule: f.rule, Cluster: r.PathValue("cluster")}
		if p.match.Cluster == "" && strings.HasPrefix(f.rule.Pattern, "/api/v1/clusters/{ref}") {
			p.match.Cluster = r.PathValue("ref")
		}
	}
}

// probe is the ResponseWriter a lookup runs the mux with: found fills match; an unknown route writes a status.
type probe struct {
	header http.Header
	status int
	match  *RouteMatch
}

func (p *probe) Header() http.Header         { return p.header }
func (p *probe) Write(b []byte) (int, error) { return len(b), nil }
func (p *probe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

// Lookup finds the rule for r. Without one, status is 404 (unknown path) or 405 (known path, other method,
// allow lists the methods it takes).
func (t *Table) Lookup(r *http.Request) (m *RouteMatch, status int, allow string) {
	// A shallow copy: ServeHTTP records the pattern and path values on the request it is given.
	cp := *r
	p := &probe{header: http.Header{}}
	t.mux.ServeHTTP(p, &cp)
	if p.match != nil {
		return p.match, 0, ""
	}
	if p.status == http.StatusMethodNotAllowed {
		return nil, p.status, p.header.Get("Allow")
	}
	return nil, http.StatusNotFound, ""
}

// ClusterRefs lists the clusters a request names: the path's {cluster} or {ref}, the X-Cluster-Name header, the
// cluster and x-cluster-name parameters and each of clusters=a,b ("_all", every cluster, is left to the function,
// which lists only the caller's). They are references: names or IDs.
func ClusterRefs(r *http.Request, fromPath string) []string {
	var out []string
	add := func(v string) {
		if v = strings.TrimSpace(v); v != "" && v != "_all" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	add(fromPath)
	add(r.Header.Get("X-Cluster-Name"))
	q := r.URL.Query()
	add(q.Get("cluster"))
	add(q.Get("x-cluster-name"))
	for _, v := range strings.Split(q.Get("clusters"), ",") {
		add(v)
	}
	return out
}

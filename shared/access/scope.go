package access

import (
	"fmt"
	"strings"
)

// The scope checks every function applies, so a refusal reads the same from the runtime's table, the /k8s
// proxy, the resources routes and the cluster registry.

// CheckCluster is nil when the caller's cluster scope admits the cluster name, else a *Refusal naming it and
// the scope.
func (c *Caller) CheckCluster(name string) error {
	if c.AllowsCluster(name) {
		return nil
	}
	return &Refusal{Message: fmt.Sprintf("cluster %q is outside the cluster scope of %s %q (%s)", name, c.Kind,
		c.Name, strings.Join(c.Clusters, ", "))}
}

// CheckNamespace is nil when the caller's namespace scope admits ns, else a *Refusal naming the namespace and
// the scope. ns "" is a cluster-scoped request (or one across all namespaces), which what describes ("list
// nodes"): only callers without a namespace scope may make it.
func (c *Caller) CheckNamespace(what, ns string) error {
	if c.AllowsNamespace(ns) {
		return nil
	}
	scope := strings.Join(c.Namespaces, ", ")
	if ns == "" {
		return &Refusal{Message: what + " is cluster-wide (no namespace) and your scope is limited to namespaces " +
			scope}
	}
	return &Refusal{Message: fmt.Sprintf("namespace %q is outside your namespace scope (%s)", ns, scope)}
}

// ScopeNamespace is the namespace a scope judges an object by: its own, and for a Namespace (core group,
// resource namespaces) its name — as the apiserver's RequestInfo reads /api/v1/namespaces/team-a, so a caller
// scoped to team-a may read, apply or delete the Namespace team-a and no other.
func ScopeNamespace(group, resource, namespace, name string) string {
	if group == "" && resource == "namespaces" {
		return name
	}
	return namespace
}

// SingleNamespace is the one namespace a scope admits when it is exactly one plain name ("team-a", not a
// pattern or negation), else "".
func (c *Caller) SingleNamespace() string {
	if len(c.Namespaces) == 1 {
		if ns := strings.TrimSpace(c.Namespaces[0]); ns != "" && !strings.ContainsAny(ns, "*!") {
			return ns
		}
	}
	return ""
}

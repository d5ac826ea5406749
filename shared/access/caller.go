// Package access is who a caller is and what they may do: identities (bootstrap tokens, named API tokens, OIDC
// ID tokens), roles (viewer < operator < admin), scopes by cluster and namespace pattern, and the one
// authorisation table every function's routes go through.
package access

import (
	"context"
	"slices"
	"strings"
)

// Role is one of the three roles, each including the ones before it.
type Role string

// The roles.
const (
	Viewer   Role = "viewer"   // reads, search, relations, logs
	Operator Role = "operator" // + apply, delete, scale, restart, pod terminals
	Admin    Role = "admin"    // + cluster registry, node shells, tokens, audit
)

// rank orders the roles; 0 is not a role.
func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Operator:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Kinds of identity.
const (
	KindBootstrap = "bootstrap" // a KITEFN_API_TOKENS token: admin everywhere
	KindToken     = "token"     // a named API token from the store
	KindOIDC      = "oidc"      // an OIDC ID token
)

// Caller is an authenticated identity.
type Caller struct {
	// Name identifies the caller in audit entries and, with a prefix, as the impersonated Kubernetes user
	// ("token:<name>", "oidc:<claim>").
	Name   string
	Kind   string
	Groups []string
	Roles  []Role
	// Clusters and Namespaces are scope patterns ("*", "prod-*", "team-a", "!kube-system"); empty means all.
	Clusters   []string
	Namespaces []string
}

// Has reports whether the caller holds role r or a higher one.
func (c *Caller) Has(r Role) bool {
	for _, have := range c.Roles {
		if have.rank() >= r.rank() && r.rank() > 0 {
			return true
		}
	}
	return false
}

// AllowsCluster reports whether the caller's cluster scope admits the cluster name.
func (c *Caller) AllowsCluster(name string) bool { return Match(c.Clusters, name) }

// AllowsNamespace reports whether the caller's namespace scope admits ns ("" is cluster-scoped: only callers
// without a namespace scope reach cluster-scoped objects).
func (c *Caller) AllowsNamespace(ns string) bool {
	if ns == "" {
		return len(c.Namespaces) == 0
	}
	return Match(c.Namespaces, ns)
}

// Match reports whether value is admitted by patterns: empty admits everything; otherwise value must match at
// least one positive pattern ("*", an exact name, or a prefix glob "prod-*") and no negated one ("!x", "!dev-*").
// Only negations ("!kube-system") admit everything else.
func Match(patterns []string, value string) bool {
	if len(patterns) == 0 {
		return true
	}
	positive, admitted := false, false
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			// "! prod" negates prod: untrimmed, it would negate " prod", match nothing and admit prod.
			if glob(strings.TrimSpace(neg), value) {
				return false
			}
			continue
		}
		positive = true
		admitted = admitted || glob(p, value)
	}
	return admitted || !positive
}

// glob matches "*", "prefix*" or an exact name.
func glob(p, v string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(v, prefix)
	}
	return p == v
}

// Roles parses role names; an unknown one is reported.
func Roles(names []string) ([]Role, string) {
	out := make([]Role, 0, len(names))
	for _, n := range names {
		r := Role(strings.ToLower(strings.TrimSpace(n)))
		if !r.Valid() {
			return nil, n
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, ""
}

type callerKey struct{}

// WithCaller puts the authenticated caller in the request context (request-scoped data, like the request id).
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller the authentication middleware put in ctx.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok && c != nil
}

// Authenticator finds the caller a bearer credential names. It answers (nil, nil) for a credential it does not
// recognise, so several can be chained (bootstrap tokens, named API tokens, OIDC ID tokens); an error means the
// credential is its kind but not valid (expired, revoked, bad signature) or the check could not be made.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (*Caller, error)
}

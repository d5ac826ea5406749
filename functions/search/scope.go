package search

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
)

// The caller's kitefn scopes, as search and relations apply them. The runtime's table already refuses a
// request naming a cluster outside the caller's cluster scope; these checks hold the same line inside the
// function (IDs resolved to names, clusters=_all) and add the namespace scope, which the table cannot see.

// noCaller refuses a request that reached the function without an authenticated caller (only a test calling
// the handler directly can): fail closed rather than search as nobody in particular.
func noCaller() error {
	return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "no authenticated caller on the request")
}

// clusterOutOfScope is the runtime table's refusal of a cluster outside the caller's cluster scope, word for
// word (access.Authorize), so a cluster named by ID or in a list is refused alike.
func clusterOutOfScope(c *access.Caller, name string) error {
	return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
		"cluster %q is outside the cluster scope of %s %q (%s)", name, c.Kind, c.Name, strings.Join(c.Clusters, ", "))
}

// namespaceOutOfScope refuses a namespace (or, for ns "", a cluster-scoped object) the caller's namespace
// scope does not admit, in the /k8s proxy's words.
func namespaceOutOfScope(c *access.Caller, what, ns string) error {
	if ns == "" {
		return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"%s is cluster-scoped and your scope is limited to namespaces %s", what, strings.Join(c.Namespaces, ", "))
	}
	return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
		"namespace %q is outside your namespace scope", ns)
}

// namespaceScoped says the caller is limited to some namespaces (and so sees no cluster-scoped objects).
func namespaceScoped(c *access.Caller) bool { return len(c.Namespaces) > 0 }

// callerKey is the result cache's part naming the caller: the credential (as before) and everything that
// decides what the caller may see (name, groups and both scopes), so two callers never share an answer even
// if a credential's caller changed within the cache's TTL.
func callerKey(authorization string, c *access.Caller) string {
	h := sha256.New()
	write := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	write(authorization)
	write(c.Kind, c.Name)
	write(sorted(c.Groups)...)
	write(sorted(c.Clusters)...)
	write(sorted(c.Namespaces)...)
	return hex.EncodeToString(h.Sum(nil))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

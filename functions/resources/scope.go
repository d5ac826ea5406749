package resources

import (
	"bytes"
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
)

// Namespace scopes on the resources routes, by the /k8s proxy's rules (access.Caller.CheckNamespace,
// access.ScopeNamespace): a namespaced object is judged by its namespace, a Namespace by its name, anything
// else cluster-scoped is refused to a caller with a namespace scope. Two reads are filtered instead of refused,
// so a scoped dashboard works: the list of namespaces (only the admitted ones) and lists across all
// namespaces (only items in admitted namespaces). The cluster scope is the runtime table's (it sees the
// X-Cluster-Name of every request).

// callerOf is the request's caller: the runtime authenticates every route, so none means the function is served
// without it, and nothing is answered.
func callerOf(ctx context.Context) (*access.Caller, error) {
	c, ok := access.CallerFrom(ctx)
	if !ok {
		return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "no authenticated caller on the request")
	}
	return c, nil
}

// forbidden is a scope refusal as the API's 403.
func forbidden(err error) error {
	return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error())
}

// itemFilter keeps the items of a list a scope admits, by their namespace and name.
type itemFilter func(namespace, name []byte) bool

// what names a request on t as the proxy's refusals do: verb and resource.group.
func (t target) what(verb string) string {
	if t.gvr.Group == "" {
		return verb + " " + t.gvr.Resource
	}
	return verb + " " + t.gvr.Resource + "." + t.gvr.Group
}

// isNamespaces reports whether t is the core Namespace kind, judged by the object's name.
func (t target) isNamespaces() bool { return t.gvr.Group == "" && t.gvr.Resource == "namespaces" }

// scopeRead checks a parsed GET (list, object, events) against the caller's namespace scope. A list across all
// namespaces, or of namespaces, gets the filter of what the scope admits (req.scope); a scope of exactly one
// namespace lists that namespace instead, so its pages are the apiserver's own.
func scopeRead(ctx context.Context, req *request) error {
	c, err := callerOf(ctx)
	if err != nil || len(c.Namespaces) == 0 {
		return err
	}
	verb := "get"
	if req.name == "" {
		verb = "list"
	}
	switch {
	case req.name == "" && req.isNamespaces():
		req.scope = func(_, name []byte) bool { return c.AllowsNamespace(string(name)) }
		return nil
	case req.name == "" && req.namespaced && req.namespace == "":
		if ns := c.SingleNamespace(); ns != "" {
			req.namespace = ns
			return nil
		}
		req.scope = func(ns, _ []byte) bool { return c.AllowsNamespace(string(ns)) }
		return nil
	}
	if err := c.CheckNamespace(req.what(verb), access.ScopeNamespace(req.gvr.Group, req.gvr.Resource,
		req.namespace, req.name)); err != nil {
		return forbidden(err)
	}
	return nil
}

// scopeWrite checks a delete, scale or restart of one object.
func scopeWrite(ctx context.Context, req request, verb string) error {
	c, err := callerOf(ctx)
	if err != nil {
		return err
	}
	if err := c.CheckNamespace(req.what(verb), access.ScopeNamespace(req.gvr.Group, req.gvr.Resource,
		req.namespace, req.name)); err != nil {
		return forbidden(err)
	}
	return nil
}

// scopeDoc checks one apply document, its kind resolved and its namespace set: a document the scope does not
// admit fails as any refused document does (nothing after it is attempted).
func scopeDoc(ctx context.Context, t target, obj *unstructured.Unstructured) error {
	c, err := callerOf(ctx)
	if err != nil {
		return err
	}
	if err := c.CheckNamespace(t.what("apply"), access.ScopeNamespace(t.gvr.Group, t.gvr.Resource,
		obj.GetNamespace(), obj.GetName())); err != nil {
		return forbidden(err)
	}
	return nil
}

// scopeClusterWide refuses a cluster-wide read (CRDs, Prometheus) to a caller with a namespace scope.
func scopeClusterWide(ctx context.Context, what string) error {
	c, err := callerOf(ctx)
	if err != nil {
		return err
	}
	if err := c.CheckNamespace(what, ""); err != nil {
		return forbidden(err)
	}
	return nil
}

// scopeEvents keeps the events in namespaces the scope admits: the events of a Namespace are listed across
// all namespaces.
func scopeEvents(ctx context.Context, items []corev1.Event) []corev1.Event {
	c, _ := access.CallerFrom(ctx)
	if c == nil || len(c.Namespaces) == 0 {
		return items
	}
	out := items[:0]
	for _, e := range items {
		if c.AllowsNamespace(e.Namespace) {
			out = append(out, e)
		}
	}
	return out
}

// filter keeps the items keep admits. A filtered page may hold fewer items than limit, even none, with a
// continue token to follow — as the Kubernetes API itself allows — and loses metadata.remainingItemCount,
// which counted items the caller does not see.
func (keep itemFilter) filter(b []byte, envelope []member, items []listItem) ([]member, []listItem, error) {
	if keep == nil {
		return envelope, items, nil
	}
	out := items[:0]
	for _, it := range items {
		if keep(it.namespace, it.name) {
			out = append(out, it)
		}
	}
	for i, m := range envelope {
		if string(m.key) != "metadata" || b[m.valStart] != '{' {
			continue
		}
		raw, err := withoutMember(b, m, "remainingItemCount")
		if err != nil {
			return nil, nil, err
		}
		envelope[i].raw = raw
	}
	return envelope, out, nil
}

// withoutMember rewrites the object member m ("metadata": {...}) without its member key.
func withoutMember(b []byte, m member, key string) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(b[m.start:m.valStart])
	buf.WriteByte('{')
	n := 0
	_, err := members(b, m.valStart, func(md member) bool {
		if string(md.key) == key {
			return true
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b[md.start:md.valEnd])
		n++
		return true
	})
	if err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

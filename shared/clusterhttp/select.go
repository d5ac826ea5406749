// Package clusterhttp is the HTTP side of picking a cluster: reading which cluster a request names, putting
// its client in the request context, and passing the cluster's warnings on to the caller as Warning headers.
package clusterhttp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/store"
)

// Clients is what Select needs: a client by cluster name or ID, and that client acting as a caller on a
// cluster that impersonates (*kube.Cache).
type Clients interface {
	Client(ctx context.Context, ref string) (*kube.Client, error)
	ActingAs(base *kube.Client, p *kube.Principal) (*kube.Client, error)
}

// PrincipalOf is who caller is to a cluster that impersonates: nil for no caller and for bootstrap callers
// (KITEFN_API_TOKENS), who act as the stored kubeconfig. Any other kind is passed on, for the cache to refuse
// unless it knows how to name it.
func PrincipalOf(caller *access.Caller) *kube.Principal {
	if caller == nil || caller.Kind == access.KindBootstrap {
		return nil
	}
	kind := caller.Kind
	switch kind {
	case access.KindToken:
		kind = kube.PrincipalToken
	case access.KindOIDC:
		kind = kube.PrincipalOIDC
	}
	return &kube.Principal{Kind: kind, Name: caller.Name, Groups: caller.Groups}
}

// ActingFor is the client of base's cluster for the request's caller: base unless the cluster impersonates,
// else the client acting as the caller (its As says who).
func ActingFor(ctx context.Context, clients Clients, base *kube.Client) (*kube.Client, error) {
	caller, _ := access.CallerFrom(ctx)
	return clients.ActingAs(base, PrincipalOf(caller))
}

// Registry is what Lookup reads.
type Registry interface {
	Get(ctx context.Context, id uint64) (*store.Cluster, error)
	GetByName(ctx context.Context, name string) (*store.Cluster, error)
}

type clientKey struct{}

// ClientFrom returns the client Select chose for this request.
func ClientFrom(ctx context.Context) (*kube.Client, bool) {
	c, ok := ctx.Value(clientKey{}).(*kube.Client)
	return c, ok
}

// WithClient puts a client in ctx (for code paths that pick the cluster themselves).
func WithClient(ctx context.Context, c *kube.Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClusterRef reads which cluster a request is for: the X-Cluster-Name header (Kite sends it as x-cluster-name;
// HTTP headers are case-insensitive), else the `cluster` or `x-cluster-name` query parameter.
func ClusterRef(r *http.Request) string {
	if v := strings.TrimSpace(r.Header.Get("X-Cluster-Name")); v != "" {
		return v
	}
	q := r.URL.Query()
	if v := strings.TrimSpace(q.Get("cluster")); v != "" {
		return v
	}
	return strings.TrimSpace(q.Get("x-cluster-name"))
}

// Select resolves the request's cluster and puts its client in the context — acting as the request's caller
// when the cluster impersonates — with a warnings collector whose warnings become Warning headers (see
// Warnings); 400 when none is named, 404 naming it when unknown.
func Select(clients Clients, next http.Handler) http.Handler {
	return Warnings(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := ClusterRef(r)
		if ref == "" {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"no cluster selected: send the X-Cluster-Name header or the ?cluster= parameter (a name or an ID)"))
			return
		}
		c, err := clients.Client(r.Context(), ref)
		if err != nil {
			var nf *kube.NotFoundError
			if errors.As(err, &nf) {
				err = httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q not found", ref)
			}
			httpapi.WriteError(w, r, err)
			return
		}
		if c, err = ActingFor(r.Context(), clients, c); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClient(r.Context(), c)))
	}))
}

// Lookup finds a registered cluster by ID (all digits; names never are) or by name; an unknown one is a 404
// naming it.
func Lookup(ctx context.Context, reg Registry, ref string) (*store.Cluster, error) {
	var rec *store.Cluster
	var err error
	if id, perr := strconv.ParseUint(ref, 10, 64); perr == nil {
		rec, err = reg.Get(ctx, id)
	} else {
		rec, err = reg.GetByName(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q not found", ref)
	}
	return rec, err
}

package clusters

import (
	"context"
	"net/http"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// Cluster scopes in the registry. The runtime's table already refuses a route whose path names a cluster
// outside the caller's scope; these cover what the path does not show: the list, a name in a body (create,
// import, rename) and the reconcile, which walks every record. Work without a caller — the local kubeconfig
// import at start, the reconcile loop and its PingSource event — is the process's own and sees every cluster
// (every HTTP route is authenticated by the runtime, so no request reaches a handler without one).

// inScope keeps the records the caller's cluster scope admits.
func inScope(ctx context.Context, recs []*store.Cluster) []*store.Cluster {
	c, ok := access.CallerFrom(ctx)
	if !ok || len(c.Clusters) == 0 {
		return recs
	}
	out := make([]*store.Cluster, 0, len(recs))
	for _, rec := range recs {
		if c.AllowsCluster(rec.Name) {
			out = append(out, rec)
		}
	}
	return out
}

// checkScope refuses a cluster name outside the caller's scope with the table's own 403, so a caller cannot
// register, import or rename a cluster into a name they could then not reach.
func checkScope(ctx context.Context, name string) error {
	c, ok := access.CallerFrom(ctx)
	if !ok {
		return nil
	}
	if err := c.CheckCluster(name); err != nil {
		return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error())
	}
	return nil
}

package platform

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// Access is the runtime.Options.Access hook: the authenticators after the bootstrap tokens (named API tokens
// from the store, OIDC ID tokens when KITEFN_OIDC_ISSUER is set) and cluster IDs resolved to names for scope
// checks.
func Access(p *Platform) (runtime.AccessConfig, error) {
	acc := runtime.AccessConfig{ClusterName: p.clusterName}
	if p.TokenAuth != nil {
		acc.Authenticators = append(acc.Authenticators, p.TokenAuth)
	}
	cfg, err := access.LoadOIDCConfig()
	if err != nil {
		return acc, err
	}
	if cfg.Issuer != "" {
		o, err := access.NewOIDC(cfg, nil)
		if err != nil {
			return acc, err
		}
		acc.Authenticators = append(acc.Authenticators, o)
	}
	return acc, nil
}

// clusterName is the name of the cluster ref names: a numeric ref is an ID when a cluster has it.
func (p *Platform) clusterName(ctx context.Context, ref string) (string, error) {
	id, err := strconv.ParseUint(ref, 10, 64)
	if err != nil {
		return ref, nil
	}
	c, err := p.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ref, nil // no such cluster (names are never all digits): the route answers 404
	}
	if err != nil {
		return "", fmt.Errorf("resolving cluster %s for the caller's scope: %w", ref, err)
	}
	return c.Name, nil
}

package kube

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// Principal is who a request acts for, as the cache needs it to name them on a cluster that impersonates: the
// kind of identity, its name and its groups. shared/clusterhttp makes one from an access.Caller; the cache
// applies the configured user-name prefix of its kind.
type Principal struct {
	Kind   string // PrincipalToken or PrincipalOIDC; any other kind has no impersonated form
	Name   string
	Groups []string
}

// The kinds of Principal that can be impersonated.
const (
	PrincipalToken = "token" // a named API token: KITEFN_IMPERSONATE_TOKEN_PREFIX + its name
	PrincipalOIDC  = "oidc"  // an OIDC ID token: KITEFN_IMPERSONATE_OIDC_PREFIX + its username claim
)

// Identity is the Kubernetes user and groups a client acts as (Impersonate-User, Impersonate-Group).
type Identity struct {
	User   string
	Groups []string
}

// actingKey names one impersonating client: the cluster, the record version its base client was made from
// (a record change gives new clients) and the identity, its groups sorted so their order does not matter.
type actingKey struct {
	id, version  uint64
	user, groups string
}

func keyFor(base *Client, id *Identity) actingKey {
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	return actingKey{id: base.ID, version: base.Version, user: id.User, groups: strings.Join(groups, "\x00")}
}

// Identity is who p acts as on base's cluster: nil when the cluster does not impersonate or there is no
// principal (bootstrap callers act as the stored kubeconfig). A principal that cannot be named on the cluster
// (an unknown kind, an empty user name) is refused rather than let act as the stored identity.
func (c *Cache) Identity(base *Client, p *Principal) (*Identity, error) {
	if base == nil || !base.Impersonate || p == nil {
		return nil, nil
	}
	var prefix string
	switch p.Kind {
	case PrincipalToken:
		prefix = c.cfg.ImpersonateTokenPrefix
	case PrincipalOIDC:
		prefix = c.cfg.ImpersonateOIDCPrefix
	default:
		return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"cluster %q acts as each caller, and a %q caller has no identity there", base.Name, p.Kind)
	}
	if p.Name == "" {
		return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"cluster %q acts as each caller, and this caller has no name to act as", base.Name)
	}
	return &Identity{User: prefix + p.Name, Groups: slices.Clone(p.Groups)}, nil
}

// ActingAs is the client for base's cluster acting as p: base itself when the cluster does not impersonate or p
// is nil, else the impersonating client (Client.As says who). This is what a request handler calls with the
// client of its cluster and its caller's principal.
func (c *Cache) ActingAs(base *Client, p *Principal) (*Client, error) {
	id, err := c.Identity(base, p)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return base, nil
	}
	return c.As(base, id)
}

// ClientAs is Client(ctx, ref) acting as p (see ActingAs).
func (c *Cache) ClientAs(ctx context.Context, ref string, p *Principal) (*Client, error) {
	base, err := c.Client(ctx, ref)
	if err != nil {
		return nil, err
	}
	return c.ActingAs(base, p)
}

// As is the client over base's connection that acts as id (base when id is nil). Built once per (cluster,
// record version, identity) and kept in a bounded LRU (KITEFN_IMPERSONATION_CACHE_SIZE); Invalidate drops a
// cluster's. It shares base's transport, so one cluster keeps one connection pool and one rate limiter.
func (c *Cache) As(base *Client, id *Identity) (*Client, error) {
	if id == nil {
		return base, nil
	}
	if id.User == "" { // client-go would send no Impersonate-User: the stored identity would act
		return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"cluster %q: cannot act as a caller without a user name", base.Name)
	}
	key := keyFor(base, id)
	if cl, ok := c.acting.Get(key); ok {
		return cl, nil
	}
	conn, err := base.Conn.impersonating(base.Name, id)
	if err != nil {
		return nil, err
	}
	cl := &Client{ID: base.ID, Name: base.Name, Version: base.Version, Impersonate: base.Impersonate,
		As: &Identity{User: id.User, Groups: slices.Clone(id.Groups)}, Conn: conn}
	c.actingMu.Lock()
	defer c.actingMu.Unlock()
	if prev, ok := c.acting.Get(key); ok { // built concurrently: keep one
		return prev, nil
	}
	for _, k := range c.acting.Keys() { // an older record's clients (changed through another replica)
		if k.id == key.id && k.version < key.version {
			c.acting.Remove(k)
		}
	}
	c.acting.Add(key, cl) // evicting shares no connection of its own: nothing to close
	return cl, nil
}

// ActingLen is the number of cached impersonating clients.
func (c *Cache) ActingLen() int { return c.acting.Len() }

// dropActing forgets a cluster's impersonating clients: its record changed (or it is gone).
func (c *Cache) dropActing(id uint64) {
	c.actingMu.Lock()
	defer c.actingMu.Unlock()
	for _, k := range c.acting.Keys() {
		if k.id == id {
			c.acting.Remove(k)
		}
	}
}

// impersonating is a connection acting as id over c's transport and rate limiter: request and streaming clients
// alike wrap c's round tripper, so the pool is c's. REST carries the impersonation too, for code that builds
// its own transport from it (upgrades).
func (c *Conn) impersonating(name string, id *Identity) (*Conn, error) {
	api, err := c.API.as(name, id)
	if err != nil {
		return nil, err
	}
	stream, err := c.Stream.as(name, id)
	if err != nil {
		return nil, err
	}
	return &Conn{API: api, Stream: stream, fingerprint: c.fingerprint}, nil
}

func (a API) as(name string, id *Identity) (API, error) {
	rc := rest.CopyConfig(a.REST) // keeps the rate limiter: the same pointer
	rc.Impersonate = rest.ImpersonationConfig{UserName: id.User, Groups: slices.Clone(id.Groups)}
	hc := &http.Client{Timeout: a.HTTP.Timeout, Transport: transport.NewImpersonatingRoundTripper(
		transport.ImpersonationConfig{UserName: id.User, Groups: slices.Clone(id.Groups)}, a.HTTP.Transport)}
	return newAPI(name, rc, hc)
}

// Package kube gives functions a client for a registered cluster: a bounded per-instance cache of connections
// built from the registry, re-validated against the record's version so changes made through another replica
// take effect here without a broadcast, and the mapping of a cluster's errors and warnings for the API.
package kube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/kitefn/kitefn/shared/store"
)

// Registry is the part of the store the cache reads.
type Registry interface {
	Get(ctx context.Context, id uint64) (*store.Cluster, error)
	GetByName(ctx context.Context, name string) (*store.Cluster, error)
}

// Opener decrypts sealed kubeconfigs.
type Opener interface {
	Open(sealed []byte) ([]byte, error)
}

// Config tunes the cache and the clients it builds (env prefix KITEFN_).
type Config struct {
	CacheSize  int           `envconfig:"CLIENT_CACHE_SIZE" default:"128"`
	Revalidate time.Duration `envconfig:"CLIENT_REVALIDATE" default:"30s"`
	QPS        float32       `envconfig:"KUBE_QPS" default:"50"`
	Burst      int           `envconfig:"KUBE_BURST" default:"100"`
	Timeout    time.Duration `envconfig:"KUBE_TIMEOUT" default:"30s"`
	UserAgent  string        `envconfig:"KUBE_USER_AGENT" default:"kitefn"`
	// ImpersonationCacheSize bounds the clients kept per (cluster, caller) for clusters that impersonate.
	ImpersonationCacheSize int `envconfig:"IMPERSONATION_CACHE_SIZE" default:"512"`
	// ImpersonateTokenPrefix and ImpersonateOIDCPrefix start the impersonated user name of a named API token's
	// caller and of an OIDC caller; either may be empty.
	ImpersonateTokenPrefix string `envconfig:"IMPERSONATE_TOKEN_PREFIX" default:"token:"`
	ImpersonateOIDCPrefix  string `envconfig:"IMPERSONATE_OIDC_PREFIX" default:"oidc:"`
}

// Validate says which setting is out of range.
func (c Config) Validate() error {
	switch {
	case c.CacheSize < 1:
		return fmt.Errorf("KITEFN_CLIENT_CACHE_SIZE must be at least 1, got %d", c.CacheSize)
	case c.Revalidate < 0:
		return fmt.Errorf("KITEFN_CLIENT_REVALIDATE must not be negative, got %s", c.Revalidate)
	case c.QPS <= 0 || c.Burst < 1:
		return fmt.Errorf("KITEFN_KUBE_QPS and KITEFN_KUBE_BURST must be positive, got %v and %d", c.QPS, c.Burst)
	case c.Timeout < 0:
		return fmt.Errorf("KITEFN_KUBE_TIMEOUT must not be negative, got %s", c.Timeout)
	case c.ImpersonationCacheSize < 1:
		return fmt.Errorf("KITEFN_IMPERSONATION_CACHE_SIZE must be at least 1, got %d", c.ImpersonationCacheSize)
	}
	return nil
}

type entry struct {
	client  *Client
	checked atomic.Int64 // unix nanos of the last time the record's version was confirmed; 0 after Invalidate
}

// flight is a cluster with builds under way; gen counts the Invalidates since the first began.
type flight struct {
	gen     uint64
	running int
}

// buildTimeout bounds a shared build, which outlives the caller that started it.
const buildTimeout = 30 * time.Second

// Cache holds clients by cluster ID. It is safe for concurrent use; one per warm instance.
type Cache struct {
	reg    Registry
	opener Opener
	cfg    Config
	names  *lru.Cache[string, nameEntry]
	group  singleflight.Group
	now    func() time.Time

	mu      sync.Mutex // orders storing a built client against Invalidate
	byID    *lru.Cache[uint64, *entry]
	flights map[uint64]*flight // only while a build runs, so bounded by concurrent builds
	// acting holds the impersonating clients; its own lock orders a store against Invalidate's purge.
	actingMu sync.Mutex
	acting   *lru.Cache[actingKey, *Client]
}

type nameEntry struct {
	id      uint64
	checked time.Time
}

// NewCache makes a cache over the registry; opener decrypts the kubeconfigs it holds.
func NewCache(reg Registry, opener Opener, cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	byID, err := lru.NewWithEvict(cfg.CacheSize, func(_ uint64, e *entry) {
		e.client.CloseIdle()
	})
	if err != nil {
		return nil, fmt.Errorf("creating client cache: %w", err)
	}
	names, err := lru.New[string, nameEntry](cfg.CacheSize * 2)
	if err != nil {
		return nil, fmt.Errorf("creating name cache: %w", err)
	}
	acting, err := lru.New[actingKey, *Client](cfg.ImpersonationCacheSize)
	if err != nil {
		return nil, fmt.Errorf("creating impersonation cache: %w", err)
	}
	return &Cache{reg: reg, opener: opener, cfg: cfg, byID: byID, names: names, now: time.Now,
		flights: map[uint64]*flight{}, acting: acting}, nil
}

// Len is the number of cached clients.
func (c *Cache) Len() int { return c.byID.Len() }

// Client returns the client for a cluster named by ID (all digits; names never are) or by name.
func (c *Cache) Client(ctx context.Context, ref string) (*Client, error) {
	if ref == "" {
		return nil, &NotFoundError{Ref: ref}
	}
	if id, err := strconv.ParseUint(ref, 10, 64); err == nil {
		return c.byIDRef(ctx, id, ref, nil)
	}
	if n, ok := c.names.Get(ref); ok && c.now().Sub(n.checked) < c.cfg.Revalidate {
		cl, err := c.byIDRef(ctx, n.id, ref, nil)
		if err == nil && cl.Name == ref {
			return cl, nil
		}
		c.names.Remove(ref) // renamed or deleted since: ask the registry
	}
	rec, err := c.reg.GetByName(ctx, ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &NotFoundError{Ref: ref}
		}
		return nil, fmt.Errorf("looking up cluster %q: %w", ref, err)
	}
	c.names.Add(ref, nameEntry{id: rec.ID, checked: c.now()})
	return c.byIDRef(ctx, rec.ID, ref, rec)
}

// Invalidate makes the next lookup of a cluster re-read its record, for the replica that made a change (others
// catch up on revalidation). A build already under way is not kept: its record may predate the change. The
// connection stays cached until that read says the cluster is gone or its connection settings changed, so a
// label edit or a rename keeps it.
func (c *Cache) Invalidate(id uint64) {
	c.mu.Lock()
	if f := c.flights[id]; f != nil {
		f.gen++
	}
	if e, ok := c.byID.Peek(id); ok {
		e.checked.Store(0)
	}
	c.mu.Unlock()
	c.dropActing(id)
}

// byIDRef returns a cached client still fresh, or re-validates it against rec (fetched when nil). Concurrent
// callers for one cluster share one registry read and one build, which does not end when the caller that
// started it gives up; each caller still returns when its own ctx ends.
func (c *Cache) byIDRef(ctx context.Context, id uint64, ref string, rec *store.Cluster) (*Client, error) {
	if e, ok := c.byID.Get(id); ok && c.now().UnixNano()-e.checked.Load() < int64(c.cfg.Revalidate) {
		if rec == nil || rec.Version <= e.client.Version {
			return e.client, nil
		}
	}
	// A flight started before an Invalidate is not joined by the callers after it: they want the new record.
	c.mu.Lock()
	var gen uint64
	if f := c.flights[id]; f != nil {
		gen = f.gen
	}
	c.mu.Unlock()
	ch := c.group.DoChan(strconv.FormatUint(id, 10)+"/"+strconv.FormatUint(gen, 10), func() (any, error) {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
		defer cancel()
		return c.refresh(bctx, id, ref, rec)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the client of cluster %q: %w", ref, context.Cause(ctx))
	case res := <-ch:
		var nf *NotFoundError
		if errors.As(res.Err, &nf) {
			return nil, &NotFoundError{Ref: ref} // the flight may have been started by another reference
		}
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Client), nil
	}
}

// refresh reads the record (unless given) and makes its client: the cached one when the record is not newer, a
// new view over the cached connection when only the record changed, a new connection when its settings did.
// The result is stored only when no Invalidate came meanwhile, and never over a newer record's client.
func (c *Cache) refresh(ctx context.Context, id uint64, ref string, rec *store.Cluster) (*Client, error) {
	c.mu.Lock()
	f := c.flights[id]
	if f == nil {
		f = &flight{}
		c.flights[id] = f
	}
	f.running++
	gen := f.gen
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if f.running--; f.running == 0 {
			delete(c.flights, id)
		}
		c.mu.Unlock()
	}()

	if rec == nil {
		var err error
		if rec, err = c.reg.Get(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				c.byID.Remove(id)
				return nil, &NotFoundError{Ref: ref}
			}
			return nil, fmt.Errorf("looking up cluster %q: %w", ref, err)
		}
	}
	if cl, ok := c.confirm(id, gen, rec); ok {
		return cl, nil
	}
	plain, err := c.opener.Open(rec.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", rec.Name, err)
	}
	rc, fp, err := restConfig(plain, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", rec.Name, err)
	}
	var conn *Conn
	if e, ok := c.byID.Peek(id); ok && e.client.fingerprint == fp {
		conn = e.client.Conn
	} else if conn, err = newConn(rec.Name, rc, fp); err != nil {
		return nil, err
	}
	cl := conn.view(rec)

	c.mu.Lock()
	old, had := c.byID.Peek(id)
	replaced := false
	switch {
	case f.gen != gen:
		// Invalidated while building: this client answers the callers that asked before, but is not kept.
	case had && old.client.Version > rec.Version:
		cl = old.client // a newer record landed meanwhile
	default:
		e := &entry{client: cl}
		e.checked.Store(c.now().UnixNano())
		c.byID.Add(id, e) // replacing a key does not call the eviction callback
		replaced = had && old.client.Conn != conn
	}
	c.mu.Unlock()
	if replaced {
		old.client.CloseIdle()
	}
	return cl, nil
}

// confirm returns the cached client when rec is not newer than it (the same record, or a lagging read),
// marking it checked, unless an Invalidate came since gen.
func (c *Cache) confirm(id, gen uint64, rec *store.Cluster) (*Client, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID.Peek(id)
	if !ok || c.flights[id].gen != gen || rec.Version > e.client.Version {
		return nil, false
	}
	e.checked.Store(c.now().UnixNano())
	return e.client, true
}

// Package kube gives functions a client for a registered cluster: a bounded per-instance cache of clients built
// from the registry, re-validated against the record's version so changes made through another replica take
// effect here without a broadcast, and the middleware that picks the cluster a request is for.
package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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
	}
	return nil
}

// Client is everything a function needs to talk to one cluster. All clients share one HTTP client, so one
// connection pool per cluster.
type Client struct {
	ID         uint64
	Name       string
	Version    uint64 // the registry version this client was built from
	REST       *rest.Config
	HTTP       *http.Client
	Kubernetes kubernetes.Interface
	Dynamic    dynamic.Interface
	Metadata   metadata.Interface

	mu       sync.Mutex
	attached map[any]any
}

// Attached returns the value kept on this client under key, building it on first use. Functions hang their
// per-cluster caches here (a RESTMapper, a CRD resolver): they live exactly as long as the client, so a new
// kubeconfig or a deleted cluster drops them too.
func (c *Client) Attached(key any, build func(*Client) (any, error)) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.attached[key]; ok {
		return v, nil
	}
	v, err := build(c)
	if err != nil {
		return nil, err
	}
	if c.attached == nil {
		c.attached = map[any]any{}
	}
	c.attached[key] = v
	return v, nil
}

// NotFoundError is returned for a cluster reference that matches no registered cluster.
type NotFoundError struct {
	Ref string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("cluster %q not found", e.Ref) }

// Is lets callers treat it like store.ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == store.ErrNotFound }

type entry struct {
	client  *Client
	checked atomic.Int64 // unix nanos of the last time the record's version was confirmed
}

// Cache holds clients by cluster ID. It is safe for concurrent use; one per warm instance.
type Cache struct {
	reg    Registry
	opener Opener
	cfg    Config
	byID   *lru.Cache[uint64, *entry]
	names  *lru.Cache[string, nameEntry]
	group  singleflight.Group
	now    func() time.Time
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
		e.client.HTTP.CloseIdleConnections()
	})
	if err != nil {
		return nil, fmt.Errorf("creating client cache: %w", err)
	}
	names, err := lru.New[string, nameEntry](cfg.CacheSize * 2)
	if err != nil {
		return nil, fmt.Errorf("creating name cache: %w", err)
	}
	return &Cache{reg: reg, opener: opener, cfg: cfg, byID: byID, names: names, now: time.Now}, nil
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

// Invalidate drops a cluster's client, for the replica that made a change (others catch up on revalidation).
func (c *Cache) Invalidate(id uint64) {
	c.byID.Remove(id)
}

// byIDRef returns a cached client still fresh, or re-validates it against rec (fetched when nil), rebuilding
// it when the record changed. Concurrent callers for one cluster share one registry read and one build.
func (c *Cache) byIDRef(ctx context.Context, id uint64, ref string, rec *store.Cluster) (*Client, error) {
	if e, ok := c.byID.Get(id); ok && c.now().UnixNano()-e.checked.Load() < int64(c.cfg.Revalidate) {
		if rec == nil || rec.Version == e.client.Version {
			return e.client, nil
		}
	}
	v, err, _ := c.group.Do(strconv.FormatUint(id, 10), func() (any, error) {
		r := rec
		if r == nil {
			var err error
			if r, err = c.reg.Get(ctx, id); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					c.byID.Remove(id)
					return nil, &NotFoundError{Ref: ref}
				}
				return nil, fmt.Errorf("looking up cluster %q: %w", ref, err)
			}
		}
		if e, ok := c.byID.Peek(id); ok && e.client.Version == r.Version {
			e.checked.Store(c.now().UnixNano())
			return e.client, nil
		}
		cl, err := c.build(r)
		if err != nil {
			return nil, err
		}
		e := &entry{client: cl}
		e.checked.Store(c.now().UnixNano())
		if old, ok := c.byID.Peek(id); ok {
			defer old.client.HTTP.CloseIdleConnections()
		}
		c.byID.Add(id, e)
		return cl, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Client), nil
}

func (c *Cache) build(rec *store.Cluster) (*Client, error) {
	plain, err := c.opener.Open(rec.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", rec.Name, err)
	}
	cfg, err := RESTConfig(plain, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", rec.Name, err)
	}
	return NewClient(rec, cfg)
}

// RESTConfig turns a standalone kubeconfig into a rest.Config with kitefn's limits applied.
func RESTConfig(kubeconfig []byte, cfg Config) (*rest.Config, error) {
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("building client config: %w", err)
	}
	// Explicit limits: client-go's defaults (5 QPS) throttle a dashboard, and no limit at all lets one busy
	// user flood a cluster.
	rc.QPS, rc.Burst, rc.Timeout = cfg.QPS, cfg.Burst, cfg.Timeout
	rc.UserAgent = cfg.UserAgent
	return rc, nil
}

// NewClient builds the typed, dynamic and metadata clients over one shared HTTP client.
func NewClient(rec *store.Cluster, rc *rest.Config) (*Client, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: building HTTP client: %w", rec.Name, err)
	}
	cs, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: building clientset: %w", rec.Name, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: building dynamic client: %w", rec.Name, err)
	}
	md, err := metadata.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: building metadata client: %w", rec.Name, err)
	}
	return &Client{ID: rec.ID, Name: rec.Name, Version: rec.Version, REST: rc, HTTP: hc, Kubernetes: cs,
		Dynamic: dyn, Metadata: md}, nil
}

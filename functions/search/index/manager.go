// Package index is the search function's per-instance index: for each cluster searched, the metadata of its
// objects (names, labels, annotations; never data) per resource and namespace, listed once and kept fresh by
// watches, within a memory budget shared by all clusters of the instance.
package index

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/metadata"

	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/store"
)

// Lookup finds a cluster's current client by ID, for revalidation (kube.Cache.Client with the ID as ref).
type Lookup func(ctx context.Context, id uint64) (*kube.Client, error)

// Options configure a Manager.
type Options struct {
	// Budget bounds the bytes all clusters' indexes may hold; the least recently searched clusters are evicted
	// (their watches stop) beyond it. The most recently searched one is always kept.
	Budget int64
	Log    *zap.SugaredLogger
}

// Manager holds one index per cluster, shared by every caller of the instance.
type Manager struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	total  atomic.Int64

	mu        sync.Mutex
	clusters  map[uint64]*Cluster
	evictions int64
}

// NewManager makes an empty index.
func NewManager(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = zap.NewNop().Sugar()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{opts: opts, ctx: ctx, cancel: cancel, clusters: map[uint64]*Cluster{}}
}

// Cluster is one cluster's index: its kinds, each listed and watched on first use.
type Cluster struct {
	ID   uint64
	conn *kube.Conn
	m    *Manager
	ctx  context.Context
	stop context.CancelFunc
	list metadata.Interface
	strm metadata.Interface

	name     atomic.Pointer[string]
	lastUsed atomic.Int64 // Unix nanoseconds of the last search

	mu    sync.Mutex
	kinds map[string]*Kind
}

// For returns the index of c's cluster, marking it searched now. A different connection (a new kubeconfig)
// drops the old index and starts a new one.
func (m *Manager) For(c *kube.Client) *Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	cl := m.clusters[c.ID]
	if cl != nil && cl.conn != c.Conn {
		m.dropLocked(cl, "its connection changed")
		cl = nil
	}
	if cl == nil {
		ctx, stop := context.WithCancel(m.ctx)
		cl = &Cluster{ID: c.ID, conn: c.Conn, m: m, ctx: ctx, stop: stop, list: c.Metadata,
			strm: c.Stream.Metadata, kinds: map[string]*Kind{}}
		m.clusters[c.ID] = cl
	}
	name := c.Name
	cl.name.Store(&name)
	cl.lastUsed.Store(time.Now().UnixNano())
	return cl
}

// Name is the cluster's name as last searched.
func (cl *Cluster) Name() string { return *cl.name.Load() }

// Kind returns the index of one resource, starting its list and watch on first use.
func (cl *Cluster) Kind(res Resource) *Kind {
	key := res.Key()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if k, ok := cl.kinds[key]; ok {
		return k
	}
	k := newKind(res, &cl.m.total, cl.m.Enforce)
	cl.kinds[key] = k
	if cl.ctx.Err() != nil { // dropped meanwhile: answer "stopped" rather than start a watch nobody stops
		k.mu.Lock()
		k.setState(StateStopped, false, errors.New("index stopped"))
		k.mu.Unlock()
		return k
	}
	cl.m.wg.Add(1)
	go func() {
		defer cl.m.wg.Done()
		k.run(cl.ctx, cl.list, cl.strm)
	}()
	return k
}

// Lookup returns a kind's index if it was started.
func (cl *Cluster) Lookup(key string) (*Kind, bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	k, ok := cl.kinds[key]
	return k, ok
}

// Kinds lists the kinds started, in kind order.
func (cl *Cluster) Kinds() []*Kind {
	cl.mu.Lock()
	out := make([]*Kind, 0, len(cl.kinds))
	for _, k := range cl.kinds {
		out = append(out, k)
	}
	cl.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Resource.Order < out[j].Resource.Order })
	return out
}

// Drop stops the cluster's watches and forgets its index (a deleted cluster).
func (m *Manager) Drop(id uint64, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cl := m.clusters[id]; cl != nil {
		m.dropLocked(cl, why)
	}
}

// DropName drops the index of the cluster last searched under name (a lookup said it is gone).
func (m *Manager) DropName(name, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cl := range m.clusters {
		if cl.Name() == name {
			m.dropLocked(cl, why)
		}
	}
}

// Retain drops every index whose cluster is not in ids (the registry's current list).
func (m *Manager) Retain(ids map[uint64]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, cl := range m.clusters {
		if !ids[id] {
			m.dropLocked(cl, "the cluster was deleted")
		}
	}
}

func (m *Manager) dropLocked(cl *Cluster, why string) {
	cl.stop()
	delete(m.clusters, cl.ID)
	cl.mu.Lock()
	for _, k := range cl.kinds {
		k.release()
	}
	cl.mu.Unlock()
	m.opts.Log.Infow("search index dropped", "cluster", cl.Name(), "why", why)
}

// Enforce evicts the least recently searched clusters while the index is over its budget; the most recently
// searched cluster stays, whatever it costs.
func (m *Manager) Enforce() {
	if m.total.Load() <= m.opts.Budget {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	byUse := make([]*Cluster, 0, len(m.clusters))
	for _, cl := range m.clusters {
		byUse = append(byUse, cl)
	}
	slices.SortFunc(byUse, func(a, b *Cluster) int { return int(a.lastUsed.Load() - b.lastUsed.Load()) })
	for i := 0; i < len(byUse)-1 && m.total.Load() > m.opts.Budget; i++ {
		m.evictions++
		m.dropLocked(byUse[i], "evicted: over the memory budget")
	}
}

// Revalidate drops the indexes of clusters that were deleted or whose connection changed, as lookup sees them
// now, so their watches do not outlive them.
func (m *Manager) Revalidate(ctx context.Context, lookup Lookup) {
	m.mu.Lock()
	ids := make([]uint64, 0, len(m.clusters))
	for id := range m.clusters {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		c, err := lookup(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			m.Drop(id, "the cluster was deleted")
		case err != nil:
			// The registry is unreachable: keep what we have.
		default:
			m.mu.Lock()
			if cl := m.clusters[id]; cl != nil && cl.conn != c.Conn {
				m.dropLocked(cl, "its connection changed")
			}
			m.mu.Unlock()
		}
	}
}

// Stop ends every watch and waits for them (bounded by ctx).
func (m *Manager) Stop(ctx context.Context) error {
	m.cancel()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Status is GET /api/v1/search/status.
type Status struct {
	BudgetBytes int64           `json:"budgetBytes"`
	Bytes       int64           `json:"bytes"`
	Objects     int             `json:"objects"`
	Evictions   int64           `json:"evictions"`
	Clusters    []ClusterStatus `json:"clusters"`
}

// ClusterStatus is one cluster's index.
type ClusterStatus struct {
	Name string `json:"name"`
	ID   uint64 `json:"id"`
	// Indexed: every kind started is listed and watched (answers come from memory).
	Indexed      bool         `json:"indexed"`
	Objects      int          `json:"objects"`
	Bytes        int64        `json:"bytes"`
	LastSync     *time.Time   `json:"lastSync,omitempty"` // the latest list that landed
	LastSearched time.Time    `json:"lastSearched"`
	Watch        string       `json:"watch"` // watching, or the first kind's state that is not
	Kinds        []KindStatus `json:"kinds"`
}

// Status reports every cluster's index, most recently searched first.
func (m *Manager) Status() Status {
	m.mu.Lock()
	cls := make([]*Cluster, 0, len(m.clusters))
	for _, cl := range m.clusters {
		cls = append(cls, cl)
	}
	st := Status{BudgetBytes: m.opts.Budget, Bytes: m.total.Load(), Evictions: m.evictions,
		Clusters: []ClusterStatus{}}
	m.mu.Unlock()
	slices.SortFunc(cls, func(a, b *Cluster) int { return int(b.lastUsed.Load() - a.lastUsed.Load()) })
	for _, cl := range cls {
		cs := ClusterStatus{Name: cl.Name(), ID: cl.ID, Indexed: true, Watch: StateWatching,
			LastSearched: time.Unix(0, cl.lastUsed.Load()).UTC(), Kinds: []KindStatus{}}
		for _, k := range cl.Kinds() {
			ks := k.Status()
			cs.Kinds = append(cs.Kinds, ks)
			cs.Objects += ks.Objects
			cs.Bytes += ks.Bytes
			if !ks.Synced {
				if cs.Indexed {
					cs.Watch = ks.Watch
				}
				cs.Indexed = false
			}
			if ks.LastSync != nil && (cs.LastSync == nil || ks.LastSync.After(*cs.LastSync)) {
				cs.LastSync = ks.LastSync
			}
		}
		st.Objects += cs.Objects
		st.Clusters = append(st.Clusters, cs)
	}
	return st
}

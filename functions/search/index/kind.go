package index

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
)

// Watch states of a kind.
const (
	StateListing   = "listing"   // the first list has not landed
	StateWatching  = "watching"  // listed and watching: answers are fresh
	StateRelisting = "relisting" // the watch ended (expired, 410 Gone, dropped): not served until the relist lands
	StateError     = "error"     // the last list failed (forbidden, unreachable); retried with backoff
	StateStopped   = "stopped"
)

// Kind is the index of one resource of one cluster: namespace → bucket of entries, kept by a Reflector over
// the metadata client. It is the Reflector's store: each object becomes an entry at once.
type Kind struct {
	Resource Resource
	total    *atomic.Int64 // the manager's byte count
	onSync   func()

	mu       sync.RWMutex
	buckets  map[string]*bucket
	objects  int
	bytes    int64
	state    string
	synced   bool
	err      error
	lastSync time.Time
	changed  chan struct{} // closed and replaced on every state change
	dropped  bool          // released: a reflector still stopping must not add anything
}

type bucket struct {
	entries []entry
	pos     map[string]int32
}

func newKind(res Resource, total *atomic.Int64, onSync func()) *Kind {
	return &Kind{Resource: res, total: total, onSync: onSync, buckets: map[string]*bucket{}, state: StateListing,
		changed: make(chan struct{})}
}

// setState records a state change and wakes the waiters. Callers hold k.mu.
func (k *Kind) setState(state string, synced bool, err error) {
	k.state, k.synced, k.err = state, synced, err
	close(k.changed)
	k.changed = make(chan struct{})
}

// Wait returns once the kind is synced (fresh), or with its list error, or when ctx ends. waited says the
// answer had to wait for a list.
func (k *Kind) Wait(ctx context.Context) (waited bool, err error) {
	for {
		k.mu.RLock()
		synced, kerr, ch := k.synced, k.err, k.changed
		k.mu.RUnlock()
		switch {
		case synced:
			return waited, nil
		case kerr != nil:
			return waited, kerr
		}
		waited = true
		select {
		case <-ch:
		case <-ctx.Done():
			return true, fmt.Errorf("listing %s: %w", k.Resource.Key(), context.Cause(ctx))
		}
	}
}

// Scan offers every match of q to top and returns how many objects it looked at. A bucket the query's
// namespace or Allow rules out is skipped whole.
func (k *Kind) Scan(cluster string, q *Query, top *Top) int {
	res := &k.Resource
	if q.Namespace != "" && !res.Namespaced {
		return 0
	}
	key := res.Key()
	k.mu.RLock()
	defer k.mu.RUnlock()
	scanned := 0
	scan := func(ns string, b *bucket) {
		if q.Allow != nil && !q.Allow(key, ns) {
			return
		}
		scanned += len(b.entries)
		for i := range b.entries {
			e := &b.entries[i]
			if score, how := q.match(e); score > 0 {
				top.offer(cluster, res, ns, score, how, e)
			}
		}
	}
	if q.Namespace != "" {
		if b, ok := k.buckets[q.Namespace]; ok {
			scan(q.Namespace, b)
		}
		return scanned
	}
	for ns, b := range k.buckets {
		scan(ns, b)
	}
	return scanned
}

// KindStatus is one kind's part of the status.
type KindStatus struct {
	Resource string     `json:"resource"`
	Kind     string     `json:"kind"`
	Objects  int        `json:"objects"`
	Bytes    int64      `json:"bytes"`
	Watch    string     `json:"watch"`
	Synced   bool       `json:"synced"`
	LastSync *time.Time `json:"lastSync,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// Status reports the kind.
func (k *Kind) Status() KindStatus {
	k.mu.RLock()
	defer k.mu.RUnlock()
	s := KindStatus{Resource: k.Resource.Key(), Kind: k.Resource.Kind, Objects: k.objects, Bytes: k.bytes,
		Watch: k.state, Synced: k.synced}
	if !k.lastSync.IsZero() {
		t := k.lastSync.UTC()
		s.LastSync = &t
	}
	if k.err != nil {
		s.Error = k.err.Error()
	}
	return s
}

// Synced says the kind is listed and watched: answers from it are fresh.
func (k *Kind) Synced() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.synced
}

// Objects is how many objects the kind holds.
func (k *Kind) Objects() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.objects
}

// run keeps the kind fresh until ctx ends: list (resourceVersion=0 first, from the apiserver's watch cache),
// then watch with bookmarks. Every ListAndWatch after the first is a relist — the watch ended (expired, 410
// Gone, dropped) — and the kind is not served until it lands. list is the bounded metadata client (a hung
// cluster cannot hold a list forever), stream the one without a request timeout, for watches.
func (k *Kind) run(ctx context.Context, list, stream metadata.Interface) {
	gvr := k.Resource.GVR
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list.Resource(gvr).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return stream.Resource(gvr).Watch(ctx, o)
		},
	}
	// A plain LIST (not the streaming watch-list): metadata-only, protobuf, served from the watch cache.
	r := cache.NewReflectorWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, noWatchList{}),
		&metav1.PartialObjectMetadata{}, k, cache.ReflectorOptions{Name: "search " + k.Resource.Key()})
	backoff := wait.Backoff{Duration: 800 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 1 << 30,
		Cap: 30 * time.Second}
	first := true
	for ctx.Err() == nil {
		if !first {
			k.mu.Lock()
			if k.state != StateError {
				k.setState(StateRelisting, false, nil)
			}
			k.mu.Unlock()
		}
		first = false
		began := time.Now()
		err := r.ListAndWatchWithContext(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			k.mu.Lock()
			k.setState(StateError, false, err)
			k.mu.Unlock()
		}
		if time.Since(began) > 2*time.Minute {
			backoff.Duration = 800 * time.Millisecond // it ran well for a while: start over
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff.Step()):
		}
	}
	k.mu.Lock()
	k.setState(StateStopped, false, errors.New("index stopped"))
	k.mu.Unlock()
}

type noWatchList struct{}

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// The Reflector's store.

func (k *Kind) Add(obj any) error    { return k.put(obj) }
func (k *Kind) Update(obj any) error { return k.put(obj) }
func (k *Kind) Resync() error        { return nil }

func (k *Kind) put(obj any) error {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("search index: unexpected %T", obj)
	}
	e := newEntry(m)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dropped {
		return nil
	}
	b := k.buckets[m.Namespace]
	if b == nil {
		b = &bucket{pos: map[string]int32{}}
		k.buckets[m.Namespace] = b
	}
	delta := e.size()
	if i, ok := b.pos[m.Name]; ok {
		delta -= b.entries[i].size()
		b.entries[i] = e
	} else {
		b.pos[m.Name] = int32(len(b.entries))
		b.entries = append(b.entries, e)
		k.objects++
	}
	k.bytes += delta
	k.total.Add(delta)
	return nil
}

func (k *Kind) Delete(obj any) error {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		if d, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
			m, ok = d.Obj.(*metav1.PartialObjectMetadata)
		}
		if !ok {
			return fmt.Errorf("search index: unexpected %T", obj)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.buckets[m.Namespace]
	if b == nil {
		return nil
	}
	i, ok := b.pos[m.Name]
	if !ok {
		return nil
	}
	delta := -b.entries[i].size()
	last := int32(len(b.entries) - 1)
	if i != last {
		b.entries[i] = b.entries[last]
		b.pos[b.entries[i].name] = i
	}
	b.entries[last] = entry{}
	b.entries = b.entries[:last]
	delete(b.pos, m.Name)
	if len(b.entries) == 0 {
		delete(k.buckets, m.Namespace)
	}
	k.objects--
	k.bytes += delta
	k.total.Add(delta)
	return nil
}

// Replace swaps in a whole list: the first list, or a relist after the watch fell behind. The kind is fresh
// again once it lands.
func (k *Kind) Replace(list []any, _ string) error {
	buckets := map[string]*bucket{}
	var bytes int64
	for _, obj := range list {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return fmt.Errorf("search index: unexpected %T", obj)
		}
		b := buckets[m.Namespace]
		if b == nil {
			b = &bucket{pos: map[string]int32{}}
			buckets[m.Namespace] = b
		}
		e := newEntry(m)
		bytes += e.size()
		if i, dup := b.pos[m.Name]; dup {
			bytes -= b.entries[i].size()
			b.entries[i] = e
			continue
		}
		b.pos[m.Name] = int32(len(b.entries))
		b.entries = append(b.entries, e)
	}
	objects := 0
	for _, b := range buckets {
		objects += len(b.entries)
	}
	k.mu.Lock()
	if k.dropped {
		k.mu.Unlock()
		return nil
	}
	k.total.Add(bytes - k.bytes)
	k.buckets, k.objects, k.bytes, k.lastSync = buckets, objects, bytes, time.Now()
	k.setState(StateWatching, true, nil)
	k.mu.Unlock()
	if k.onSync != nil {
		k.onSync()
	}
	return nil
}

// release gives the kind's bytes back to the manager's count (the cluster is dropped).
func (k *Kind) release() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.total.Add(-k.bytes)
	k.buckets, k.objects, k.bytes, k.dropped = map[string]*bucket{}, 0, 0, true
}

// Names lists the names (and UIDs) of the kind's objects; for small kinds (the CRDs of a cluster).
func (k *Kind) Names() map[string]string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make(map[string]string, k.objects)
	for _, b := range k.buckets {
		for i := range b.entries {
			out[b.entries[i].name] = b.entries[i].uid
		}
	}
	return out
}

// Namespaces lists the namespaces the kind holds objects in ("" for a cluster-scoped kind's objects): what a
// per-namespace access decision has to be asked for before a Scan, whose Allow runs under the kind's lock.
func (k *Kind) Namespaces() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, 0, len(k.buckets))
	for ns := range k.buckets {
		out = append(out, ns)
	}
	return out
}

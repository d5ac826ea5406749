// Package graph builds the graph of how one Kubernetes object relates to others: owners and owned objects,
// selectors, references by name (volumes, env, roles, backends), in both directions from a start object, level
// by level up to a depth. Objects come through a Lister, so a warm search index can serve them instead of the
// cluster; everything listed is cached for the one build.
package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Edge types.
const (
	Owns    = "owns"    // the owner → an object whose ownerReferences name it
	Selects = "selects" // Service, NetworkPolicy, PodDisruptionBudget → the Pods its label selector matches
	Uses    = "uses"    // a Pod or pod template → ConfigMap, Secret, PVC, ServiceAccount; TLS Secrets; Middlewares
	Routes  = "routes"  // traffic or calls go from → to: Ingress, HTTPRoute, IngressRoute, webhooks → Service; HTTPRoute → Gateway
	Scales  = "scales"  // HorizontalPodAutoscaler → its scale target
	RunsOn  = "runs-on" // Pod → Node
	Binds   = "binds"   // RoleBinding/ClusterRoleBinding → role and ServiceAccount subjects; EndpointSlice → its Service
	Stores  = "stores"  // PVC → PV (its volume), PV → StorageClass
)

// Query is one list: the objects of GVR in Namespace ("" = cluster-scoped or every namespace) matching the
// selectors. MetadataOnly says apiVersion, kind and metadata are enough (the spec is never read).
type Query struct {
	GVR schema.GroupVersionResource
	// Kind is GVR's kind, for answers whose items come without apiVersion and kind (metadata-only lists).
	Kind          string
	Namespace     string
	LabelSelector string
	FieldSelector string
	MetadataOnly  bool
}

// Lister is where the builder reads objects. A search index that keeps full objects can serve List when it is
// warm and fall back to the cluster otherwise. Errors are the cluster's (apierrors statuses): a NotFound for
// the whole list means the resource is not served (a CRD not installed) and is not reported.
type Lister interface {
	List(ctx context.Context, q Query) ([]*unstructured.Unstructured, error)
	Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error)
}

// Mapper maps kinds to resources (a discovery RESTMapper).
type Mapper interface {
	RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error)
}

// Node is one object of the graph.
type Node struct {
	ID         string `json:"id"`
	Resource   string `json:"resource"` // plural, group-qualified outside the core group: deployments.apps
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Status     string `json:"status,omitempty"`
	// Missing: something references this object and it does not exist.
	Missing bool `json:"missing"`
}

// Edge is a relation between two nodes, by ID.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Type string `json:"type"`
}

// ListError is an edge family skipped because its list failed (often: the credentials may not list it).
type ListError struct {
	Resource string `json:"resource"`
	Status   int    `json:"status"`
	Message  string `json:"message"`
}

// Graph is the answer.
type Graph struct {
	Nodes     []Node      `json:"nodes"`
	Edges     []Edge      `json:"edges"`
	Truncated bool        `json:"truncated,omitempty"`
	Errors    []ListError `json:"errors,omitempty"`
}

// Builder builds graphs; one Builder serves one cluster and may be reused.
type Builder struct {
	Lister   Lister
	Mapper   Mapper
	MaxNodes int // a graph reaching it is cut and marked truncated
	// Concurrency bounds the reads in flight at once.
	Concurrency int
	// Refresh, when set, re-reads the Mapper's kinds (discovery) and says whether it did: called, at most once
	// per build, when a reference names a kind the Mapper does not know (an owner of a CRD installed since).
	// Kinds merely searched (HTTPRoute, IngressRoute…) never call it: most clusters lack some of them.
	Refresh func() bool
	// Visible, when set, says whether objects of a namespace ("" = cluster-scoped) may be in the graph (the
	// caller's namespace scope): others are neither shown, nor expanded, nor read where the read is theirs
	// alone, and a reference to one is not shown as missing either.
	Visible func(namespace string) bool
}

// ID is the node ID of an object of a resource: <resource>/<namespace>/<name>, <resource>/<name> when
// cluster-scoped.
func ID(gvr schema.GroupVersionResource, namespace, name string) string {
	if namespace == "" {
		return resourceName(gvr) + "/" + name
	}
	return resourceName(gvr) + "/" + namespace + "/" + name
}

// Resource is how a node names its resource: the plural, group-qualified outside the core group.
func Resource(gvr schema.GroupVersionResource) string { return resourceName(gvr) }

func resourceName(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource
	}
	return gvr.Resource + "." + gvr.Group
}

// build is the state of one Build.
type build struct {
	*Builder
	cache *cache

	nodes   map[string]*Node
	order   []string
	uids    map[string]string // UID → node ID: an object reached twice is one node
	edges   map[Edge]bool
	edgeOrd []Edge
	cut     bool

	mu        sync.Mutex
	mappings  map[schema.GroupVersionKind]mapping // the Mapper's answers (a RESTMapper's lookups are not cheap)
	refreshed bool
}

type mapping struct {
	m   *meta.RESTMapping
	err error
}

// mapping is the Mapper's mapping of gk (in version, when given), remembered for the build.
func (st *build) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	key := gk.WithVersion(version)
	st.mu.Lock()
	defer st.mu.Unlock()
	if v, ok := st.mappings[key]; ok {
		return v.m, v.err
	}
	var versions []string
	if version != "" {
		versions = []string{version}
	}
	m, err := st.Mapper.RESTMapping(gk, versions...)
	st.mappings[key] = mapping{m, err}
	return m, err
}

// link is a relation found while expanding a node: to (or from, when inbound) another object.
type link struct {
	typ     string
	inbound bool
	other   object
}

// object is an object found (obj set) or referenced and absent (obj nil, missing).
type object struct {
	gvr       schema.GroupVersionResource
	kind      string
	namespace string
	name      string
	obj       *unstructured.Unstructured
}

func (o object) id() string { return ID(o.gvr, o.namespace, o.name) }

// Build walks depth levels out from start (an object of gvr) in both directions.
func (b *Builder) Build(ctx context.Context, gvr schema.GroupVersionResource, start *unstructured.Unstructured,
	depth int) *Graph {
	st := &build{Builder: b, cache: newCache(b.Lister, b.Concurrency), nodes: map[string]*Node{}, uids: map[string]string{},
		edges: map[Edge]bool{}, mappings: map[schema.GroupVersionKind]mapping{}}
	first := object{gvr: gvr, kind: start.GetKind(), namespace: start.GetNamespace(), name: start.GetName(), obj: start}
	frontier := []object{first}
	st.add(first)
	for level := 0; level < depth && len(frontier) > 0 && !st.cut; level++ {
		found := make([][]link, len(frontier))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(1, b.Concurrency))
		for i, o := range frontier {
			g.Go(func() error {
				found[i] = st.expand(gctx, o)
				return nil
			})
		}
		_ = g.Wait() // expand reports failures as list errors, never fails the build
		var next []object
		for i, o := range frontier {
			from := st.idOf(o)
			for _, l := range found[i] {
				to, fresh, ok := st.addOther(l.other)
				if !ok {
					continue
				}
				if l.inbound {
					st.edge(to, from, l.typ)
				} else {
					st.edge(from, to, l.typ)
				}
				if fresh && l.other.obj != nil {
					next = append(next, l.other)
				}
			}
		}
		frontier = next
	}
	return st.result()
}

// idOf is the node ID an object was added under (an object met under two names keeps the first).
func (st *build) idOf(o object) string {
	if o.obj != nil {
		if id, ok := st.uids[string(o.obj.GetUID())]; ok {
			return id
		}
	}
	return o.id()
}

// visible says whether objects of namespace may be in the graph.
func (st *build) visible(namespace string) bool { return st.Visible == nil || st.Visible(namespace) }

// addOther adds a linked object unless it is there already; ok is false when the graph is full or the object
// is not visible.
func (st *build) addOther(o object) (id string, fresh, ok bool) {
	if !st.visible(o.namespace) {
		return "", false, false
	}
	id = st.idOf(o)
	if _, seen := st.nodes[id]; seen {
		return id, false, true
	}
	if len(st.nodes) >= st.MaxNodes {
		st.cut = true
		return "", false, false
	}
	st.add(o)
	return id, true, true
}

func (st *build) add(o object) {
	n := &Node{ID: o.id(), Resource: resourceName(o.gvr), APIVersion: o.gvr.GroupVersion().String(), Kind: o.kind,
		Namespace: o.namespace, Name: o.name, Missing: o.obj == nil}
	if o.obj != nil {
		n.UID = string(o.obj.GetUID())
		n.Status = Status(o.obj)
		if n.APIVersion == "" || o.obj.GetAPIVersion() != "" {
			n.APIVersion = o.obj.GetAPIVersion()
		}
		st.uids[n.UID] = n.ID
	}
	st.nodes[n.ID] = n
	st.order = append(st.order, n.ID)
}

func (st *build) edge(from, to, typ string) {
	if from == to {
		return
	}
	e := Edge{From: from, To: to, Type: typ}
	if !st.edges[e] {
		st.edges[e] = true
		st.edgeOrd = append(st.edgeOrd, e)
	}
}

func (st *build) result() *Graph {
	g := &Graph{Nodes: make([]Node, 0, len(st.order)), Edges: st.edgeOrd, Truncated: st.cut, Errors: st.cache.errors()}
	for _, id := range st.order {
		g.Nodes = append(g.Nodes, *st.nodes[id])
	}
	if g.Edges == nil {
		g.Edges = []Edge{}
	}
	return g
}

// expand finds every relation of o: what it references (owners, names, selectors), what references it
// (objects that name or select it), and what it owns. Each part runs at once (the cache bounds the reads in
// flight); the answer keeps their order.
func (st *build) expand(ctx context.Context, o object) []link {
	var parts []func() []link
	for _, r := range st.cache.refsOf(o.obj) {
		parts = append(parts, func() []link { return st.resolve(ctx, r) })
	}
	for _, s := range sourcesOf(o.obj) {
		parts = append(parts, func() []link { return st.referrers(ctx, o.obj, s) })
	}
	if o.namespace != "" { // a cluster-scoped owner's objects could be anywhere: not searched
		for _, gk := range childKinds(o.obj.GroupVersionKind().GroupKind()) {
			parts = append(parts, func() []link { return st.owned(ctx, o, gk) })
		}
	}
	found := make([][]link, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() { found[i] = part() })
	}
	wg.Wait()
	var out []link
	for _, f := range found {
		out = append(out, f...)
	}
	return out
}

// refresh re-reads the kinds once per build, when the Builder can, and forgets the mappings found so far.
func (st *build) refresh() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.refreshed || st.Refresh == nil {
		return false
	}
	st.refreshed = true
	if !st.Refresh() {
		return false
	}
	clear(st.mappings)
	return true
}

// resolve turns a reference of o into the objects it names or selects.
func (st *build) resolve(ctx context.Context, r ref) []link {
	m, err := st.mapping(r.gk, r.version)
	if err != nil && meta.IsNoMatchError(err) && r.selector == nil && st.refresh() {
		m, err = st.mapping(r.gk, r.version)
	}
	if err != nil && r.selector != nil {
		return nil // selecting a kind the cluster does not serve
	}
	var gvr schema.GroupVersionResource
	namespace := r.namespace
	if err == nil {
		gvr = m.Resource
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			namespace = ""
		}
	}
	if !st.visible(namespace) {
		return nil // neither read nor shown, not even as missing
	}
	if err != nil {
		// A kind the cluster does not serve cannot exist: a missing node named as kubectl would guess.
		gvr, _ = meta.UnsafeGuessKindToResource(r.gk.WithVersion(r.version))
	}
	if r.selector != nil {
		q := query(m, namespace)
		q.LabelSelector = r.selector.String()
		objs := st.cache.list(ctx, q)
		out := make([]link, 0, len(objs))
		for _, x := range objs {
			out = append(out, link{typ: r.typ, inbound: r.inbound, other: objectOf(gvr, x)})
		}
		return out
	}
	other := object{gvr: gvr, kind: r.gk.Kind, namespace: namespace, name: r.name}
	if err == nil {
		x, found, known := st.cache.get(ctx, query(m, namespace), r.name)
		if !known {
			return nil // could not be read (reported): neither there nor missing
		}
		if found && (r.uid == "" || string(x.GetUID()) == r.uid) {
			other.obj = x
			other.kind = x.GetKind()
		}
	}
	if other.obj == nil && r.optional {
		return nil
	}
	return []link{{typ: r.typ, inbound: r.inbound, other: other}}
}

// referrers lists the objects of a source kind and keeps those whose references reach target.
func (st *build) referrers(ctx context.Context, target *unstructured.Unstructured, s source) []link {
	m, err := st.mapping(s.gk, "")
	if err != nil {
		return nil // not installed
	}
	q := query(m, target.GetNamespace())
	if s.scope != nil {
		q = s.scope(q, target)
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		q.Namespace = ""
	}
	if !st.visible(q.Namespace) && (q.Namespace != "" || m.Scope.Name() != meta.RESTScopeNameNamespace) {
		return nil // a list of objects that could not be shown (a list across namespaces is filtered instead)
	}
	gk := target.GroupVersionKind().GroupKind()
	var out []link
	for _, x := range st.cache.list(ctx, q) {
		for _, r := range st.cache.refsOf(x) {
			if !r.inbound && r.gk == gk && r.reaches(target) {
				out = append(out, link{typ: r.typ, inbound: true, other: objectOf(m.Resource, x)})
			}
		}
	}
	return out
}

// owned lists the objects of a kind in o's namespace and keeps those o owns.
func (st *build) owned(ctx context.Context, o object, gk schema.GroupKind) []link {
	m, err := st.mapping(gk, "")
	if err != nil {
		return nil
	}
	uid := o.obj.GetUID()
	var out []link
	for _, x := range st.cache.list(ctx, query(m, o.namespace)) {
		for _, or := range x.GetOwnerReferences() {
			if or.UID == uid {
				out = append(out, link{typ: Owns, other: objectOf(m.Resource, x)})
				break
			}
		}
	}
	return out
}

// query is the list of a mapping's objects in namespace ("" = all), with only their metadata where that serves.
func query(m *meta.RESTMapping, namespace string) Query {
	return Query{GVR: m.Resource, Kind: m.GroupVersionKind.Kind, Namespace: namespace,
		MetadataOnly: metadataOnly(m.Resource)}
}

func objectOf(gvr schema.GroupVersionResource, x *unstructured.Unstructured) object {
	return object{gvr: gvr, kind: x.GetKind(), namespace: x.GetNamespace(), name: x.GetName(), obj: x}
}

// cache holds what one build listed and read, so each list (or GET) is done once and concurrent expansions
// wait for the same one.
type cache struct {
	lister Lister
	reads  *semaphore.Weighted // reads in flight

	mu      sync.Mutex
	entries map[readKey]*entry
	errs    map[string]ListError
	refs    map[*unstructured.Unstructured][]ref // refsOf of what was read, computed once
}

// readKey names one read: a list, or a GET of name.
type readKey struct {
	q    Query
	name string
}

type entry struct {
	done   chan struct{}
	objs   []*unstructured.Unstructured
	byName map[string]*unstructured.Unstructured
	failed bool // the read failed (reported); a resource the cluster does not serve reads as empty instead
}

func newCache(l Lister, concurrency int) *cache {
	return &cache{lister: l, reads: semaphore.NewWeighted(int64(max(1, concurrency))), entries: map[readKey]*entry{},
		errs: map[string]ListError{}, refs: map[*unstructured.Unstructured][]ref{}}
}

// list returns the objects of q, listing them on first use; a failure is recorded and reads as no objects.
func (c *cache) list(ctx context.Context, q Query) []*unstructured.Unstructured {
	return c.load(ctx, readKey{q: q}, q.GVR, func() ([]*unstructured.Unstructured, error) {
		return c.lister.List(ctx, q)
	}).objs
}

// get finds one object: namespaced ones through the list of their namespace (one list serves every reference
// into it), cluster-scoped ones by a GET (listing every Node or PersistentVolume to find one would cost more).
// known is false when it could not be read.
func (c *cache) get(ctx context.Context, q Query, name string) (obj *unstructured.Unstructured, found, known bool) {
	var e *entry
	if q.Namespace != "" {
		e = c.load(ctx, readKey{q: q}, q.GVR, func() ([]*unstructured.Unstructured, error) {
			return c.lister.List(ctx, q)
		})
	} else {
		e = c.load(ctx, readKey{q: q, name: name}, q.GVR, func() ([]*unstructured.Unstructured, error) {
			x, err := c.lister.Get(ctx, q.GVR, "", name)
			if err != nil {
				return nil, err
			}
			return []*unstructured.Unstructured{x}, nil
		})
	}
	if e.failed {
		return nil, false, false
	}
	obj = e.byName[name]
	return obj, obj != nil, true
}

// load runs read once per key; other callers wait for its answer (or their context).
func (c *cache) load(ctx context.Context, key readKey, gvr schema.GroupVersionResource,
	read func() ([]*unstructured.Unstructured, error)) *entry {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e
		case <-ctx.Done():
			return &entry{failed: true}
		}
	}
	e := &entry{done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()
	defer close(e.done)

	err := c.reads.Acquire(ctx, 1)
	var objs []*unstructured.Unstructured
	if err == nil {
		objs, err = read()
		c.reads.Release(1)
	}
	switch {
	case err == nil:
		e.objs = objs
	case apierrors.IsNotFound(err):
		// The object or, for a list, the resource is not there (a CRD not installed): nothing to show.
	default:
		e.failed = true
		c.report(gvr, err)
	}
	e.byName = make(map[string]*unstructured.Unstructured, len(e.objs))
	for _, x := range e.objs {
		e.byName[x.GetName()] = x
	}
	return e
}

// refsOf is refsOf(x), computed once per object read.
func (c *cache) refsOf(x *unstructured.Unstructured) []ref {
	c.mu.Lock()
	r, ok := c.refs[x]
	c.mu.Unlock()
	if ok {
		return r
	}
	r = refsOf(x)
	c.mu.Lock()
	c.refs[x] = r
	c.mu.Unlock()
	return r
}

// report records a failed list once per resource.
func (c *cache) report(gvr schema.GroupVersionResource, err error) {
	le := ListError{Resource: resourceName(gvr), Status: http.StatusBadGateway, Message: err.Error()}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		le.Status = int(status.Status().Code)
		if m := status.Status().Message; m != "" {
			le.Message = m
		}
	} else if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		le.Status = http.StatusGatewayTimeout
		le.Message = fmt.Sprintf("listing %s did not finish in time", le.Resource)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.errs[le.Resource]; !ok {
		c.errs[le.Resource] = le
	}
}

func (c *cache) errors() []ListError {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ListError, 0, len(c.errs))
	for _, e := range c.errs {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// selectorOf parses a label selector map; nil for an empty one (selecting nothing, as Services do).
func selectorOf(m map[string]string) labels.Selector {
	if len(m) == 0 {
		return nil
	}
	return labels.SelectorFromSet(m)
}

package index

import (
	"container/heap"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is one searchable kind of a cluster.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
	// Order ranks kinds for ties (lower first): the built-in kinds in their menu order, then CRD kinds.
	Order int
}

// Key names the resource: plural for the core group, plural.group otherwise (kubectl's fully qualified name).
func (r Resource) Key() string {
	if r.GVR.Group == "" {
		return r.GVR.Resource
	}
	return r.GVR.Resource + "." + r.GVR.Group
}

// APIVersion is group/version, or the version alone for the core group.
func (r Resource) APIVersion() string { return r.GVR.GroupVersion().String() }

// How an object matched; the score orders them.
const (
	MatchName       = "name"
	MatchLabel      = "label"
	MatchAnnotation = "annotation"

	ScoreExact      = 100
	ScorePrefix     = 80
	ScoreSubstring  = 60
	ScoreLabelExact = 45 // label search: the value is the one asked for
	ScoreLabel      = 40
	ScoreAnnotation = 20
)

// Query is what to look for, already lower-cased: a plain term (name, label, annotation), or a label
// (LabelKey, with a value containing LabelValue).
type Query struct {
	Term       string
	LabelKey   string
	LabelValue string
	IsLabel    bool
	// Namespace, when set, keeps only namespaced kinds in that namespace.
	Namespace string
	// Allow, when set, is asked once per (resource, namespace) bucket: the caller's filter (RBAC later).
	Allow func(resource, namespace string) bool
}

// match scores one entry; 0 is no match.
func (q *Query) match(e *entry) (int, string) {
	if q.IsLabel {
		if e.llabels == "" {
			return 0, ""
		}
		if ok, exact := labelMatch(e.llabels, q.LabelKey, q.LabelValue); ok {
			if exact {
				return ScoreLabelExact, MatchLabel
			}
			return ScoreLabel, MatchLabel
		}
		return 0, ""
	}
	t := q.Term
	switch {
	case e.lname == t:
		return ScoreExact, MatchName
	case strings.HasPrefix(e.lname, t):
		return ScorePrefix, MatchName
	case strings.Contains(e.lname, t):
		return ScoreSubstring, MatchName
	case e.llabels != "" && strings.Contains(e.llabels, t):
		return ScoreLabel, MatchLabel
	case e.lannots != "" && strings.Contains(e.lannots, t):
		return ScoreAnnotation, MatchAnnotation
	}
	return 0, ""
}

// Hit is one match, copied out of the index so it stays valid after the index's lock is released.
type Hit struct {
	Cluster   string
	Resource  *Resource
	Namespace string
	Score     int
	Match     string
	e         entry
}

// Name, UID, Labels and Created read the object's metadata.
func (h *Hit) Name() string              { return h.e.name }
func (h *Hit) UID() string               { return h.e.uid }
func (h *Hit) Labels() map[string]string { return unpack(h.e.labels) }
func (h *Hit) Created() time.Time        { return time.Unix(h.e.created, 0).UTC() }

// Better orders hits: score, then kind order, then name, namespace and cluster (a total order, so answers are
// stable).
func Better(a, b *Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	if a.Resource.Order != b.Resource.Order {
		return a.Resource.Order < b.Resource.Order
	}
	if a.e.name != b.e.name {
		return a.e.name < b.e.name
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Cluster < b.Cluster
}

// Top keeps the best Limit hits with a bounded heap (worst on top), and counts every match: a search never
// holds all its matches.
type Top struct {
	Limit int
	Total int
	hits  []Hit
}

// NewTop makes a Top for limit hits.
func NewTop(limit int) *Top { return &Top{Limit: limit, hits: make([]Hit, 0, min(limit, 64))} }

func (t *Top) Len() int           { return len(t.hits) }
func (t *Top) Less(i, j int) bool { return Better(&t.hits[j], &t.hits[i]) }
func (t *Top) Swap(i, j int)      { t.hits[i], t.hits[j] = t.hits[j], t.hits[i] }
func (t *Top) Push(x any)         { t.hits = append(t.hits, x.(Hit)) }
func (t *Top) Pop() any {
	h := t.hits[len(t.hits)-1]
	t.hits = t.hits[:len(t.hits)-1]
	return h
}

// offer considers one match; the entry is copied only when it makes the cut.
func (t *Top) offer(cluster string, res *Resource, ns string, score int, match string, e *entry) {
	t.Total++
	h := Hit{Cluster: cluster, Resource: res, Namespace: ns, Score: score, Match: match}
	if len(t.hits) < t.Limit {
		h.e = *e
		heap.Push(t, h)
		return
	}
	if t.Limit == 0 {
		return
	}
	h.e.name = e.name // enough to compare
	if !Better(&h, &t.hits[0]) {
		return
	}
	h.e = *e
	t.hits[0] = h
	heap.Fix(t, 0)
}

// Merge adds another Top's hits and count (each cluster searches into its own).
func (t *Top) Merge(o *Top) {
	t.Total += o.Total
	for i := range o.hits {
		h := o.hits[i]
		if len(t.hits) < t.Limit {
			heap.Push(t, h)
		} else if t.Limit > 0 && Better(&h, &t.hits[0]) {
			t.hits[0] = h
			heap.Fix(t, 0)
		}
	}
}

// Sorted returns the kept hits, best first.
func (t *Top) Sorted() []Hit {
	out := make([]Hit, len(t.hits))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(t).(Hit)
	}
	return out
}

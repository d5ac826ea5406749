package crd

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
)

// How much of a family is installed.
const (
	InstalledAll  = "all"
	InstalledSome = "some"
	InstalledNone = "none"
)

// countWorkers bounds concurrent object counts: each is a LIST against the user's cluster.
const countWorkers = 4

// FamilyStatus says what of a family a cluster has, for GET /api/v1/crds/families.
type FamilyStatus struct {
	Name        string       `json:"name"`
	Title       string       `json:"title"`
	InstallHint string       `json:"installHint"`
	Installed   string       `json:"installed"` // InstalledAll, InstalledSome or InstalledNone
	Kinds       []KindStatus `json:"kinds"`
	CheckedAt   time.Time    `json:"checkedAt"` // when the cluster was read (answers are cached)
}

// KindStatus is one family kind in a cluster. Served, Version, Namespaced and ShortNames come from the CRD when
// installed; Scalable is the CRD's scale subresource when installed, upstream's otherwise.
type KindStatus struct {
	Kind        string   `json:"kind"`
	Title       string   `json:"title"`
	Plural      string   `json:"plural"`
	Group       string   `json:"group"`
	CRD         string   `json:"crd"`
	Installed   bool     `json:"installed"` // the CRD exists (Error says when it cannot be used)
	Served      []string `json:"served,omitempty"`
	Version     string   `json:"version,omitempty"` // what Resolve picks
	Namespaced  bool     `json:"namespaced"`
	ShortNames  []string `json:"shortNames,omitempty"`
	Scalable    bool     `json:"scalable"`
	Restartable bool     `json:"restartable"`
	// Count is the number of objects in all namespaces; nil when not installed or not counted (see Error).
	Count *int64 `json:"count,omitempty"`
	Error string `json:"error,omitempty"`
}

type statusCache struct {
	mu  sync.Mutex
	val []FamilyStatus
	at  time.Time
}

// FamiliesStatus reports, for every family, which kinds the cluster has, at which versions, and how many
// objects of each exist (counted through md, the same cluster's metadata client). A failure to count one kind
// is reported in that kind's Error; only failing to list the CRDs fails the call. The answer is cached for the
// status TTL per Resolver; concurrent callers share one computation.
func (r *Resolver) FamiliesStatus(ctx context.Context, md metadata.Interface) ([]FamilyStatus, error) {
	if st, ok := r.cachedStatus(); ok {
		return st, nil
	}
	v, err := r.share(ctx, "families", func(ctx context.Context) (any, error) {
		if st, ok := r.cachedStatus(); ok {
			return st, nil
		}
		at := r.now()
		st, err := r.familiesStatus(ctx, md, at)
		if err != nil {
			return nil, err
		}
		r.state.mu.Lock()
		r.state.val, r.state.at = st, at
		r.state.mu.Unlock()
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return cloneStatus(v.([]FamilyStatus)), nil
}

func (r *Resolver) cachedStatus() ([]FamilyStatus, bool) {
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	if r.state.val == nil || r.now().Sub(r.state.at) >= r.statusTTL {
		return nil, false
	}
	return cloneStatus(r.state.val), true
}

func (r *Resolver) familiesStatus(ctx context.Context, md metadata.Interface, now time.Time) ([]FamilyStatus, error) {
	docs, err := r.listCRDs(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]crdDoc, len(docs))
	for _, d := range docs {
		byName[d.name] = d
	}
	families := Families()
	out := make([]FamilyStatus, len(families))
	type job struct {
		ks  *KindStatus
		gvr schema.GroupVersionResource
	}
	var jobs []job
	for i, f := range families {
		fs := FamilyStatus{Name: f.Name, Title: f.Title, InstallHint: f.InstallHint, CheckedAt: now,
			Kinds: make([]KindStatus, len(f.Kinds))}
		installed := 0
		for j, k := range f.Kinds {
			ks := KindStatus{Kind: k.Kind, Title: k.Title, Plural: k.Plural, Group: k.Group, CRD: k.CRD(),
				Namespaced: !k.ClusterScoped, ShortNames: k.ShortNames, Scalable: k.Scalable,
				Restartable: k.Restartable}
			if d, ok := byName[k.CRD()]; ok {
				installed++
				ks.Installed, ks.Served, ks.ShortNames = true, d.served(), d.shortNames
				ks.Namespaced = d.scope == "Namespaced"
				res, err := d.resolve()
				if err != nil {
					ks.Version, ks.Error = d.preferred(), err.Error()
				} else {
					ks.Version, ks.Scalable = res.Version, res.HasScale
				}
			}
			fs.Kinds[j] = ks
			if ks.Installed && ks.Error == "" {
				jobs = append(jobs, job{&fs.Kinds[j], schema.GroupVersionResource{Group: k.Group,
					Version: ks.Version, Resource: k.Plural}})
			}
		}
		switch installed {
		case 0:
			fs.Installed = InstalledNone
		case len(f.Kinds):
			fs.Installed = InstalledAll
		default:
			fs.Installed = InstalledSome
		}
		out[i] = fs
	}

	var g errgroup.Group
	g.SetLimit(countWorkers)
	for _, j := range jobs {
		g.Go(func() error {
			n, err := countObjects(ctx, md, j.gvr, r.pageSize)
			if err != nil {
				j.ks.Error = err.Error() // per kind: one forbidden count does not fail the others
				return nil
			}
			j.ks.Count = &n
			return nil
		})
	}
	_ = g.Wait()
	return out, nil
}

// countObjects counts a resource's objects in all namespaces with metadata-only lists, a page at a time,
// stopping early when the apiserver says how many remain.
func countObjects(ctx context.Context, md metadata.Interface, gvr schema.GroupVersionResource, limit int64) (int64, error) {
	var n int64
	opts := metav1.ListOptions{Limit: limit}
	for {
		l, err := md.Resource(gvr).List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("counting %s: %w", gvr.GroupResource(), err)
		}
		n += int64(len(l.Items))
		if l.RemainingItemCount != nil {
			return n + *l.RemainingItemCount, nil
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			return n, nil
		}
	}
}

func cloneStatus(in []FamilyStatus) []FamilyStatus {
	out := slices.Clone(in)
	for i := range out {
		out[i].Kinds = slices.Clone(out[i].Kinds)
		for j := range out[i].Kinds {
			k := &out[i].Kinds[j]
			k.Served, k.ShortNames = slices.Clone(k.Served), slices.Clone(k.ShortNames)
			if k.Count != nil {
				n := *k.Count
				k.Count = &n
			}
		}
	}
	return out
}

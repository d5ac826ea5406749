package crd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Info describes one CRD of a cluster, for GET /api/v1/crds.
type Info struct {
	Name       string   `json:"name"` // plural.group
	Group      string   `json:"group"`
	Kind       string   `json:"kind"`
	Plural     string   `json:"plural"`
	Singular   string   `json:"singular,omitempty"`
	Scope      string   `json:"scope"`             // "Namespaced" or "Cluster"
	Version    string   `json:"version,omitempty"` // what Resolve picks; empty when nothing is served
	Served     []string `json:"served"`            // newest first
	Storage    string   `json:"storage"`
	ShortNames []string `json:"shortNames,omitempty"`
	Categories []string `json:"categories,omitempty"`
	// Established: the apiserver serves it (false while new, or when its names conflict with another CRD's).
	Established bool      `json:"established"`
	Terminating bool      `json:"terminating,omitempty"`
	Family      string    `json:"family,omitempty"`
	Created     time.Time `json:"created"`
}

// List returns every CRD of the cluster, sorted by name. It also refreshes Resolve's cache.
func (r *Resolver) List(ctx context.Context) ([]Info, error) {
	docs, err := r.listCRDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(docs))
	for _, d := range docs {
		info := Info{Name: d.name, Group: d.group, Kind: d.kind, Plural: d.plural, Singular: d.singular,
			Scope: d.scope, Version: d.preferred(), Served: d.served(), Storage: d.storage(),
			ShortNames: d.shortNames, Categories: d.categories, Established: d.established,
			Terminating: d.terminating, Created: d.created}
		if f, _, ok := FindKind(d.name); ok {
			info.Family = f.Name
		}
		if info.Served == nil {
			info.Served = []string{}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// listCRDs reads every CRD, a page at a time, and caches what resolves.
func (r *Resolver) listCRDs(ctx context.Context) ([]crdDoc, error) {
	var docs []crdDoc
	opts := metav1.ListOptions{Limit: r.pageSize}
	for {
		l, err := r.dyn.Resource(crdResource()).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing CustomResourceDefinitions: %w", err)
		}
		now := r.now()
		for i := range l.Items {
			d := parseCRD(&l.Items[i])
			docs = append(docs, d)
			if res, err := d.resolve(); err == nil {
				r.cache.Add(d.name, cacheEntry{res: res, at: now})
			}
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return docs, nil
		}
	}
}

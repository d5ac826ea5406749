package crd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/dynamic"
)

const (
	// DefaultTTL is how long Resolve trusts an answer, found or not, when NewResolver is given ttl <= 0.
	DefaultTTL = 10 * time.Second
	// DefaultStatusTTL is how long FamiliesStatus reuses its answer.
	DefaultStatusTTL = 30 * time.Second

	cacheSize = 1024 // CRD names per cluster; bounded because missing names come from requests
	pageSize  = 500
	// fetchTimeout bounds a shared lookup: it outlives the caller that started it (others wait on it).
	fetchTimeout = 30 * time.Second
)

// crdResource is apiextensions.k8s.io/v1 customresourcedefinitions, read as unstructured.
func crdResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1",
		Resource: "customresourcedefinitions"}
}

// Resolved is how to call one custom resource, read from its CRD.
type Resolved struct {
	CRD        string   `json:"crd"` // plural.group
	Group      string   `json:"group"`
	Version    string   `json:"version"` // the storage version if served, else the highest-priority served one
	Kind       string   `json:"kind"`
	Plural     string   `json:"plural"`
	Singular   string   `json:"singular,omitempty"`
	Namespaced bool     `json:"namespaced"`
	Served     []string `json:"served"` // newest first
	Storage    string   `json:"storage"`
	Family     string   `json:"family,omitempty"`
	HasStatus  bool     `json:"hasStatus"` // Version has a status subresource
	HasScale   bool     `json:"hasScale"`  // Version has a scale subresource
	// Terminating: the CRD is being deleted. The apiserver still serves reads and deletes while it removes
	// the objects, and refuses creates itself (403 "create not allowed while custom resource definition is
	// terminating").
	Terminating bool `json:"terminating,omitempty"`

	versions []versionDoc // every version, for WithVersion
}

// GVR is the group, version and resource to call.
func (r Resolved) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Plural}
}

// WithVersion is r at another version the CRD serves (e.g. the apiVersion of a submitted object), or false.
func (r Resolved) WithVersion(v string) (Resolved, bool) {
	for _, vd := range r.versions {
		if vd.name == v && vd.served {
			r.Version, r.HasStatus, r.HasScale = v, vd.status, vd.scale
			return r, true
		}
	}
	return r, false
}

// Client is the dynamic client for r in a namespace. Cluster-scoped kinds ignore the namespace; for namespaced
// kinds "" means all namespaces (list, watch, deletecollection).
func (r Resolved) Client(dyn dynamic.Interface, namespace string) dynamic.ResourceInterface {
	ri := dyn.Resource(r.GVR())
	if !r.Namespaced {
		return ri
	}
	return ri.Namespace(namespace)
}

func (r Resolved) clone() Resolved {
	r.Served = slices.Clone(r.Served)
	return r
}

// NotFoundError says a CRD is not installed, and for a family kind what to install.
type NotFoundError struct {
	CRD         string
	Family      string
	InstallHint string
}

func (e *NotFoundError) Error() string {
	if e.InstallHint == "" {
		return "CustomResourceDefinition " + e.CRD + " not found"
	}
	return "CustomResourceDefinition " + e.CRD + " not found, please install " + e.InstallHint
}

func notFound(name string) *NotFoundError {
	e := &NotFoundError{CRD: name}
	if f, _, ok := FindKind(name); ok {
		e.Family, e.InstallHint = f.Name, f.InstallHint
	}
	return e
}

// UnavailableError says a CRD exists but nothing can be served through it: it serves no version, or it is not
// Established (new, or its names conflict with another CRD's). Not cached: it is usually about to change.
type UnavailableError struct {
	CRD     string
	Problem string // completes "CustomResourceDefinition <CRD> …"
}

func (e *UnavailableError) Error() string {
	return "CustomResourceDefinition " + e.CRD + " " + e.Problem
}

// Resolver resolves the CRDs of one cluster, caching answers briefly. Safe for concurrent use; make one per
// cluster client.
type Resolver struct {
	dyn       dynamic.Interface
	ttl       time.Duration
	statusTTL time.Duration
	now       func() time.Time
	pageSize  int64

	cache *lru.Cache[string, cacheEntry]
	group singleflight.Group
	state statusCache
}

type cacheEntry struct {
	res     Resolved
	missing *NotFoundError // negative answers are cached too
	at      time.Time
}

// answer hands out copies, so no caller can change what others get.
func (e cacheEntry) answer() (Resolved, error) {
	if e.missing != nil {
		nf := *e.missing
		return Resolved{}, &nf
	}
	return e.res.clone(), nil
}

// Option tunes a Resolver.
type Option func(*Resolver)

// WithStatusTTL sets how long FamiliesStatus reuses an answer (default DefaultStatusTTL; <= 0 keeps it).
func WithStatusTTL(d time.Duration) Option {
	return func(r *Resolver) {
		if d > 0 {
			r.statusTTL = d
		}
	}
}

// NewResolver makes a Resolver over a cluster's dynamic client. ttl bounds how stale a cached answer may be —
// how long a newly installed CRD may still be reported missing, or a deleted one found (default DefaultTTL).
func NewResolver(dyn dynamic.Interface, ttl time.Duration, opts ...Option) *Resolver {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	cache, err := lru.New[string, cacheEntry](cacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	r := &Resolver{dyn: dyn, ttl: ttl, statusTTL: DefaultStatusTTL, now: time.Now, pageSize: pageSize,
		cache: cache}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Resolve finds how to call a CRD, named by plural.group or by anything FindKind accepts ("clone", "asts",
// "CloneSet"…). A missing CRD gives *NotFoundError (cached like an answer). A CRD that serves no version or is
// not Established — just created, or its names conflict with another CRD's — gives *UnavailableError and is
// not cached, so it works as soon as the apiserver serves it. A CRD being deleted still resolves, with
// Terminating set: its remaining objects can be read and deleted. Other errors (forbidden, unreachable) wrap
// the apiserver's.
func (r *Resolver) Resolve(ctx context.Context, ref string) (Resolved, error) {
	name := canonicalName(ref)
	if e, ok := r.cached(name); ok {
		return e.answer()
	}
	if !validName(name) {
		return Resolved{}, notFound(name) // could never be a CRD: no need to ask
	}
	v, err := r.share(ctx, "crd/"+name, func(ctx context.Context) (any, error) {
		if e, ok := r.cached(name); ok { // filled by a flight that just ended
			return e, nil
		}
		u, err := r.dyn.Resource(crdResource()).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			e := cacheEntry{missing: notFound(name), at: r.now()}
			r.cache.Add(name, e)
			return e, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading CustomResourceDefinition %s: %w", name, err)
		}
		res, err := parseCRD(u).resolve()
		if err != nil {
			return nil, err
		}
		e := cacheEntry{res: res, at: r.now()}
		r.cache.Add(name, e)
		return e, nil
	})
	if err != nil {
		return Resolved{}, err
	}
	return v.(cacheEntry).answer()
}

// Forget drops what the Resolver knows of a CRD, e.g. after the apiserver answered 404 for a resolved
// resource (the CRD was deleted meanwhile).
func (r *Resolver) Forget(ref string) { r.cache.Remove(canonicalName(ref)) }

func (r *Resolver) cached(name string) (cacheEntry, bool) {
	e, ok := r.cache.Get(name)
	if !ok || r.now().Sub(e.at) >= r.ttl {
		return cacheEntry{}, false
	}
	return e, true
}

// share runs fn once for concurrent callers of one key. fn gets a context that outlives a caller who gives up,
// so the others still get an answer; each caller still returns when its own ctx ends.
func (r *Resolver) share(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := r.group.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for %s: %w", key, context.Cause(ctx))
	case res := <-ch:
		return res.Val, res.Err
	}
}

// canonicalName turns a family kind's other names into its CRD name; anything else is only lower-cased.
func canonicalName(ref string) string {
	if _, k, ok := FindKind(ref); ok {
		return k.CRD()
	}
	return strings.ToLower(strings.TrimSpace(ref))
}

// validName: CRD names are plural.group, and a group has at least one dot.
func validName(name string) bool {
	return strings.Count(name, ".") >= 2 && len(validation.IsDNS1123Subdomain(name)) == 0
}

// crdDoc is the part of a CRD resolution reads.
type crdDoc struct {
	name, group, kind, plural, singular, scope string
	shortNames, categories                     []string
	versions                                   []versionDoc
	established                                bool
	notEstablished                             string // why, when not
	terminating                                bool
	created                                    time.Time
}

type versionDoc struct {
	name                           string
	served, storage, status, scale bool
}

// parseCRD reads an unstructured CRD leniently: a missing field is left empty, and resolve says what is wrong.
func parseCRD(u *unstructured.Unstructured) crdDoc {
	o := u.Object
	str := func(path ...string) string { s, _, _ := unstructured.NestedString(o, path...); return s }
	strs := func(path ...string) []string { s, _, _ := unstructured.NestedStringSlice(o, path...); return s }
	d := crdDoc{
		name:        u.GetName(),
		group:       str("spec", "group"),
		kind:        str("spec", "names", "kind"),
		plural:      str("spec", "names", "plural"),
		singular:    str("spec", "names", "singular"),
		scope:       str("spec", "scope"),
		shortNames:  strs("spec", "names", "shortNames"),
		categories:  strs("spec", "names", "categories"),
		terminating: u.GetDeletionTimestamp() != nil,
		created:     u.GetCreationTimestamp().Time,
	}
	versions, _, _ := unstructured.NestedSlice(o, "spec", "versions")
	for _, item := range versions {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		v := versionDoc{}
		v.name, _, _ = unstructured.NestedString(m, "name")
		v.served, _, _ = unstructured.NestedBool(m, "served")
		v.storage, _, _ = unstructured.NestedBool(m, "storage")
		_, v.status, _ = unstructured.NestedFieldNoCopy(m, "subresources", "status")
		_, v.scale, _ = unstructured.NestedFieldNoCopy(m, "subresources", "scale")
		d.versions = append(d.versions, v)
	}
	conds, _, _ := unstructured.NestedSlice(o, "status", "conditions")
	var established, names map[string]any
	for _, item := range conds {
		if c, ok := item.(map[string]any); ok {
			switch c["type"] {
			case "Established":
				established = c
			case "NamesAccepted":
				names = c
			}
		}
	}
	d.established = established != nil && established["status"] == "True"
	switch {
	case d.established:
	case names != nil && names["status"] == "False":
		d.notEstablished = fmt.Sprintf("is not established: its names were not accepted (%v: %v)",
			names["reason"], names["message"])
	case established != nil && established["message"] != nil:
		d.notEstablished = fmt.Sprintf("is not established yet (%v: %v)", established["reason"],
			established["message"])
	default:
		d.notEstablished = "is not established yet"
	}
	return d
}

// served lists the served versions, newest first.
func (d crdDoc) served() []string {
	var out []string
	for _, v := range d.versions {
		if v.served {
			out = append(out, v.name)
		}
	}
	sortVersions(out)
	return out
}

func (d crdDoc) storage() string {
	for _, v := range d.versions {
		if v.storage {
			return v.name
		}
	}
	return ""
}

// preferred is the storage version if served (no conversion on the way to etcd), else the newest served one.
func (d crdDoc) preferred() string {
	for _, v := range d.versions {
		if v.storage && v.served {
			return v.name
		}
	}
	if s := d.served(); len(s) > 0 {
		return s[0]
	}
	return ""
}

// resolve picks the version to call. A terminating CRD still resolves: its objects can be read and deleted.
func (d crdDoc) resolve() (Resolved, error) {
	if d.group == "" || d.plural == "" || d.kind == "" {
		return Resolved{}, &UnavailableError{CRD: d.name, Problem: "is malformed: spec.group or spec.names is empty"}
	}
	version := d.preferred()
	if version == "" {
		return Resolved{}, &UnavailableError{CRD: d.name, Problem: "serves no version (no spec.versions[].served)"}
	}
	if !d.established {
		return Resolved{}, &UnavailableError{CRD: d.name, Problem: d.notEstablished}
	}
	res := Resolved{CRD: d.name, Group: d.group, Kind: d.kind, Plural: d.plural, Singular: d.singular,
		Namespaced: d.scope == "Namespaced", Served: d.served(), Storage: d.storage(),
		Terminating: d.terminating, versions: d.versions}
	if f, _, ok := FindKind(d.name); ok {
		res.Family = f.Name
	}
	res, _ = res.WithVersion(version)
	return res, nil
}

// sortVersions orders by Kubernetes version priority, highest first: v2, v1, v1beta2, v1beta1, v1alpha1,
// then non-Kubernetes-like names alphabetically.
func sortVersions(vs []string) {
	slices.SortFunc(vs, func(a, b string) int { return version.CompareKubeAwareVersionStrings(b, a) })
}

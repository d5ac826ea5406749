package resources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/kitefn/kitefn/shared/crd"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// target is a resolved resource reference.
type target struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	crd        string // plural.group when it came from a CustomResourceDefinition
}

// path is the apiserver path of the collection, in a namespace or across all ("").
func (t target) path(namespace string) string {
	var b strings.Builder
	if t.gvr.Group == "" {
		b.WriteString("/api/" + t.gvr.Version)
	} else {
		b.WriteString("/apis/" + t.gvr.Group + "/" + t.gvr.Version)
	}
	if t.namespaced && namespace != "" {
		b.WriteString("/namespaces/" + namespace)
	}
	b.WriteString("/" + t.gvr.Resource)
	return b.String()
}

// clusterState is what this function keeps per cluster client: discovery-backed mapping and CRD lookups.
type clusterState struct {
	cluster  string // its name, for messages
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	expander meta.RESTMapper
	crds     *crd.Resolver

	mu        sync.Mutex
	lastReset time.Time
}

type stateKey struct{}

func (f *Function) state(c *kube.Client) (*clusterState, error) {
	v, err := c.Attached(stateKey{}, func(c *kube.Client) (any, error) {
		disc := memory.NewMemCacheClient(c.Kubernetes.Discovery())
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
		return &clusterState{
			cluster:  c.Name,
			mapper:   mapper,
			expander: restmapper.NewShortcutExpander(mapper, disc, nil),
			crds:     crd.NewResolver(c.Dynamic, f.cfg.CRDCacheTTL, crd.WithStatusTTL(f.cfg.FamiliesCacheTTL)),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*clusterState), nil
}

// maybeReset refreshes discovery when a name is unknown (a CRD installed since), at most once per interval.
func (s *clusterState) maybeReset(now time.Time, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastReset) < every {
		return false
	}
	s.lastReset = now
	s.mapper.Reset()
	return true
}

var versionPattern = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)

// dotlessGroups are the API groups without a dot (Kubernetes' own); every other group has one.
var dotlessGroups = map[string]bool{"apps": true, "batch": true, "autoscaling": true, "policy": true, "extensions": true}

// refSplit is one way to read a path: the resource reference at its start (pods, deployments.apps, v1/pods,
// apps/v1/deployments) and the rest (namespace, name, subresource).
type refSplit struct {
	ref  string
	rest []string
}

// splitRef lists the readings of a path, most specific first. A namespace may look like a version (v1, v2):
// pods/v1/web is pod web in namespace v1. group/version/resource needs a group-like first segment, and a
// dotted one is ambiguous — apps.kruise.io/v1alpha1/clonesets is a group, deployments.apps/v1/web a resource
// with namespace v1 — so both readings are listed and the first that resolves wins.
func splitRef(segs []string) []refSplit {
	plain := refSplit{ref: segs[0], rest: segs[1:]}
	switch {
	case len(segs) >= 3 && versionPattern.MatchString(segs[1]) && dotlessGroups[segs[0]]:
		return []refSplit{{strings.Join(segs[:3], "/"), segs[3:]}}
	case len(segs) >= 3 && versionPattern.MatchString(segs[1]) && strings.Contains(segs[0], "."):
		return []refSplit{{strings.Join(segs[:3], "/"), segs[3:]}, plain}
	case len(segs) >= 2 && versionPattern.MatchString(segs[0]):
		return []refSplit{{strings.Join(segs[:2], "/"), segs[2:]}}
	}
	return []refSplit{plain}
}

// builtinGroup reports whether a group is served by Kubernetes itself rather than by a CRD.
func builtinGroup(g string) bool {
	switch g {
	case "", "apps", "batch", "autoscaling", "policy", "extensions":
		return true
	}
	return strings.HasSuffix(g, ".k8s.io")
}

// resolve maps a reference to a resource of the cluster. Family kinds and CRD groups go through the CRD (scope
// and version from it, 404 with an install hint when missing); built-in kinds through discovery, refreshed once
// when a name is unknown.
func (f *Function) resolve(ctx context.Context, c *kube.Client, ref string) (target, error) {
	st, err := f.state(c)
	if err != nil {
		return target{}, err
	}
	var explicit *schema.GroupVersionResource
	if parts := strings.Split(ref, "/"); len(parts) == 3 {
		explicit = &schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}
	} else if len(parts) == 2 {
		explicit = &schema.GroupVersionResource{Version: parts[0], Resource: parts[1]}
	}

	if explicit != nil && !builtinGroup(explicit.Group) {
		return f.fromCRD(ctx, st, explicit.Resource+"."+explicit.Group, explicit.Version)
	}
	if explicit == nil {
		if _, k, ok := crd.FindKind(ref); ok {
			return f.fromCRD(ctx, st, k.Plural+"."+k.Group, "")
		}
	}

	for attempt := 0; attempt < 2; attempt++ {
		var gvr schema.GroupVersionResource
		var err error
		if explicit != nil {
			gvr = *explicit
			_, err = st.mapper.KindFor(gvr)
		} else {
			gvr, err = st.expander.ResourceFor(schema.ParseGroupResource(strings.ToLower(ref)).WithVersion(""))
		}
		if err == nil {
			if !builtinGroup(gvr.Group) {
				if t, err := f.fromCRD(ctx, st, gvr.Resource+"."+gvr.Group, versionIf(explicit)); err == nil {
					return t, nil
				} else if !isCRDNotFound(err) {
					return target{}, err
				}
				// An aggregated API (metrics.k8s.io-like) has no CRD: discovery's answer stands.
			}
			return f.fromMapper(st, gvr)
		}
		if !meta.IsNoMatchError(err) && !discovery.IsGroupDiscoveryFailedError(err) {
			return target{}, kube.APIError(c.Name, err)
		}
		if attempt == 0 && !st.maybeReset(f.now(), f.cfg.DiscoveryResetInterval) {
			break
		}
	}
	if strings.Contains(ref, ".") && explicit == nil {
		return f.fromCRD(ctx, st, ref, "")
	}
	return target{}, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
		"resource %q not found in cluster %q (kubectl api-resources lists what it serves)", ref, c.Name)
}

func versionIf(gvr *schema.GroupVersionResource) string {
	if gvr == nil {
		return ""
	}
	return gvr.Version
}

func (f *Function) fromMapper(st *clusterState, gvr schema.GroupVersionResource) (target, error) {
	gvk, err := st.mapper.KindFor(gvr)
	if err != nil {
		return target{}, mappingError(st.cluster, gvr.String(), err)
	}
	m, err := st.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return target{}, mappingError(st.cluster, gvk.String(), err)
	}
	return target{gvr: m.Resource, kind: gvk.Kind, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// fromCRD resolves through the CustomResourceDefinition: its served versions (storage preferred) and its scope.
// A version asked for explicitly must be served. Credentials that may use a kind but not read CRDs (common)
// fall back to discovery.
func (f *Function) fromCRD(ctx context.Context, st *clusterState, name, version string) (target, error) {
	res, err := st.crds.Resolve(ctx, name)
	if err != nil {
		var nf *crd.NotFoundError
		var un *crd.UnavailableError
		switch {
		case errors.As(err, &nf):
			return target{}, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: nf.Error()}
		case errors.As(err, &un):
			return target{}, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: CodeCRDNotReady,
				Message: un.Error() + "; retry shortly"}
		case apierrors.IsForbidden(err):
			return f.fromDiscovery(st, name, version, err)
		}
		return target{}, kube.APIError(st.cluster, err)
	}
	t := target{gvr: res.GVR(), kind: res.Kind, namespaced: res.Namespaced, crd: res.CRD}
	if version != "" && version != res.Version {
		served := false
		for _, v := range res.Served {
			served = served || v == version
		}
		if !served {
			return target{}, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
				"CustomResourceDefinition %s does not serve version %s (it serves %s)", res.CRD, version,
				strings.Join(res.Served, ", "))
		}
		t.gvr.Version = version
	}
	return t, nil
}

// fromDiscovery resolves a CRD's resource (plural.group) from discovery when the CRD itself may not be read.
func (f *Function) fromDiscovery(st *clusterState, name, version string, forbidden error) (target, error) {
	gvr := schema.ParseGroupResource(name).WithVersion(version)
	for attempt := 0; attempt < 2; attempt++ {
		found, err := st.mapper.ResourceFor(gvr)
		if err == nil {
			return f.fromMapper(st, found)
		}
		if !meta.IsNoMatchError(err) && !discovery.IsGroupDiscoveryFailedError(err) {
			return target{}, kube.APIError(st.cluster, err)
		}
		if attempt == 0 && !st.maybeReset(f.now(), f.cfg.DiscoveryResetInterval) {
			break
		}
	}
	return target{}, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
		"%s is not served by cluster %q (its CustomResourceDefinition could not be read: %s)", name, st.cluster,
		kube.APIError(st.cluster, forbidden).Message)
}

// crdRetryAfter is the Retry-After (seconds) of a crd_not_ready answer: a new CRD is usually served within one.
const crdRetryAfter = 1

// writeError writes err in the stable shape, with Retry-After when a CRD is about to be served.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if apiErr := httpapi.AsError(err); apiErr.Code == CodeCRDNotReady {
		w.Header().Set("Retry-After", strconv.Itoa(crdRetryAfter))
	}
	httpapi.WriteError(w, r, err)
}

// mappingError is a discovery failure: unknown to discovery is a 404, anything else the cluster's own error.
func mappingError(cluster, what string, err error) error {
	if meta.IsNoMatchError(err) {
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "%s is not served by cluster %q", what, cluster)
	}
	return kube.APIError(cluster, fmt.Errorf("mapping %s: %w", what, err))
}

func isCRDNotFound(err error) bool {
	var apiErr *httpapi.Error
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

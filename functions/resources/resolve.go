package resources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

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

// splitRef separates the resource reference at the start of a path (pods, deployments.apps, v1/pods,
// apps/v1/deployments) from the rest (namespace, name, subresource).
func splitRef(segs []string) (ref string, rest []string) {
	switch {
	case len(segs) >= 3 && versionPattern.MatchString(segs[1]) && !versionPattern.MatchString(segs[0]):
		return strings.Join(segs[:3], "/"), segs[3:]
	case len(segs) >= 2 && versionPattern.MatchString(segs[0]):
		return strings.Join(segs[:2], "/"), segs[2:]
	}
	return segs[0], segs[1:]
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
		return target{}, fmt.Errorf("mapping %s: %w", gvr, err)
	}
	m, err := st.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return target{}, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	return target{gvr: m.Resource, kind: gvk.Kind, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// fromCRD resolves through the CustomResourceDefinition: its served versions (storage preferred) and its scope.
// A version asked for explicitly must be served.
func (f *Function) fromCRD(ctx context.Context, st *clusterState, name, version string) (target, error) {
	res, err := st.crds.Resolve(ctx, name)
	if err != nil {
		var nf *crd.NotFoundError
		if errors.As(err, &nf) {
			return target{}, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: nf.Error()}
		}
		return target{}, err
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

func isCRDNotFound(err error) bool {
	var apiErr *httpapi.Error
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

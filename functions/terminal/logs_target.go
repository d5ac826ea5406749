package terminal

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/kitefn/kitefn/shared/crd"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// logRequest is a parsed logs request: one pod (resource "") or every pod of a workload.
type logRequest struct {
	resource  string
	namespace string
	name      string
	container string // "" is every container
	opts      corev1.PodLogOptions
}

// parseLogRequest reads the path ({namespace}/{pod} or {resource}/{namespace}/{name}) and the options; a bad
// one is a 400 naming its field.
func parseLogRequest(r *http.Request) (*logRequest, error) {
	segs := strings.Split(r.PathValue("path"), "/")
	req := &logRequest{}
	switch len(segs) {
	case 2:
		req.namespace, req.name = segs[0], segs[1]
	case 3:
		req.resource, req.namespace, req.name = strings.ToLower(segs[0]), segs[1], segs[2]
	default:
		return nil, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"no route for %s: logs are at /api/v1/logs/{namespace}/{pod} and /api/v1/logs/{resource}/{namespace}/{name}",
			r.URL.Path)
	}
	if slices.Contains(segs, "") {
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "empty path segment in %s", r.URL.Path)
	}
	if errs := validation.IsDNS1123Label(req.namespace); len(errs) > 0 {
		return nil, badField("namespace", "namespace %q is not a valid namespace name: %s", req.namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(req.name); len(errs) > 0 {
		return nil, badField("name", "%q is not a valid object name: %s", req.name, errs[0])
	}
	q := r.URL.Query()
	if c := q.Get("container"); c != "" {
		if errs := validation.IsDNS1123Label(c); len(errs) > 0 {
			return nil, badField("container", "container is not a valid container name: %s", errs[0])
		}
		req.container = c
	}
	for _, b := range []struct {
		name string
		to   *bool
	}{{"follow", &req.opts.Follow}, {"previous", &req.opts.Previous}, {"timestamps", &req.opts.Timestamps}} {
		if !q.Has(b.name) {
			continue
		}
		v := q.Get(b.name)
		if v == "" { // ?follow alone means true
			*b.to = true
			continue
		}
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badField(b.name, "%s must be true or false", b.name) // values are not echoed: a pasted token stays unseen
		}
		*b.to = on
	}
	for _, n := range []struct {
		name string
		min  int64
		to   **int64
	}{{"tailLines", 0, &req.opts.TailLines}, {"sinceSeconds", 1, &req.opts.SinceSeconds}} {
		if !q.Has(n.name) {
			continue
		}
		v, err := strconv.ParseInt(q.Get(n.name), 10, 64)
		if err != nil || v < n.min {
			return nil, badField(n.name, "%s must be a whole number of at least %d", n.name, n.min)
		}
		*n.to = &v
	}
	return req, nil
}

func badField(field, format string, args ...any) error {
	return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, format, args...).WithField(field)
}

// logMapper is discovery's name → resource mapping for one cluster client, kept on its connection.
type logMapper struct {
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	expander meta.RESTMapper

	mu        sync.Mutex
	lastReset time.Time
}

type logMapperKey struct{}

// discoveryResetEvery bounds refreshing discovery for unknown names (each costs the cluster a full discovery).
const discoveryResetEvery = 10 * time.Second

func mapperFor(c *kube.Client) (*logMapper, error) {
	v, err := c.Attached(logMapperKey{}, func(c *kube.Client) (any, error) {
		disc := memory.NewMemCacheClient(c.Kubernetes.Discovery())
		m := restmapper.NewDeferredDiscoveryRESTMapper(disc)
		return &logMapper{mapper: m, expander: restmapper.NewShortcutExpander(m, disc, nil)}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*logMapper), nil
}

// reset refreshes discovery (a CRD installed since), at most once per discoveryResetEvery.
func (m *logMapper) reset() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.lastReset) < discoveryResetEvery {
		return false
	}
	m.lastReset = time.Now()
	m.mapper.Reset()
	return true
}

// workload is what a resource reference resolved to.
type workload struct {
	gvr  schema.GroupVersionResource
	kind string
}

// isPods says the reference named pods themselves (pods/{namespace}/{name} is the one-pod form).
func (w workload) isPods() bool { return w.gvr.Group == "" && w.gvr.Resource == "pods" }

// resolveResource maps a kubectl-style name (deploy, statefulsets, clonesets, rs, jobs.batch…) to a namespaced
// resource of the cluster. Names of known CRD families (OpenKruise's clonesets) go to their group; an unknown
// name refreshes discovery once before it is a 404.
func resolveResource(c *kube.Client, ref string) (workload, error) {
	m, err := mapperFor(c)
	if err != nil {
		return workload{}, err
	}
	gr := schema.ParseGroupResource(ref)
	var family *crd.Family
	if f, k, ok := crd.FindKind(ref); ok {
		family, gr = &f, schema.GroupResource{Group: k.Group, Resource: k.Plural}
	}
	for attempt := 0; ; attempt++ {
		gvr, err := m.expander.ResourceFor(gr.WithVersion(""))
		if err == nil {
			gvk, err := m.mapper.KindFor(gvr)
			if err != nil {
				return workload{}, kube.APIError(c.Name, fmt.Errorf("mapping %s: %w", gvr, err))
			}
			mapping, err := m.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return workload{}, kube.APIError(c.Name, fmt.Errorf("mapping %s: %w", gvk, err))
			}
			if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
				return workload{}, badField("resource", "%s is cluster-scoped: logs follow the pods of a namespaced "+
					"workload (deployments, statefulsets, daemonsets, jobs, replicasets, clonesets…)", gvr.GroupResource())
			}
			return workload{gvr: mapping.Resource, kind: gvk.Kind}, nil
		}
		if !meta.IsNoMatchError(err) && !discovery.IsGroupDiscoveryFailedError(err) {
			return workload{}, kube.APIError(c.Name, fmt.Errorf("resolving %q: %w", ref, err))
		}
		if attempt > 0 || !m.reset() {
			break
		}
	}
	if family != nil {
		return workload{}, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"%s is not served by cluster %q: please install %s", gr, c.Name, family.InstallHint).WithField("resource")
	}
	return workload{}, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
		"resource %q not found in cluster %q (kubectl api-resources lists what it serves)", ref, c.Name).
		WithField("resource")
}

// podSelector is the label selector of a workload object: spec.selector as a LabelSelector (matchLabels,
// matchExpressions) or as a plain label map (ReplicationController, Service).
func podSelector(obj *unstructured.Unstructured, what string) (labels.Selector, error) {
	raw, found, err := unstructured.NestedFieldNoCopy(obj.Object, "spec", "selector")
	m, isMap := raw.(map[string]any)
	if err != nil || !found || !isMap {
		return nil, badField("resource", "%s has no spec.selector: there are no pods to follow", what)
	}
	var sel labels.Selector
	_, hasLabels := m["matchLabels"]
	_, hasExprs := m["matchExpressions"]
	if hasLabels || hasExprs {
		var ls metav1.LabelSelector
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &ls); err != nil {
			return nil, badField("resource", "%s: spec.selector is not a label selector: %v", what, err)
		}
		if sel, err = metav1.LabelSelectorAsSelector(&ls); err != nil {
			return nil, badField("resource", "%s: spec.selector: %v", what, err)
		}
	} else {
		set := labels.Set{}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return nil, badField("resource", "%s: spec.selector is neither a label selector nor a label map", what)
			}
			set[k] = s
		}
		sel = labels.SelectorFromSet(set)
	}
	if sel.Empty() {
		return nil, badField("resource", "%s has an empty selector (every pod of the namespace): name the pods' "+
			"workload instead", what)
	}
	return sel, nil
}

// podsOf lists the pods a selector picks, by name.
func podsOf(ctx context.Context, c *kube.Client, ns string, sel labels.Selector) ([]corev1.Pod, error) {
	list, err := c.Kubernetes.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, kube.APIError(c.Name, err)
	}
	return list.Items, nil
}

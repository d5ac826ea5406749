package search

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kitefn/kitefn/functions/search/index"
	"github.com/kitefn/kitefn/shared/crd"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// builtin is a built-in kind and the names kubectl accepts for it.
type builtin struct {
	res   index.Resource
	names []string // plural, singular, short names (the lower-case kind is added)
	// searched by default (CRDs are not: they are read to know which families are installed)
	byDefault bool
}

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

// builtins are the kinds searched by default, in the order that breaks score ties, and the CRD kind.
var builtins = func() []builtin {
	list := []struct {
		g, v, r, kind string
		namespaced    bool
		names         []string
	}{
		{"", "v1", "pods", "Pod", true, []string{"pod", "po"}},
		{"apps", "v1", "deployments", "Deployment", true, []string{"deployment", "deploy"}},
		{"apps", "v1", "statefulsets", "StatefulSet", true, []string{"statefulset", "sts"}},
		{"apps", "v1", "daemonsets", "DaemonSet", true, []string{"daemonset", "ds"}},
		{"apps", "v1", "replicasets", "ReplicaSet", true, []string{"replicaset", "rs"}},
		{"batch", "v1", "jobs", "Job", true, []string{"job"}},
		{"batch", "v1", "cronjobs", "CronJob", true, []string{"cronjob", "cj"}},
		{"", "v1", "services", "Service", true, []string{"service", "svc"}},
		{"networking.k8s.io", "v1", "ingresses", "Ingress", true, []string{"ingress", "ing"}},
		{"", "v1", "configmaps", "ConfigMap", true, []string{"configmap", "cm"}},
		{"", "v1", "secrets", "Secret", true, []string{"secret"}},
		{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, []string{"persistentvolumeclaim", "pvc"}},
		{"", "v1", "persistentvolumes", "PersistentVolume", false, []string{"persistentvolume", "pv"}},
		{"", "v1", "namespaces", "Namespace", false, []string{"namespace", "ns"}},
		{"", "v1", "nodes", "Node", false, []string{"node", "no"}},
		{"", "v1", "serviceaccounts", "ServiceAccount", true, []string{"serviceaccount", "sa"}},
		{"autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true,
			[]string{"horizontalpodautoscaler", "hpa"}},
	}
	out := make([]builtin, 0, len(list)+1)
	for i, k := range list {
		out = append(out, builtin{res: index.Resource{GVR: gvr(k.g, k.v, k.r), Kind: k.kind, Namespaced: k.namespaced,
			Order: i}, names: k.names, byDefault: true})
	}
	out = append(out, builtin{res: crdsResource, names: []string{"customresourcedefinition", "crd", "crds"}})
	return out
}()

// crdsResource is read (metadata only) to know which CRD families a cluster has.
var crdsResource = index.Resource{GVR: gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
	Kind: "CustomResourceDefinition", Order: 90}

// builtinByName maps every kubectl name of a built-in kind (plural, plural.group, singular, short, kind) to it.
var builtinByName = func() map[string]index.Resource {
	m := map[string]index.Resource{}
	for _, b := range builtins {
		m[b.res.GVR.Resource] = b.res
		m[b.res.Key()] = b.res
		m[strings.ToLower(b.res.Kind)] = b.res
		for _, n := range b.names {
			m[n] = b.res
		}
	}
	return m
}()

// kindRef is a kind named by a caller: a built-in one, or a CRD (plural.group) to resolve per cluster.
type kindRef struct {
	builtin *index.Resource
	crd     string
}

// parseKind reads a kubectl name: a built-in kind, a family kind (FindKind), or a CRD as plural.group.
func parseKind(name string) (kindRef, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	if res, ok := builtinByName[name]; ok {
		return kindRef{builtin: &res}, true
	}
	if _, k, ok := crd.FindKind(name); ok {
		return kindRef{crd: k.CRD()}, true
	}
	if plural, group, ok := strings.Cut(name, "."); ok && plural != "" && strings.Contains(group, ".") {
		return kindRef{crd: name}, true
	}
	return kindRef{}, false
}

// familyOrder ranks family kinds after the built-in ones, in family order; other CRDs come last.
func familyOrder(crdName string) int {
	for fi, f := range crd.Families() {
		for ki, k := range f.Kinds {
			if k.CRD() == crdName {
				return 100 + fi*50 + ki
			}
		}
	}
	return 1000
}

// clusterState is what the search keeps per cluster connection: its CRD resolver and the CRDs it resolved
// (by UID, so a CRD deleted and created again is resolved again).
type clusterState struct {
	crds *crd.Resolver

	mu       sync.Mutex
	resolved map[string]resolvedCRD
}

type resolvedCRD struct {
	uid string
	res index.Resource
}

type stateKey struct{}

func (f *Function) state(c *kube.Client) *clusterState {
	v, _ := c.Attached(stateKey{}, func(c *kube.Client) (any, error) {
		return &clusterState{crds: crd.NewResolver(c.Dynamic, 0), resolved: map[string]resolvedCRD{}}, nil
	})
	return v.(*clusterState)
}

// resolveCRD finds how to list a CRD's objects; uid is the CRD's as the index saw it ("" when unknown).
func (s *clusterState) resolveCRD(ctx context.Context, cluster, name, uid string) (index.Resource, error) {
	s.mu.Lock()
	r, ok := s.resolved[name]
	s.mu.Unlock()
	if ok && (uid == "" || r.uid == uid) {
		return r.res, nil
	}
	if uid != "" {
		s.crds.Forget(name)
	}
	got, err := s.crds.Resolve(ctx, name)
	if err != nil {
		switch err.(type) {
		case *crd.NotFoundError:
			return index.Resource{}, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "%s", err.Error())
		case *crd.UnavailableError:
			return index.Resource{}, httpapi.Errorf(http.StatusServiceUnavailable, "crd_not_ready", "%s", err.Error())
		}
		return index.Resource{}, kube.APIError(cluster, fmt.Errorf("resolving %s: %w", name, err))
	}
	res := index.Resource{GVR: got.GVR(), Kind: got.Kind, Namespaced: got.Namespaced, Order: familyOrder(got.CRD)}
	s.mu.Lock()
	s.resolved[name] = resolvedCRD{uid: uid, res: res}
	s.mu.Unlock()
	return res, nil
}

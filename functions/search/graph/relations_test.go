package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/kitefn/kitefn/functions/search/graph"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

// limitedUser may read Deployments and ReplicaSets of one namespace and nothing else.
const limitedUser = "limited"

func TestMain(m *testing.M) {
	harness.MainWith(m, &kube, func(c *harness.Cluster) error {
		return installCRDs(context.Background(), c.RESTConfig())
	}, harness.WithUser(limitedUser))
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates testdata/crds.yaml and waits until each CRD is Established.
func installCRDs(ctx context.Context, rc *rest.Config) error {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile("testdata/crds.yaml")
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		if u.Object == nil {
			continue
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating CRD %s: %w", u.GetName(), err)
		}
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true,
			func(ctx context.Context) (bool, error) {
				got, err := dyn.Resource(crdGVR).Get(ctx, u.GetName(), metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
				for _, c := range conds {
					if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
						return true, nil
					}
				}
				return false, nil
			})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", u.GetName(), err)
		}
	}
	return nil
}

type env struct {
	api *apitest.Server
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

// setup runs the search function over the test cluster, registered as "test". Reads are not shared between
// requests (KITEFN_RELATIONS_CACHE_TTL=0) unless vars say otherwise: tests change the cluster between calls.
func setup(t *testing.T, vars map[string]string) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	settings := map[string]string{"KITEFN_RELATIONS_CACHE_TTL": "0s"}
	for k, v := range vars {
		settings[k] = v
	}
	api := apitest.Start(t, settings, apitest.Function("search"))
	api.AddCluster("test", kube.AdminKubeconfig())
	return &env{api: api, cs: kubernetes.NewForConfigOrDie(kube.RESTConfig()),
		dyn: dynamic.NewForConfigOrDie(kube.RESTConfig())}
}

func (e *env) get(t *testing.T, path string, hdr ...string) apitest.Response {
	t.Helper()
	return e.api.Do(http.MethodGet, path, nil, append([]string{"X-Cluster-Name", "test"}, hdr...)...)
}

// graphOf calls relations and decodes the graph of a 200 answer.
func (e *env) graphOf(t *testing.T, path string, hdr ...string) graph.Graph {
	t.Helper()
	res := e.get(t, path, hdr...).Expect(t, http.StatusOK, "")
	var g graph.Graph
	if err := json.Unmarshal(res.Body, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func (e *env) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}},
		metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

var kwokOnce sync.Once

// fakeNode makes a Node that kwok keeps Ready and whose pods it runs.
func (e *env) fakeNode(t *testing.T, name string) {
	t.Helper()
	kwokOnce.Do(func() {
		if _, err := kube.StartKwok(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := e.cs.CoreV1().Nodes().Create(t.Context(), harness.FakeNode(name), metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// ownerRef is a controller reference to owner.
func ownerRef(apiVersion, kind string, owner metav1.Object) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: ptr(true)}
}

// podSpec uses ConfigMap app-config (volume), Secret app-secret (env), PVC data, a ConfigMap that does not
// exist (envFrom) and an optional one that does not either.
func podSpec(node string) corev1.PodSpec {
	optional := true
	return corev1.PodSpec{
		NodeName: node,
		Containers: []corev1.Container{{
			Name: "c", Image: "nginx",
			Env: []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app-secret"}, Key: "password"}}}},
			EnvFrom: []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone-config"}}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "optional-config"},
					Optional: &optional}},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
				ClaimName: "data"}}},
		},
	}
}

// seedDeployment makes, in ns, Deployment web → ReplicaSet web-1 → Pods web-1-a and web-1-b (Running on a
// kwok node), Service web selecting them with its EndpointSlice, HPA web, ConfigMap app-config, Secret
// app-secret, PVC data bound to PV <ns>-data of StorageClass <ns>-fast.
func (e *env) seedDeployment(t *testing.T, ns string) {
	t.Helper()
	ctx := t.Context()
	node := ns + "-node"
	e.namespace(t, ns)
	e.fakeNode(t, node)
	core := e.cs.CoreV1()
	must[*corev1.ConfigMap](t)(core.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config"}},
		metav1.CreateOptions{}))
	must[*corev1.Secret](t)(core.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		StringData: map[string]string{"password": "s3cret"}}, metav1.CreateOptions{}))
	must[*storagev1.StorageClass](t)(e.cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-fast"}, Provisioner: "example.com/fake"}, metav1.CreateOptions{}))
	pvc := must[*corev1.PersistentVolumeClaim](t)(core.PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: ns + "-data", StorageClassName: ptr(ns + "-fast"),
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}, metav1.CreateOptions{}))
	must[*corev1.PersistentVolume](t)(core.PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-data"},
		Spec: corev1.PersistentVolumeSpec{StorageClassName: ns + "-fast",
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			ClaimRef:    &corev1.ObjectReference{Namespace: ns, Name: "data", UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/tmp/data"}}},
	}, metav1.CreateOptions{}))

	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec("")}
	dep := must[*appsv1.Deployment](t)(e.cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: template},
	}, metav1.CreateOptions{}))
	rs := must[*appsv1.ReplicaSet](t)(e.cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", OwnerReferences: []metav1.OwnerReference{
			ownerRef("apps/v1", "Deployment", dep)}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: template},
	}, metav1.CreateOptions{}))
	for _, name := range []string{"web-1-a", "web-1-b"} {
		must[*corev1.Pod](t)(core.Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, OwnerReferences: []metav1.OwnerReference{
				ownerRef("apps/v1", "ReplicaSet", rs)}},
			Spec: podSpec(node),
		}, metav1.CreateOptions{}))
	}
	must[*corev1.Service](t)(core.Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}))
	must[*discoveryv1.EndpointSlice](t)(e.cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abcde", Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}, metav1.CreateOptions{}))
	must[*autoscalingv2.HorizontalPodAutoscaler](t)(e.cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx,
		&autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5, ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
		}, metav1.CreateOptions{}))
	e.running(t, ns, "web-1-a", "web-1-b")
}

// running waits until kwok has the pods Running.
func (e *env) running(t *testing.T, ns string, pods ...string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			for _, name := range pods {
				p, err := e.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil || p.Status.Phase != corev1.PodRunning {
					return false, err
				}
			}
			return true, nil
		})
	if err != nil {
		t.Fatalf("pods %v not Running: %v", pods, err)
	}
}

func ptr[T any](v T) *T { return &v }

// nodeSet is the graph's nodes as "id" (missing ones as "id (missing)").
func nodeSet(g graph.Graph) []string {
	out := make([]string, 0, len(g.Nodes))
	for _, n := range g.Nodes {
		s := n.ID
		if n.Missing {
			s += " (missing)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// edgeSet is the graph's edges as "from -type-> to".
func edgeSet(g graph.Graph) []string {
	out := make([]string, 0, len(g.Edges))
	for _, e := range g.Edges {
		out = append(out, e.From+" -"+e.Type+"-> "+e.To)
	}
	sort.Strings(out)
	return out
}

func expectSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

// expand replaces {ns} in each string.
func expand(ns string, s ...string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strings.ReplaceAll(x, "{ns}", ns)
	}
	return out
}

func statusOf(g graph.Graph, id string) string {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n.Status
		}
	}
	return "<no node>"
}

func TestRelationsDeployment(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-deploy"
	e.seedDeployment(t, ns)

	t.Run("depth 3", func(t *testing.T) {
		g := e.graphOf(t, "/api/v1/relations/deployments.apps/"+ns+"/web")
		expectSet(t, "nodes", nodeSet(g), expand(ns,
			"deployments.apps/{ns}/web", "replicasets.apps/{ns}/web-1", "pods/{ns}/web-1-a", "pods/{ns}/web-1-b",
			"configmaps/{ns}/app-config", "secrets/{ns}/app-secret", "persistentvolumeclaims/{ns}/data",
			"configmaps/{ns}/gone-config (missing)", "horizontalpodautoscalers.autoscaling/{ns}/web",
			"persistentvolumes/{ns}-data", "storageclasses.storage.k8s.io/{ns}-fast", "nodes/{ns}-node", "services/{ns}/web"))
		var want []string
		for _, user := range []string{"deployments.apps/{ns}/web", "replicasets.apps/{ns}/web-1", "pods/{ns}/web-1-a", "pods/{ns}/web-1-b"} {
			for _, used := range []string{"configmaps/{ns}/app-config", "secrets/{ns}/app-secret",
				"persistentvolumeclaims/{ns}/data", "configmaps/{ns}/gone-config"} {
				want = append(want, user+" -uses-> "+used)
			}
		}
		want = append(want,
			"deployments.apps/{ns}/web -owns-> replicasets.apps/{ns}/web-1",
			"replicasets.apps/{ns}/web-1 -owns-> pods/{ns}/web-1-a",
			"replicasets.apps/{ns}/web-1 -owns-> pods/{ns}/web-1-b",
			"horizontalpodautoscalers.autoscaling/{ns}/web -scales-> deployments.apps/{ns}/web",
			"persistentvolumeclaims/{ns}/data -stores-> persistentvolumes/{ns}-data",
			"persistentvolumes/{ns}-data -stores-> storageclasses.storage.k8s.io/{ns}-fast",
			"pods/{ns}/web-1-a -runs-on-> nodes/{ns}-node",
			"pods/{ns}/web-1-b -runs-on-> nodes/{ns}-node",
			"services/{ns}/web -selects-> pods/{ns}/web-1-a",
			"services/{ns}/web -selects-> pods/{ns}/web-1-b",
		)
		expectSet(t, "edges", edgeSet(g), expand(ns, want...))
		if g.Truncated || len(g.Errors) > 0 {
			t.Errorf("truncated %v, errors %v", g.Truncated, g.Errors)
		}
		for id, want := range map[string]string{"pods/" + ns + "/web-1-a": "Running", "deployments.apps/" + ns + "/web": "ready 0/2",
			"nodes/" + ns + "-node": "Ready", "configmaps/" + ns + "/gone-config": ""} {
			if got := statusOf(g, id); got != want {
				t.Errorf("status of %s = %q, want %q", id, got, want)
			}
		}
	})

	t.Run("depth 1", func(t *testing.T) {
		g := e.graphOf(t, "/api/v1/relations/deploy/"+ns+"/web?depth=1")
		expectSet(t, "nodes", nodeSet(g), expand(ns,
			"deployments.apps/{ns}/web", "replicasets.apps/{ns}/web-1", "configmaps/{ns}/app-config",
			"secrets/{ns}/app-secret", "persistentvolumeclaims/{ns}/data", "configmaps/{ns}/gone-config (missing)",
			"horizontalpodautoscalers.autoscaling/{ns}/web"))
		expectSet(t, "edges", edgeSet(g), expand(ns,
			"deployments.apps/{ns}/web -owns-> replicasets.apps/{ns}/web-1",
			"deployments.apps/{ns}/web -uses-> configmaps/{ns}/app-config",
			"deployments.apps/{ns}/web -uses-> secrets/{ns}/app-secret",
			"deployments.apps/{ns}/web -uses-> persistentvolumeclaims/{ns}/data",
			"deployments.apps/{ns}/web -uses-> configmaps/{ns}/gone-config",
			"horizontalpodautoscalers.autoscaling/{ns}/web -scales-> deployments.apps/{ns}/web"))
	})

	t.Run("reverse uses", func(t *testing.T) {
		g := e.graphOf(t, "/api/v1/relations/cm/"+ns+"/app-config?depth=1")
		expectSet(t, "nodes", nodeSet(g), expand(ns, "configmaps/{ns}/app-config", "deployments.apps/{ns}/web",
			"replicasets.apps/{ns}/web-1", "pods/{ns}/web-1-a", "pods/{ns}/web-1-b"))
		expectSet(t, "edges", edgeSet(g), expand(ns,
			"deployments.apps/{ns}/web -uses-> configmaps/{ns}/app-config",
			"replicasets.apps/{ns}/web-1 -uses-> configmaps/{ns}/app-config",
			"pods/{ns}/web-1-a -uses-> configmaps/{ns}/app-config",
			"pods/{ns}/web-1-b -uses-> configmaps/{ns}/app-config"))
	})

	t.Run("service", func(t *testing.T) {
		g := e.graphOf(t, "/api/v1/relations/svc/"+ns+"/web?depth=1")
		expectSet(t, "nodes", nodeSet(g), expand(ns, "services/{ns}/web", "pods/{ns}/web-1-a", "pods/{ns}/web-1-b",
			"endpointslices.discovery.k8s.io/{ns}/web-abcde"))
		expectSet(t, "edges", edgeSet(g), expand(ns,
			"services/{ns}/web -selects-> pods/{ns}/web-1-a",
			"services/{ns}/web -selects-> pods/{ns}/web-1-b",
			"endpointslices.discovery.k8s.io/{ns}/web-abcde -binds-> services/{ns}/web"))
	})

	t.Run("cluster-scoped start", func(t *testing.T) {
		g := e.graphOf(t, "/api/v1/relations/pv/"+ns+"-data?depth=1")
		expectSet(t, "nodes", nodeSet(g), expand(ns, "persistentvolumes/{ns}-data",
			"persistentvolumeclaims/{ns}/data", "storageclasses.storage.k8s.io/{ns}-fast"))
		expectSet(t, "edges", edgeSet(g), expand(ns,
			"persistentvolumeclaims/{ns}/data -stores-> persistentvolumes/{ns}-data",
			"persistentvolumes/{ns}-data -stores-> storageclasses.storage.k8s.io/{ns}-fast"))

		g = e.graphOf(t, "/api/v1/relations/nodes/"+ns+"-node?depth=1")
		expectSet(t, "nodes", nodeSet(g), expand(ns, "nodes/{ns}-node", "pods/{ns}/web-1-a", "pods/{ns}/web-1-b"))
		expectSet(t, "edges", edgeSet(g), expand(ns,
			"pods/{ns}/web-1-a -runs-on-> nodes/{ns}-node", "pods/{ns}/web-1-b -runs-on-> nodes/{ns}-node"))
	})
}

var cloneSetGVR = schema.GroupVersionResource{Group: "apps.kruise.io", Version: "v1alpha1", Resource: "clonesets"}

// A CRD's objects own pods like built-in ones; kubectl's short name of a CRD (clone) names the start.
func TestRelationsCloneSet(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-kruise"
	e.namespace(t, ns)
	cs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
		"metadata": map[string]any{"name": "cs"},
		"spec": map[string]any{"replicas": int64(2), "template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"app": "cs"}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "nginx"}}},
		}},
	}}
	cs = must[*unstructured.Unstructured](t)(e.dyn.Resource(cloneSetGVR).Namespace(ns).Create(t.Context(), cs,
		metav1.CreateOptions{}))
	for _, name := range []string{"cs-a", "cs-b"} {
		must[*corev1.Pod](t)(e.cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "cs"},
				OwnerReferences: []metav1.OwnerReference{ownerRef("apps.kruise.io/v1alpha1", "CloneSet", cs)}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}, metav1.CreateOptions{}))
	}

	g := e.graphOf(t, "/api/v1/relations/clone/"+ns+"/cs?depth=1")
	expectSet(t, "nodes", nodeSet(g), expand(ns, "clonesets.apps.kruise.io/{ns}/cs", "pods/{ns}/cs-a", "pods/{ns}/cs-b"))
	expectSet(t, "edges", edgeSet(g), expand(ns, "clonesets.apps.kruise.io/{ns}/cs -owns-> pods/{ns}/cs-a",
		"clonesets.apps.kruise.io/{ns}/cs -owns-> pods/{ns}/cs-b"))
	if got := statusOf(g, "clonesets.apps.kruise.io/"+ns+"/cs"); got != "ready 0/2" {
		t.Errorf("CloneSet status %q, want ready 0/2", got)
	}

	// From a pod: up to its CloneSet, then down to its sibling.
	g = e.graphOf(t, "/api/v1/relations/po/"+ns+"/cs-a?depth=2")
	expectSet(t, "nodes", nodeSet(g), expand(ns, "clonesets.apps.kruise.io/{ns}/cs", "pods/{ns}/cs-a", "pods/{ns}/cs-b"))
	expectSet(t, "edges", edgeSet(g), expand(ns, "clonesets.apps.kruise.io/{ns}/cs -owns-> pods/{ns}/cs-a",
		"clonesets.apps.kruise.io/{ns}/cs -owns-> pods/{ns}/cs-b"))
}

// An ownerReference cycle made by hand ends (each object is one node, reached once); an owner reference whose
// UID is not the object's of that name (deleted and recreated) is a missing owner.
func TestRelationsOwnerCycle(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-cycle"
	e.namespace(t, ns)
	svcs := e.cs.CoreV1().Services(ns)
	mk := func(name string, owner metav1.Object) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
		if owner != nil {
			s.OwnerReferences = []metav1.OwnerReference{ownerRef("v1", "Service", owner)}
		}
		return must[*corev1.Service](t)(svcs.Create(t.Context(), s, metav1.CreateOptions{}))
	}
	a := mk("a", nil)
	b := mk("b", a)
	c := mk("c", b)
	a.OwnerReferences = []metav1.OwnerReference{ownerRef("v1", "Service", c)}
	must[*corev1.Service](t)(svcs.Update(t.Context(), a, metav1.UpdateOptions{}))

	for _, start := range []string{"a", "b"} {
		g := e.graphOf(t, "/api/v1/relations/services/"+ns+"/"+start+"?depth=5")
		expectSet(t, "nodes", nodeSet(g), expand(ns, "services/{ns}/a", "services/{ns}/b", "services/{ns}/c"))
		expectSet(t, "edges", edgeSet(g), expand(ns, "services/{ns}/a -owns-> services/{ns}/b",
			"services/{ns}/b -owns-> services/{ns}/c", "services/{ns}/c -owns-> services/{ns}/a"))
	}

	stale := ownerRef("v1", "Service", b)
	stale.UID = "00000000-0000-0000-0000-000000000000"
	must[*corev1.Service](t)(svcs.Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", OwnerReferences: []metav1.OwnerReference{stale}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}))
	g := e.graphOf(t, "/api/v1/relations/services/"+ns+"/orphan?depth=1")
	expectSet(t, "nodes", nodeSet(g), expand(ns, "services/{ns}/orphan", "services/{ns}/b (missing)"))
	expectSet(t, "edges", edgeSet(g), expand(ns, "services/{ns}/b -owns-> services/{ns}/orphan"))
}

// A graph over the node limit is cut, keeping the nodes found first.
func TestRelationsTruncated(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_RELATIONS_MAX_NODES": "3"})
	const ns = "rel-trunc"
	e.namespace(t, ns)
	labels := map[string]string{"app": "many"}
	must[*corev1.Service](t)(e.cs.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "many"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}))
	for i := 1; i <= 5; i++ {
		must[*corev1.Pod](t)(e.cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}, metav1.CreateOptions{}))
	}
	g := e.graphOf(t, "/api/v1/relations/services/"+ns+"/many?depth=2")
	if !g.Truncated {
		t.Error("not truncated")
	}
	expectSet(t, "nodes", nodeSet(g), expand(ns, "services/{ns}/many", "pods/{ns}/p-1", "pods/{ns}/p-2"))
	expectSet(t, "edges", edgeSet(g), expand(ns, "services/{ns}/many -selects-> pods/{ns}/p-1",
		"services/{ns}/many -selects-> pods/{ns}/p-2"))
}

// Kinds the credentials may not list are skipped and reported, never a failure of the whole graph.
func TestRelationsForbiddenKinds(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-limited"
	e.seedDeployment(t, ns)
	rbac := e.cs.RbacV1()
	must[*rbacv1.Role](t)(rbac.Roles(ns).Create(t.Context(), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "workloads"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"},
			Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{}))
	must[*rbacv1.RoleBinding](t)(rbac.RoleBindings(ns).Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "workloads"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "workloads"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: limitedUser}},
	}, metav1.CreateOptions{}))
	e.api.AddCluster("limited", kube.Kubeconfig(limitedUser))

	g := e.graphOf(t, "/api/v1/relations/deployments/"+ns+"/web?depth=2", "X-Cluster-Name", "limited")
	expectSet(t, "nodes", nodeSet(g), expand(ns, "deployments.apps/{ns}/web", "replicasets.apps/{ns}/web-1"))
	expectSet(t, "edges", edgeSet(g), expand(ns, "deployments.apps/{ns}/web -owns-> replicasets.apps/{ns}/web-1"))
	reported := map[string]bool{}
	for _, le := range g.Errors {
		if le.Status != http.StatusForbidden || !strings.Contains(le.Message, "forbidden") {
			t.Errorf("error %+v, want a 403 with the cluster's message", le)
		}
		reported[le.Resource] = true
	}
	for _, want := range []string{"configmaps", "secrets", "persistentvolumeclaims", "pods",
		"horizontalpodautoscalers.autoscaling"} {
		if !reported[want] {
			t.Errorf("%s not reported in %+v", want, g.Errors)
		}
	}
}

func TestRelationsRequestErrors(t *testing.T) {
	e := setup(t, nil)
	for _, tc := range []struct {
		path, cluster string
		status        int
		code, message string
	}{
		{"/api/v1/relations/pods/default/x?depth=6", "test", 400, "bad_request", "depth"},
		{"/api/v1/relations/pods/default/x?depth=0", "test", 400, "bad_request", "depth"},
		{"/api/v1/relations/pods/default/x?depth=two", "test", 400, "bad_request", "depth"},
		{"/api/v1/relations/pods/default/x", "nowhere", 404, "not_found", `cluster "nowhere"`},
		{"/api/v1/relations/widgets/default/x", "test", 404, "not_found", `resource "widgets"`},
		{"/api/v1/relations/pods/default/nope", "test", 404, "not_found", `pods "nope" not found in namespace "default"`},
		{"/api/v1/relations/nodes/nope", "test", 404, "not_found", `nodes "nope" not found`},
		{"/api/v1/relations/pods/nope", "test", 400, "bad_request", "namespaced"},
		{"/api/v1/relations/nodes/a/b", "test", 400, "bad_request", "cluster-scoped"},
		{"/api/v1/relations/pods", "test", 400, "bad_request", "name an object"},
	} {
		res := e.api.Do(http.MethodGet, tc.path, nil, "X-Cluster-Name", tc.cluster).Expect(t, tc.status, tc.code)
		if !strings.Contains(res.Message(), tc.message) {
			t.Errorf("%s: message %q, want it to say %q", tc.path, res.Message(), tc.message)
		}
	}
}

// create makes every object of a multi-document YAML, mapping kinds through discovery.
func (e *env) create(t *testing.T, ns, docs string) {
	t.Helper()
	groups, err := restmapper.GetAPIGroupResources(e.cs.Discovery())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(docs), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
		if u.Object == nil {
			continue
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		ri := e.dyn.Resource(m.Resource).Namespace("")
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = e.dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Create(t.Context(), &u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s %s: %v", gvk.Kind, u.GetName(), err)
		}
	}
}

const routing = `
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, labels: {app: web}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend: {service: {name: gone, port: {number: 80}}}
  tls: [{secretName: tls}]
  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec: {gatewayClassName: x, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: web, port: 80}]}]}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip}
spec: {stripPrefix: {prefixes: [/api]}}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: web}
spec:
  routes: [{match: "PathPrefix(` + "`/`" + `)", services: [{name: web, port: 80}], middlewares: [{name: strip}, {name: gone-mw}]}]
  tls: {secretName: tls}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: rel-routes-hook}
webhooks:
- name: check.example.com
  clientConfig: {service: {namespace: rel-routes, name: web, path: /}}
  rules: [{operations: [CREATE], apiGroups: [example.com], apiVersions: [v1], resources: [widgets]}]
  sideEffects: None
  failurePolicy: Ignore
  admissionReviewVersions: [v1]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {matchLabels: {app: web}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: robot}, {kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rel-routes-view}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rel-routes-crb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rel-routes-view}
subjects: [{kind: ServiceAccount, name: robot, namespace: rel-routes}]
`

// Traffic (Ingress, HTTPRoute, IngressRoute, webhooks), selectors (NetworkPolicy, PodDisruptionBudget) and
// RBAC bindings, from either end.
func TestRelationsRoutingAndBindings(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-routes"
	e.namespace(t, ns)
	e.create(t, ns, routing)
	const (
		svc   = "services/{ns}/web"
		ing   = "ingresses.networking.k8s.io/{ns}/web"
		route = "httproutes.gateway.networking.k8s.io/{ns}/web"
		gw    = "gateways.gateway.networking.k8s.io/{ns}/gw"
		ir    = "ingressroutes.traefik.io/{ns}/web"
		hook  = "validatingwebhookconfigurations.admissionregistration.k8s.io/rel-routes-hook"
		pod   = "pods/{ns}/web-0"
		tls   = "secrets/{ns}/tls"
		sa    = "serviceaccounts/{ns}/robot"
		rb    = "rolebindings.rbac.authorization.k8s.io/{ns}/rb"
		crb   = "clusterrolebindings.rbac.authorization.k8s.io/rel-routes-crb"
		cr    = "clusterroles.rbac.authorization.k8s.io/rel-routes-view"
	)
	for _, tc := range []struct {
		start        string
		nodes, edges []string
	}{
		{"svc/{ns}/web", []string{svc, pod, ing, route, ir, hook},
			[]string{svc + " -selects-> " + pod, ing + " -routes-> " + svc, route + " -routes-> " + svc,
				ir + " -routes-> " + svc, hook + " -routes-> " + svc}},
		{"ingresses/{ns}/web", []string{ing, svc, tls, "services/{ns}/gone (missing)"},
			[]string{ing + " -routes-> " + svc, ing + " -routes-> services/{ns}/gone", ing + " -uses-> " + tls}},
		{"httproutes/{ns}/web", []string{route, svc, gw}, []string{route + " -routes-> " + svc, route + " -routes-> " + gw}},
		{"gateways.gateway.networking.k8s.io/{ns}/gw", []string{gw, route}, []string{route + " -routes-> " + gw}},
		{"ingressroute/{ns}/web", []string{ir, svc, tls, "middlewares.traefik.io/{ns}/strip",
			"middlewares.traefik.io/{ns}/gone-mw (missing)"},
			[]string{ir + " -routes-> " + svc, ir + " -uses-> " + tls, ir + " -uses-> middlewares.traefik.io/{ns}/strip",
				ir + " -uses-> middlewares.traefik.io/{ns}/gone-mw"}},
		{"middlewares/{ns}/strip", []string{"middlewares.traefik.io/{ns}/strip", ir},
			[]string{ir + " -uses-> middlewares.traefik.io/{ns}/strip"}},
		{"secrets/{ns}/tls", []string{tls, ing, ir}, []string{ing + " -uses-> " + tls, ir + " -uses-> " + tls}},
		{"pods/{ns}/web-0", []string{pod, svc, "networkpolicies.networking.k8s.io/{ns}/np", "poddisruptionbudgets.policy/{ns}/pdb"},
			[]string{svc + " -selects-> " + pod, "networkpolicies.networking.k8s.io/{ns}/np -selects-> " + pod,
				"poddisruptionbudgets.policy/{ns}/pdb -selects-> " + pod}},
		{"rolebindings/{ns}/rb", []string{rb, "roles.rbac.authorization.k8s.io/{ns}/reader", sa},
			[]string{rb + " -binds-> roles.rbac.authorization.k8s.io/{ns}/reader", rb + " -binds-> " + sa}},
		{"sa/{ns}/robot", []string{sa, rb, crb}, []string{rb + " -binds-> " + sa, crb + " -binds-> " + sa}},
		{"clusterroles/rel-routes-view", []string{cr, crb}, []string{crb + " -binds-> " + cr}},
		{"validatingwebhookconfigurations/rel-routes-hook", []string{hook, svc}, []string{hook + " -routes-> " + svc}},
	} {
		t.Run(tc.start, func(t *testing.T) {
			g := e.graphOf(t, "/api/v1/relations/"+expand(ns, tc.start)[0]+"?depth=1")
			expectSet(t, "nodes", nodeSet(g), expand(ns, tc.nodes...))
			expectSet(t, "edges", edgeSet(g), expand(ns, tc.edges...))
		})
	}
}

// A Deployment with 100 pods at depth 3: every pod is in the graph with its edges, and the warm duration is
// logged (the goal, measured without -race by the bench, is at most 100 ms).
func TestRelations100Pods(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-hundred"
	e.seedDeployment(t, ns)
	rs := must[*appsv1.ReplicaSet](t)(e.cs.AppsV1().ReplicaSets(ns).Get(t.Context(), "web-1", metav1.GetOptions{}))
	for i := range 98 {
		must[*corev1.Pod](t)(e.cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-1-%03d", i), Labels: map[string]string{"app": "web"},
				OwnerReferences: []metav1.OwnerReference{ownerRef("apps/v1", "ReplicaSet", rs)}},
			Spec: podSpec(ns + "-node"),
		}, metav1.CreateOptions{}))
	}
	path := "/api/v1/relations/deployments/" + ns + "/web"
	var g graph.Graph
	for _, api := range []struct {
		name string
		e    *env
	}{{"reads afresh", e}, {"reads shared (the default)", setup(t, map[string]string{"KITEFN_RELATIONS_CACHE_TTL": "1m"})}} {
		api.e.graphOf(t, path) // warm: discovery, connections
		var best time.Duration
		for range 5 {
			began := time.Now()
			g = api.e.graphOf(t, path)
			if d := time.Since(began); best == 0 || d < best {
				best = d
			}
		}
		t.Logf("relations of a Deployment with 100 pods at depth 3, %s: %d nodes, %d edges, best of 5 %s",
			api.name, len(g.Nodes), len(g.Edges), best)
	}
	// 13 nodes of TestRelationsDeployment's graph and 98 more pods, each owned, selected, running on the node
	// and using the four objects of its spec.
	if len(g.Nodes) != 13+98 || len(g.Edges) != 26+98*7 || g.Truncated {
		t.Errorf("%d nodes, %d edges, truncated %v; want %d, %d", len(g.Nodes), len(g.Edges), g.Truncated, 13+98, 26+98*7)
	}
}

// An owner of a kind installed after the cluster's discovery was read is found (discovery is re-read), not
// reported missing.
func TestRelationsOwnerOfNewCRD(t *testing.T) {
	e := setup(t, nil)
	const ns = "rel-newcrd"
	e.namespace(t, ns)
	e.get(t, "/api/v1/relations/pods/"+ns+"/none").Expect(t, http.StatusNotFound, "not_found") // discovery read

	crd := `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	e.create(t, ns, crd)
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	var w *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			var err error
			w, err = e.dyn.Resource(widgets).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"}}},
				metav1.CreateOptions{})
			return err == nil, nil // not served until the CRD is established
		})
	if err != nil {
		t.Fatalf("Widget never created: %v", err)
	}
	must[*corev1.Pod](t)(e.cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "wp", OwnerReferences: []metav1.OwnerReference{ownerRef("example.com/v1", "Widget", w)}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}, metav1.CreateOptions{}))

	g := e.graphOf(t, "/api/v1/relations/pods/"+ns+"/wp?depth=1")
	expectSet(t, "nodes", nodeSet(g), expand(ns, "pods/{ns}/wp", "widgets.example.com/{ns}/w"))
	expectSet(t, "edges", edgeSet(g), expand(ns, "widgets.example.com/{ns}/w -owns-> pods/{ns}/wp"))
}

// With a cache TTL, reads are shared between requests: an object created since is not seen until it passes,
// while a function reading afresh sees it at once.
func TestRelationsSharedReads(t *testing.T) {
	shared := setup(t, map[string]string{"KITEFN_RELATIONS_CACHE_TTL": "1m"})
	const ns = "rel-shared"
	shared.namespace(t, ns)
	labels := map[string]string{"app": "s"}
	must[*corev1.Service](t)(shared.cs.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}))
	pod := func(name string) {
		must[*corev1.Pod](t)(shared.cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}, metav1.CreateOptions{}))
	}
	pod("p-1")
	path := "/api/v1/relations/services/" + ns + "/s?depth=1"
	expectSet(t, "nodes", nodeSet(shared.graphOf(t, path)), expand(ns, "services/{ns}/s", "pods/{ns}/p-1"))
	pod("p-2")
	expectSet(t, "nodes (shared)", nodeSet(shared.graphOf(t, path)), expand(ns, "services/{ns}/s", "pods/{ns}/p-1"))
	fresh := setup(t, nil)
	expectSet(t, "nodes (afresh)", nodeSet(fresh.graphOf(t, path)), expand(ns, "services/{ns}/s", "pods/{ns}/p-1", "pods/{ns}/p-2"))
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	searchNamespaces = 20
	relNamespace     = "search-rel"
	relName          = "rel-app"
	relPods          = 100
	seedWorkers      = 32
)

// searchKinds are the kinds seeded and searched, as the baselines list them.
var searchKinds = []schema.GroupVersionResource{
	{Version: "v1", Resource: "pods"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
}

// searchSeed is how many objects of each kind the bench creates over searchNamespaces namespaces.
type searchSeed struct{ pods, deployments, services, configmaps int }

// scaledSeed is the seed (10,000 Pods, 2,000 Deployments, 2,000 Services, 5,000 ConfigMaps) times
// scale, at least 10 of each so that every search term finds something.
func scaledSeed(scale float64) searchSeed {
	n := func(full int) int { return max(10, int(math.Round(float64(full)*scale))) }
	return searchSeed{pods: n(10000), deployments: n(2000), services: n(2000), configmaps: n(5000)}
}

func (s searchSeed) total() int { return s.pods + s.deployments + s.services + s.configmaps }

// relationObjects is what seedRelations adds to the searched kinds: the Pods, the Deployment, the Service
// and the ConfigMap (the ReplicaSet is not a searched kind).
const relationObjects = relPods + 3

// seedSearch creates the seed concurrently. The objects are minimal and nothing runs them: Deployments have
// no replicas (there is no controller-manager) and Services are headless (no ClusterIP to allocate).
func seedSearch(ctx context.Context, cs kubernetes.Interface, s searchSeed) error {
	ns := func(i int) string { return fmt.Sprintf("search-%02d", i%searchNamespaces) }
	for i := 0; i < searchNamespaces; i++ {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns(i)}},
			metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(seedWorkers)
	create := func(count int, one func(i int) error) {
		for i := 0; i < count; i++ {
			g.Go(func() error { return one(i) })
		}
	}
	opts := metav1.CreateOptions{}
	create(s.pods, func(i int) error {
		app := fmt.Sprintf("app-%d", i%50)
		_, err := cs.CoreV1().Pods(ns(i)).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{"app": app, "tier": "search"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.0"}}},
		}, opts)
		return wrap(err, "pod")
	})
	create(s.deployments, func(i int) error {
		labels := map[string]string{"app": fmt.Sprintf("deploy-%04d", i)}
		_, err := cs.AppsV1().Deployments(ns(i)).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("deploy-%04d", i), Labels: labels},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.0"}}}}},
		}, opts)
		return wrap(err, "deployment")
	})
	create(s.services, func(i int) error {
		_, err := cs.CoreV1().Services(ns(i)).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%04d", i)},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": fmt.Sprintf("app-%d", i%50)},
				Ports: []corev1.ServicePort{{Port: 80}}},
		}, opts)
		return wrap(err, "service")
	})
	create(s.configmaps, func(i int) error {
		_, err := cs.CoreV1().ConfigMaps(ns(i)).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%04d", i)}, Data: map[string]string{"mode": "search"},
		}, opts)
		return wrap(err, "configmap")
	})
	return g.Wait()
}

// seedRelations creates, in its own namespace, a Deployment owning a ReplicaSet owning relPods Pods that mount
// a ConfigMap, and a Service selecting those Pods: the graph the relations route walks at depth 3.
func seedRelations(ctx context.Context, cs kubernetes.Interface) error {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: relNamespace}},
		metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	opts := metav1.CreateOptions{}
	labels := map[string]string{"app": relName}
	if _, err := cs.CoreV1().ConfigMaps(relNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "rel-config"}, Data: map[string]string{"mode": "relations"}}, opts); err != nil {
		return wrap(err, "configmap")
	}
	if _, err := cs.CoreV1().Services(relNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: relName},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}, opts); err != nil {
		return wrap(err, "service")
	}
	podSpec := corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.0",
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}}}},
		Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "rel-config"}}}}},
	}
	dep, err := cs.AppsV1().Deployments(relNamespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: relName, Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](relPods), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}},
	}, opts)
	if err != nil {
		return wrap(err, "deployment")
	}
	rsName := relName + "-7d4b9c8f6"
	rsLabels := map[string]string{"app": relName, "pod-template-hash": "7d4b9c8f6"}
	rs, err := cs.AppsV1().ReplicaSets(relNamespace).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: rsName, Labels: rsLabels, OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(dep, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](relPods), Selector: &metav1.LabelSelector{MatchLabels: rsLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: rsLabels}, Spec: podSpec}},
	}, opts)
	if err != nil {
		return wrap(err, "replicaset")
	}
	owner := *metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(seedWorkers)
	for i := 0; i < relPods; i++ {
		g.Go(func() error {
			_, err := cs.CoreV1().Pods(relNamespace).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%05d", rsName, i), Labels: rsLabels,
					OwnerReferences: []metav1.OwnerReference{owner}},
				Spec: podSpec,
			}, opts)
			return wrap(err, "pod")
		})
	}
	return g.Wait()
}

func wrap(err error, what string) error {
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	return nil
}

// floorResult is what the floor program prints.
type floorResult struct {
	Samples []int64 `json:"samples"`
	Objects int64   `json:"objects"`
	Matches int64   `json:"matches"`
}

// runFloor runs the bare client-go floor program (tests/bench/floor) and returns its samples.
func runFloor(ctx context.Context, bin, kubeconfig, term string, runs, clusters int, fresh bool) ([]time.Duration, *floorResult, error) {
	cmd := exec.CommandContext(ctx, bin, "-kubeconfig", kubeconfig, "-q", term, "-runs", strconv.Itoa(runs),
		"-clusters", strconv.Itoa(clusters), "-fresh="+strconv.FormatBool(fresh))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("floor program: %w: %s", err, stderr.String())
	}
	var res floorResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, nil, fmt.Errorf("floor program's output %q: %w", out, err)
	}
	samples := make([]time.Duration, len(res.Samples))
	for i, ns := range res.Samples {
		samples[i] = time.Duration(ns)
	}
	return samples, &res, nil
}

// seedDesign is the seed's search: concurrent full-object dynamic LISTs of every kind, filtered by name. It
// returns the objects listed and the names that matched.
func seedDesign(ctx context.Context, dc dynamic.Interface, term string) (objects, matches int64, err error) {
	var nObjects, nMatches atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for _, gvr := range searchKinds {
		g.Go(func() error {
			list, err := dc.Resource(gvr).List(ctx, metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("list %s: %w", gvr.Resource, err)
			}
			nObjects.Add(int64(len(list.Items)))
			for i := range list.Items {
				if strings.Contains(list.Items[i].GetName(), term) {
					nMatches.Add(1)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	return nObjects.Load(), nMatches.Load(), nil
}

package resources_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

// limitedUser may use pods and CloneSets in one namespace and nothing else (no CRD reads).
const limitedUser = "limited"

func TestMain(m *testing.M) { harness.Main(m, &kube, harness.WithUser(limitedUser)) }

// env is a resources API over the test cluster, registered as "test", plus admin clients to seed it.
type env struct {
	api *apitest.Server
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

func setup(t *testing.T) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, nil, apitest.Function("resources"))
	api.AddCluster("test", kube.AdminKubeconfig())
	return &env{api: api, cs: kubernetes.NewForConfigOrDie(kube.RESTConfig()), dyn: dynamic.NewForConfigOrDie(kube.RESTConfig())}
}

// get calls the API on the test cluster.
func (e *env) do(method, path string, body any, hdr ...string) apitest.Response {
	return e.api.Do(method, path, body, append([]string{"X-Cluster-Name", "test"}, hdr...)...)
}

func (e *env) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (e *env) pod(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	_, err := e.cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// afterCreation waits until the clock's whole second is past the pod's creationTimestamp (the apiserver runs on
// this machine, on the same clock).
func (e *env) afterCreation(t *testing.T, ns, name string) {
	t.Helper()
	pod, err := e.cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created := pod.CreationTimestamp.Time
	err = wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return time.Now().Truncate(time.Second).After(created), nil })
	if err != nil {
		t.Fatalf("the clock did not pass %s/%s's creationTimestamp %s: %v", ns, name, created, err)
	}
}

func names(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		md := it["metadata"].(map[string]any)
		out = append(out, fmt.Sprint(md["namespace"], "/", md["name"]))
	}
	return out
}

func TestListAndGetCoreResources(t *testing.T) {
	e := setup(t)
	e.namespace(t, "list-a")
	e.namespace(t, "list-b")
	// creationTimestamp has second resolution: each pod is created once the clock is past the previous one's,
	// so "newest first" is observable.
	e.pod(t, "list-a", "first", map[string]string{"app": "web"})
	e.afterCreation(t, "list-a", "first")
	e.pod(t, "list-b", "second", map[string]string{"app": "db"})
	e.afterCreation(t, "list-b", "second")
	e.pod(t, "list-a", "third", map[string]string{"app": "web"})

	for _, ref := range []string{"pods", "po", "pod", "Pod", "v1/pods"} {
		r := e.do(http.MethodGet, "/api/v1/resources/"+ref+"?labelSelector=app+in+(web,db)", nil).Expect(t, 200, "")
		got := names(r.Items())
		if strings.Join(got, ",") != "list-a/third,list-b/second,list-a/first" {
			t.Fatalf("%s: %v, want newest first across namespaces", ref, got)
		}
		if r.JSON["kind"] != "PodList" {
			t.Fatalf("%s: kind %v", ref, r.JSON["kind"])
		}
		for _, it := range r.Items() {
			if _, ok := it["metadata"].(map[string]any)["managedFields"]; ok {
				t.Fatal("managedFields not stripped")
			}
		}
	}
	r := e.do(http.MethodGet, "/api/v1/resources/pods?namespace=_all&labelSelector=app%3Dweb&managedFields=true", nil).Expect(t, 200, "")
	if got := names(r.Items()); strings.Join(got, ",") != "list-a/third,list-a/first" {
		t.Fatalf("_all + selector: %v", got)
	}
	if _, ok := r.Items()[0]["metadata"].(map[string]any)["managedFields"]; !ok {
		t.Fatal("managedFields=true dropped them")
	}
	for _, path := range []string{"/api/v1/resources/pods/list-a", "/api/v1/resources/pods?namespace=list-a"} {
		if got := names(e.do(http.MethodGet, path, nil).Expect(t, 200, "").Items()); strings.Join(got, ",") != "list-a/third,list-a/first" {
			t.Fatalf("%s: %v", path, got)
		}
	}
	r = e.do(http.MethodGet, "/api/v1/resources/pods?fieldSelector=metadata.name%3Dsecond", nil).Expect(t, 200, "")
	if got := names(r.Items()); len(got) != 1 || got[0] != "list-b/second" {
		t.Fatalf("fieldSelector: %v", got)
	}

	// Paging: limit + continue walk the whole list.
	seen := 0
	cont := ""
	for page := 0; page < 10; page++ {
		path := "/api/v1/resources/pods?labelSelector=app&limit=2"
		if cont != "" {
			path += "&continue=" + cont
		}
		r := e.do(http.MethodGet, path, nil).Expect(t, 200, "")
		seen += len(r.Items())
		cont, _ = r.JSON["metadata"].(map[string]any)["continue"].(string)
		if cont == "" {
			break
		}
	}
	if seen != 3 {
		t.Fatalf("paging saw %d pods, want 3", seen)
	}

	obj := e.do(http.MethodGet, "/api/v1/resources/pods/list-a/first", nil).Expect(t, 200, "")
	if obj.JSON["kind"] != "Pod" || obj.JSON["metadata"].(map[string]any)["name"] != "first" {
		t.Fatalf("get: %s", obj.Body)
	}
	ns := e.do(http.MethodGet, "/api/v1/resources/namespaces/list-a", nil).Expect(t, 200, "")
	if ns.JSON["kind"] != "Namespace" {
		t.Fatalf("cluster-scoped get: %s", ns.Body)
	}
	e.do(http.MethodGet, "/api/v1/resources/pods/list-a/ghost", nil).Expect(t, 404, "not_found")
	e.do(http.MethodGet, "/api/v1/resources/apps/v1/deployments", nil).Expect(t, 200, "")
	e.do(http.MethodGet, "/api/v1/resources/deploy?namespace=list-a", nil).Expect(t, 200, "")
	e.do(http.MethodGet, "/api/v1/resources/deployments.apps", nil).Expect(t, 200, "")
}

func TestBadRequests(t *testing.T) {
	e := setup(t)
	r := e.do(http.MethodGet, "/api/v1/resources/widgets", nil).Expect(t, 404, "not_found")
	if !strings.Contains(r.Message(), `"widgets"`) {
		t.Fatalf("unknown resource message does not name it: %q", r.Message())
	}
	e.do(http.MethodGet, "/api/v1/resources/pods?labelSelector=a%20in%20(", nil).Expect(t, 400, "bad_request")
	e.do(http.MethodGet, "/api/v1/resources/pods?fieldSelector=no-operator", nil).Expect(t, 400, "bad_request")
	e.do(http.MethodGet, "/api/v1/resources/pods?limit=-1", nil).Expect(t, 400, "bad_request")
	// The apiserver refuses a malformed continue token: its 400 comes back as a 400.
	r = e.do(http.MethodGet, "/api/v1/resources/pods?limit=1&continue=not-a-token", nil).Expect(t, 400, "bad_request")
	if !strings.Contains(r.Message(), "continue") {
		t.Fatalf("apiserver message lost: %q", r.Message())
	}
	e.api.Do(http.MethodGet, "/api/v1/resources/pods", nil).Expect(t, 400, "bad_request") // no cluster
	e.api.Do(http.MethodGet, "/api/v1/resources/pods", nil, "X-Cluster-Name", "nope").Expect(t, 404, "not_found")
	e.do(http.MethodGet, "/api/v1/nothing-here", nil).Expect(t, 404, "not_found")
	e.do(http.MethodDelete, "/api/v1/resources/pods", nil).Expect(t, 400, "bad_request")
	e.do(http.MethodPost, "/api/v1/resources/pods/default/x/explode", "{}").Expect(t, 404, "not_found")
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apply-ns
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
`

func TestApplyScaleRestartDelete(t *testing.T) {
	e := setup(t)
	e.namespace(t, "apply-ns")
	ctx := context.Background()
	cm := "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: \"1\"}\n"

	// Dry run creates nothing.
	r := e.do(http.MethodPost, "/api/v1/apply?dryRun=true&namespace=apply-ns", deployment+cm, "Content-Type", "application/yaml").Expect(t, 200, "")
	if len(r.Items()) != 2 || r.Items()[0]["status"] != "dry-run" || r.JSON["dryRun"] != float64(2) {
		t.Fatalf("dry run: %s", r.Body)
	}
	if _, err := e.cs.AppsV1().Deployments("apply-ns").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry run created the deployment: %v", err)
	}

	r = e.do(http.MethodPost, "/api/v1/apply?namespace=apply-ns", deployment+cm, "Content-Type", "application/yaml").Expect(t, 200, "")
	if len(r.Items()) != 2 || r.Items()[1]["namespace"] != "apply-ns" || r.Items()[0]["status"] != "applied" ||
		r.JSON["applied"] != float64(2) {
		t.Fatalf("apply: %s", r.Body)
	}
	// The same documents again change nothing: the apiserver keeps the resourceVersion.
	r = e.do(http.MethodPost, "/api/v1/apply?namespace=apply-ns", deployment+cm, "Content-Type", "application/yaml").Expect(t, 200, "")
	if r.Items()[0]["status"] != "unchanged" || r.Items()[1]["status"] != "unchanged" || r.JSON["unchanged"] != float64(2) {
		t.Fatalf("re-apply: %s", r.Body)
	}
	d, err := e.cs.AppsV1().Deployments("apply-ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mf := d.ManagedFields; len(mf) == 0 || mf[0].Manager != resources.FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("not server-side applied by kitefn: %+v", mf)
	}

	// JSON works too, and re-applying is idempotent.
	e.do(http.MethodPost, "/api/v1/apply", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","namespace":"apply-ns"},"data":{"a":"2"}}`).Expect(t, 200, "")
	if c, _ := e.cs.CoreV1().ConfigMaps("apply-ns").Get(ctx, "settings", metav1.GetOptions{}); c.Data["a"] != "2" {
		t.Fatalf("JSON apply: %v", c.Data)
	}

	// Scale through the scale subresource.
	r = e.do(http.MethodPost, "/api/v1/resources/deployments/apply-ns/web/scale", map[string]any{"replicas": 3}).Expect(t, 200, "")
	if d, _ := e.cs.AppsV1().Deployments("apply-ns").Get(ctx, "web", metav1.GetOptions{}); *d.Spec.Replicas != 3 {
		t.Fatalf("replicas %d after scale", *d.Spec.Replicas)
	}
	e.do(http.MethodPost, "/api/v1/resources/deployments/apply-ns/web/scale", map[string]any{"replicas": -1}).Expect(t, 400, "bad_request")
	e.do(http.MethodPost, "/api/v1/resources/configmaps/apply-ns/settings/scale", map[string]any{"replicas": 1}).Expect(t, 400, "bad_request")

	// Restart stamps the pod template.
	e.do(http.MethodPost, "/api/v1/resources/deploy/apply-ns/web/restart", nil).Expect(t, 200, "")
	d, _ = e.cs.AppsV1().Deployments("apply-ns").Get(ctx, "web", metav1.GetOptions{})
	if _, err := time.Parse(time.RFC3339, d.Spec.Template.Annotations[resources.RestartAnnotation]); err != nil {
		t.Fatalf("restart annotation: %v", d.Spec.Template.Annotations)
	}
	e.do(http.MethodPost, "/api/v1/resources/configmaps/apply-ns/settings/restart", nil).Expect(t, 400, "bad_request")

	// Delete, with a propagation policy.
	e.do(http.MethodDelete, "/api/v1/resources/deployments/apply-ns/web?propagationPolicy=Sideways", nil).Expect(t, 400, "bad_request")
	e.do(http.MethodDelete, "/api/v1/resources/deployments/apply-ns/web?propagationPolicy=Foreground", nil).Expect(t, 200, "")
	e.do(http.MethodDelete, "/api/v1/resources/configmaps/apply-ns/settings", nil).Expect(t, 200, "")
	e.do(http.MethodDelete, "/api/v1/resources/configmaps/apply-ns/settings", nil).Expect(t, 404, "not_found")
}

// TestApplyRefusedLeavesNothing: malformed bodies are refused before anything is applied; with ?atomic=true
// so are documents the apiserver refuses in a dry run.
func TestApplyRefusedLeavesNothing(t *testing.T) {
	e := setup(t)
	e.namespace(t, "refuse-ns")
	ctx := context.Background()
	okCM := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep-out, namespace: refuse-ns}\ndata: {a: b}\n"
	for _, tc := range []struct {
		name, body string
		status     int
		code, want string
	}{
		{"invalid YAML", okCM + "---\nkind: [unclosed\n", 400, "bad_request", "document 2"},
		{"no name", okCM + "---\napiVersion: v1\nkind: ConfigMap\n", 400, "bad_request", "metadata.name"},
		{"empty", "---\n---\n", 400, "bad_request", "no document"},
		{"unknown kind", okCM + "---\napiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n", 404, "not_found", "gizmo"},
		{"refused by the apiserver", okCM + "---\n" + strings.NewReplacer("replicas: 1", "replicas: -5", "apply-ns", "refuse-ns").Replace(deployment), 422, "invalid", "spec.replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPost, "/api/v1/apply?atomic=true", tc.body, "Content-Type", "application/yaml").Expect(t, tc.status, tc.code)
			if !strings.Contains(r.Message(), tc.want) {
				t.Fatalf("message %q does not say %q", r.Message(), tc.want)
			}
			if _, err := e.cs.CoreV1().ConfigMaps("refuse-ns").Get(ctx, "keep-out", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("a refused apply created its first document: %v", err)
			}
		})
	}
}

func TestEventsForAnObject(t *testing.T) {
	e := setup(t)
	e.namespace(t, "events-ns")
	e.pod(t, "events-ns", "watched", nil)
	e.pod(t, "events-ns", "other", nil)
	ctx := context.Background()
	pod, _ := e.cs.CoreV1().Pods("events-ns").Get(ctx, "watched", metav1.GetOptions{})
	now := time.Now()
	for i, target := range []string{"watched", "watched", "other"} {
		_, err := e.cs.CoreV1().Events("events-ns").Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("ev-%d", i)},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "events-ns", Name: target, UID: pod.UID, APIVersion: "v1"},
			Reason:         fmt.Sprintf("Reason%d", i), Message: "m", Type: "Normal",
			LastTimestamp: metav1.NewTime(now.Add(time.Duration(i) * time.Minute)),
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := e.do(http.MethodGet, "/api/v1/resources/pods/events-ns/watched/events", nil).Expect(t, 200, "")
	var reasons []string
	for _, it := range r.Items() {
		reasons = append(reasons, it["reason"].(string))
	}
	if strings.Join(reasons, ",") != "Reason1,Reason0" {
		t.Fatalf("events %v, want the watched pod's, newest first", reasons)
	}
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

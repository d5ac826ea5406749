package resources_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/tests/apitest"
)

func podTemplate(app string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{RestartPolicy: restart, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}
}

func TestRestartOnlyKindsThatRoll(t *testing.T) {
	e := setup(t)
	e.namespace(t, "restart-ns")
	ctx := context.Background()
	one := int32(1)
	_, err := e.cs.AppsV1().ReplicaSets("restart-ns").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rs"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rs"}},
			Template: podTemplate("rs", corev1.RestartPolicyAlways)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.cs.BatchV1().Jobs("restart-ns").Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "job"}, Spec: batchv1.JobSpec{Template: podTemplate("job", corev1.RestartPolicyNever)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	r := e.do(http.MethodPost, "/api/v1/resources/replicasets/restart-ns/rs/restart", nil).Expect(t, 400, "bad_request")
	if !strings.Contains(r.Message(), "ReplicaSet.apps cannot be restarted") || !strings.Contains(r.Message(), "Deployment") {
		t.Fatalf("replicaset message: %q", r.Message())
	}
	if rs, _ := e.cs.AppsV1().ReplicaSets("restart-ns").Get(ctx, "rs", metav1.GetOptions{}); rs.Spec.Template.Annotations[resources.RestartAnnotation] != "" {
		t.Fatal("the refused restart stamped the ReplicaSet")
	}
	r = e.do(http.MethodPost, "/api/v1/resources/jobs/restart-ns/job/restart", nil).Expect(t, 400, "bad_request")
	if !strings.Contains(r.Message(), "Job.batch cannot be restarted") {
		t.Fatalf("job message: %q", r.Message())
	}

	e.do(http.MethodPost, "/api/v1/apply", strings.ReplaceAll(deployment, "apply-ns", "restart-ns"), "Content-Type", "application/yaml").Expect(t, 200, "")
	r = e.do(http.MethodPost, "/api/v1/resources/deployments/restart-ns/web/restart", nil).Expect(t, 200, "")
	d, _ := e.cs.AppsV1().Deployments("restart-ns").Get(ctx, "web", metav1.GetOptions{})
	if _, err := time.Parse(time.RFC3339, d.Spec.Template.Annotations[resources.RestartAnnotation]); err != nil {
		t.Fatalf("restart annotation: %v", d.Spec.Template.Annotations)
	}
}

func TestNamespaceNamedLikeAVersion(t *testing.T) {
	e := setup(t)
	e.namespace(t, "v1")
	e.namespace(t, "v2beta1")
	e.pod(t, "v1", "web", nil)
	e.pod(t, "v2beta1", "other", nil)
	e.do(http.MethodPost, "/api/v1/apply", strings.ReplaceAll(deployment, "apply-ns", "v1"), "Content-Type", "application/yaml").Expect(t, 200, "")

	for _, path := range []string{"/api/v1/resources/pods/v1/web", "/api/v1/resources/v1/pods/v1/web", "/api/v1/resources/pod/v1/web"} {
		r := e.do(http.MethodGet, path, nil).Expect(t, 200, "")
		md := r.JSON["metadata"].(map[string]any)
		if r.JSON["kind"] != "Pod" || md["name"] != "web" || md["namespace"] != "v1" {
			t.Fatalf("%s: %s", path, r.Body)
		}
	}
	if got := names(e.do(http.MethodGet, "/api/v1/resources/pods/v1", nil).Expect(t, 200, "").Items()); strings.Join(got, ",") != "v1/web" {
		t.Fatalf("pods in v1: %v", got)
	}
	if got := names(e.do(http.MethodGet, "/api/v1/resources/pods/v2beta1", nil).Expect(t, 200, "").Items()); strings.Join(got, ",") != "v2beta1/other" {
		t.Fatalf("pods in v2beta1: %v", got)
	}
	for _, path := range []string{"/api/v1/resources/deployments.apps/v1/web", "/api/v1/resources/apps/v1/deployments/v1/web", "/api/v1/resources/deployments/v1/web"} {
		r := e.do(http.MethodGet, path, nil).Expect(t, 200, "")
		if r.JSON["kind"] != "Deployment" || r.JSON["metadata"].(map[string]any)["namespace"] != "v1" {
			t.Fatalf("%s: %s", path, r.Body)
		}
	}
	e.do(http.MethodGet, "/api/v1/resources/pods/v1/web/events", nil).Expect(t, 200, "")
	e.do(http.MethodGet, "/api/v1/resources/pods/v2beta1/web", nil).Expect(t, 404, "not_found")
	e.do(http.MethodDelete, "/api/v1/resources/pods/v1/web", nil).Expect(t, 200, "")
	// An unscheduled pod goes at once.
	if _, err := e.cs.CoreV1().Pods("v1").Get(context.Background(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod v1/web not deleted: %v", err)
	}
}

func TestUnreachableClusterIs502(t *testing.T) {
	e := setup(t)
	kc := strings.Replace(string(kube.AdminKubeconfig()), kube.URL, "https://127.0.0.1:1", 1)
	e.api.AddCluster("gone", []byte(kc))
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/resources/pods/default", ""},
		{http.MethodGet, "/api/v1/resources/CloneSet", ""},
		{http.MethodGet, "/api/v1/resources/apps/v1/deployments", ""},
		{http.MethodGet, "/api/v1/crds", ""},
		{http.MethodPost, "/api/v1/apply", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		r := e.api.Do(tc.method, tc.path, body, "X-Cluster-Name", "gone", "Content-Type", "application/yaml").Expect(t, 502, "cluster_unreachable")
		if !strings.Contains(r.Message(), `"gone"`) {
			t.Fatalf("%s %s: %q", tc.method, tc.path, r.Message())
		}
	}
}

// TestCRDNotEstablished: a CRD whose kind another CRD of its group already uses is never Established: reads
// of it are 503 crd_not_ready with Retry-After, and an apply that needs it fails at once instead of waiting.
func TestCRDNotEstablished(t *testing.T) {
	e := setup(t)
	crdDoc := func(plural string) string {
		return "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: " + plural +
			".clash.kitefn.dev}\nspec:\n  group: clash.kitefn.dev\n  scope: Namespaced\n  names: {plural: " + plural +
			", kind: Gadget}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n"
	}
	e.do(http.MethodPost, "/api/v1/apply", crdDoc("gadgets"), "Content-Type", "application/yaml").Expect(t, 200, "")
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		obj, err := e.dyn.Resource(crdGVR).Get(ctx, "gadgets.clash.kitefn.dev", metav1.GetOptions{})
		return err == nil && established(obj), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gadget := "---\napiVersion: clash.kitefn.dev/v1\nkind: Gadget\nmetadata: {name: g, namespace: default}\n"
	r := e.do(http.MethodPost, "/api/v1/apply", crdDoc("gizmos")+gadget, "Content-Type", "application/yaml").Expect(t, 207, "")
	if got := statuses(r.Items()); got != "applied,failed" {
		t.Fatalf("apply: %s", r.Body)
	}
	if item := r.Items()[1]["error"].(map[string]any); item["code"] != "conflict" || !strings.Contains(item["message"].(string), "NamesAccepted") {
		t.Fatalf("item error: %v", item)
	}
	r = e.do(http.MethodGet, "/api/v1/resources/gizmos.clash.kitefn.dev", nil).Expect(t, 503, "crd_not_ready")
	if r.Header.Get("Retry-After") == "" || !strings.Contains(r.Message(), "gizmos.clash.kitefn.dev") {
		t.Fatalf("not ready: %q %v", r.Message(), r.Header)
	}
}

// TestApplyDeadline: an admission webhook that never answers holds one document; the request's deadline
// (KITEFN_APPLY_TIMEOUT) ends it and the answer says what was done.
func TestApplyDeadline(t *testing.T) {
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, map[string]string{"KITEFN_APPLY_TIMEOUT": "2s"}, apitest.Function("resources"))
	api.AddCluster("test", kube.AdminKubeconfig())
	e := setup(t)
	e.namespace(t, "deadline-ns")
	ctx := context.Background()

	hang := make(chan struct{})
	wh := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); wh.Close() })
	none := admissionv1.SideEffectClassNone
	fail := admissionv1.Fail
	timeout := int32(10)
	whc, err := e.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kitefn-test-slow"},
		Webhooks: []admissionv1.ValidatingWebhook{{
			Name:         "slow.kitefn.dev",
			ClientConfig: admissionv1.WebhookClientConfig{URL: &wh.URL, CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: wh.Certificate().Raw})},
			Rules: []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
				Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"kitefn.dev/slow": "true"}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), whc.Name, metav1.DeleteOptions{})
	})
	slow := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: map[string]string{"kitefn.dev/slow": "true"}}}
	// The apiserver picks the webhook up asynchronously: wait until a dry-run create hangs on it.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := e.cs.CoreV1().ConfigMaps("deadline-ns").Create(cctx, slow, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && cctx.Err() != nil, nil
	})
	if err != nil {
		t.Fatalf("webhook never became active: %v", err)
	}

	cm := func(name, labels string) string {
		return "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: deadline-ns, labels: {" + labels + "}}\n"
	}
	start := time.Now()
	r := api.Do(http.MethodPost, "/api/v1/apply", cm("before", "")+cm("held", "kitefn.dev/slow: \"true\"")+cm("after", ""),
		"X-Cluster-Name", "test", "Content-Type", "application/yaml").Expect(t, 207, "")
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("the apply took %s with a 2s deadline", took)
	}
	if got := statuses(r.Items()); got != "applied,failed,skipped" {
		t.Fatalf("statuses %s: %s", got, r.Body)
	}
	item := r.Items()[1]["error"].(map[string]any)
	if item["code"] != resources.CodeApplyTimeout || item["status"] != float64(504) || !strings.Contains(item["message"].(string), "documents before 2 are done") {
		t.Fatalf("timeout error: %v", item)
	}
	if _, err := e.cs.CoreV1().ConfigMaps("deadline-ns").Get(ctx, "after", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a document after the deadline was applied: %v", err)
	}
}

func TestApplyTimeoutConfig(t *testing.T) {
	for v, ok := range map[string]bool{"50s": true, "0s": false, "-1s": false, "2h": false} {
		t.Setenv("KITEFN_APPLY_TIMEOUT", v)
		if err := resources.CheckConfig(); (err == nil) != ok {
			t.Errorf("KITEFN_APPLY_TIMEOUT=%s: %v", v, err)
		} else if err != nil && !strings.Contains(err.Error(), "KITEFN_APPLY_TIMEOUT") {
			t.Errorf("error does not name the setting: %v", err)
		}
	}
}

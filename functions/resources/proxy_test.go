package resources_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

// callers are the identities the proxy tests call as, by bearer token: the stand-in for the authentication
// middleware, which puts the caller in the request context.
var callers = map[string]*access.Caller{
	"admin-token": {Name: "admin", Kind: access.KindToken, Roles: []access.Role{access.Admin},
		Groups: []string{"team-x"}},
	"operator-token": {Name: "op", Kind: access.KindToken, Roles: []access.Role{access.Operator}},
	"viewer-token":   {Name: "view", Kind: access.KindToken, Roles: []access.Role{access.Viewer}},
	"team-a-token": {Name: "team-a", Kind: access.KindToken, Roles: []access.Role{access.Operator},
		Namespaces: []string{"proxy-a"}},
	"test-only-token": {Name: "test-only", Kind: access.KindToken, Roles: []access.Role{access.Viewer},
		Clusters: []string{"test"}},
}

// withCaller is the test-only authentication: the caller the bearer token names, or none.
func withCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if c, ok := callers[token]; ok {
			r = r.WithContext(access.WithCaller(r.Context(), c))
		}
		next.ServeHTTP(w, r)
	})
}

type proxyEnv struct {
	api *apitest.Server
	url string
	hc  *http.Client // trusts the server's certificate
	ca  []byte       // the server's certificate (PEM)
	fn  *resources.Function
	cs  kubernetes.Interface // admin, straight to the cluster
	rec *access.Recorder     // the function's audit recorder
}

// proxySetup serves the resources function behind the runtime's request-id and access-log middleware (whose
// writer hides Hijack behind Unwrap, as in production) and the test authentication, with the test cluster
// registered as "test" (and "other", the same cluster under another name).
func proxySetup(t *testing.T) *proxyEnv {
	t.Helper()
	return proxySetupWith(t, nil, 0)
}

// proxySetupWith is proxySetup with the function's audit entries going to audit (nil: the store) within timeout.
func proxySetupWith(t *testing.T, audit access.AuditLog, timeout time.Duration) *proxyEnv {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	api := apitest.Start(t, nil, apitest.Function("resources"))
	api.AddCluster("test", kube.AdminKubeconfig())
	api.AddCluster("other", kube.AdminKubeconfig())
	if audit == nil {
		audit = api.Platform.Store
	}
	rec := access.NewRecorder(audit, timeout)
	fn := resources.New(resources.Deps{Clients: api.Platform.Clients, Registry: api.Platform.Store, Audit: rec})
	log := zaptest.NewLogger(t).Sugar()
	if err := fn.Start(logging.WithLogger(context.Background(), log), nil); err != nil {
		t.Fatal(err)
	}
	// TLS: clientcmd drops a kubeconfig's token for a plain-HTTP server.
	srv := httptest.NewTLSServer(httpapi.RequestID(log, httpapi.AccessLog(withCaller(http.HandlerFunc(fn.Handle)))))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return &proxyEnv{api: api, url: srv.URL, hc: srv.Client(), ca: ca, fn: fn,
		cs: kubernetes.NewForConfigOrDie(kube.RESTConfig()), rec: rec}
}

// config reaches cluster through the proxy as the caller of token.
func (e *proxyEnv) config(token, cluster string) *rest.Config {
	return &rest.Config{Host: e.url + "/k8s/clusters/" + cluster, BearerToken: token, Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.ca}}
}

func (e *proxyEnv) client(t *testing.T, token string) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(e.config(token, "test"))
}

func (e *proxyEnv) ns(t *testing.T, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(t.Context(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func TestProxyGetListWatch(t *testing.T) {
	e := proxySetup(t)
	e.ns(t, "proxy-a")
	ctx := t.Context()
	for _, ref := range []string{"test", "1"} { // by name and by ID
		cs := kubernetes.NewForConfigOrDie(e.config("viewer-token", ref))
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "proxy-a", metav1.GetOptions{})
		if err != nil || ns.Name != "proxy-a" || ns.UID == "" {
			t.Fatalf("%s: get namespace through the proxy: %v %v", ref, ns, err)
		}
	}
	cs := e.client(t, "operator-token")
	if _, err := cs.CoreV1().ConfigMaps("proxy-a").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "before", Labels: map[string]string{"t": "proxy"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("operator create: %v", err)
	}
	list, err := e.client(t, "viewer-token").CoreV1().ConfigMaps("proxy-a").List(ctx,
		metav1.ListOptions{LabelSelector: "t=proxy"}) // the query string reaches the cluster
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "before" {
		t.Fatalf("list with selector: %v %v", list, err)
	}

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := e.client(t, "viewer-token").CoreV1().ConfigMaps("proxy-a").Watch(wctx,
		metav1.ListOptions{LabelSelector: "t=proxy", ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	if _, err := e.cs.CoreV1().ConfigMaps("proxy-a").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "after", Labels: map[string]string{"t": "proxy"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-w.ResultChan():
		cm, isCM := ev.Object.(*corev1.ConfigMap)
		if !ok || ev.Type != watch.Added || !isCM || cm.Name != "after" {
			t.Fatalf("watch event %v %#v, want ADDED after", ev.Type, ev.Object)
		}
	case <-wctx.Done():
		t.Fatal("no watch event for a ConfigMap created after the watch began")
	}
}

// forbidden asserts err is the proxy's 403 with the reason.
func forbidden(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("%s: %v, want Forbidden naming %q", what, err, reason)
	}
}

func TestProxyAuthorisation(t *testing.T) {
	e := proxySetup(t)
	e.ns(t, "proxy-a")
	e.ns(t, "proxy-b")
	ctx := t.Context()
	for _, ns := range []string{"proxy-a", "proxy-b"} {
		_, err := e.cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "victim"}},
			metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	err := e.client(t, "viewer-token").CoreV1().ConfigMaps("proxy-a").Delete(ctx, "victim", metav1.DeleteOptions{})
	forbidden(t, "viewer delete", err, "kitefn: delete configmaps needs the operator role")
	if _, err := e.cs.CoreV1().ConfigMaps("proxy-a").Get(ctx, "victim", metav1.GetOptions{}); err != nil {
		t.Fatalf("the viewer's delete reached the cluster: %v", err)
	}

	team := e.client(t, "team-a-token")
	_, err = team.CoreV1().ConfigMaps("proxy-b").Get(ctx, "victim", metav1.GetOptions{})
	forbidden(t, "namespace-scoped get elsewhere", err, `namespace "proxy-b" is outside your namespace scope`)
	_, err = team.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	forbidden(t, "namespace-scoped list across namespaces", err, "is cluster-wide")
	if _, err := team.CoreV1().ConfigMaps("proxy-a").Get(ctx, "victim", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace-scoped get in scope: %v", err)
	}
	if _, err := team.Discovery().ServerGroups(); err != nil { // kubectl needs discovery
		t.Fatalf("discovery for a namespace-scoped caller: %v", err)
	}

	err = e.client(t, "operator-token").CoreV1().RESTClient().Get().Namespace("proxy-a").Resource("services").
		Name("svc:80").SubResource("proxy").Suffix("x").Do(ctx).Error()
	forbidden(t, "services/proxy as operator", err, "proxy services/proxy needs the admin role")
	err = e.client(t, "operator-token").CoreV1().RESTClient().Get().Resource("nodes").Name("n").
		SubResource("proxy").Do(ctx).Error()
	forbidden(t, "nodes/proxy as operator", err, "proxy nodes/proxy needs the admin role")

	_, err = kubernetes.NewForConfigOrDie(e.config("test-only-token", "other")).CoreV1().Namespaces().
		List(ctx, metav1.ListOptions{})
	forbidden(t, "cluster outside scope", err, `cluster "other" is outside your cluster scope`)
	_, err = e.client(t, "unknown-token").CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	forbidden(t, "no caller", err, "no authenticated caller")

	// The body is a Kubernetes Status (kubectl prints its message) that is also kitefn's error shape.
	req, _ := http.NewRequest(http.MethodDelete, e.url+"/k8s/clusters/test/api/v1/namespaces/proxy-a/configmaps/victim", nil)
	req.Header.Set("Authorization", "Bearer viewer-token")
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	e403, _ := body["error"].(map[string]any)
	if res.StatusCode != 403 || body["kind"] != "Status" || body["apiVersion"] != "v1" || body["status"] != "Failure" ||
		body["reason"] != "Forbidden" || body["code"] != float64(403) || e403["code"] != "forbidden" ||
		body["requestId"] == "" {
		t.Fatalf("403 body %d %v", res.StatusCode, body)
	}

	_, err = kubernetes.NewForConfigOrDie(e.config("admin-token", "nope")).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `cluster \"nope\" not found`) &&
		!strings.Contains(err.Error(), `cluster "nope" not found`) {
		t.Fatalf("unknown cluster: %v", err)
	}
}

// whoAmI asks the cluster who the request is, through the proxy, as the admin caller, with extra headers.
func (e *proxyEnv) whoAmI(t *testing.T, cluster string, hdr ...string) authnv1.UserInfo {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/k8s/clusters/"+cluster+"/apis/authentication.k8s.io/v1/selfsubjectreviews",
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	req.Header.Set("Authorization", "Bearer admin-token")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out authnv1.SelfSubjectReview
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("selfsubjectreview: %d %v", res.StatusCode, err)
	}
	return out.Status.UserInfo
}

func TestProxyImpersonation(t *testing.T) {
	e := proxySetup(t)
	// A caller's own Impersonate-* headers never reach the cluster: it sees kitefn's credentials (admin).
	got := e.whoAmI(t, "test", "Impersonate-User", limitedUser, "Impersonate-Group", "system:authenticated")
	if got.Username != harness.AdminUser {
		t.Fatalf("a caller's Impersonate-User reached the cluster: the cluster saw %+v", got)
	}
	// On a cluster registered with impersonate, kitefn names the caller (token:<name>, their groups), and a
	// caller's own Impersonate-* still does not reach it.
	rec := e.api.AddCluster("imp", kube.AdminKubeconfig())
	rec.Impersonate = true
	if _, err := e.api.Platform.Store.Update(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	got = e.whoAmI(t, "imp", "Impersonate-User", "system:admin", "Impersonate-Group", "system:masters")
	if got.Username != "token:admin" || !slices.Contains(got.Groups, "team-x") || slices.Contains(got.Groups, "system:masters") {
		t.Fatalf("impersonated as %+v, want token:admin in team-x and not system:masters", got)
	}
}

var (
	kwokOnce sync.Once
	kwokErr  error
	kwokDirs struct{ exec, logs string }
	// forwardTarget is where kwok sends every port-forward: a server answering forwardReply, standing for a
	// pod's port. It lives as long as the package's kwok.
	forwardTarget *httptest.Server
)

const forwardReply = "port-forwarded to the pod"

// fakePod runs a pod on a kwok node whose logs are a known line and whose exec runs on this host in a folder
// holding a marker file.
func (e *proxyEnv) fakePod(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(kube.ToolsDir, "kwok")); err != nil {
		t.Fatalf("kwok not built in %s (make tools builds it): %v", kube.ToolsDir, err)
	}
	kwokOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kitefn-proxy-kwok-")
		if err != nil {
			kwokErr = err
			return
		}
		kwokDirs.exec, kwokDirs.logs = dir, filepath.Join(dir, "pod.log")
		line := time.Now().UTC().Format(time.RFC3339Nano) + " stdout F hello through the proxy\n"
		if kwokErr = os.WriteFile(kwokDirs.logs, []byte(line), 0o644); kwokErr != nil {
			return
		}
		if kwokErr = os.WriteFile(filepath.Join(dir, "marker"), []byte("exec marker\n"), 0o644); kwokErr != nil {
			return
		}
		forwardTarget = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, forwardReply)
		}))
		port := forwardTarget.Listener.Addr().(*net.TCPAddr).Port
		if _, kwokErr = kube.StartKwok(context.Background(), harness.WithKwokExec(kwokDirs.exec),
			harness.WithKwokLogs(kwokDirs.logs), harness.WithKwokPortForward("127.0.0.1", port)); kwokErr != nil {
			return
		}
		_, kwokErr = e.cs.CoreV1().Nodes().Create(context.Background(), harness.FakeNode("proxy-node"), metav1.CreateOptions{})
	})
	if kwokErr != nil {
		t.Fatal(kwokErr)
	}
	e.ns(t, ns)
	ctx := t.Context()
	_, err := e.cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: "proxy-node", Containers: []corev1.Container{{Name: "c", Image: "none"}}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running: %v", ns, name, err)
	}
}

func TestProxyLogsAndExec(t *testing.T) {
	e := proxySetup(t)
	e.fakePod(t, "proxy-a", "shell")
	ctx := t.Context()
	logs, err := e.client(t, "viewer-token").CoreV1().Pods("proxy-a").GetLogs("shell", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(logs), "hello through the proxy") {
		t.Fatalf("logs through the proxy: %q %v", logs, err)
	}

	execURL := e.client(t, "operator-token").CoreV1().RESTClient().Post().Namespace("proxy-a").Resource("pods").
		Name("shell").SubResource("exec").VersionedParams(&corev1.PodExecOptions{Command: []string{"cat", "marker"},
		Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
	for name, mk := range map[string]func(*rest.Config) (remotecommand.Executor, error){
		"spdy": func(c *rest.Config) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(c, "POST", execURL)
		},
		"websocket": func(c *rest.Config) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(c, "GET", execURL.String())
		},
	} {
		t.Run(name, func(t *testing.T) {
			for token, allowed := range map[string]bool{"operator-token": true, "viewer-token": false} {
				ex, err := mk(e.config(token, "test"))
				if err != nil {
					t.Fatal(err)
				}
				var stdout, stderr bytes.Buffer
				ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err = ex.StreamWithContext(ectx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
				cancel()
				if allowed && (err != nil || stdout.String() != "exec marker\n") {
					t.Fatalf("%s exec: %q %q %v", token, stdout.String(), stderr.String(), err)
				}
				if !allowed && (err == nil || !strings.Contains(err.Error(), "exec pods/exec needs the operator role")) {
					t.Fatalf("%s exec: %v, want refused", token, fmt.Sprint(err))
				}
			}
		})
	}
}

func TestProxyClusterRejectingKitefnCredentialsIsA502(t *testing.T) {
	e := proxySetup(t)
	stale := strings.ReplaceAll(string(kube.AdminKubeconfig()), kube.Token(harness.AdminUser), "revoked-token-0123")
	e.api.AddCluster("stale", []byte(stale))
	_, err := kubernetes.NewForConfigOrDie(e.config("admin-token", "stale")).CoreV1().Namespaces().List(t.Context(),
		metav1.ListOptions{})
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Code != http.StatusBadGateway ||
		!strings.Contains(err.Error(), `cluster "stale" rejected kitefn's credentials`) || apierrors.IsUnauthorized(err) {
		t.Fatalf("%v, want a 502 saying the cluster rejected kitefn's credentials (a 401 would blame the caller's token)", err)
	}
}

package harness_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kitefn/kitefn/tests/harness"
)

func TestCluster(t *testing.T) {
	began := time.Now()
	c := harness.MustStart(t, harness.WithUser("editor", "team-a"))
	t.Logf("start to ready: %s (Start overall %s) at %s, dir %s", c.StartDuration, time.Since(began), c.URL, c.Dir)
	ctx := t.Context()

	admin := clientFromKubeconfig(t, c.AdminKubeconfig())
	v, err := admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("gitVersion = %q, want v1.37.2", v.GitVersion)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "harness-test"}}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "greeting"}, Data: map[string]string{"hello": "world"}}
	if _, err := admin.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	// RESTConfig must reach the same cluster as the kubeconfig.
	direct, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatalf("client from RESTConfig: %v", err)
	}
	got, err := direct.CoreV1().ConfigMaps(ns.Name).Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil || got.Data["hello"] != "world" {
		t.Fatalf("get configmap back = %v, %v", got.Data, err)
	}

	viewer := clientFromKubeconfig(t, c.Kubeconfig(harness.ViewerUser))
	_, err = viewer.CoreV1().Secrets(ns.Name).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("viewer listing secrets: err = %v, want 403 Forbidden", err)
	}
	review, err := clientFromKubeconfig(t, c.Kubeconfig("editor")).AuthenticationV1().SelfSubjectReviews().
		Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err == nil {
		t.Logf("editor is %s in %v", review.Status.UserInfo.Username, review.Status.UserInfo.Groups)
	}
	if err != nil || review.Status.UserInfo.Username != "editor" || !slices.Contains(review.Status.UserInfo.Groups, "team-a") {
		t.Errorf("editor self-review = %+v, %v; want user editor in team-a", review, err)
	}

	// A child process reads the kubeconfig file.
	if _, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigFile(harness.ViewerUser)); err != nil {
		t.Errorf("viewer kubeconfig file: %v", err)
	}

	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		if fi, err := os.Stat(filepath.Join(c.Dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s in Dir: %v (size %d)", name, err, sizeOf(fi))
		}
	}

	stopBegan := time.Now()
	c.Stop()
	t.Logf("stop (apiserver, then etcd): %s", time.Since(stopBegan))
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("Dir %s still there after Stop: %v", c.Dir, err)
	}
}

func TestKwok(t *testing.T) {
	dir, err := harness.ToolsDir(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kwok")); err != nil {
		t.Skipf("kwok not built in %s (`make tools` builds it): %v", dir, err)
	}
	c := harness.MustStart(t)
	ctx := t.Context()
	execDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(execDir, "marker"), []byte("in exec dir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logsFile := filepath.Join(t.TempDir(), "pod.log")
	criLog := time.Now().UTC().Format(time.RFC3339Nano) + " stdout F hello from a fake pod\n"
	if err := os.WriteFile(logsFile, []byte(criLog), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	k, err := c.StartKwok(ctx, harness.WithKwokExec(execDir), harness.WithKwokLogs(logsFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kwok healthy in %s on port %d", time.Since(began), k.Port)

	cs := clientFromKubeconfig(t, c.AdminKubeconfig())
	began = time.Now()
	if _, err := cs.CoreV1().Nodes().Create(ctx, harness.FakeNode("fake-1"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	waitFor(t, "node fake-1 Ready", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "fake-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	t.Logf("node Ready after %s", time.Since(began))

	began = time.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:   "fake-1",
			Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	waitFor(t, "pod p Running", func() (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	t.Logf("pod Running after %s", time.Since(began))

	logs, err := cs.CoreV1().Pods("default").GetLogs("p", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(logs), "hello from a fake pod") {
		t.Errorf("pod logs = %q, %v; want the line of %s", logs, err, logsFile)
	}

	out, err := execStdout(c, "default", "p", "cat", "marker")
	if err != nil || out != "in exec dir\n" {
		t.Errorf("exec cat marker = %q, %v; want the marker file of the exec dir", out, err)
	}
}

// execStdout runs a command in a pod over the apiserver's WebSocket exec (v5.channel.k8s.io) and returns its
// stdout. (client-go's remotecommand is not in this module's go.sum yet.)
func execStdout(c *harness.Cluster, ns, pod string, command ...string) (string, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "", err
	}
	q := url.Values{"stdout": {"true"}, "stderr": {"true"}}
	for _, arg := range command {
		q.Add("command", arg)
	}
	u.Scheme, u.Path, u.RawQuery = "wss", "/api/v1/namespaces/"+ns+"/pods/"+pod+"/exec", q.Encode()
	cfg, err := websocket.NewConfig(u.String(), c.URL)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAData)
	cfg.TlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	cfg.Protocol = []string{"v5.channel.k8s.io"}
	cfg.Header = http.Header{"Authorization": {"Bearer " + c.Token(harness.AdminUser)}}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("dial exec: %w", err)
	}
	defer ws.Close()
	_ = ws.SetDeadline(time.Now().Add(20 * time.Second))
	var stdout, stderr, status strings.Builder
	for {
		var frame []byte
		if err := websocket.Message.Receive(ws, &frame); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return stdout.String(), fmt.Errorf("read exec stream: %w (stderr %q)", err, stderr.String())
		}
		if len(frame) == 0 {
			continue
		}
		switch frame[0] { // the first byte names the stream
		case 1:
			stdout.Write(frame[1:])
		case 2:
			stderr.Write(frame[1:])
		case 3:
			status.Write(frame[1:])
		}
	}
	if !strings.Contains(status.String(), `"Success"`) {
		return stdout.String(), fmt.Errorf("exec status %s (stderr %q)", status.String(), stderr.String())
	}
	return stdout.String(), nil
}

func TestToolsDirErrorSaysHowToBuild(t *testing.T) {
	t.Setenv(harness.ToolsDirEnv, t.TempDir())
	_, err := harness.ToolsDir(context.Background())
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver") || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("ToolsDir with an empty folder: err = %v, want it to name kube-apiserver and `make tools`", err)
	}
	t.Log(err)
}

func TestUnknownUserPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "nobody") {
			t.Fatalf("recover() = %v, want a panic naming the user", r)
		}
	}()
	(&harness.Cluster{}).Kubeconfig("nobody")
}

func clientFromKubeconfig(t *testing.T, kubeconfig []byte) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("parse kubeconfig: %v\n%s", err, kubeconfig)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return cs
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) {
			ok, err := cond()
			lastErr = err
			return ok, nil
		})
	if err != nil {
		t.Fatalf("%s: not within 30s (last error: %v)", what, lastErr)
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}

package nodeshell_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kitefn/kitefn/functions/terminal/nodeshell"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

func TestMain(m *testing.M) { harness.Main(m, &kube) }

const (
	kwokNode = "shell-node" // kwok makes its pods Running and runs exec commands on this host
	darkNode = "dark-node"  // no kwok annotation: NotReady, its pods stay Pending
)

var (
	envOnce sync.Once
	envErr  error
)

// setup is a clientset for the shared cluster with kwok running and the test nodes in place.
func setup(t *testing.T) kubernetes.Interface {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	if _, err := os.Stat(filepath.Join(kube.ToolsDir, "kwok")); err != nil {
		t.Fatalf("kwok not built in %s (make tools builds it): %v", kube.ToolsDir, err)
	}
	cs := kubernetes.NewForConfigOrDie(kube.RESTConfig())
	envOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kitefn-nodeshell-kwok-")
		if err != nil {
			envErr = err
			return
		}
		if _, envErr = kube.StartKwok(context.Background(), harness.WithKwokExec(dir)); envErr != nil {
			return
		}
		// No wait for kwok to make the node Ready: Create waits for the pod to run, which needs that.
		for _, n := range []*corev1.Node{harness.FakeNode(kwokNode), {ObjectMeta: metav1.ObjectMeta{Name: darkNode}}} {
			if _, envErr = cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); envErr != nil {
				return
			}
		}
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return cs
}

// progressLog collects Create's progress messages and signals each on a channel.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
	ch   chan string
}

func newProgress() *progressLog { return &progressLog{ch: make(chan string, 100)} }

func (p *progressLog) add(m string) {
	p.mu.Lock()
	p.msgs = append(p.msgs, m)
	p.mu.Unlock()
	p.ch <- m
}

func (p *progressLog) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

// waitFor reads messages until one contains want.
func (p *progressLog) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-p.ch:
			if strings.Contains(m, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no progress message containing %q; saw %q", want, p.all())
		}
	}
}

func sessionPods(t *testing.T, cs kubernetes.Interface, session string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(nodeshell.Namespace).List(t.Context(),
		metav1.ListOptions{LabelSelector: nodeshell.LabelSession + "=" + session})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func waitGone(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			_, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	if err != nil {
		t.Fatalf("pod %s still there: %v", name, err)
	}
}

func TestCreateMakesTheShellPodAndItTakesExecs(t *testing.T) {
	cs := setup(t)
	ctx := t.Context()
	p := newProgress()
	o := nodeshell.Options{Session: "sess-create", Caller: "alice@example.com", Instance: "kitefn-abc",
		MaxAge: 90 * time.Minute, StartTimeout: 30 * time.Second}
	sh, err := nodeshell.Create(ctx, cs, kwokNode, o, p.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sh.Delete(context.Background()) })
	if sh.Namespace != nodeshell.Namespace || sh.Node != kwokNode || sh.Container != nodeshell.Container ||
		sh.Session != "sess-create" || !strings.HasPrefix(sh.Pod, "shell-shell-node-") {
		t.Fatalf("shell %+v", sh)
	}
	msgs := p.all()
	if len(msgs) < 2 || !strings.Contains(msgs[0], "pod "+nodeshell.Namespace+"/"+sh.Pod+" created") ||
		msgs[len(msgs)-1] != "running on node "+kwokNode {
		t.Fatalf("progress %q", msgs)
	}

	ns, err := cs.CoreV1().Namespaces().Get(ctx, nodeshell.Namespace, metav1.GetOptions{})
	if err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Fatalf("namespace %+v %v", ns.Labels, err)
	}
	pod, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, sh.Pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.UID != sh.UID {
		t.Fatalf("pod phase %s uid %s", pod.Status.Phase, pod.UID)
	}
	s := pod.Spec
	if s.NodeName != kwokNode || !s.HostPID || !s.HostNetwork || !s.HostIPC {
		t.Fatalf("node %q hostPID %v hostNetwork %v hostIPC %v", s.NodeName, s.HostPID, s.HostNetwork, s.HostIPC)
	}
	if s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds != 5400 ||
		s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 0 {
		t.Fatalf("deadline %v grace %v", s.ActiveDeadlineSeconds, s.TerminationGracePeriodSeconds)
	}
	if !reflect.DeepEqual(s.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}) {
		t.Fatalf("tolerations %+v", s.Tolerations)
	}
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken || s.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("service account token %v restart %s", s.AutomountServiceAccountToken, s.RestartPolicy)
	}
	if len(s.Volumes) != 1 || s.Volumes[0].HostPath == nil || s.Volumes[0].HostPath.Path != "/" {
		t.Fatalf("volumes %+v", s.Volumes)
	}
	if len(s.Containers) != 1 {
		t.Fatalf("containers %+v", s.Containers)
	}
	c := s.Containers[0]
	if c.Name != nodeshell.Container || c.Image != nodeshell.DefaultImage || c.ImagePullPolicy != corev1.PullIfNotPresent ||
		c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/host" || c.VolumeMounts[0].Name != s.Volumes[0].Name {
		t.Fatalf("container %+v", c)
	}
	if len(c.Command) == 0 || !strings.Contains(strings.Join(c.Command, " "), "sleep") {
		t.Fatalf("container command %q: it should only sleep", c.Command)
	}
	wantLabels := map[string]string{nodeshell.LabelApp: nodeshell.AppName, nodeshell.LabelSession: "sess-create",
		nodeshell.LabelCaller: nodeshell.LabelValue("alice@example.com"), nodeshell.LabelInstance: "kitefn-abc"}
	for k, v := range wantLabels {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if pod.Annotations[nodeshell.AnnotationCaller] != "alice@example.com" {
		t.Errorf("caller annotation %q", pod.Annotations[nodeshell.AnnotationCaller])
	}
	if hb, err := time.Parse(time.RFC3339, pod.Annotations[nodeshell.AnnotationHeartbeat]); err != nil ||
		time.Since(hb) > time.Minute {
		t.Errorf("heartbeat at creation %q %v", pod.Annotations[nodeshell.AnnotationHeartbeat], err)
	}

	// The pod takes execs (kwok runs them on this host, so ShellCommand itself cannot run here).
	u := cs.CoreV1().RESTClient().Post().Namespace(sh.Namespace).Resource("pods").Name(sh.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: sh.Container, Command: []string{"echo", "hello from the node"},
			Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
	ex, err := remotecommand.NewWebSocketExecutor(kube.RESTConfig(), "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ex.StreamWithContext(ectx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil ||
		stdout.String() != "hello from the node\n" {
		t.Fatalf("exec: %q %q %v", stdout.String(), stderr.String(), err)
	}

	if err := sh.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs, sh.Pod)
	if err := sh.Delete(ctx); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
}

func TestCreateRefusesNodesItCannotUse(t *testing.T) {
	cs := setup(t)
	ctx := t.Context()
	win := harness.FakeNode("win-by-label")
	win.Labels[corev1.LabelOSStable] = "windows"
	cordoned := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cordoned-dark"}, Spec: corev1.NodeSpec{Unschedulable: true}}
	winInfo := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "win-by-info"}}
	for _, n := range []*corev1.Node{win, cordoned, winInfo} {
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{}) })
	}
	winInfo.Status.NodeInfo.OperatingSystem = "windows"
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, winInfo, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		node, want string
		is         error
	}{
		{"win-by-label", `"win-by-label" is a Windows node`, nodeshell.ErrNodeUnsupported},
		{"win-by-info", `"win-by-info" is a Windows node`, nodeshell.ErrNodeUnsupported},
		{"cordoned-dark", `"cordoned-dark" is cordoned and not Ready`, nodeshell.ErrNodeUnsupported},
		{"no-such-node", `no such node "no-such-node"`, nodeshell.ErrNodeNotFound},
	} {
		var said []string
		_, err := nodeshell.Create(ctx, cs, tc.node, nodeshell.Options{Session: "sess-refuse"},
			func(m string) { said = append(said, m) })
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q (%v)", tc.node, err, tc.want, tc.is)
		}
		if len(said) != 0 {
			t.Errorf("%s: progress %q before refusing", tc.node, said)
		}
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", tc.node).String()})
		if err != nil || len(pods.Items) != 0 {
			t.Errorf("%s: pods %d %v, want none", tc.node, len(pods.Items), err)
		}
	}
	if _, err := nodeshell.Create(ctx, cs, kwokNode, nodeshell.Options{Session: "not a label!"}, nil); err == nil ||
		!strings.Contains(err.Error(), "not a label value") {
		t.Errorf("bad session ID: %v", err)
	}
	if pods := sessionPods(t, cs, "sess-refuse"); len(pods) != 0 {
		t.Errorf("%d pods of refused sessions", len(pods))
	}
}

// A pod that never runs (its node has no kubelet) ends in a timeout error naming the state, within the start
// timeout, and leaves no pod.
func TestCreateTimesOutAndDeletesThePod(t *testing.T) {
	cs := setup(t)
	start := time.Now()
	_, err := nodeshell.Create(t.Context(), cs, darkNode, nodeshell.Options{Session: "sess-timeout",
		StartTimeout: 2 * time.Second}, nil)
	took := time.Since(start)
	if !errors.Is(err, nodeshell.ErrStart) || !strings.Contains(err.Error(), "not Running after 2s") ||
		!strings.Contains(err.Error(), "node "+darkNode+" is not Ready") {
		t.Fatalf("%v, want a start timeout saying the node is not Ready", err)
	}
	if took > 10*time.Second {
		t.Fatalf("took %s with a 2s start timeout", took)
	}
	if pods := sessionPods(t, cs, "sess-timeout"); len(pods) != 0 {
		t.Fatalf("pod %s left after the timeout", pods[0].Name)
	}
}

// An image that cannot be pulled ends the wait at once (not at the start timeout) with the kubelet's reason,
// the pod's events are progress, and the pod is deleted. kwok pulls nothing: the test plays the kubelet on a
// node kwok does not manage.
func TestCreateFailsFastOnImagePullAndPassesEvents(t *testing.T) {
	cs := setup(t)
	ctx := t.Context()
	p := newProgress()
	type result struct {
		sh  *nodeshell.Shell
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		sh, err := nodeshell.Create(ctx, cs, darkNode, nodeshell.Options{Session: "sess-pull",
			Image: "registry.invalid/nope:1", StartTimeout: 2 * time.Minute}, p.add)
		done <- result{sh, err}
	}()
	p.waitFor(t, "created")
	pods := sessionPods(t, cs, "sess-pull")
	if len(pods) != 1 {
		t.Fatalf("%d pods for the session", len(pods))
	}
	pod := &pods[0]
	if _, err := cs.CoreV1().Events(nodeshell.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "pull-"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         "Pulling", Message: `Pulling image "registry.invalid/nope:1"`, Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, `Pulling image "registry.invalid/nope:1"`)
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: nodeshell.Container, Image: "registry.invalid/nope:1",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull",
			Message: "failed to resolve reference: no such host"}}}}}
	if _, err := cs.CoreV1().Pods(nodeshell.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Create still waiting after the image pull failed")
	}
	if !errors.Is(r.err, nodeshell.ErrStart) || !strings.Contains(r.err.Error(), "ErrImagePull: failed to resolve reference") ||
		!strings.Contains(r.err.Error(), "registry.invalid/nope:1") {
		t.Fatalf("%v, want the image pull failure", r.err)
	}
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("took %s", took)
	}
	waitGone(t, cs, pod.Name)
}

func TestHeartbeatRenewsAndStopsWhenThePodIsGone(t *testing.T) {
	cs := setup(t)
	ctx := t.Context()
	sh, err := nodeshell.Create(ctx, cs, kwokNode, nodeshell.Options{Session: "sess-beat",
		Heartbeat: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sh.Delete(context.Background()) })
	old := "2000-01-01T00:00:00Z"
	patch := `{"metadata":{"annotations":{"` + nodeshell.AnnotationHeartbeat + `":"` + old + `"}}}`
	if _, err := cs.CoreV1().Pods(sh.Namespace).Patch(ctx, sh.Pod, "application/merge-patch+json", []byte(patch),
		metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	bctx, stop := context.WithCancel(ctx)
	beat := make(chan error, 1)
	go func() { beat <- sh.Heartbeat(bctx) }()
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(sh.Namespace).Get(ctx, sh.Pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		hb, err := time.Parse(time.RFC3339, p.Annotations[nodeshell.AnnotationHeartbeat])
		return err == nil && time.Since(hb) < time.Minute, nil
	})
	if err != nil {
		t.Fatalf("heartbeat not renewed: %v", err)
	}
	stop()
	if err := <-beat; err != nil {
		t.Fatalf("Heartbeat after its context ended: %v", err)
	}

	if err := sh.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs, sh.Pod)
	if err := sh.Renew(ctx, time.Now()); !errors.Is(err, nodeshell.ErrGone) {
		t.Fatalf("Renew of a deleted pod: %v, want ErrGone", err)
	}
	go func() { beat <- sh.Heartbeat(ctx) }()
	select {
	case err := <-beat:
		if !errors.Is(err, nodeshell.ErrGone) {
			t.Fatalf("Heartbeat of a deleted pod: %v, want ErrGone", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Heartbeat of a deleted pod still running")
	}
}

// Reap deletes what no session vouches for and keeps the rest; "now" is moved instead of waiting.
func TestReapDeletesStalePodsOnly(t *testing.T) {
	cs := setup(t)
	ctx := t.Context()
	now := time.Now().Add(time.Hour)
	interval := time.Minute
	mk := func(name string, heartbeat string, shell bool) {
		t.Helper()
		pod := nodeshell.PodSpec(darkNode, nodeshell.Options{Session: "sess-reap", Caller: "reaper-test"}, now)
		pod.GenerateName, pod.Name = "", name
		if heartbeat == "" {
			delete(pod.Annotations, nodeshell.AnnotationHeartbeat)
		} else {
			pod.Annotations[nodeshell.AnnotationHeartbeat] = heartbeat
		}
		if !shell {
			delete(pod.Labels, nodeshell.LabelApp)
		}
		if _, err := cs.CoreV1().Pods(nodeshell.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			zero := int64(0)
			_ = cs.CoreV1().Pods(nodeshell.Namespace).Delete(context.Background(), name,
				metav1.DeleteOptions{GracePeriodSeconds: &zero})
		})
	}
	// Reap needs the namespace; a Create that is refused still made it in earlier tests, but not necessarily.
	_, _ = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nodeshell.Namespace}},
		metav1.CreateOptions{})
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	mk("reap-fresh", rfc(now.Add(-2*interval)), true)
	mk("reap-stale", rfc(now.Add(-4*interval)), true)
	mk("reap-no-heartbeat", "", true)     // created an hour before "now"
	mk("reap-garbled", "yesterday", true) // as good as none
	mk("reap-other-app", rfc(now.Add(-24*time.Hour)), false)
	mk("reap-failed", rfc(now), true)
	failed, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, "reap-failed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failed.Status.Phase, failed.Status.Reason = corev1.PodFailed, "DeadlineExceeded"
	if _, err := cs.CoreV1().Pods(nodeshell.Namespace).UpdateStatus(ctx, failed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	deleted, err := nodeshell.Reap(ctx, cs, now, interval)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if want := []string{"reap-failed", "reap-garbled", "reap-no-heartbeat", "reap-stale"}; !reflect.DeepEqual(deleted, want) {
		t.Fatalf("deleted %q, want %q", deleted, want)
	}
	for _, name := range []string{"reap-fresh", "reap-other-app"} {
		if _, err := cs.CoreV1().Pods(nodeshell.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v, want kept", name, err)
		}
	}
	for _, name := range deleted {
		waitGone(t, cs, name)
	}
	if again, err := nodeshell.Reap(ctx, cs, now, interval); err != nil || len(again) != 0 {
		t.Fatalf("second pass: %q %v", again, err)
	}
}

func TestLabelValue(t *testing.T) {
	for _, in := range []string{"alice", "alice@example.com", "oidc:bob", strings.Repeat("x", 100), "@@@", "",
		"Ünïcode user"} {
		got := nodeshell.LabelValue(in)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q: %v", in, got, errs)
		}
		if len(validation.IsValidLabelValue(in)) == 0 && got != in {
			t.Errorf("LabelValue(%q) = %q, want it unchanged", in, got)
		}
	}
	if nodeshell.LabelValue("a@b") == nodeshell.LabelValue("a#b") {
		t.Error("two callers share a label value")
	}
}

// ShellCommand cannot run under kwok (exec runs on the test host); sh at least parses it, and it enters the
// host with nsenter first, chroot next.
func TestShellCommandParses(t *testing.T) {
	cmd := nodeshell.ShellCommand()
	if len(cmd) != 3 || cmd[0] != "sh" || cmd[1] != "-c" {
		t.Fatalf("%q", cmd)
	}
	out, err := exec.Command("sh", "-n", "-c", cmd[2]).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -n: %v %s", err, out)
	}
	ns := strings.Index(cmd[2], "exec nsenter -t 1 -m -u -i -n -p -- sh -c")
	ch := strings.Index(cmd[2], "exec chroot /host sh -c")
	if ns < 0 || ch < ns || !strings.Contains(cmd[2], "exec bash") {
		t.Fatalf("script order: nsenter at %d, chroot at %d:\n%s", ns, ch, cmd[2])
	}
}

package nodeshell

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

var (
	// ErrNodeNotFound: the cluster has no such node.
	ErrNodeNotFound = errors.New("no such node")
	// ErrNodeUnsupported: the node cannot run a shell pod (Windows, or cordoned and not Ready); nothing was
	// created.
	ErrNodeUnsupported = errors.New("node cannot run a node shell")
	// ErrStart: the pod did not reach Running (image pull failure, failed pod, start timeout); it was deleted.
	ErrStart = errors.New("node shell did not start")
	// ErrGone: the shell's pod no longer exists (deleted by someone, the reaper or its deadline).
	ErrGone = errors.New("node shell pod is gone")
)

// cleanupTimeout bounds deleting a pod that failed to start, on a context of its own: the caller's may be the
// reason it failed (a client that went away).
const cleanupTimeout = 15 * time.Second

// Shell is a Running shell pod: exec ShellCommand into Namespace/Pod, container Container.
type Shell struct {
	Namespace string
	Pod       string
	Container string
	Node      string
	Session   string
	UID       types.UID

	cs       kubernetes.Interface
	interval time.Duration
}

// Create makes a shell pod on node and waits until it runs, telling progress (may be nil) what happens. It
// refuses, before creating anything, a node that does not exist, runs Windows, or is cordoned and not Ready (a
// node that is only NotReady gets its chance within StartTimeout: it may be coming back). A pod that does not
// start (image pull failure, failed pod, StartTimeout) is deleted and the error wraps ErrStart. Errors of the
// cluster itself (403, …) are wrapped as they came.
func Create(ctx context.Context, cs kubernetes.Interface, node string, o Options, progress func(msg string)) (*Shell, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w %q", ErrNodeNotFound, node)
	}
	if err != nil {
		return nil, fmt.Errorf("reading node %q: %w", node, err)
	}
	if err := runnable(n); err != nil {
		return nil, err
	}
	if err := ensureNamespace(ctx, cs); err != nil {
		return nil, err
	}
	pod, err := cs.CoreV1().Pods(Namespace).Create(ctx, PodSpec(node, o, time.Now()), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating the node shell pod on %q: %w", node, err)
	}
	s := &Shell{Namespace: Namespace, Pod: pod.Name, Container: Container, Node: node, Session: o.Session,
		UID: pod.UID, cs: cs, interval: o.Heartbeat}
	progress(fmt.Sprintf("pod %s/%s created for node %s", Namespace, pod.Name, node))
	if err := s.waitRunning(ctx, pod, o.StartTimeout, progress); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := s.Delete(dctx); derr != nil {
			return nil, errors.Join(err, derr)
		}
		return nil, err
	}
	return s, nil
}

// runnable refuses a node a shell pod cannot run on.
func runnable(n *corev1.Node) error {
	if n.Labels[corev1.LabelOSStable] == "windows" || strings.EqualFold(n.Status.NodeInfo.OperatingSystem, "windows") {
		return fmt.Errorf("%w: %q is a Windows node (node shells need a Linux host: nsenter, chroot)",
			ErrNodeUnsupported, n.Name)
	}
	if n.Spec.Unschedulable && !nodeReady(n) {
		return fmt.Errorf("%w: %q is cordoned and not Ready", ErrNodeUnsupported, n.Name)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ensureNamespace creates the namespace, or labels an existing one, so that Pod Security Admission admits
// privileged pods in it.
func ensureNamespace(ctx context.Context, cs kubernetes.Interface) error {
	nss := cs.CoreV1().Namespaces()
	ns, err := nss.Get(ctx, Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace,
			Labels: map[string]string{psaEnforce: "privileged", "app.kubernetes.io/managed-by": "kitefn"}}},
			metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("ensuring namespace %s: %w", Namespace, err)
	}
	if ns.Labels[psaEnforce] == "privileged" {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"privileged"}}}`, psaEnforce)
	if _, err := nss.Patch(ctx, Namespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labelling namespace %s %s=privileged: %w", Namespace, psaEnforce, err)
	}
	return nil
}

// fatalWaiting are container waiting reasons that will not resolve by waiting (the kubelet retries a pull
// with backoff, but a shell should not wait minutes to say the image is wrong).
var fatalWaiting = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
	"CrashLoopBackOff": true,
}

// waitRunning watches the pod (and its events, for progress) until it runs, fails or timeout passes.
func (s *Shell) waitRunning(ctx context.Context, pod *corev1.Pod, timeout time.Duration, progress func(string)) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	said := map[string]bool{}
	say := func(m string) {
		if m != "" && !said[m] {
			said[m] = true
			progress(m)
		}
	}
	events := s.watchEvents(ctx)
	pods := s.cs.CoreV1().Pods(s.Namespace)
	last := pod
	for {
		if done, err := s.check(last, say); done || err != nil {
			return err
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", s.Pod).String(),
			ResourceVersion: last.ResourceVersion,
		})
		if err != nil {
			if ctx.Err() != nil {
				return s.startTimedOut(parent, last, timeout)
			}
			return fmt.Errorf("watching the node shell pod %s: %w", s.Pod, err)
		}
		for again := true; again; {
			select {
			case <-ctx.Done():
				w.Stop()
				return s.startTimedOut(parent, last, timeout)
			case m := <-events:
				say(m)
			case ev, ok := <-w.ResultChan():
				if !ok {
					again = false // the watch ended (apiserver timeout): watch again from the last version
					break
				}
				switch ev.Type {
				case watch.Deleted:
					w.Stop()
					return fmt.Errorf("%w: pod %s/%s was deleted while starting", ErrStart, s.Namespace, s.Pod)
				case watch.Error:
					// Typically 410 Gone: read the pod afresh and watch from there.
					w.Stop()
					p, err := pods.Get(ctx, s.Pod, metav1.GetOptions{})
					if apierrors.IsNotFound(err) {
						return fmt.Errorf("%w: pod %s/%s was deleted while starting", ErrStart, s.Namespace, s.Pod)
					}
					if err != nil {
						if ctx.Err() != nil {
							return s.startTimedOut(parent, last, timeout)
						}
						return fmt.Errorf("reading the node shell pod %s: %w", s.Pod, err)
					}
					last, again = p, false
				default:
					p, ok := ev.Object.(*corev1.Pod)
					if !ok {
						continue
					}
					last = p
					if done, err := s.check(last, say); done || err != nil {
						w.Stop()
						return err
					}
				}
			}
		}
	}
}

// check reports the pod Running (done), failed for good (an ErrStart error), or tells what it waits for.
func (s *Shell) check(p *corev1.Pod, say func(string)) (bool, error) {
	switch p.Status.Phase {
	case corev1.PodRunning:
		say(fmt.Sprintf("running on node %s", s.Node))
		return true, nil
	case corev1.PodFailed, corev1.PodSucceeded:
		return false, fmt.Errorf("%w: pod %s/%s %s: %s", ErrStart, s.Namespace, s.Pod,
			strings.ToLower(string(p.Status.Phase)), reasonMessage(p.Status.Reason, p.Status.Message))
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			say(fmt.Sprintf("scheduled on node %s", s.Node))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			if fatalWaiting[w.Reason] {
				return false, fmt.Errorf("%w: container %s (image %s): %s", ErrStart, cs.Name, cs.Image,
					reasonMessage(w.Reason, w.Message))
			}
			say("waiting: " + reasonMessage(w.Reason, w.Message))
		}
		if t := cs.State.Terminated; t != nil {
			return false, fmt.Errorf("%w: container %s exited (code %d): %s", ErrStart, cs.Name, t.ExitCode,
				reasonMessage(t.Reason, t.Message))
		}
	}
	return false, nil
}

func reasonMessage(reason, msg string) string {
	switch {
	case reason == "" && msg == "":
		return "no reason given"
	case msg == "":
		return reason
	case reason == "":
		return msg
	}
	return reason + ": " + msg
}

// startTimedOut is the error of a wait that ended: the caller's context ending is said as such; the start
// timeout says what the pod was waiting for and whether the node is Ready.
func (s *Shell) startTimedOut(parent context.Context, last *corev1.Pod, timeout time.Duration) error {
	if err := parent.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	state := "phase " + string(last.Status.Phase)
	if last.Status.Phase == "" {
		state = "no status yet"
	}
	for _, cs := range last.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			state += ", " + reasonMessage(w.Reason, w.Message)
		}
	}
	hint := ""
	nctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	if n, err := s.cs.CoreV1().Nodes().Get(nctx, s.Node, metav1.GetOptions{}); err == nil && !nodeReady(n) {
		hint = fmt.Sprintf("; node %s is not Ready", s.Node)
	}
	return fmt.Errorf("%w: pod %s/%s not Running after %s (%s)%s", ErrStart, s.Namespace, s.Pod, timeout, state, hint)
}

// watchEvents passes on the messages of the pod's events (pulling, pulled, created, …) until ctx ends. Events
// are only progress: a watch that fails just stops them.
func (s *Shell) watchEvents(ctx context.Context) <-chan string {
	out := make(chan string)
	go func() {
		w, err := s.cs.CoreV1().Events(s.Namespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(s.UID)).String(),
		})
		if err != nil {
			return
		}
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				e, isEvent := ev.Object.(*corev1.Event)
				if !isEvent || (ev.Type != watch.Added && ev.Type != watch.Modified) || e.Message == "" {
					continue
				}
				select {
				case out <- e.Message:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// Heartbeat renews the pod's heartbeat annotation every interval until ctx ends (nil) or the pod is gone
// (ErrGone: the session should end). A renewal that fails otherwise is retried at the next tick: the reaper
// allows three intervals.
func (s *Shell) Heartbeat(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if err := s.Renew(ctx, now); errors.Is(err, ErrGone) {
				return err
			}
		}
	}
}

// Renew writes now as the pod's heartbeat.
func (s *Shell) Renew(ctx context.Context, now time.Time) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, AnnotationHeartbeat, now.UTC().Format(time.RFC3339))
	p, err := s.cs.CoreV1().Pods(s.Namespace).Patch(ctx, s.Pod, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || (err == nil && p.UID != s.UID) {
		return fmt.Errorf("%w: %s/%s", ErrGone, s.Namespace, s.Pod)
	}
	if err != nil {
		return fmt.Errorf("renewing the heartbeat of %s/%s: %w", s.Namespace, s.Pod, err)
	}
	return nil
}

// Delete removes the pod at once (grace period 0: nothing in it needs a clean stop). A pod already gone is
// not an error.
func (s *Shell) Delete(ctx context.Context) error {
	if err := deletePod(ctx, s.cs, s.Pod, &metav1.Preconditions{UID: &s.UID}); err != nil {
		return fmt.Errorf("deleting the node shell pod %s/%s: %w", s.Namespace, s.Pod, err)
	}
	return nil
}

func deletePod(ctx context.Context, cs kubernetes.Interface, name string, pre *metav1.Preconditions) error {
	zero := int64(0)
	err := cs.CoreV1().Pods(Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero,
		Preconditions: pre})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

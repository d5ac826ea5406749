package terminal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// logSession is one logs request once its target is known: the pods to stream, and for one pod the streams
// already opened (so the cluster's refusal kept its status).
type logSession struct {
	cl       *kube.Client
	req      *logRequest
	what     string          // what the request names, for messages ("deployments.apps/web", "pod web")
	selector labels.Selector // nil: one pod
	pods     []corev1.Pod    // the pods at the start, by name
	opened   []openedStream  // one pod: its streams, opened before answering
	prefix   bool            // more than one stream: plain text lines say their pod and container
	maxPods  int
	rate     int64
}

type openedStream struct {
	pod, container string
	rc             io.ReadCloser
}

// prepareLogs finds what the request names and everything that can fail with a status: an unknown pod or
// workload (404 naming it), the cluster's refusals (403 stays 403), an unknown container.
func (f *Function) prepareLogs(ctx context.Context, cl *kube.Client, req *logRequest) (*logSession, error) {
	s := &logSession{cl: cl, req: req, maxPods: f.cfg.MaxPods, rate: int64(f.cfg.MaxBytesPerSecond),
		what: "pod " + req.namespace + "/" + req.name}
	if req.resource != "" {
		wl, err := resolveResource(cl, req.resource)
		if err != nil {
			return nil, err
		}
		if !wl.isPods() {
			obj, err := cl.Dynamic.Resource(wl.gvr).Namespace(req.namespace).Get(ctx, req.name, metav1.GetOptions{})
			if err != nil {
				return nil, kube.APIError(cl.Name, err)
			}
			s.what = wl.gvr.GroupResource().String() + "/" + req.name
			if s.selector, err = podSelector(obj, s.what); err != nil {
				return nil, err
			}
			if s.pods, err = podsOf(ctx, cl, req.namespace, s.selector); err != nil {
				return nil, err
			}
			slices.SortFunc(s.pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
			s.prefix = true
			return s, nil
		}
	}
	pod, err := cl.Kubernetes.CoreV1().Pods(req.namespace).Get(ctx, req.name, metav1.GetOptions{})
	if err != nil {
		return nil, kube.APIError(cl.Name, err)
	}
	containers, err := containersOf(pod, req.container)
	if err != nil {
		return nil, err
	}
	s.pods, s.prefix = []corev1.Pod{*pod}, len(containers) > 1
	for _, c := range containers {
		rc, err := s.open(ctx, pod.Name, c)
		if err != nil {
			s.closeOpened()
			return nil, kube.APIError(cl.Name, err)
		}
		s.opened = append(s.opened, openedStream{pod: pod.Name, container: c, rc: rc})
	}
	return s, nil
}

// containersOf is the containers to stream: the one asked for (it must be the pod's), else every app container.
func containersOf(pod *corev1.Pod, want string) ([]string, error) {
	var all []string
	for _, c := range pod.Spec.Containers {
		all = append(all, c.Name)
	}
	if want == "" {
		return all, nil
	}
	known := slices.Clone(all)
	for _, c := range pod.Spec.InitContainers {
		known = append(known, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		known = append(known, c.Name)
	}
	if !slices.Contains(known, want) {
		return nil, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"container %q not found in pod %s/%s (it has %s)", want, pod.Namespace, pod.Name,
			strings.Join(known, ", ")).WithField("container")
	}
	return []string{want}, nil
}

// open starts one container's log stream on the streaming client (no overall timeout: follow runs for hours).
func (s *logSession) open(ctx context.Context, pod, container string) (io.ReadCloser, error) {
	opts := s.req.opts
	opts.Container = container
	return s.cl.Stream.Kubernetes.CoreV1().Pods(s.req.namespace).GetLogs(pod, &opts).Stream(ctx)
}

// closeOpened closes streams opened and never consumed (an answer that failed before streaming).
func (s *logSession) closeOpened() {
	for _, o := range s.opened {
		_ = o.rc.Close()
	}
	s.opened = nil
}

// run streams into out and closes it when every stream ended (without follow, or a followed pod's containers
// exited) or ctx did. A workload followed runs until ctx ends.
func (s *logSession) run(ctx context.Context, out chan<- wire.Frame) {
	defer close(out)
	var g errgroup.Group
	e := &emitter{ctx: ctx, out: out, ns: s.req.namespace}
	switch {
	case s.selector == nil:
		opened := s.opened
		s.opened = nil
		for _, o := range opened {
			g.Go(func() error { s.copy(ctx, e, o.pod, o.container, o.rc); return nil })
		}
	case !s.req.opts.Follow:
		pods := s.pods
		if len(pods) == 0 {
			e.info("", "no pods match the selector of %s (%s)", s.what, s.selector)
		}
		if len(pods) > s.maxPods {
			for _, p := range pods[s.maxPods:] {
				e.capReached(p.Name, s.maxPods)
			}
			pods = pods[:s.maxPods]
		}
		for i := range pods {
			s.startPod(ctx, &g, e, &pods[i])
		}
	default:
		t := &podTracker{s: s, ctx: ctx, g: &g, e: e, followed: map[string]context.CancelFunc{},
			skipped: map[string]*corev1.Pod{}, pending: map[string]pendingPod{}}
		if len(s.pods) == 0 {
			e.info("", "no pods match the selector of %s (%s) yet: waiting for some", s.what, s.selector)
		}
		g.Go(func() error { t.watch(); return nil })
	}
	_ = g.Wait()
}

// startPod streams every container (or the one asked for) of a pod that has started.
func (s *logSession) startPod(ctx context.Context, g *errgroup.Group, e *emitter, pod *corev1.Pod) {
	containers, err := containersOf(pod, s.req.container)
	if err != nil {
		e.fail(pod.Name, "", "%s", err.Error())
		return
	}
	for _, c := range containers {
		name := pod.Name
		g.Go(func() error {
			rc, err := s.open(ctx, name, c)
			if err != nil {
				if ctx.Err() == nil {
					e.fail(name, c, "logs of %s/%s: %s", name, c, kube.APIError(s.cl.Name, err).Message)
				}
				return nil
			}
			s.copy(ctx, e, name, c, rc)
			return nil
		})
	}
}

// maxLine is the longest piece of a line sent as one frame; a longer line arrives in several.
const maxLine = 64 << 10

// copy sends a stream's lines, at most s.rate bytes per second (said once when it has to wait).
func (s *logSession) copy(ctx context.Context, e *emitter, pod, container string, rc io.ReadCloser) {
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { _ = rc.Close() }) // a blocked read returns when ctx ends
	defer stop()
	burst := int(min(s.rate, int64(maxLine)))
	lim := rate.NewLimiter(rate.Limit(s.rate), burst)
	told := false
	br := bufio.NewReaderSize(rc, maxLine)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			line := strings.TrimSuffix(string(chunk), "\n")
			if werr := throttle(ctx, lim, len(chunk), func() {
				if !told {
					told = true
					e.send(wire.Frame{Type: wire.Info, Pod: pod, Container: container,
						Data: fmt.Sprintf("logs of %s/%s are slowed to %d bytes per second (KITEFN_LOGS_MAX_BYTES_PER_SECOND)",
							pod, container, s.rate)})
				}
			}); werr != nil {
				return
			}
			if !e.send(wire.Frame{Type: wire.Log, Data: line, Pod: pod, Container: container}) {
				return
			}
		}
		switch {
		case err == nil || errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF) || ctx.Err() != nil:
			return
		default:
			e.fail(pod, container, "logs of %s/%s stopped: %v", pod, container, err)
			return
		}
	}
}

// throttle waits until lim admits n bytes, in pieces no larger than its burst; onWait runs before a wait.
func throttle(ctx context.Context, lim *rate.Limiter, n int, onWait func()) error {
	for n > 0 {
		k := min(n, lim.Burst())
		r := lim.ReserveN(time.Now(), k)
		if d := r.Delay(); d > 0 {
			onWait()
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return ctx.Err()
			case <-t.C:
			}
		}
		n -= k
	}
	return nil
}

// emitter sends frames to the transport until ctx ends.
type emitter struct {
	ctx context.Context
	out chan<- wire.Frame
	ns  string
}

func (e *emitter) send(f wire.Frame) bool {
	f.Namespace = e.ns
	select {
	case e.out <- f:
		return true
	case <-e.ctx.Done():
		return false
	}
}

func (e *emitter) info(pod, format string, args ...any) {
	e.send(wire.Frame{Type: wire.Info, Pod: pod, Data: fmt.Sprintf(format, args...)})
}

func (e *emitter) fail(pod, container, format string, args ...any) {
	e.send(wire.Frame{Type: wire.Error, Pod: pod, Container: container, Data: fmt.Sprintf(format, args...)})
}

func (e *emitter) capReached(pod string, max int) {
	e.info(pod, "not following pod %s: %d pods are followed at once at most (KITEFN_LOGS_MAX_PODS)", pod, max)
}

// podTracker follows a workload's pods: a watch by its selector adds pods that appear (pod_added, streamed
// once started), announces pods that go (pod_removed), and keeps at most maxPods followed, taking a skipped
// pod in when a followed one goes.
type podTracker struct {
	s   *logSession
	ctx context.Context
	g   *errgroup.Group
	e   *emitter

	mu       sync.Mutex
	followed map[string]context.CancelFunc // streaming, or waiting to start (cancel nil)
	skipped  map[string]*corev1.Pod        // over the cap
	// Until the first list is in, pods wait in pending (announce: added after the start).
	synced  bool
	pending map[string]pendingPod
}

type pendingPod struct {
	pod      *corev1.Pod
	announce bool
}

// watch runs an informer of the selector's pods until ctx ends. Its handlers run one at a time.
func (t *podTracker) watch() {
	s := t.s
	pods := s.cl.Stream.Kubernetes.CoreV1().Pods(s.req.namespace)
	sel := s.selector.String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return pods.Watch(ctx, o)
		},
	}
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: &corev1.Pod{},
		Handler: cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { t.add(obj, initial) },
			UpdateFunc: func(_, obj any) { t.update(obj) },
			DeleteFunc: t.remove,
		}})
	go func() {
		if cache.WaitForCacheSync(t.ctx.Done(), ctrl.HasSynced) {
			t.flushPending()
		}
	}()
	ctrl.RunWithContext(t.ctx)
}

func (t *podTracker) add(obj any, initial bool) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.synced {
		t.pending[pod.Name] = pendingPod{pod: pod, announce: !initial}
		return
	}
	t.admit(pod, !initial)
}

// admit follows a new pod, or skips it over the cap.
func (t *podTracker) admit(pod *corev1.Pod, announce bool) {
	if _, ok := t.followed[pod.Name]; ok {
		t.updateLocked(pod)
		return
	}
	if len(t.followed) >= t.s.maxPods {
		t.skipped[pod.Name] = pod
		t.e.capReached(pod.Name, t.s.maxPods)
		return
	}
	t.follow(pod, announce)
}

// flushPending takes in the pods of the first list, by name, so the cap keeps the same ones on every request.
func (t *podTracker) flushPending() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.synced = true
	names := make([]string, 0, len(t.pending))
	for n := range t.pending {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t.admit(t.pending[n].pod, t.pending[n].announce)
	}
	t.pending = nil
}

// follow takes a pod in: announced unless it was there from the start, streamed once it has started.
func (t *podTracker) follow(pod *corev1.Pod, announce bool) {
	t.followed[pod.Name] = nil
	if announce {
		t.e.send(wire.Frame{Type: wire.PodAdded, Pod: pod.Name, Data: "following pod " + pod.Name})
	}
	t.updateLocked(pod)
}

func (t *podTracker) update(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.pending[pod.Name]; ok {
		t.pending[pod.Name] = pendingPod{pod: pod, announce: p.announce}
		return
	}
	if _, ok := t.skipped[pod.Name]; ok {
		t.skipped[pod.Name] = pod
		return
	}
	if _, ok := t.followed[pod.Name]; ok {
		t.updateLocked(pod)
	}
}

// updateLocked starts a followed pod's streams once it has started (its containers have logs).
func (t *podTracker) updateLocked(pod *corev1.Pod) {
	if cancel := t.followed[pod.Name]; cancel != nil {
		return
	}
	switch pod.Status.Phase {
	case corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed:
	default:
		return // Pending: no logs yet; an update will say when it runs
	}
	ctx, cancel := context.WithCancel(t.ctx)
	t.followed[pod.Name] = cancel
	t.s.startPod(ctx, t.g, t.e, pod)
}

func (t *podTracker) remove(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[pod.Name]; ok {
		delete(t.pending, pod.Name)
		return
	}
	if _, ok := t.skipped[pod.Name]; ok {
		delete(t.skipped, pod.Name)
		return
	}
	cancel, ok := t.followed[pod.Name]
	if !ok {
		return
	}
	if cancel != nil {
		cancel()
	}
	delete(t.followed, pod.Name)
	t.e.send(wire.Frame{Type: wire.PodRemoved, Pod: pod.Name, Data: "pod " + pod.Name + " is gone"})
	if len(t.skipped) > 0 { // a place is free: the first skipped pod by name takes it
		names := make([]string, 0, len(t.skipped))
		for n := range t.skipped {
			names = append(names, n)
		}
		slices.Sort(names)
		next := t.skipped[names[0]]
		delete(t.skipped, names[0])
		t.follow(next, true)
	}
}

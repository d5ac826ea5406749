package terminal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/functions/terminal/nodeshell"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// Node shells: the pods (package nodeshell), the set of this instance's live ones (deleted on SIGTERM) and the
// reaper that deletes, on every registered cluster, the ones no instance renews any more.

// NodeShellConfig configures the node shells.
type NodeShellConfig struct {
	// NodeShellImage runs the shell pods: it needs sh, nsenter and chroot (the default is nodeshell.DefaultImage).
	NodeShellImage string `envconfig:"NODE_SHELL_IMAGE" default:"docker.io/library/busybox:1.37.0"`
	// NodeShellStartTimeout bounds the wait for a shell pod to run.
	NodeShellStartTimeout time.Duration `envconfig:"NODE_SHELL_START_TIMEOUT" default:"2m"`
	// NodeShellHeartbeat is how often a live shell renews its pod's heartbeat; the reaper deletes a pod
	// unrenewed for three of these.
	NodeShellHeartbeat time.Duration `envconfig:"NODE_SHELL_HEARTBEAT" default:"30s"`
	// NodeShellReapInterval is how often the reaper visits every registered cluster (and once at start).
	NodeShellReapInterval time.Duration `envconfig:"NODE_SHELL_REAP_INTERVAL" default:"60s"`
	// NodeShellIdleTimeout ends a session without input for that long; NodeShellMaxAge ends any session and
	// is the pod's activeDeadlineSeconds, the kubelet's last net when every instance is gone.
	NodeShellIdleTimeout time.Duration `envconfig:"NODE_SHELL_IDLE_TIMEOUT" default:"30m"`
	NodeShellMaxAge      time.Duration `envconfig:"NODE_SHELL_MAX_AGE" default:"8h"`
	// InstanceID labels the pods this instance makes (default: the hostname, i.e. the pod's name).
	InstanceID string `envconfig:"INSTANCE_ID"`
}

func (c *NodeShellConfig) check() error {
	if c.NodeShellImage == "" {
		return errors.New("KITEFN_NODE_SHELL_IMAGE is empty")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"KITEFN_NODE_SHELL_START_TIMEOUT", c.NodeShellStartTimeout, time.Second},
		// The heartbeat is written with second precision.
		{"KITEFN_NODE_SHELL_HEARTBEAT", c.NodeShellHeartbeat, time.Second},
		{"KITEFN_NODE_SHELL_REAP_INTERVAL", c.NodeShellReapInterval, 10 * time.Millisecond},
		{"KITEFN_NODE_SHELL_IDLE_TIMEOUT", c.NodeShellIdleTimeout, time.Second},
		{"KITEFN_NODE_SHELL_MAX_AGE", c.NodeShellMaxAge, time.Minute},
	} {
		if d.v < d.min {
			return fmt.Errorf("%s (%s) must be at least %s", d.name, d.v, d.min)
		}
	}
	if c.InstanceID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return fmt.Errorf("KITEFN_INSTANCE_ID is not set and the hostname is unknown (%v)", err)
		}
		c.InstanceID = host
	}
	return nil
}

// nodeShellOptions are the options of the shell pod for one session of caller.
func (c *NodeShellConfig) nodeShellOptions(session, caller string) nodeshell.Options {
	return nodeshell.Options{Image: c.NodeShellImage, Session: session, Caller: caller, Instance: c.InstanceID,
		MaxAge: c.NodeShellMaxAge, StartTimeout: c.NodeShellStartTimeout, Heartbeat: c.NodeShellHeartbeat}
}

const (
	// reapParallelism is how many clusters the reaper visits at once.
	reapParallelism = 4
	// reapClusterTimeout bounds one cluster's part of a pass (an unreachable cluster does not hold up the rest
	// for longer).
	reapClusterTimeout = 30 * time.Second
	// shutdownDeleteTimeout bounds deleting this instance's shells on SIGTERM (the drain waits behind it).
	shutdownDeleteTimeout = 10 * time.Second
)

// errShuttingDown: no new node shell once SIGTERM arrived.
var errShuttingDown = errors.New("the terminal service is shutting down")

// shells is this instance's live node shells and the reaper's lifecycle.
type shells struct {
	base   context.Context // heartbeats and the reaper run on it; Stop cancels it
	cancel context.CancelFunc
	done   chan struct{} // the reaper ended

	mu      sync.Mutex
	closing bool
	live    map[*nodeShell]struct{}
}

// nodeShell is one live shell of this instance: its pod, renewed until Close.
type nodeShell struct {
	*nodeshell.Shell
	set  *shells
	stop context.CancelFunc
	gone chan struct{}

	once     sync.Once
	closeErr error
}

func (f *Function) routeNodeShells() { f.routeNodeShellRoute() }

func (f *Function) startNodeShells(ctx context.Context) error {
	base, cancel := context.WithCancel(logging.WithLogger(context.WithoutCancel(ctx), f.log))
	f.shells = &shells{base: base, cancel: cancel, done: make(chan struct{}), live: map[*nodeShell]struct{}{}}
	go f.reapLoop(base)
	return nil
}

// shutdownNodeShells (SIGTERM) refuses new shells, deletes this instance's live ones and ends the reaper.
func (f *Function) shutdownNodeShells() {
	s := f.shells
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closing = true
	live := make([]*nodeShell, 0, len(s.live))
	for n := range s.live {
		live = append(live, n)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), shutdownDeleteTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range live {
		wg.Go(func() {
			if err := n.Close(ctx); err != nil {
				f.log.Warnw("deleting a node shell on shutdown (the reaper will)", "pod", n.Pod, "node", n.Node,
					"error", err)
			}
		})
	}
	wg.Wait()
	s.cancel()
}

// stopNodeShells waits for the reaper to end.
func (f *Function) stopNodeShells(ctx context.Context) error {
	s := f.shells
	if s == nil {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node shell reaper did not stop: %w", ctx.Err())
	}
}

// openNodeShell makes a node shell on node through cs (the client acting as the caller), for session and
// caller, telling progress what happens; once it runs, its heartbeat runs until Close and SIGTERM deletes it.
// Exec nodeshell.ShellCommand() into n.Namespace/n.Pod, container n.Container. Errors: nodeShellError.
func (f *Function) openNodeShell(ctx context.Context, cs kubernetes.Interface, node, session, caller string,
	progress func(string)) (*nodeShell, error) {
	s := f.shells
	if s == nil || s.isClosing() {
		return nil, errShuttingDown
	}
	sh, err := nodeshell.Create(ctx, cs, node, f.cfg.nodeShellOptions(session, caller), progress)
	if err != nil {
		return nil, err
	}
	hctx, stop := context.WithCancel(s.base)
	n := &nodeShell{Shell: sh, set: s, stop: stop, gone: make(chan struct{})}
	if !s.add(n) { // SIGTERM arrived while the pod started
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownDeleteTimeout)
		defer cancel()
		return nil, errors.Join(errShuttingDown, n.Close(dctx))
	}
	go func() {
		if errors.Is(sh.Heartbeat(hctx), nodeshell.ErrGone) {
			close(n.gone)
		}
	}()
	return n, nil
}

// Gone is closed when the heartbeat found the pod deleted (by someone, the reaper, its deadline): the session
// should end.
func (n *nodeShell) Gone() <-chan struct{} { return n.gone }

// Close stops the heartbeat and deletes the pod; later calls return the first's result.
func (n *nodeShell) Close(ctx context.Context) error {
	n.once.Do(func() {
		n.stop()
		n.set.remove(n)
		n.closeErr = n.Delete(ctx)
	})
	return n.closeErr
}

func (s *shells) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *shells) add(n *nodeShell) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.live[n] = struct{}{}
	return true
}

func (s *shells) remove(n *nodeShell) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, n)
}

// nodeShellError is the API error of openNodeShell's error on cluster (for an HTTP answer before the upgrade
// or an error frame after it): the cluster's own refusals keep their status.
func nodeShellError(cluster string, err error) *httpapi.Error {
	switch {
	case errors.Is(err, errShuttingDown):
		return httpapi.Errorf(http.StatusServiceUnavailable, "shutting_down", "%v: reconnect", err)
	case errors.Is(err, nodeshell.ErrNodeNotFound):
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q: %v", cluster, err)
	case errors.Is(err, nodeshell.ErrNodeUnsupported):
		return httpapi.Errorf(http.StatusUnprocessableEntity, "node_unsupported", "cluster %q: %v", cluster, err)
	case errors.Is(err, nodeshell.ErrStart) && !errors.Is(err, context.Canceled):
		return httpapi.Errorf(http.StatusBadGateway, "node_shell_failed", "cluster %q: %v", cluster, err)
	}
	return kube.APIError(cluster, err)
}

// reapLoop runs the reaper at start and every NodeShellReapInterval until ctx ends.
func (f *Function) reapLoop(ctx context.Context) {
	defer close(f.shells.done)
	t := time.NewTicker(f.cfg.NodeShellReapInterval)
	defer t.Stop()
	for {
		f.reapAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reapAll visits every registered cluster as its stored identity (not a caller: it cleans up after everyone).
// Failures are logged per cluster and never stop the loop.
func (f *Function) reapAll(ctx context.Context) {
	recs, err := f.registry.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warnw("node shell reaper: listing the clusters", "error", err)
		}
		return
	}
	var g errgroup.Group
	g.SetLimit(reapParallelism)
	for _, rec := range recs {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, reapClusterTimeout)
			defer cancel()
			cl, err := f.clients.Client(cctx, strconv.FormatUint(rec.ID, 10))
			if err == nil {
				var deleted []string
				deleted, err = nodeshell.Reap(cctx, cl.Kubernetes, time.Now(), f.cfg.NodeShellHeartbeat)
				for _, pod := range deleted {
					f.log.Infow("node shell reaper: deleted a pod no session renewed", "cluster", rec.Name,
						"namespace", nodeshell.Namespace, "pod", pod)
				}
			}
			if err != nil && ctx.Err() == nil {
				f.log.Warnw("node shell reaper", "cluster", rec.Name, "error", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

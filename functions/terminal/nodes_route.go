package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kitefn/kitefn/functions/terminal/nodeshell"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
)

// The node-shell route: the pod machinery of nodes.go under the session layer of terminal_session.go.

func (f *Function) routeNodeShellRoute() {
	f.mux.Handle(http.MethodGet, "/api/v1/terminal/nodes/{node}",
		clusterhttp.Select(f.clients, http.HandlerFunc(f.nodeTerminal)).ServeHTTP)
}

// Why a node shell's session ends other than by its shell exiting.
var (
	errIdle   = errors.New("no input for the idle timeout (KITEFN_NODE_SHELL_IDLE_TIMEOUT)")
	errMaxAge = errors.New("the node shell reached its maximum age (KITEFN_NODE_SHELL_MAX_AGE)")
	errGone   = errors.New("the node-shell pod was deleted")
)

// nodeTerminal serves GET /api/v1/terminal/nodes/{node}?cluster=&session=: admin only (the table), and never for
// a caller limited to namespaces (a node is cluster-wide).
func (f *Function) nodeTerminal(w http.ResponseWriter, r *http.Request) {
	cl, _ := clusterhttp.ClientFrom(r.Context())
	node := r.PathValue("node")
	caller, _ := access.CallerFrom(r.Context())
	if caller != nil {
		if err := caller.CheckNamespace("exec nodes", ""); err != nil {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error()))
			return
		}
	}
	target := Target{Cluster: cl.Name, Resource: "nodes", Name: node, Command: "node shell (nsenter into the host)"}
	f.terminals.open(w, r, target, func(ctx context.Context, p Pipes) (int, error) {
		// The pod's own label, separate from the session id (which the session layer keeps to itself).
		n, err := f.openNodeShell(ctx, cl.Kubernetes, node, newSessionID(), access.Who(caller),
			func(msg string) { p.Info("%s", msg) })
		if err != nil {
			return 0, nodeShellError(cl.Name, err)
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownDeleteTimeout)
			defer cancel()
			if err := n.Close(dctx); err != nil {
				f.log.Warnw("deleting a node shell (the reaper will)", "cluster", cl.Name, "pod", n.Pod, "error", err)
			}
		}()
		p.Info("node shell on %s: pod %s/%s", node, n.Namespace, n.Pod)

		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		ctx, cancelAge := context.WithTimeoutCause(ctx, f.cfg.NodeShellMaxAge, errMaxAge)
		defer cancelAge()
		in := &activity{r: p.Stdin}
		in.last.Store(time.Now().UnixNano())
		p.Stdin = in
		go f.watchNodeShell(ctx, cancel, n, in)
		code, err := Exec{Namespace: n.Namespace, Pod: n.Pod, Container: n.Container,
			Command: nodeshell.ShellCommand()}.Run(ctx, cl, p)
		if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
			return 0, fmt.Errorf("the node shell ended: %w", cause)
		}
		return code, err
	}, nil)
}

// watchNodeShell ends the session when its pod goes or nobody typed for the idle timeout.
func (f *Function) watchNodeShell(ctx context.Context, cancel context.CancelCauseFunc, n *nodeShell, in *activity) {
	idle := f.cfg.NodeShellIdleTimeout
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.Gone():
			cancel(errGone)
			return
		case <-t.C:
			left := idle - time.Since(time.Unix(0, in.last.Load()))
			if left <= 0 {
				cancel(errIdle)
				return
			}
			t.Reset(left)
		}
	}
}

// activity is the session's stdin, noting when a keystroke last arrived.
type activity struct {
	r    io.Reader
	last atomic.Int64 // unix nanoseconds
}

func (a *activity) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.last.Store(time.Now().UnixNano())
	}
	return n, err
}

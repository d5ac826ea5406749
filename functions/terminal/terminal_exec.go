package terminal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/kitefn/kitefn/shared/kube"
)

// Exec is one exec into a container with a TTY, for the pod terminal and the node shell alike.
type Exec struct {
	Namespace, Pod, Container string
	Command                   []string
}

// Run streams the exec until the process ends: over the WebSocket executor (the v5 channel protocol, so stdin
// close works) and, when the cluster cannot upgrade to it, SPDY. The exit code is the process's; an error is
// the exec failing (refused, unreachable, the command not found).
func (e Exec) Run(ctx context.Context, cl *kube.Client, p Pipes) (int, error) {
	req := cl.Stream.Kubernetes.CoreV1().RESTClient().Post().Namespace(e.Namespace).Resource("pods").Name(e.Pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{Container: e.Container, Command: e.Command,
		Stdin: true, Stdout: true, TTY: true}, scheme.ParameterCodec)
	ws := &leanExecutor{config: cl.Stream.REST, url: req.URL()}
	spdy, err := remotecommand.NewSPDYExecutor(cl.Stream.REST, http.MethodPost, req.URL())
	if err != nil {
		return 0, fmt.Errorf("exec into %s/%s: %w", e.Namespace, e.Pod, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return 0, fmt.Errorf("exec into %s/%s: %w", e.Namespace, e.Pod, err)
	}
	// With a TTY the container's stderr arrives merged into stdout.
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: p.Stdin, Stdout: p.Stdout, Tty: true,
		TerminalSizeQueue: p.Sizes})
	if code, ok := ExitCode(err); ok {
		return code, nil
	}
	if err != nil && ctx.Err() != nil {
		return 0, fmt.Errorf("the session ended: %w", context.Cause(ctx))
	}
	if err != nil {
		return 0, fmt.Errorf("exec into %s/%s: %w", e.Namespace, e.Pod, err)
	}
	return 0, nil
}

// exitStatus is how a kubelet that does not report the code as such (kwok's) words a non-zero exit.
var exitStatus = regexp.MustCompile(`exit status (\d+)\s*$`)

// ExitCode reads the process's exit code from an exec's result: 0 for nil, the code of an
// exec.CodeExitError, or "… exit status N" in the error's text.
func ExitCode(err error) (int, bool) {
	if err == nil {
		return 0, true
	}
	var ee utilexec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitStatus(), true
	}
	if m := exitStatus.FindStringSubmatch(err.Error()); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			return n, true
		}
	}
	return 0, false
}

package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KwokNodeAnnotation marks the Nodes kwok fakes (value "fake"); other Nodes are left alone.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

// Kwok is a running kwok controller: it makes annotated Nodes Ready, Pods bound to them Running, and serves
// the kubelet API (exec, logs, attach) for them on 127.0.0.1:Port.
type Kwok struct {
	// Port serves the kubelet API of every fake node (HTTP and HTTPS on one port) and /healthz.
	Port int
	// LogFile is kwok's log, in the cluster's Dir.
	LogFile string

	proc *process
}

// KwokOption changes how StartKwok runs kwok.
type KwokOption func(*kwokOptions)

type kwokOptions struct {
	execDir     string
	logsFile    string
	forwardTo   string
	forwardPort int
}

// WithKwokExec makes `kubectl exec` into any fake pod run the command on this host, as the test's user, in
// dir (image, command and securityContext are ignored). Exit codes come back only as error text, and without
// a TTY stdin EOF never reaches the command: tests must kill what they start.
func WithKwokExec(dir string) KwokOption { return func(o *kwokOptions) { o.execDir = dir } }

// WithKwokLogs serves logs and attach of every fake pod from path, a file in CRI log format
// (`<RFC3339Nano> stdout F <text>` per line); logs follow it.
func WithKwokLogs(path string) KwokOption { return func(o *kwokOptions) { o.logsFile = path } }

// WithKwokPortForward makes a port-forward to any port of any fake pod reach address:port on this host (a
// server the test runs), as a kubelet's port-forward would reach the pod.
func WithKwokPortForward(address string, port int) KwokOption {
	return func(o *kwokOptions) { o.forwardTo, o.forwardPort = address, port }
}

// StartKwok runs kwok against the cluster with the Stage set build-tools.sh copies; Cluster.Stop stops it
// too. It returns once kwok's /healthz answers.
func (c *Cluster) StartKwok(ctx context.Context, opts ...KwokOption) (*Kwok, error) {
	var o kwokOptions
	for _, opt := range opts {
		opt(&o)
	}
	if missing := missingTools(c.ToolsDir, []string{"kwok", "kwok-stages"}); len(missing) > 0 {
		return nil, fmt.Errorf("tools folder %s lacks %s: `make tools` (tests/harness/build-tools.sh) builds it",
			c.ToolsDir, strings.Join(missing, ", "))
	}
	stages, err := filepath.Glob(filepath.Join(c.ToolsDir, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("no kwok stages in %s: rerun `make tools`", filepath.Join(c.ToolsDir, "kwok-stages"))
	}
	configs := stages
	if extra := kwokExtraConfig(o); extra != "" {
		path := filepath.Join(c.Dir, "kwok-extra.yaml")
		if err := os.WriteFile(path, []byte(extra), 0o644); err != nil {
			return nil, fmt.Errorf("write kwok config: %w", err)
		}
		configs = append(configs, path)
	}
	// kwok otherwise also loads ~/.kwok/kwok.yaml if it exists.
	workDir := filepath.Join(c.Dir, "kwok-work")
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("create kwok work dir: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	logPath := filepath.Join(c.Dir, "kwok.log")
	for attempt := 1; ; attempt++ {
		ports, err := pickPorts(1)
		if err != nil {
			return nil, err
		}
		port := strconv.Itoa(ports[0])
		args := []string{
			"--kubeconfig=" + c.KubeconfigFile(AdminUser),
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
			"--node-ip=127.0.0.1",
			"--node-port=" + port,
			"--server-address=127.0.0.1:" + port,
			"--node-lease-duration-seconds=40",
		}
		for _, cfg := range configs {
			args = append(args, "--config="+cfg)
		}
		p, err := startProcess("kwok", filepath.Join(c.ToolsDir, "kwok"), args, logPath,
			[]string{"KWOK_WORKDIR=" + workDir}, "KWOK_")
		if err != nil {
			return nil, err
		}
		k := &Kwok{Port: ports[0], LogFile: logPath, proc: p}
		err = waitKwok(ctx, p, "http://127.0.0.1:"+port+"/healthz")
		if err == nil {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.stopped {
				k.Stop()
				return nil, errors.New("start kwok: cluster stopped meanwhile")
			}
			c.kwoks = append(c.kwoks, k)
			return k, nil
		}
		p.stop(5 * time.Second)
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			return nil, err
		}
	}
}

// Stop ends kwok; fake nodes then stop heartbeating but stay in the cluster.
func (k *Kwok) Stop() { k.proc.stop(5 * time.Second) }

func waitKwok(ctx context.Context, p *process, healthz string) error {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	var last string
	for {
		if err := p.exitedEarly("kwok", "healthy"); err != nil {
			return err
		}
		if _, code, err := get(ctx, hc, healthz, ""); err != nil {
			last = err.Error()
		} else if code == http.StatusOK {
			return nil
		} else {
			last = fmt.Sprintf("HTTP %d", code)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kwok not healthy in time (%w); last /healthz: %s; last %d lines of %s:\n%s",
				ctx.Err(), last, logTailLines, p.logPath, p.logTail(logTailLines))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kwokExtraConfig renders the ClusterExec, ClusterLogs, ClusterAttach and ClusterPortForward objects the options ask for.
func kwokExtraConfig(o kwokOptions) string {
	var docs []string
	if o.execDir != "" {
		docs = append(docs, fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: harness-exec
spec:
  execs:
  - local:
      workDir: %q
`, o.execDir))
	}
	if o.logsFile != "" {
		docs = append(docs, fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: harness-logs
spec:
  logs:
  - logsFile: %q
    follow: true
`, o.logsFile), fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterAttach
metadata:
  name: harness-attach
spec:
  attaches:
  - logsFile: %q
`, o.logsFile))
	}
	if o.forwardTo != "" {
		docs = append(docs, fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: harness-port-forward
spec:
  forwards:
  - target:
      address: %q
      port: %d
`, o.forwardTo, o.forwardPort))
	}
	return strings.Join(docs, "---\n")
}

// FakeNode returns a Node for kwok to manage: Ready within a second of its creation, with room for ~1M pods.
// Pods reach it by spec.nodeName (no scheduler runs).
func FakeNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{KwokNodeAnnotation: "fake"},
			Labels:      map[string]string{"type": "kwok", corev1.LabelHostname: name},
		},
	}
}

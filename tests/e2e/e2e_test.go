// Package e2e runs the kitefn binary the way a user does: `make run`'s one-process mode on a fresh data
// directory, against a real kube-apiserver, and executes the README's API examples as printed.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/tests/harness"
)

// repoRoot is the module root, found from this file so the test runs from any directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kitefn")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running kitefn process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *output
	done   chan error
}

// output is a process's combined output, safe to read while exec's goroutine writes it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func start(t *testing.T, bin, home, kubeconfig string, env ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Dir = home
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "KUBECONFIG=" + kubeconfig,
		"LISTEN_ADDRESS=" + addr,
	}, env...)
	stderr := &output{}
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, url: "http://" + addr, stderr: stderr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("kitefn output:\n%s", stderr.String())
		}
	})
	ready := func(ctx context.Context) (bool, error) {
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			return false, fmt.Errorf("kitefn exited before it was ready: %v", err)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/health/readiness", nil)
		if err != nil {
			return false, err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, nil
	}
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, ready); err != nil {
		t.Fatalf("kitefn not ready within 30 s: %v\n%s", err, p.stderr.String())
	}
	return p
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("kitefn exited with %v after SIGTERM\n%s", err, p.stderr.String())
		}
		p.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("kitefn did not exit within 30 s of SIGTERM")
	}
}

func get(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, body)
		}
	}
	return res.StatusCode
}

var exportToken = regexp.MustCompile(`export KITEFN_TOKEN=([0-9a-f]+)`)

func TestMakeRunAndReadmeExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	kube := harness.MustStart(t)
	bin := buildBinary(t)
	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kube.AdminKubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}

	// First start on a fresh machine: a token is made and printed, the local kubeconfig imported.
	p := start(t, bin, home, kubeconfig)
	m := exportToken.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no token printed:\n%s", p.stderr.String())
	}
	token := m[1]
	var list struct {
		Items []struct {
			ID   uint64 `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if code := get(t, p.url+"/api/v1/clusters", token, &list); code != 200 || len(list.Items) != 1 {
		t.Fatalf("after first start: %d, %d clusters, want the imported context", code, len(list.Items))
	}
	for _, f := range []string{"data/kitefn.db", "data/encryption.key", "data/api-token"} {
		fi, err := os.Stat(filepath.Join(home, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s is readable by others: %v", f, fi.Mode())
		}
	}
	if strings.Contains(p.stderr.String(), kube.Token(harness.AdminUser)) {
		t.Fatal("the cluster's credentials appear in the log")
	}

	// The README's examples, in order, as printed; where the README shows an example's output, what it prints
	// must match (readme_test.go says how).
	examples := readmeExamples(t)
	shown := 0
	for _, ex := range examples {
		if ex.want != "" {
			shown++
		}
	}
	if len(examples) < 5 || shown < 2 {
		t.Fatalf("README has %d runnable examples, %d with their output: expected the API walk-through", len(examples), shown)
	}
	for _, ex := range examples {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", ex.code)
		cmd.Dir = home
		cmd.Env = append(os.Environ(), "KITEFN="+p.url, "KITEFN_TOKEN="+token, "KUBECONFIG="+kubeconfig, "HOME="+home)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("README example at line %d failed: %v\n--- example\n%s--- output\n%s%s", ex.line, err, ex.code, &stdout, &stderr)
		}
		t.Logf("README example at line %d:\n%s%s", ex.line, ex.code, &stdout)
		if ex.want == "" {
			continue
		}
		if err := matchOutput(stdout.String(), ex.want); err != nil {
			t.Errorf("README example at line %d prints other than the README shows: %v\n--- printed\n%s--- README\n%s",
				ex.line, err, &stdout, ex.want)
		}
	}
	if strings.Contains(p.stderr.String(), kube.Token(harness.AdminUser)) {
		t.Fatal("the cluster's credentials appear in the log")
	}

	// SIGTERM: a clean exit. A second start reuses the token, key and registry, and imports nothing again.
	var before struct {
		Items []json.RawMessage `json:"items"`
	}
	get(t, p.url+"/api/v1/clusters", token, &before)
	p.stop(t)
	q := start(t, bin, home, kubeconfig)
	if exportToken.FindStringSubmatch(q.stderr.String())[1] != token {
		t.Fatal("token changed across restarts")
	}
	var after struct {
		Items []json.RawMessage `json:"items"`
	}
	get(t, q.url+"/api/v1/clusters", token, &after)
	if len(after.Items) != len(before.Items) {
		t.Fatalf("%d clusters after restart, %d before", len(after.Items), len(before.Items))
	}
	if code := get(t, q.url+"/api/v1/clusters", token, nil); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
	q.stop(t)
}

func TestDeployedFunctionRefusesToStartWithoutSecrets(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"FUNCTION_TARGET=clusters"}, "KITEFN_API_TOKENS"},
		{[]string{"FUNCTION_TARGET=clusters", "KITEFN_API_TOKENS=0123456789abcdef0123"}, "KITEFN_ENCRYPTION_KEY"},
		{[]string{"FUNCTION_TARGET=nope"}, "FUNCTION_TARGET"},
		{[]string{"KITEFN_STORE=mongo"}, "KITEFN_STORE"},
		{[]string{"KITEFN_LOG_LEVEL=loud"}, "KITEFN_LOG_LEVEL"},
	} {
		home := t.TempDir()
		cmd := exec.Command(bin)
		cmd.Dir = home
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LISTEN_ADDRESS=" + freeAddr(t)}, tc.env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("%v: started", tc.env)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Fatalf("%v: output does not name %s:\n%s", tc.env, tc.want, out)
		}
	}
}

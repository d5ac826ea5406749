// Package emulators starts real test servers — the official Firestore emulator and minidyn serving the
// DynamoDB API — as separate processes on free loopback ports, for tests of the store backends.
//
// Each server has Start…(ctx) returning a handle whose Stop ends it (for TestMain), and Must…(t) which fails
// the test if the server cannot start and stops it on t.Cleanup. Nothing here skips a test: a missing
// dependency is an error that says what is missing and how to get it.
package emulators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds a server's start when ctx has no deadline of its own. The Firestore emulator takes
// 3–7 s on a loaded 2-core machine.
const startTimeout = 90 * time.Second

// stopGrace is how long a server gets to exit after SIGTERM before it is killed.
const stopGrace = 3 * time.Second

// logLimit is how much of a server's output is kept for error messages.
const logLimit = 64 << 10

// process is a server started in its own process group, so Stop ends it and anything it spawned.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result; read only after done is closed
	stop sync.Once
}

// startProcess runs bin with args; its stdout and stderr go to out.
func startProcess(name string, out *tailBuffer, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop terminates the process group: SIGTERM, then SIGKILL after stopGrace. It is safe to call twice.
func (p *process) Stop() error {
	var err error
	p.stop.Do(func() {
		pgid := -p.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(stopGrace):
				err = fmt.Errorf("stop %s (pid %d): still running after SIGKILL", p.name, p.cmd.Process.Pid)
			}
		}
		// Anything else left in the group (the emulator's children) goes too.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
	})
	return err
}

// failure describes a start that went wrong, with the tail of the server's output.
func (p *process) failure(what error) error {
	if ok, werr := p.exited(); ok {
		what = fmt.Errorf("%w (exited: %v)", what, werr)
	}
	return fmt.Errorf("%s: %w\n--- last output of %s ---\n%s", p.name, what, p.name, p.out.String())
}

// freePort asks the kernel for a free loopback port. Another process can take it before the server binds it:
// callers retry when the server then fails to start.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// withStartTimeout gives ctx a deadline if it has none, so a server that never becomes ready fails the test.
func withStartTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, startTimeout)
}

// waitReady polls ready until it succeeds, the process exits, or ctx ends.
func (p *process) waitReady(ctx context.Context, ready func(context.Context) error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if ok, _ := p.exited(); ok {
			return p.failure(errors.New("exited before it was ready"))
		}
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return p.failure(fmt.Errorf("not ready: %w (last probe: %v)", ctx.Err(), last))
		case <-p.done:
		case <-tick.C:
		}
	}
}

// tailBuffer keeps the last logLimit bytes written to it (a server's output), safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - logLimit; over > 0 {
		b.buf = append(b.buf[:0:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// lineAfter returns the rest of the first complete line that starts with prefix, if one has been written.
func (b *tailBuffer) lineAfter(prefix string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	complete := b.buf[:bytes.LastIndexByte(b.buf, '\n')+1]
	for line := range bytes.Lines(complete) {
		if rest, ok := bytes.CutPrefix(line, []byte(prefix)); ok {
			return string(bytes.TrimSpace(rest)), true
		}
	}
	return "", false
}

// fileExists reports whether path names a regular file.
func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is one child (etcd, kube-apiserver, kwok) whose stdout and stderr go to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed once the child has exited and waitErr is set
	waitErr error
	// logStart is where this run's output begins: the log is shared by retries after lost port races.
	logStart int64
}

// startProcess runs bin with args, appending its output to logPath. env entries are added to the test's
// environment minus any variable whose name starts with one of dropPrefixes.
func startProcess(name, bin string, args []string, logPath string, env []string, dropPrefixes ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	fmt.Fprintf(logFile, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	// An *os.File is handed to the child as is: no copying goroutine, and nothing is lost if we die first.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(filterEnv(os.Environ(), dropPrefixes), env...)
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: logFile, done: make(chan struct{})}
	if fi, err := logFile.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the child has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs and waits for the exit. It returns how long it took.
func (p *process) stop(grace time.Duration) time.Duration {
	start := time.Now()
	if exited, _ := p.exited(); exited {
		return 0
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start)
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return time.Since(start)
}

// logTail returns the last n lines of the child's log, for error messages.
func (p *process) logTail(n int) string {
	return fileTail(p.logPath, n)
}

// fileTail returns the last n lines of a file (reading at most its last 256 KiB).
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const maxRead = 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		_, _ = f.Seek(fi.Size()-maxRead, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// logMentions reports whether this run's part of the log contains s (used to spot a lost port race).
func (p *process) logMentions(s string) bool {
	data, err := os.ReadFile(p.logPath)
	return err == nil && int64(len(data)) >= p.logStart && bytes.Contains(data[p.logStart:], []byte(s))
}

func filterEnv(env, dropPrefixes []string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, prefix := range dropPrefixes {
			if strings.HasPrefix(kv, prefix) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// pickPorts is freePorts, replaceable by tests that provoke a lost port race.
var pickPorts = freePorts

// freePorts returns n distinct loopback ports that were free a moment ago. Holding all listeners until every
// port is chosen keeps them distinct; another process can still take one before the child binds it, which
// callers detect ("address already in use") and retry with new ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// errPortTaken marks a start attempt lost to a port race, worth retrying with new ports.
var errPortTaken = errors.New("port taken by another process: " + addrInUse)

const addrInUse = "address already in use"

// exitedEarly is the error for a process that ended before it was ready (nil while it runs): errPortTaken
// when it lost a port race, so Start can retry on other ports, with the end of its log either way.
func (p *process) exitedEarly(name, state string) error {
	exited, err := p.exited()
	if !exited {
		return nil
	}
	if p.logMentions(addrInUse) {
		return fmt.Errorf("%s lost a port race (%w); last %d lines of %s:\n%s",
			name, errPortTaken, logTailLines, p.logPath, p.logTail(logTailLines))
	}
	return fmt.Errorf("%s exited before it was %s: %v; last %d lines of %s:\n%s",
		name, state, err, logTailLines, p.logPath, p.logTail(logTailLines))
}

// Package netns gives tests a network namespace joined to the host by a veth pair: a place for test servers
// whose addresses are not loopback (the kube-apiserver refuses loopback addresses in Endpoints and
// EndpointSlices, so its service proxy cannot reach a server on 127.0.0.1) and yet are reachable from this host
// only. Each namespace owns one subnet 10.231.S.0/24: the host end of the veth is 10.231.S.1, addresses inside
// are 10.231.S.2 and up. Nothing is routed beyond the pair.
//
// It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`. Servers run in the test process itself:
// Listen opens the socket from an OS thread switched into the namespace, and the socket stays there.
//
//	ns := netns.MustNew(t) // removed when the test ends
//	addr, _ := ns.AddAddr(ctx)
//	srv, _ := ns.StartHTTP(netip.AddrPortFrom(addr, 9090), handler)
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// NamePrefix starts the name of every namespace this package makes: kitefn-<pid>-<subnet>. The pid lets a
	// later run remove what a crashed test binary left.
	NamePrefix = "kitefn-"
	// linkPrefix names the host end of the veth kfn<subnet>h and the end inside kfn<subnet>n (≤ 15 bytes).
	linkPrefix = "kfn"
	// runDir is where `ip netns` keeps its bind mounts.
	runDir = "/run/netns"
	// subnetBase is the /16 the namespaces' /24s come from.
	subnetBase = "10.231"
)

// Namespace is a network namespace with a veth pair to the host. Its exported fields are read-only.
type Namespace struct {
	// Name is the namespace's name (`ip netns list`).
	Name string
	// HostAddr is the host end of the veth: the address servers inside see connections from.
	HostAddr netip.Addr
	// Prefix is the namespace's /24.
	Prefix netip.Prefix

	subnet   int
	hostLink string
	nsLink   string

	mu        sync.Mutex
	next      int // last host byte handed out inside
	listeners []net.Listener
	closed    bool
}

// New makes a namespace with a fresh /24, one address inside (see Addrs) and loopback up. The caller must
// Close it.
func New(ctx context.Context) (*Namespace, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netns: iproute2's ip is not installed: %w", err)
	}
	sweepStale(ctx)
	used := hostSubnets()
	start := os.Getpid()%254 + 1
	var lastErr error
	for i := range 254 {
		s := (start+i-1)%254 + 1
		if used[s] {
			continue
		}
		n, err := create(ctx, s)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, errTaken) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("netns: no free subnet in %s.0.0/16: %w", subnetBase, lastErr)
}

// MustNew makes a namespace for one test and removes it (with its veth and servers) when the test ends.
func MustNew(tb testing.TB) *Namespace {
	tb.Helper()
	n, err := New(tb.Context())
	if err != nil {
		tb.Fatalf("%v (the test needs root and iproute2 to create a network namespace)", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("removing network namespace: %v", err)
		}
	})
	return n
}

var errTaken = errors.New("subnet taken")

// create claims subnet s: the host link name is the lock, since link names are unique on the host.
func create(ctx context.Context, s int) (*Namespace, error) {
	n := &Namespace{
		Name:     fmt.Sprintf("%s%d-%d", NamePrefix, os.Getpid(), s),
		HostAddr: netip.MustParseAddr(fmt.Sprintf("%s.%d.1", subnetBase, s)),
		Prefix:   netip.MustParsePrefix(fmt.Sprintf("%s.%d.0/24", subnetBase, s)),
		subnet:   s,
		hostLink: fmt.Sprintf("%s%dh", linkPrefix, s),
		nsLink:   fmt.Sprintf("%s%dn", linkPrefix, s),
		next:     1,
	}
	if out, err := ip(ctx, "netns", "add", n.Name); err != nil {
		if strings.Contains(out, "exists") {
			return nil, fmt.Errorf("%w: namespace %s exists", errTaken, n.Name)
		}
		return nil, fmt.Errorf("netns: ip netns add %s: %w: %s", n.Name, err, out)
	}
	if out, err := ip(ctx, "link", "add", n.hostLink, "type", "veth", "peer", "name", n.nsLink, "netns", n.Name); err != nil {
		_, _ = ip(context.WithoutCancel(ctx), "netns", "del", n.Name)
		if strings.Contains(out, "exists") {
			return nil, fmt.Errorf("%w: link %s exists", errTaken, n.hostLink)
		}
		return nil, fmt.Errorf("netns: creating veth %s: %w: %s", n.hostLink, err, out)
	}
	steps := [][]string{
		{"addr", "add", n.HostAddr.String() + "/24", "dev", n.hostLink},
		{"link", "set", n.hostLink, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
		{"-n", n.Name, "link", "set", n.nsLink, "up"},
	}
	for _, args := range steps {
		if out, err := ip(ctx, args...); err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := n.AddAddr(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// AddAddr assigns the next free address of the subnet inside the namespace and returns it.
func (n *Namespace) AddAddr(ctx context.Context) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return netip.Addr{}, errors.New("netns: namespace is closed")
	}
	if n.next >= 254 {
		return netip.Addr{}, fmt.Errorf("netns: %s has no free address left", n.Prefix)
	}
	n.next++
	a := netip.MustParseAddr(fmt.Sprintf("%s.%d.%d", subnetBase, n.subnet, n.next))
	if out, err := ip(ctx, "-n", n.Name, "addr", "add", a.String()+"/24", "dev", n.nsLink); err != nil {
		return netip.Addr{}, fmt.Errorf("netns: adding %s in %s: %w: %s", a, n.Name, err, out)
	}
	return a, nil
}

// Addrs lists the addresses handed out inside the namespace, in order (the first one New assigned).
func (n *Namespace) Addrs() []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []netip.Addr
	for b := 2; b <= n.next; b++ {
		out = append(out, netip.MustParseAddr(fmt.Sprintf("%s.%d.%d", subnetBase, n.subnet, b)))
	}
	return out
}

// Listen opens a TCP listener inside the namespace (address as for net.Listen, e.g. "10.231.7.2:9090" or
// ":0"). Close closes it too.
func (n *Namespace) Listen(address string) (net.Listener, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, errors.New("netns: namespace is closed")
	}
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	// The goroutine owns the OS thread while it is in the other namespace. If it cannot switch back, it exits
	// still locked and the Go runtime ends that thread instead of reusing it.
	go func() {
		runtime.LockOSThread()
		var res result
		defer func() { done <- res }()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			res.err = fmt.Errorf("netns: opening this thread's namespace: %w", err)
			runtime.UnlockOSThread()
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join(runDir, n.Name))
		if err != nil {
			res.err = fmt.Errorf("netns: opening %s: %w", n.Name, err)
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			res.err = fmt.Errorf("netns: entering %s: %w", n.Name, err)
			runtime.UnlockOSThread()
			return
		}
		res.ln, res.err = net.Listen("tcp", address)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			res.err = errors.Join(res.err, fmt.Errorf("netns: leaving %s: %w", n.Name, err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
	}()
	res := <-done
	if res.err != nil {
		if res.ln != nil {
			res.ln.Close()
		}
		return nil, res.err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		res.ln.Close()
		return nil, errors.New("netns: namespace is closed")
	}
	n.listeners = append(n.listeners, res.ln)
	return res.ln, nil
}

// Server is an HTTP server listening inside a namespace.
type Server struct {
	// Addr is where it listens.
	Addr netip.AddrPort
	srv  *http.Server
}

// StartHTTP serves h on addr inside the namespace (port 0 picks one) until Close, of the server or the
// namespace.
func (n *Namespace) StartHTTP(addr netip.AddrPort, h http.Handler) (*Server, error) {
	ln, err := n.Listen(addr.String())
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is http://ADDR:PORT.
func (s *Server) URL() string { return "http://" + s.Addr.String() }

// Close stops the server and its connections.
func (s *Server) Close() error { return s.srv.Close() }

// Close closes the listeners opened inside, removes the namespace and the veth pair. Safe to call twice.
func (n *Namespace) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	lns := n.listeners
	n.listeners = nil
	n.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	// Deleting the host end destroys the pair at once; the namespace alone would linger while any socket in it
	// is still open.
	if out, err := ip(ctx, "link", "del", n.hostLink); err != nil && !strings.Contains(out, "Cannot find device") {
		errs = append(errs, fmt.Errorf("netns: ip link del %s: %w: %s", n.hostLink, err, out))
	}
	if out, err := ip(ctx, "netns", "del", n.Name); err != nil && !strings.Contains(out, "No such file") {
		errs = append(errs, fmt.Errorf("netns: ip netns del %s: %w: %s", n.Name, err, out))
	}
	return errors.Join(errs...)
}

// Exists reports whether a namespace of this name is present (for tests of the cleanup).
func Exists(name string) bool {
	_, err := os.Stat(filepath.Join(runDir, name))
	return err == nil
}

// LinkExists reports whether a network interface of this name exists on the host.
func LinkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// HostLink is the name of the host end of the veth.
func (n *Namespace) HostLink() string { return n.hostLink }

func ip(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// hostSubnets lists the 10.231.S.0/24 subnets some host interface already has an address in.
func hostSubnets() map[int]bool {
	used := map[int]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().Is4() {
			continue
		}
		b := p.Addr().As4()
		if b[0] == 10 && b[1] == 231 {
			used[int(b[2])] = true
		}
	}
	return used
}

// sweepStale removes namespaces this package made in test binaries that are gone (crashed or killed before
// Close). Removing a namespace destroys the veth end inside, and with it the pair.
func sweepStale(ctx context.Context) {
	entries, _ := os.ReadDir(runDir)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), NamePrefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() || pidAlive(pid) {
			continue
		}
		_, _ = ip(ctx, "netns", "del", e.Name())
	}
}

// pidAlive reports whether a process with this pid exists (EPERM means it exists under another user).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

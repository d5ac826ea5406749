package netns_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kitefn/kitefn/tests/netns"
)

func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("creates network namespaces (not in -short mode)")
	}
}

func TestServerInsideIsReachableFromTheHost(t *testing.T) {
	needRoot(t)
	ns := netns.MustNew(t)
	ctx := t.Context()
	if !ns.Prefix.Contains(ns.HostAddr) || len(ns.Addrs()) != 1 || !ns.Prefix.Contains(ns.Addrs()[0]) {
		t.Fatalf("addresses: host %s, inside %v, prefix %s", ns.HostAddr, ns.Addrs(), ns.Prefix)
	}
	second, err := ns.AddAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == ns.Addrs()[0] || len(ns.Addrs()) != 2 {
		t.Fatalf("AddAddr gave %s; addrs %v", second, ns.Addrs())
	}

	var remote string
	srv, err := ns.StartHTTP(netip.AddrPortFrom(second, 0), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote = r.RemoteAddr
		fmt.Fprint(w, "inside")
	}))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr.Addr() != second || srv.Addr.Port() == 0 {
		t.Fatalf("server address %s", srv.Addr)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Get(srv.URL())
	if err != nil {
		t.Fatalf("GET %s from the host: %v", srv.URL(), err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "inside" {
		t.Fatalf("body %q", body)
	}
	if host, _, _ := net.SplitHostPort(remote); host != ns.HostAddr.String() {
		t.Fatalf("the server saw the connection from %s, want the host end %s", remote, ns.HostAddr)
	}

	// The socket really is inside: the host has no such address, and a listener on it in the host fails.
	if _, err := net.Listen("tcp", netip.AddrPortFrom(second, 0).String()); err == nil {
		t.Fatalf("%s can be bound on the host too: the listener is not in the namespace", second)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	needRoot(t)
	ns, err := netns.New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen(netip.AddrPortFrom(ns.Addrs()[0], 0).String())
	if err != nil {
		t.Fatal(err)
	}
	if !netns.Exists(ns.Name) || !netns.LinkExists(ns.HostLink()) {
		t.Fatalf("namespace %s or link %s missing after New", ns.Name, ns.HostLink())
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if netns.Exists(ns.Name) || netns.LinkExists(ns.HostLink()) {
		t.Fatalf("namespace %s or link %s left after Close", ns.Name, ns.HostLink())
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("listener still open after Close")
	}
	if _, err := ns.AddAddr(t.Context()); err == nil {
		t.Fatal("AddAddr after Close succeeded")
	}
}

func TestTwoNamespacesGetDistinctSubnets(t *testing.T) {
	needRoot(t)
	a, b := netns.MustNew(t), netns.MustNew(t)
	if a.Prefix == b.Prefix || a.Name == b.Name || a.HostLink() == b.HostLink() {
		t.Fatalf("namespaces collide: %s %s / %s %s", a.Name, a.Prefix, b.Name, b.Prefix)
	}
}

// A namespace left by a test binary that died is removed by the next New.
func TestStaleNamespaceIsSwept(t *testing.T) {
	needRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s%d-999", netns.NamePrefix, dead.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	netns.MustNew(t)
	if netns.Exists(name) {
		out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
		t.Fatalf("stale namespace %s not swept; have:\n%s", name, strings.TrimSpace(string(out)))
	}
}

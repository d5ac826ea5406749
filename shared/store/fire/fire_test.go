package fire_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/fire"
	"github.com/kitefn/kitefn/shared/store/storetest"
	"github.com/kitefn/kitefn/tests/emulators"
)

const project = "kitefn-test"

// TestMain shares one emulator between the tests: it takes seconds to start. Subtests keep apart through
// collection prefixes.
func TestMain(m *testing.M) {
	emu, err := emulators.StartFirestore(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the Firestore emulator the tests need: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("FIRESTORE_EMULATOR_HOST", emu.Host)
	code := m.Run()
	if err := emu.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		prefix := fmt.Sprintf("conformance-%d", n.Add(1))
		return open(t, prefix), open(t, prefix)
	})
}

func open(t *testing.T, prefix string) *fire.Store {
	t.Helper()
	s, err := fire.Open(t.Context(), fire.Config{Project: project, CollectionPrefix: prefix})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestUnreachable points the client at a closed port: every operation must fail, within the caller's
// deadline, as a *store.UnavailableError naming the backend.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("FIRESTORE_EMULATOR_HOST", addr)

	s, err := fire.Open(t.Context(), fire.Config{Project: project, CollectionPrefix: "unreachable"})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	storetest.Unreachable(t, s, "firestore", 500*time.Millisecond)
}

func TestOpenRejectsBadConfig(t *testing.T) {
	if _, err := fire.Open(t.Context(), fire.Config{}); err == nil {
		t.Error("Open without a project succeeded")
	}
	if _, err := fire.Open(t.Context(), fire.Config{Project: project, CollectionPrefix: "a/b"}); err == nil {
		t.Error("Open with a prefix holding '/' succeeded")
	}
}

// TestSeparatePrefixes checks that two registries in one database do not see each other.
func TestSeparatePrefixes(t *testing.T) {
	ctx := t.Context()
	one, two := open(t, "sep-one"), open(t, "sep-two")
	if _, err := one.Create(ctx, &store.Cluster{Name: "shared-name"}); err != nil {
		t.Fatal(err)
	}
	c, err := two.Create(ctx, &store.Cluster{Name: "shared-name"})
	if err != nil {
		t.Fatalf("the same name under another prefix: %v", err)
	}
	if c.ID != 1 {
		t.Errorf("ID under another prefix = %d, want 1", c.ID)
	}
}

// TestNameTooLong checks that a name Firestore cannot index is refused as bad input, not as an outage, and
// burns no ID.
func TestNameTooLong(t *testing.T) {
	ctx := t.Context()
	s := open(t, "too-long")
	_, err := s.Create(ctx, &store.Cluster{Name: strings.Repeat("n", 2000)})
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrConflict) {
		t.Fatalf("Create with a 2000-byte name: %v, want a plain error", err)
	}
	c, err := s.Create(ctx, &store.Cluster{Name: "short"})
	if err != nil || c.ID != 1 {
		t.Fatalf("Create after the refused one: %v, %v; want ID 1", c, err)
	}
}

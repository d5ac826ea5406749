package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/bolt"
	"github.com/kitefn/kitefn/shared/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		s, err := bolt.Open(t.Context(), filepath.Join(t.TempDir(), "kitefn.db"), bolt.Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		// bbolt locks its file: one process, one instance.
		return s, s
	})
}

func TestLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kitefn.db")
	first, err := bolt.Open(t.Context(), path, bolt.Options{})
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	defer first.Close()

	start := time.Now()
	second, err := bolt.Open(t.Context(), path, bolt.Options{Timeout: 300 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second open of a locked file succeeded")
	}
	// A lower bound only: it shows the timeout was waited for (bbolt polls the lock every 50 ms), and the test's
	// own timeout catches an open that blocks forever.
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("second open gave up after %v, before the 300ms timeout", waited)
	}
	var unavailable *store.UnavailableError
	if !errors.As(err, &unavailable) || unavailable.Backend != "bbolt" {
		t.Fatalf("error %v is not a *store.UnavailableError for bbolt", err)
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not say the file is locked, nor name it", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kitefn.db")
	s, err := bolt.Open(ctx, path, bolt.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := s.Create(ctx, &store.Cluster{Name: "one"}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s, err = bolt.Open(ctx, path, bolt.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	c, err := s.Create(ctx, &store.Cluster{Name: "two"})
	if err != nil {
		t.Fatalf("create after reopen: %v", err)
	}
	if c.ID != 2 {
		t.Errorf("ID after reopen = %d, want 2", c.ID)
	}
	if got, err := s.GetByName(ctx, "one"); err != nil || got.ID != 1 {
		t.Errorf("GetByName(one) after reopen = %v, %v", got, err)
	}
}

func TestUnwritableDirectory(t *testing.T) {
	_, err := bolt.Open(t.Context(), filepath.Join(t.TempDir(), "missing", "kitefn.db"), bolt.Options{})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("open in a missing directory: %v, want a *store.UnavailableError", err)
	}
}

func TestCanceledContext(t *testing.T) {
	s, err := bolt.Open(t.Context(), filepath.Join(t.TempDir(), "kitefn.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Create(ctx, &store.Cluster{Name: "late"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a canceled context: %v", err)
	}
	if _, err := s.GetByName(context.Background(), "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a canceled Create left a record: %v", err)
	}
}

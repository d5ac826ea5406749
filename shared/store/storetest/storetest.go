// Package storetest is the conformance suite every store.Store backend must pass unchanged, against its real
// server (or file). Backends call Run from their own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (a, b store.Store) { ... })
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/shared/store"
)

// Opener returns a fresh, empty registry for one subtest as two stores over the same data: b is a second,
// independent instance (another client, as another replica would have) where the backend allows it, or a
// itself where it does not (bbolt locks its file). The opener registers closing on t.Cleanup and fails t if it
// cannot open. Subtests run in parallel, so it is called concurrently and each call must get its own data
// (a new file, table or collection prefix).
type Opener func(t *testing.T) (a, b store.Store)

// Parallelism is how many goroutines the concurrency subtests run at once; ConcurrentCreates creates this
// many clusters, half through each store.
const Parallelism = 100

// contention is how many goroutines race for one name or one version.
const contention = 10

// timeout bounds each subtest, so a hung backend fails instead of blocking until the test binary's deadline.
const timeout = 90 * time.Second

// Run runs the conformance suite. Each subtest is parallel and calls open once.
func Run(t *testing.T, open Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, a, b store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"ReturnsCopies", testReturnsCopies},
		{"SequentialIDs", testSequentialIDs},
		{"NotFound", testNotFound},
		{"Update", testUpdate},
		{"Rename", testRename},
		{"Delete", testDelete},
		{"List", testList},
		{"Names", testNames},
		{"Timestamps", testTimestamps},
		{"ConcurrentCreates", testConcurrentCreates},
		{"ConcurrentSameName", testConcurrentSameName},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentRenames", testConcurrentRenames},
	}
	tests = append(tests, tokenTests...)
	tests = append(tests, auditTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			if a == nil || b == nil {
				t.Fatal("opener returned a nil store")
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			tc.fn(ctx, t, a, b)
		})
	}
}

// sample is a cluster with every field set, so round trips are checked field by field.
func sample(name string) *store.Cluster {
	checked := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.FixedZone("CET", 3600))
	kubeconfig := make([]byte, 256)
	for i := range kubeconfig {
		kubeconfig[i] = byte(i) // every byte value: sealed kubeconfigs are binary
	}
	return &store.Cluster{
		Name:       name,
		Server:     "https://" + strings.ReplaceAll(name, "/", "-") + ".example.test:6443",
		Kubeconfig: kubeconfig,
		Labels:     map[string]string{"env": "prod", "team": "Ünïcode ✓", "empty": ""},
		Prometheus: store.Prometheus{
			URL:       "http://prometheus.monitoring.svc:9090",
			Status:    store.PrometheusFound,
			Message:   "found via service monitoring/prometheus",
			CheckedAt: &checked,
		},
		Impersonate: true,
	}
}

func testCreateAndGet(ctx context.Context, t *testing.T, a, b store.Store) {
	in := sample("alpha")
	before := in.Clone()
	start := time.Now()
	got, err := a.Create(ctx, in)
	end := time.Now()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if diff := diffCluster(before, in); diff != "" {
		t.Errorf("Create changed its argument: %s", diff)
	}
	if got.ID != 1 || got.Version != 1 {
		t.Errorf("Create returned ID %d version %d, want ID 1 version 1", got.ID, got.Version)
	}
	checkUTC(t, got)
	if !got.CreatedAt.Equal(got.UpdatedAt) {
		t.Errorf("CreatedAt %v != UpdatedAt %v on a new record", got.CreatedAt, got.UpdatedAt)
	}
	if got.CreatedAt.Before(start.Add(-time.Millisecond)) || got.CreatedAt.After(end.Add(time.Millisecond)) {
		t.Errorf("CreatedAt %v is not between %v and %v", got.CreatedAt, start, end)
	}
	want := in.Clone()
	want.ID, want.Version, want.CreatedAt, want.UpdatedAt = 1, 1, got.CreatedAt, got.UpdatedAt
	if diff := diffCluster(want, got); diff != "" {
		t.Errorf("Create returned a different record: %s", diff)
	}
	for _, s := range []store.Store{a, b} {
		byID, err := s.Get(ctx, got.ID)
		if err != nil {
			t.Fatalf("Get(%d): %v", got.ID, err)
		}
		if diff := diffCluster(got, byID); diff != "" {
			t.Errorf("Get differs from what Create returned: %s", diff)
		}
		checkUTC(t, byID)
		byName, err := s.GetByName(ctx, "alpha")
		if err != nil {
			t.Fatalf("GetByName: %v", err)
		}
		if diff := diffCluster(got, byName); diff != "" {
			t.Errorf("GetByName differs from what Create returned: %s", diff)
		}
	}

	// A record with nothing optional set round-trips too.
	bare, err := b.Create(ctx, &store.Cluster{Name: "bare", Prometheus: store.Prometheus{Status: store.PrometheusPending}})
	if err != nil {
		t.Fatalf("Create(bare): %v", err)
	}
	if bare.ID != 2 {
		t.Errorf("second Create returned ID %d, want 2", bare.ID)
	}
	back, err := a.Get(ctx, bare.ID)
	if err != nil {
		t.Fatalf("Get(bare): %v", err)
	}
	if diff := diffCluster(bare, back); diff != "" {
		t.Errorf("bare record did not round-trip: %s", diff)
	}
	if back.Prometheus.CheckedAt != nil {
		t.Errorf("CheckedAt = %v, want nil", back.Prometheus.CheckedAt)
	}
}

func testReturnsCopies(ctx context.Context, t *testing.T, a, b store.Store) {
	created := mustCreate(ctx, t, a, sample("copies"))
	want := created.Clone()
	scribble := func(c *store.Cluster) {
		c.Name, c.Server, c.Version = "scribbled", "scribbled", 99
		c.Labels["env"] = "scribbled"
		c.Labels["new"] = "scribbled"
		c.Kubeconfig[0] ^= 0xff
		*c.Prometheus.CheckedAt = c.Prometheus.CheckedAt.Add(time.Hour)
	}
	scribble(created)
	got := mustGet(ctx, t, a, want.ID)
	if diff := diffCluster(want, got); diff != "" {
		t.Fatalf("changing the record Create returned changed the store: %s", diff)
	}
	scribble(got)
	got = mustGet(ctx, t, b, want.ID)
	if diff := diffCluster(want, got); diff != "" {
		t.Fatalf("changing the record Get returned changed the store: %s", diff)
	}
	byName, err := a.GetByName(ctx, "copies")
	if err != nil {
		t.Fatalf("GetByName: %v", err)
	}
	scribble(byName)
	list, err := a.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("List returned %d records, want 1", len(list))
	}
	if diff := diffCluster(want, list[0]); diff != "" {
		t.Fatalf("changing the record GetByName returned changed the store: %s", diff)
	}
	scribble(list[0])

	upd := want.Clone()
	upd.Server = "https://updated.example.test"
	updated, err := a.Update(ctx, upd)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantUpd := updated.Clone()
	scribble(updated)
	if diff := diffCluster(wantUpd, mustGet(ctx, t, b, want.ID)); diff != "" {
		t.Fatalf("changing the record List or Update returned changed the store: %s", diff)
	}
}

func testSequentialIDs(ctx context.Context, t *testing.T, a, b store.Store) {
	for i, s := range []store.Store{a, b, a} {
		name := fmt.Sprintf("seq-%d", i+1)
		if got := mustCreate(ctx, t, s, sample(name)); got.ID != uint64(i+1) {
			t.Fatalf("Create(%s) got ID %d, want %d", name, got.ID, i+1)
		}
	}
	// Failed creates must not burn IDs nor leave anything behind.
	for _, s := range []store.Store{a, b} {
		_, err := s.Create(ctx, sample("seq-2"))
		checkConflict(t, err, "Create with a taken name")
		if !strings.Contains(err.Error(), "seq-2") {
			t.Errorf("conflict %q does not name the taken name", err)
		}
		_, err = s.Create(ctx, &store.Cluster{Server: "https://nameless.example.test"})
		if err == nil {
			t.Fatal("Create with an empty name succeeded")
		}
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Create with an empty name: %v; want a plain invalid-input error", err)
		}
	}
	if got := mustCreate(ctx, t, b, sample("seq-4")); got.ID != 4 {
		t.Fatalf("Create after failed creates got ID %d, want 4 (failed creates must not burn IDs)", got.ID)
	}
	checkIDs(ctx, t, a, []uint64{1, 2, 3, 4})
	if got := mustGetByName(ctx, t, a, "seq-2"); got.ID != 2 {
		t.Errorf("GetByName(seq-2) = ID %d after a failed duplicate, want 2", got.ID)
	}
}

func testNotFound(ctx context.Context, t *testing.T, a, b store.Store) {
	for _, s := range []store.Store{a, b} {
		_, err := s.Get(ctx, 42)
		checkNotFound(t, err, "Get(42)")
		_, err = s.GetByName(ctx, "missing")
		checkNotFound(t, err, "GetByName(missing)")
		_, err = s.Update(ctx, &store.Cluster{ID: 42, Name: "ghost", Version: 1})
		checkNotFound(t, err, "Update(42)")
		checkNotFound(t, s.Delete(ctx, 42), "Delete(42)")
		_, err = s.GetByName(ctx, "ghost")
		checkNotFound(t, err, "GetByName(ghost) after a failed Update")
	}
	list, err := a.List(ctx)
	if err != nil {
		t.Fatalf("List of an empty store: %v", err)
	}
	if len(list) != 0 {
		t.Fatalf("List of an empty store returned %d records", len(list))
	}
	if got := mustCreate(ctx, t, b, sample("ghost")); got.ID != 1 {
		t.Fatalf("first Create after failed operations got ID %d, want 1", got.ID)
	}
}

func testUpdate(ctx context.Context, t *testing.T, a, b store.Store) {
	created := mustCreate(ctx, t, a, sample("upd"))
	// Until the clock (at the stores' microsecond precision) has moved past the create, an update could not
	// show that it set UpdatedAt.
	moved := func(context.Context) (bool, error) { return store.Now().After(created.UpdatedAt), nil }
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Microsecond, 5*time.Second, true, moved); err != nil {
		t.Fatalf("the clock did not move past %v: %v", created.UpdatedAt, err)
	}

	in := created.Clone()
	in.Server = "https://moved.example.test:6443"
	in.Kubeconfig = []byte("new sealed bytes")
	in.Labels = map[string]string{"only": "this"}
	in.Impersonate = false // sample has it on: turning it off must persist (not read back as the old value)
	checked := time.Date(2027, 1, 1, 0, 0, 0, 5_000_000, time.UTC)
	in.Prometheus = store.Prometheus{Status: store.PrometheusFailed, Message: "timeout", CheckedAt: &checked}
	in.CreatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // must be ignored
	in.UpdatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // must be ignored
	before := in.Clone()
	start := store.Now()
	updated, err := b.Update(ctx, in)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if end := store.Now(); updated.UpdatedAt.Before(start) || updated.UpdatedAt.After(end) {
		t.Errorf("UpdatedAt %v is not the time of the Update (between %v and %v)", updated.UpdatedAt, start, end)
	}
	if diff := diffCluster(before, in); diff != "" {
		t.Errorf("Update changed its argument: %s", diff)
	}
	if updated.Version != 2 {
		t.Errorf("Update returned version %d, want 2", updated.Version)
	}
	if !updated.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("Update changed CreatedAt from %v to %v", created.CreatedAt, updated.CreatedAt)
	}
	if !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("UpdatedAt %v is not after the previous %v", updated.UpdatedAt, created.UpdatedAt)
	}
	checkUTC(t, updated)
	want := in.Clone()
	want.Version, want.CreatedAt, want.UpdatedAt = 2, created.CreatedAt, updated.UpdatedAt
	if diff := diffCluster(want, updated); diff != "" {
		t.Errorf("Update returned a different record: %s", diff)
	}
	if diff := diffCluster(updated, mustGet(ctx, t, a, created.ID)); diff != "" {
		t.Errorf("Get after Update differs from what Update returned: %s", diff)
	}

	// Compare-and-set: the old version and a future one both lose, and change nothing.
	for _, v := range []uint64{1, 3} {
		stale := updated.Clone()
		stale.Version = v
		stale.Server = "https://stale.example.test"
		_, err := a.Update(ctx, stale)
		checkConflict(t, err, fmt.Sprintf("Update with version %d of a version-2 record", v))
	}
	if diff := diffCluster(updated, mustGet(ctx, t, b, created.ID)); diff != "" {
		t.Errorf("a stale Update changed the record: %s", diff)
	}

	// The other instance continues from the new version.
	next := updated.Clone()
	next.Labels = nil
	next.Impersonate = true
	again, err := a.Update(ctx, next)
	if err != nil {
		t.Fatalf("second Update: %v", err)
	}
	if again.Version != 3 || len(again.Labels) != 0 || !again.Impersonate {
		t.Errorf("second Update returned version %d labels %v impersonate %v, want version 3, no labels, impersonate",
			again.Version, again.Labels, again.Impersonate)
	}
	if got := mustGet(ctx, t, b, created.ID); !got.Impersonate {
		t.Error("Get after turning impersonate back on reads it off")
	}
	checkIDs(ctx, t, b, []uint64{1})
}

func testRename(ctx context.Context, t *testing.T, a, b store.Store) {
	x := mustCreate(ctx, t, a, sample("x"))
	y := mustCreate(ctx, t, b, sample("y"))

	in := x.Clone()
	in.Name = "z"
	renamed, err := b.Update(ctx, in)
	if err != nil {
		t.Fatalf("rename x to z: %v", err)
	}
	if renamed.Name != "z" || renamed.Version != 2 {
		t.Errorf("rename returned name %q version %d, want z and 2", renamed.Name, renamed.Version)
	}
	if got := mustGetByName(ctx, t, a, "z"); got.ID != x.ID {
		t.Errorf("GetByName(z) = ID %d, want %d", got.ID, x.ID)
	}
	_, err = a.GetByName(ctx, "x")
	checkNotFound(t, err, "GetByName of the old name after a rename")
	if got := mustCreate(ctx, t, a, sample("x")); got.ID != 3 {
		t.Errorf("Create with a freed name got ID %d, want 3", got.ID)
	}

	// Renaming onto a taken name loses and changes nothing.
	in = y.Clone()
	in.Name = "z"
	_, err = a.Update(ctx, in)
	checkConflict(t, err, "rename y onto the taken name z")
	if diff := diffCluster(y, mustGet(ctx, t, b, y.ID)); diff != "" {
		t.Errorf("a failed rename changed the record: %s", diff)
	}
	if got := mustGetByName(ctx, t, b, "y"); got.ID != y.ID {
		t.Errorf("GetByName(y) = ID %d after a failed rename, want %d", got.ID, y.ID)
	}
	if got := mustGetByName(ctx, t, b, "z"); got.ID != x.ID {
		t.Errorf("GetByName(z) = ID %d after a failed rename onto it, want %d", got.ID, x.ID)
	}

	// A stale rename loses and does not take the new name.
	in = x.Clone() // version 1, the record is at 2
	in.Name = "w"
	_, err = a.Update(ctx, in)
	checkConflict(t, err, "stale rename")
	_, err = b.GetByName(ctx, "w")
	checkNotFound(t, err, "GetByName of the name a stale rename asked for")

	// Keeping the name is not a rename, and renaming back frees the newer name.
	same := mustGet(ctx, t, a, y.ID)
	same.Server = "https://same-name.example.test"
	if _, err := b.Update(ctx, same); err != nil {
		t.Fatalf("Update without a rename: %v", err)
	}
	back := renamed.Clone()
	back.Name = "x-again"
	if _, err := a.Update(ctx, back); err != nil {
		t.Fatalf("second rename: %v", err)
	}
	_, err = b.GetByName(ctx, "z")
	checkNotFound(t, err, "GetByName(z) after renaming away from it")
	if got := mustCreate(ctx, t, b, sample("z")); got.ID != 4 {
		t.Errorf("Create(z) got ID %d, want 4", got.ID)
	}
	checkIDs(ctx, t, a, []uint64{1, 2, 3, 4})
}

func testDelete(ctx context.Context, t *testing.T, a, b store.Store) {
	one := mustCreate(ctx, t, a, sample("del-1"))
	two := mustCreate(ctx, t, b, sample("del-2"))
	if err := b.Delete(ctx, one.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, s := range []store.Store{a, b} {
		_, err := s.Get(ctx, one.ID)
		checkNotFound(t, err, "Get after Delete")
		_, err = s.GetByName(ctx, "del-1")
		checkNotFound(t, err, "GetByName after Delete")
		checkNotFound(t, s.Delete(ctx, one.ID), "second Delete")
		in := one.Clone()
		_, err = s.Update(ctx, in)
		checkNotFound(t, err, "Update after Delete")
	}
	again := mustCreate(ctx, t, a, sample("del-1"))
	if again.ID != 3 {
		t.Errorf("Create with a deleted record's name got ID %d, want 3 (IDs are not reused)", again.ID)
	}
	checkIDs(ctx, t, b, []uint64{two.ID, again.ID})
	if got := mustGetByName(ctx, t, b, "del-1"); got.ID != again.ID {
		t.Errorf("GetByName(del-1) = ID %d, want %d", got.ID, again.ID)
	}
}

func testList(ctx context.Context, t *testing.T, a, b store.Store) {
	var created []*store.Cluster
	start := time.Now()
	for i := 1; i <= 12; i++ {
		s := a
		if i%2 == 0 {
			s = b
		}
		c := sample(fmt.Sprintf("list-%02d", 13-i)) // names sort opposite to IDs
		c.Labels["i"] = fmt.Sprint(i)
		created = append(created, mustCreate(ctx, t, s, c))
	}
	t.Logf("one create through %s took %v on average (12 in a row)", a.Name(), time.Since(start)/12)
	for _, id := range []uint64{3, 7} {
		if err := a.Delete(ctx, id); err != nil {
			t.Fatalf("Delete(%d): %v", id, err)
		}
	}
	var want []*store.Cluster
	for _, c := range created {
		if c.ID != 3 && c.ID != 7 {
			want = append(want, c)
		}
	}
	for _, s := range []store.Store{a, b} {
		got, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("List returned %d records, want %d", len(got), len(want))
		}
		for i := range want {
			if diff := diffCluster(want[i], got[i]); diff != "" {
				t.Errorf("List[%d]: %s", i, diff)
			}
		}
	}
}

func testNames(ctx context.Context, t *testing.T, a, b store.Store) {
	names := []string{
		"a/b", "a\\b", ".", "..", "__x__", "名前", "with space", "name#1", "cluster#1", "UPPER", "upper",
		"%2F", "emoji-🙂", strings.Repeat("n", 250),
	}
	ids := map[string]uint64{}
	for i, name := range names {
		s := a
		if i%2 == 1 {
			s = b
		}
		ids[name] = mustCreate(ctx, t, s, sample(name)).ID
	}
	for _, name := range names {
		got := mustGetByName(ctx, t, b, name)
		if got.ID != ids[name] || got.Name != name {
			t.Errorf("GetByName(%q) = ID %d name %q, want ID %d", name, got.ID, got.Name, ids[name])
		}
		_, err := a.Create(ctx, sample(name))
		checkConflict(t, err, fmt.Sprintf("duplicate Create(%q)", name))
	}
	for _, name := range []string{"A/B", "a", "_x_", "name", "UpPeR", "n"} {
		_, err := a.GetByName(ctx, name)
		checkNotFound(t, err, fmt.Sprintf("GetByName(%q)", name))
	}
	checkIDs(ctx, t, a, seq(len(names)))
}

func testTimestamps(ctx context.Context, t *testing.T, a, b store.Store) {
	// Millisecond precision must round-trip exactly; anything finer must at least keep the millisecond.
	ms := time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.FixedZone("PDT", -7*3600))
	ns := time.Date(2026, 5, 6, 7, 8, 9, 123_456_789, time.UTC)
	for i, in := range []time.Time{ms, ns} {
		c := sample(fmt.Sprintf("ts-%d", i))
		c.Prometheus.CheckedAt = &in
		created := mustCreate(ctx, t, a, c)
		got := mustGet(ctx, t, b, created.ID)
		checkUTC(t, got)
		at := got.Prometheus.CheckedAt
		if at == nil {
			t.Fatalf("CheckedAt %v came back nil", in)
		}
		if in.Nanosecond()%int(time.Millisecond) == 0 && !at.Equal(in) {
			t.Errorf("CheckedAt %v came back as %v", in, *at)
		}
		if d := at.Sub(in); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("CheckedAt %v came back as %v, more than a millisecond off", in, *at)
		}
		if !created.Prometheus.CheckedAt.Equal(*at) || !created.CreatedAt.Equal(got.CreatedAt) {
			t.Errorf("Create returned times %v/%v, Get %v/%v", *created.Prometheus.CheckedAt, created.CreatedAt, *at, got.CreatedAt)
		}
	}
}

func testConcurrentCreates(ctx context.Context, t *testing.T, a, b store.Store) {
	type result struct {
		c   *store.Cluster
		err error
	}
	results := make([]result, Parallelism)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range Parallelism {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			c, err := s.Create(ctx, sample(fmt.Sprintf("par-%03d", i)))
			results[i] = result{c, err}
		})
	}
	wg.Wait()
	t.Logf("%d concurrent creates through %s took %v", Parallelism, a.Name(), time.Since(start))

	seen := map[uint64]string{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Create(par-%03d): %v", i, r.err)
		}
		if other, dup := seen[r.c.ID]; dup {
			t.Fatalf("ID %d given to both %s and %s", r.c.ID, other, r.c.Name)
		}
		seen[r.c.ID] = r.c.Name
	}
	list := checkIDs(ctx, t, b, seq(Parallelism))
	for _, c := range list {
		if seen[c.ID] != c.Name {
			t.Errorf("record %d is named %q, Create returned %q", c.ID, c.Name, seen[c.ID])
		}
	}
}

func testConcurrentSameName(ctx context.Context, t *testing.T, a, b store.Store) {
	errs := make([]error, contention)
	var wg sync.WaitGroup
	for i := range contention {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			c := sample("same")
			c.Server = fmt.Sprintf("https://contender-%d.example.test", i)
			_, errs[i] = s.Create(ctx, c)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		checkConflict(t, err, "racing Create of a taken name")
	}
	if wins != 1 {
		t.Fatalf("%d of %d racing creates of one name won, want exactly 1", wins, contention)
	}
	if got := mustCreate(ctx, t, b, sample("other")); got.ID != 2 {
		t.Fatalf("Create after the race got ID %d, want 2 (losers must not burn IDs)", got.ID)
	}
	checkIDs(ctx, t, a, []uint64{1, 2})
}

func testConcurrentUpdates(ctx context.Context, t *testing.T, a, b store.Store) {
	created := mustCreate(ctx, t, a, sample("contended"))
	results := make([]*store.Cluster, contention)
	errs := make([]error, contention)
	var wg sync.WaitGroup
	for i := range contention {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			c := created.Clone()
			c.Server = fmt.Sprintf("https://writer-%d.example.test", i)
			results[i], errs[i] = s.Update(ctx, c)
		})
	}
	wg.Wait()
	var winner *store.Cluster
	for i, err := range errs {
		if err == nil {
			if winner != nil {
				t.Fatalf("two updates of version 1 won: %s and %s", winner.Server, results[i].Server)
			}
			winner = results[i]
			continue
		}
		checkConflict(t, err, "racing Update of one version")
	}
	if winner == nil {
		t.Fatal("no racing update won")
	}
	got := mustGet(ctx, t, b, created.ID)
	if got.Version != 2 || got.Server != winner.Server {
		t.Fatalf("after the race the record is version %d server %s, want 2 and %s", got.Version, got.Server, winner.Server)
	}
}

func testConcurrentRenames(ctx context.Context, t *testing.T, a, b store.Store) {
	var records []*store.Cluster
	for i := range contention {
		records = append(records, mustCreate(ctx, t, a, sample(fmt.Sprintf("from-%d", i))))
	}
	errs := make([]error, contention)
	var wg sync.WaitGroup
	for i, rec := range records {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			c := rec.Clone()
			c.Name = "target"
			_, errs[i] = s.Update(ctx, c)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("records %d and %d were both renamed to one name", records[winner].ID, records[i].ID)
			}
			winner = i
			continue
		}
		checkConflict(t, err, "racing rename onto one name")
	}
	if winner < 0 {
		t.Fatal("no racing rename won")
	}
	if got := mustGetByName(ctx, t, b, "target"); got.ID != records[winner].ID {
		t.Errorf("GetByName(target) = ID %d, want %d", got.ID, records[winner].ID)
	}
	for i, rec := range records {
		got, err := b.GetByName(ctx, rec.Name)
		if i == winner {
			checkNotFound(t, err, "GetByName of the winner's old name")
			continue
		}
		if err != nil || got.ID != rec.ID || got.Version != 1 {
			t.Errorf("loser %s: GetByName = %+v, %v; want ID %d version 1", rec.Name, got, err, rec.ID)
		}
	}
	list := checkIDs(ctx, t, a, seq(contention))
	for _, c := range list {
		if c.ID == records[winner].ID && c.Name != "target" {
			t.Errorf("winner is named %q", c.Name)
		}
	}
}

func mustCreate(ctx context.Context, t *testing.T, s store.Store, c *store.Cluster) *store.Cluster {
	t.Helper()
	got, err := s.Create(ctx, c)
	if err != nil {
		t.Fatalf("Create(%q): %v", c.Name, err)
	}
	return got
}

func mustGet(ctx context.Context, t *testing.T, s store.Store, id uint64) *store.Cluster {
	t.Helper()
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	return got
}

func mustGetByName(ctx context.Context, t *testing.T, s store.Store, name string) *store.Cluster {
	t.Helper()
	got, err := s.GetByName(ctx, name)
	if err != nil {
		t.Fatalf("GetByName(%q): %v", name, err)
	}
	return got
}

// checkIDs lists the store and fails unless it holds exactly these IDs, in this order, each readable by ID
// and by name (no orphan or missing name entries).
func checkIDs(ctx context.Context, t *testing.T, s store.Store, want []uint64) []*store.Cluster {
	t.Helper()
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := make([]uint64, len(list))
	for i, c := range list {
		got[i] = c.ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List returned IDs %v, want %v", got, want)
	}
	for _, c := range list {
		byName, err := s.GetByName(ctx, c.Name)
		if err != nil {
			t.Fatalf("GetByName(%q) of a listed record: %v", c.Name, err)
		}
		if diff := diffCluster(c, byName); diff != "" {
			t.Fatalf("GetByName(%q) differs from List: %s", c.Name, diff)
		}
	}
	return list
}

func checkNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: got error %v, want store.ErrNotFound", what, err)
	}
}

func checkConflict(t *testing.T, err error, what string) {
	t.Helper()
	if _, ok := errors.AsType[*store.ConflictError](err); !ok || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("%s: got error %v, want a *store.ConflictError", what, err)
	}
}

func checkUTC(t *testing.T, c *store.Cluster) {
	t.Helper()
	if c.CreatedAt.Location() != time.UTC || c.UpdatedAt.Location() != time.UTC {
		t.Errorf("timestamps %v / %v are not in UTC", c.CreatedAt, c.UpdatedAt)
	}
	if c.Prometheus.CheckedAt != nil && c.Prometheus.CheckedAt.Location() != time.UTC {
		t.Errorf("CheckedAt %v is not in UTC", *c.Prometheus.CheckedAt)
	}
	if c.CreatedAt.IsZero() || c.UpdatedAt.IsZero() {
		t.Errorf("timestamps are not set: %v / %v", c.CreatedAt, c.UpdatedAt)
	}
}

// diffCluster describes how got differs from want, or returns "". Empty and nil labels or kubeconfigs are
// the same: not every backend can tell them apart.
func diffCluster(want, got *store.Cluster) string {
	if want == nil || got == nil {
		if want == got {
			return ""
		}
		return fmt.Sprintf("want %v, got %v", want, got)
	}
	var d []string
	add := func(field string, w, g any) { d = append(d, fmt.Sprintf("%s: want %v, got %v", field, w, g)) }
	if want.ID != got.ID {
		add("ID", want.ID, got.ID)
	}
	if want.Name != got.Name {
		add("Name", want.Name, got.Name)
	}
	if want.Server != got.Server {
		add("Server", want.Server, got.Server)
	}
	if !bytes.Equal(want.Kubeconfig, got.Kubeconfig) {
		add("Kubeconfig", want.Kubeconfig, got.Kubeconfig)
	}
	if !maps.Equal(want.Labels, got.Labels) {
		add("Labels", want.Labels, got.Labels)
	}
	if want.Impersonate != got.Impersonate {
		add("Impersonate", want.Impersonate, got.Impersonate)
	}
	wp, gp := want.Prometheus, got.Prometheus
	if wp.URL != gp.URL || wp.Status != gp.Status || wp.Message != gp.Message {
		add("Prometheus", wp, gp)
	}
	switch {
	case (wp.CheckedAt == nil) != (gp.CheckedAt == nil):
		add("Prometheus.CheckedAt", wp.CheckedAt, gp.CheckedAt)
	case wp.CheckedAt != nil && !wp.CheckedAt.Equal(*gp.CheckedAt):
		add("Prometheus.CheckedAt", *wp.CheckedAt, *gp.CheckedAt)
	}
	if !want.CreatedAt.Equal(got.CreatedAt) {
		add("CreatedAt", want.CreatedAt, got.CreatedAt)
	}
	if !want.UpdatedAt.Equal(got.UpdatedAt) {
		add("UpdatedAt", want.UpdatedAt, got.UpdatedAt)
	}
	if want.Version != got.Version {
		add("Version", want.Version, got.Version)
	}
	return strings.Join(d, "; ")
}

func seq(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// Unreachable checks that every operation on s, whose server cannot be reached, fails with a
// *store.UnavailableError naming backend (the API's 503) once its context ends after perCall.
func Unreachable(t *testing.T, s store.Store, backend string, perCall time.Duration) {
	t.Helper()
	ops := map[string]func(ctx context.Context) error{
		"Create":    func(ctx context.Context) error { _, err := s.Create(ctx, &store.Cluster{Name: "x"}); return err },
		"Get":       func(ctx context.Context) error { _, err := s.Get(ctx, 1); return err },
		"GetByName": func(ctx context.Context) error { _, err := s.GetByName(ctx, "x"); return err },
		"List":      func(ctx context.Context) error { _, err := s.List(ctx); return err },
		"Update": func(ctx context.Context) error {
			_, err := s.Update(ctx, &store.Cluster{ID: 1, Name: "x", Version: 1})
			return err
		},
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, 1) },
	}
	for name, op := range ops {
		ctx, cancel := context.WithTimeout(t.Context(), perCall)
		err := op(ctx)
		cancel()
		var unavailable *store.UnavailableError
		if !errors.As(err, &unavailable) || unavailable.Backend != backend {
			t.Errorf("%s against an unreachable server: %v, want a *store.UnavailableError for %s", name, err, backend)
		}
	}
}

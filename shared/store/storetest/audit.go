package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/store"
)

// auditTests are the store.Audit part of the suite.
var auditTests = []struct {
	name string
	fn   func(ctx context.Context, t *testing.T, a, b store.Store)
}{
	{"AuditAppendAndList", testAuditAppendAndList},
	{"AuditFilters", testAuditFilters},
	{"AuditPaging", testAuditPaging},
	{"AuditConcurrentAppends", testAuditConcurrentAppends},
}

// auditBase is a recent time: the entries' times are set, so ordering and ranges are exact.
var auditBase = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func appendAll(ctx context.Context, t *testing.T, s store.Store, entries []*store.AuditEntry) {
	t.Helper()
	for _, e := range entries {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit(%+v): %v", e, err)
		}
	}
}

func listAll(ctx context.Context, t *testing.T, s store.Store, f store.AuditFilter) []*store.AuditEntry {
	t.Helper()
	var out []*store.AuditEntry
	for pages := 0; ; pages++ {
		page, next, err := s.ListAudit(ctx, f)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", f, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if pages > 10_000 {
			t.Fatal("ListAudit never ends")
		}
		f.Continue = next
	}
}

func requestIDs(entries []*store.AuditEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.RequestID)
	}
	return out
}

func testAuditAppendAndList(ctx context.Context, t *testing.T, a, b store.Store) {
	now := time.Now()
	e := &store.AuditEntry{Who: "token:ci", Cluster: "prod-1", Verb: "apply", Resource: "deployments",
		Namespace: "team-a", Name: "web", Outcome: 200, RequestID: "req-now", Detail: "1 changed: spec.replicas"}
	if err := a.AppendAudit(ctx, e); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if e.ID == "" {
		t.Error("AppendAudit set no ID")
	}
	if e.Time.Sub(now).Abs() > time.Second || e.Time.Location() != time.UTC {
		t.Errorf("AppendAudit set Time %v, want about now in UTC", e.Time)
	}
	// Older entries appended after it, out of time order, and one in the same microsecond as another.
	older := []*store.AuditEntry{
		{Time: auditBase.Add(2 * time.Second), Who: "oidc:bob", Verb: "delete", Outcome: 204, RequestID: "req-2"},
		{Time: auditBase, Who: "oidc:bob", Verb: "create", Outcome: 201, RequestID: "req-0"},
		{Time: auditBase.Add(time.Second), Who: "bootstrap", Verb: "update", Outcome: 409, RequestID: "req-1a"},
		{Time: auditBase.Add(time.Second), Who: "bootstrap", Verb: "update", Outcome: 200, RequestID: "req-1b"},
	}
	appendAll(ctx, t, b, older)
	for _, s := range []store.Store{a, b} {
		got := listAll(ctx, t, s, store.AuditFilter{})
		ids := requestIDs(got)
		if len(got) != 5 || ids[0] != "req-now" || ids[1] != "req-2" || ids[4] != "req-0" ||
			!slices.Contains(ids[2:4], "req-1a") || !slices.Contains(ids[2:4], "req-1b") {
			t.Fatalf("ListAudit = %v, want newest first: req-now, req-2, req-1a/b, req-0", ids)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].ID <= got[i].ID {
				t.Errorf("IDs not descending: %q then %q", got[i-1].ID, got[i].ID)
			}
		}
		if *got[0] != *e {
			t.Errorf("read back %+v, want %+v", *got[0], *e)
		}
		if got[1].Time != auditBase.Add(2*time.Second) || got[1].Outcome != 204 || got[1].Who != "oidc:bob" {
			t.Errorf("read back %+v", *got[1])
		}
	}
}

func testAuditFilters(ctx context.Context, t *testing.T, a, b store.Store) {
	var entries []*store.AuditEntry
	for i := range 30 {
		entries = append(entries, &store.AuditEntry{Time: auditBase.Add(time.Duration(i) * time.Minute),
			Who: []string{"token:ci", "oidc:alice", "bootstrap"}[i%3], Cluster: []string{"prod", "dev"}[i%2],
			Verb: []string{"create", "delete", "apply", "exec", "update"}[i%5], Outcome: 200,
			RequestID: fmt.Sprintf("r%02d", i)})
	}
	appendAll(ctx, t, a, entries)
	want := func(keep func(i int) bool) []string {
		out := []string{}
		for i := len(entries) - 1; i >= 0; i-- {
			if keep(i) {
				out = append(out, entries[i].RequestID)
			}
		}
		return out
	}
	at := func(i int) time.Time { return auditBase.Add(time.Duration(i) * time.Minute) }
	cases := []struct {
		name string
		f    store.AuditFilter
		keep func(i int) bool
	}{
		{"who", store.AuditFilter{Who: "oidc:alice"}, func(i int) bool { return i%3 == 1 }},
		{"cluster", store.AuditFilter{Cluster: "dev"}, func(i int) bool { return i%2 == 1 }},
		{"verb", store.AuditFilter{Verb: "exec"}, func(i int) bool { return i%5 == 3 }},
		{"who and cluster", store.AuditFilter{Who: "token:ci", Cluster: "prod"},
			func(i int) bool { return i%3 == 0 && i%2 == 0 }},
		{"since (inclusive)", store.AuditFilter{Since: at(25)}, func(i int) bool { return i >= 25 }},
		{"until (exclusive)", store.AuditFilter{Until: at(3)}, func(i int) bool { return i < 3 }},
		{"since and until", store.AuditFilter{Since: at(10), Until: at(20), Verb: "create"},
			func(i int) bool { return i >= 10 && i < 20 && i%5 == 0 }},
		{"since between entries", store.AuditFilter{Since: at(28).Add(-time.Nanosecond)},
			func(i int) bool { return i >= 28 }},
		{"until after since", store.AuditFilter{Since: at(20), Until: at(10)}, func(int) bool { return false }},
		{"nobody", store.AuditFilter{Who: "oidc:nobody"}, func(int) bool { return false }},
		{"filtered pages", store.AuditFilter{Verb: "delete", Limit: 2}, func(i int) bool { return i%5 == 1 }},
	}
	for _, tc := range cases {
		got := requestIDs(listAll(ctx, t, b, tc.f))
		if w := want(tc.keep); !slices.Equal(got, w) {
			t.Errorf("%s: ListAudit(%+v) = %v, want %v", tc.name, tc.f, got, w)
		}
	}
}

func testAuditPaging(ctx context.Context, t *testing.T, a, b store.Store) {
	const n = 25
	var entries []*store.AuditEntry
	for i := range n {
		entries = append(entries, &store.AuditEntry{Time: auditBase.Add(time.Duration(i) * time.Second),
			Who: "token:ci", Verb: "apply", Outcome: 200, RequestID: fmt.Sprintf("r%02d", i)})
	}
	appendAll(ctx, t, a, entries)

	page, next, err := b.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(page) != n || next != "" {
		t.Fatalf("default limit: %d entries, continue %q, %v; want all %d and no continue", len(page), next, err, n)
	}
	var got []string
	f := store.AuditFilter{Limit: 10}
	for pages := 1; ; pages++ {
		page, next, err := b.ListAudit(ctx, f)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(page) > 10 {
			t.Fatalf("page %d holds %d entries, limit 10", pages, len(page))
		}
		got = append(got, requestIDs(page)...)
		if next == "" {
			if pages != 3 {
				t.Errorf("%d pages of 10 for %d entries, want 3", pages, n)
			}
			break
		}
		// Entries appended after the first page are newer: they must not show up on later pages.
		if pages == 1 {
			appendAll(ctx, t, a, []*store.AuditEntry{{Who: "late", Verb: "apply", RequestID: "late"}})
		}
		f.Continue = next
	}
	want := []string{}
	for i := n - 1; i >= 0; i-- {
		want = append(want, entries[i].RequestID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
	// An exact multiple of the limit ends without an empty page.
	page, next, err = b.ListAudit(ctx, store.AuditFilter{Who: "token:ci", Limit: 25})
	if err != nil || len(page) != 25 || next != "" {
		t.Errorf("limit = count: %d entries, continue %q, %v; want 25 and no continue", len(page), next, err)
	}
	if _, _, err := b.ListAudit(ctx, store.AuditFilter{Continue: "not a token"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a malformed continue token: %v, want ErrInvalid", err)
	}
}

// testAuditConcurrentAppends appends from many goroutines over both stores, many in the same microsecond:
// every entry must be kept, each with its own ID.
func testAuditConcurrentAppends(ctx context.Context, t *testing.T, a, b store.Store) {
	var wg sync.WaitGroup
	errs := make([]error, Parallelism)
	for i := range Parallelism {
		s := []store.Store{a, b}[i%2]
		wg.Go(func() {
			e := &store.AuditEntry{Who: "token:ci", Verb: "apply", RequestID: fmt.Sprintf("c%03d", i)}
			if i%4 == 0 {
				e.Time = auditBase // a quarter in one microsecond
			}
			errs[i] = s.AppendAudit(ctx, e)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent appends: %v", err)
	}
	got := listAll(ctx, t, a, store.AuditFilter{Limit: 30})
	seen := map[string]bool{}
	ids := map[string]bool{}
	for _, e := range got {
		seen[e.RequestID] = true
		ids[e.ID] = true
	}
	if len(got) != Parallelism || len(seen) != Parallelism || len(ids) != Parallelism {
		t.Errorf("listed %d entries, %d distinct requests, %d distinct IDs; want %d of each",
			len(got), len(seen), len(ids), Parallelism)
	}
}

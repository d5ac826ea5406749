package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/store"
)

// tokenTests are the store.Tokens part of the suite.
var tokenTests = []struct {
	name string
	fn   func(ctx context.Context, t *testing.T, a, b store.Store)
}{
	{"TokenCreateAndLookup", testTokenCreateAndLookup},
	{"TokenDuplicateName", testTokenDuplicateName},
	{"TokenDelete", testTokenDelete},
	{"TokenUnknownHash", testTokenUnknownHash},
	{"TokenConcurrentSameName", testTokenConcurrentSameName},
}

func tokenHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// sampleToken is a token with every field set.
func sampleToken(name string) *store.Token {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 678_912_345, time.FixedZone("CET", 3600))
	return &store.Token{Name: name, Hash: tokenHash("secret-of-" + name), Roles: []string{"operator"},
		Clusters: []string{"prod-*", "!prod-eu"}, Namespaces: []string{"team-a"}, CreatedBy: "oidc:alice",
		ExpiresAt: &exp}
}

func diffToken(want, got *store.Token) string {
	switch {
	case want.Name != got.Name:
		return fmt.Sprintf("name %q, want %q", got.Name, want.Name)
	case !bytes.Equal(want.Hash, got.Hash):
		return fmt.Sprintf("hash %x, want %x", got.Hash, want.Hash)
	case !slices.Equal(want.Roles, got.Roles):
		return fmt.Sprintf("roles %q, want %q", got.Roles, want.Roles)
	case !slices.Equal(want.Clusters, got.Clusters):
		return fmt.Sprintf("clusters %q, want %q", got.Clusters, want.Clusters)
	case !slices.Equal(want.Namespaces, got.Namespaces):
		return fmt.Sprintf("namespaces %q, want %q", got.Namespaces, want.Namespaces)
	case want.CreatedBy != got.CreatedBy:
		return fmt.Sprintf("createdBy %q, want %q", got.CreatedBy, want.CreatedBy)
	case !want.CreatedAt.Equal(got.CreatedAt) || got.CreatedAt.Location() != time.UTC:
		return fmt.Sprintf("createdAt %v, want %v in UTC", got.CreatedAt, want.CreatedAt)
	case (want.ExpiresAt == nil) != (got.ExpiresAt == nil):
		return fmt.Sprintf("expiresAt %v, want %v", got.ExpiresAt, want.ExpiresAt)
	case want.ExpiresAt != nil && (!want.ExpiresAt.Equal(*got.ExpiresAt) || got.ExpiresAt.Location() != time.UTC):
		return fmt.Sprintf("expiresAt %v, want %v in UTC", *got.ExpiresAt, *want.ExpiresAt)
	}
	return ""
}

func testTokenCreateAndLookup(ctx context.Context, t *testing.T, a, b store.Store) {
	start := time.Now()
	ci, err := a.CreateToken(ctx, sampleToken("ci"))
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if ci.CreatedAt.Before(start.Add(-time.Millisecond)) || ci.CreatedAt.After(time.Now().Add(time.Millisecond)) {
		t.Errorf("CreatedAt %v is not the time of the create", ci.CreatedAt)
	}
	want := sampleToken("ci")
	want.CreatedAt = ci.CreatedAt
	exp := want.ExpiresAt.UTC().Truncate(time.Microsecond)
	want.ExpiresAt = &exp
	if diff := diffToken(want, ci); diff != "" {
		t.Errorf("CreateToken returned %s", diff)
	}
	// A second token without expiry or scopes: the lookup must never answer one token for the other's hash.
	plain := &store.Token{Name: "viewer", Hash: tokenHash("secret-of-viewer"), Roles: []string{"viewer"}}
	pv, err := a.CreateToken(ctx, plain)
	if err != nil {
		t.Fatalf("CreateToken(viewer): %v", err)
	}
	for _, s := range []store.Store{a, b} {
		got, err := s.TokenByHash(ctx, tokenHash("secret-of-ci"))
		if err != nil {
			t.Fatalf("TokenByHash(ci): %v", err)
		}
		if diff := diffToken(ci, got); diff != "" {
			t.Errorf("TokenByHash(ci) read back %s", diff)
		}
		got, err = s.TokenByHash(ctx, tokenHash("secret-of-viewer"))
		if err != nil {
			t.Fatalf("TokenByHash(viewer): %v", err)
		}
		if diff := diffToken(pv, got); diff != "" {
			t.Errorf("TokenByHash(viewer) read back %s", diff)
		}
		if got.ExpiresAt != nil {
			t.Errorf("a token created without expiry reads back expiring at %v", got.ExpiresAt)
		}
		list, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatalf("ListTokens: %v", err)
		}
		if len(list) != 2 || list[0].Name != "ci" || list[1].Name != "viewer" {
			t.Fatalf("ListTokens = %v, want ci and viewer by name", tokenNames(list))
		}
		if diff := diffToken(ci, list[0]); diff != "" {
			t.Errorf("ListTokens[0] %s", diff)
		}
	}
}

func tokenNames(ts []*store.Token) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func testTokenDuplicateName(ctx context.Context, t *testing.T, a, b store.Store) {
	if _, err := a.CreateToken(ctx, sampleToken("dup")); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	again := sampleToken("dup")
	again.Hash = tokenHash("another secret")
	_, err := b.CreateToken(ctx, again)
	var conflict *store.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("second CreateToken(dup): %v, want a *store.ConflictError", err)
	}
	// Nothing of the refused token was written: its hash finds nothing.
	if _, err := a.TokenByHash(ctx, again.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash of the refused token: %v, want ErrNotFound", err)
	}
	if list, err := a.ListTokens(ctx); err != nil || len(list) != 1 {
		t.Errorf("ListTokens after the refused create = %v, %v; want the one token", tokenNames(list), err)
	}
}

func testTokenDelete(ctx context.Context, t *testing.T, a, b store.Store) {
	for _, n := range []string{"keep", "drop"} {
		if _, err := a.CreateToken(ctx, sampleToken(n)); err != nil {
			t.Fatalf("CreateToken(%s): %v", n, err)
		}
	}
	if err := b.DeleteToken(ctx, "drop"); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if _, err := a.TokenByHash(ctx, tokenHash("secret-of-drop")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash after delete: %v, want ErrNotFound", err)
	}
	if err := a.DeleteToken(ctx, "drop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteToken: %v, want ErrNotFound", err)
	}
	if got, err := a.TokenByHash(ctx, tokenHash("secret-of-keep")); err != nil || got.Name != "keep" {
		t.Errorf("TokenByHash(keep) after deleting another = %v, %v", got, err)
	}
	list, err := a.ListTokens(ctx)
	if err != nil || !slices.Equal(tokenNames(list), []string{"keep"}) {
		t.Errorf("ListTokens after delete = %v, %v; want [keep]", tokenNames(list), err)
	}
	// The name is free again, with a new secret.
	reborn := sampleToken("drop")
	reborn.Hash = tokenHash("new secret")
	if _, err := a.CreateToken(ctx, reborn); err != nil {
		t.Fatalf("CreateToken of a deleted name: %v", err)
	}
	if _, err := a.TokenByHash(ctx, tokenHash("secret-of-drop")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old secret of a re-created name: %v, want ErrNotFound", err)
	}
}

func testTokenUnknownHash(ctx context.Context, t *testing.T, a, _ store.Store) {
	if _, err := a.TokenByHash(ctx, tokenHash("never issued")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash on an empty store: %v, want ErrNotFound", err)
	}
	if _, err := a.CreateToken(ctx, sampleToken("one")); err != nil {
		t.Fatal(err)
	}
	for _, h := range [][]byte{tokenHash("never issued"), nil, tokenHash("secret-of-one")[:16]} {
		if _, err := a.TokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenByHash(%x): %v, want ErrNotFound", h, err)
		}
	}
	if err := a.DeleteToken(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteToken(missing): %v, want ErrNotFound", err)
	}
	if _, err := a.CreateToken(ctx, &store.Token{Name: "nohash"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateToken without a hash: %v, want ErrInvalid", err)
	}
}

// testTokenConcurrentSameName races creates of one name (each with its own secret) over both stores: exactly
// one wins, and only its secret finds a token.
func testTokenConcurrentSameName(ctx context.Context, t *testing.T, a, b store.Store) {
	var wg sync.WaitGroup
	errs := make([]error, contention)
	for i := range contention {
		s := []store.Store{a, b}[i%2]
		wg.Go(func() {
			tok := sampleToken("race")
			tok.Hash = tokenHash(fmt.Sprintf("race-%d", i))
			_, errs[i] = s.CreateToken(ctx, tok)
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("creates %d and %d of one name both succeeded", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("create %d: %v, want a conflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no create of the raced name succeeded")
	}
	for i := range contention {
		_, err := a.TokenByHash(ctx, tokenHash(fmt.Sprintf("race-%d", i)))
		if i == won && err != nil {
			t.Errorf("the winner's secret: %v", err)
		}
		if i != won && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("loser %d's secret: %v, want ErrNotFound (a half-written token)", i, err)
		}
	}
}

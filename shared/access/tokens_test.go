package access_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/bolt"
)

func openStore(t *testing.T) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(t.Context(), filepath.Join(t.TempDir(), "kitefn.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func issue(t *testing.T, s store.Tokens, name string, expires *time.Time) string {
	t.Helper()
	secret, hash, err := access.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "kfn_") || len(secret) != 4+43 {
		t.Fatalf("secret %q is not kfn_ and 43 base64url characters", secret)
	}
	_, err = s.CreateToken(t.Context(), &store.Token{Name: name, Hash: hash, Roles: []string{"operator", "bogus"},
		Clusters: []string{"prod-*"}, Namespaces: []string{"team-a"}, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestTokenAuthenticator(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	auth := access.NewTokenAuthenticator(s, time.Hour) // a long TTL: only Forget can end a cached token
	secret := issue(t, s, "ci", nil)

	c, err := auth.Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if c.Name != "ci" || c.Kind != access.KindToken || len(c.Roles) != 1 || c.Roles[0] != access.Operator ||
		c.Clusters[0] != "prod-*" || c.Namespaces[0] != "team-a" {
		t.Errorf("caller = %+v, want ci, token, [operator] (the unknown role dropped), prod-*, team-a", c)
	}
	if access.Who(c) != "token:ci" {
		t.Errorf("Who = %q, want token:ci", access.Who(c))
	}
	for _, cred := range []string{"some-bootstrap-token", "", "eyJhbGciOi.jwt.sig"} {
		if c, err := auth.Authenticate(ctx, cred); c != nil || err != nil {
			t.Errorf("Authenticate(%q) = %v, %v; want nil, nil (not this authenticator's)", cred, c, err)
		}
	}
	if _, err := auth.Authenticate(ctx, "kfn_made-up"); !errors.Is(err, access.ErrTokenRefused) {
		t.Errorf("an unknown kfn_ token: %v, want ErrTokenRefused", err)
	}

	// Revoked: the cache still holds it until Forget.
	if err := s.DeleteToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, secret); err != nil {
		t.Fatalf("cached token before Forget: %v", err)
	}
	auth.Forget("ci")
	if _, err := auth.Authenticate(ctx, secret); !errors.Is(err, access.ErrTokenRefused) {
		t.Errorf("revoked token after Forget: %v, want ErrTokenRefused", err)
	}

	past := time.Now().Add(-time.Minute)
	expired := issue(t, s, "old", &past)
	if _, err := auth.Authenticate(ctx, expired); !errors.Is(err, access.ErrTokenRefused) {
		t.Errorf("expired token: %v, want ErrTokenRefused", err)
	}
}

// failing is an audit log that cannot be written: the recorder must count and carry on within its timeout.
type failing struct{}

func (failing) AppendAudit(ctx context.Context, _ *store.AuditEntry) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestRecorder(t *testing.T) {
	s := openStore(t)
	rec := access.NewRecorder(s, time.Second)
	ctx := access.WithCaller(t.Context(), &access.Caller{Name: "alice", Kind: access.KindOIDC})
	cancelled, cancel := context.WithCancel(ctx)
	cancel() // the client went away after the action: it is still recorded
	rec.Record(cancelled, store.AuditEntry{Verb: "delete", Resource: "tokens", Name: "ci", Outcome: 204})
	got, _, err := s.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil || len(got) != 1 || got[0].Who != "oidc:alice" || got[0].Verb != "delete" || got[0].Outcome != 204 {
		t.Fatalf("recorded %+v, %v; want one delete by oidc:alice", got, err)
	}

	slow := access.NewRecorder(failing{}, 100*time.Millisecond)
	start := time.Now()
	slow.Record(ctx, store.AuditEntry{Verb: "create"})
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("a hung audit log held the request for %v", waited)
	}
	if slow.Failures() != 1 || rec.Failures() != 0 {
		t.Errorf("failures = %d and %d, want 1 and 0", slow.Failures(), rec.Failures())
	}
}

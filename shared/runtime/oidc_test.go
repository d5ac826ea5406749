package runtime

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap/zaptest"

	"github.com/kitefn/kitefn/shared/access"
)

// issuer is a test OIDC provider: discovery, a JWKS it can rotate, and a switch to be down.
type issuer struct {
	t    *testing.T
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	kid  string
	key  *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t}
	is.rotate("key-1")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "authorization_endpoint": is.srv.URL + "/auth",
			"token_endpoint": is.srv.URL + "/token"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig"}}}
		is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rotate replaces the issuer's only key.
func (is *issuer) rotate(kid string) {
	k := rsaKey(is.t)
	is.mu.Lock()
	is.kid, is.key = kid, k
	is.mu.Unlock()
}

// sign signs claims with key under kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token is an ID token of the issuer's current key with claims over the valid defaults.
func (is *issuer) token(over map[string]any) string {
	now := time.Now()
	c := map[string]any{"iss": is.srv.URL, "aud": "kitefn", "sub": "u-123", "email": "ada@example.com",
		"groups": []string{"devs", "others"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range over {
		c[k] = v
	}
	is.mu.Lock()
	key, kid := is.key, is.kid
	is.mu.Unlock()
	return sign(is.t, key, kid, c)
}

func oidcServer(t *testing.T, cfg access.OIDCConfig) http.Handler {
	t.Helper()
	o, err := access.NewOIDC(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{Target: "all", ShutdownTimeout: time.Second}, zaptest.NewLogger(t).Sugar(),
		[]Function{{Name: "fn", Value: newFn()}}, []string{token},
		WithAccess(AccessConfig{Authenticators: []access.Authenticator{o}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func TestOIDCTokens(t *testing.T) {
	is := newIssuer(t)
	h := oidcServer(t, access.OIDCConfig{Issuer: is.srv.URL, Audience: "kitefn", UsernameClaim: "email",
		GroupsClaim: "groups", GroupRoles: "platform-admins=admin,devs=operator", DiscoveryRetry: time.Second})

	code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+is.token(nil))
	if code != 200 {
		t.Fatalf("valid ID token: %d %s", code, body)
	}
	var me map[string]any
	if err := json.Unmarshal([]byte(body), &me); err != nil {
		t.Fatal(err)
	}
	if me["name"] != "ada@example.com" || me["kind"] != "oidc" || !strings.Contains(body, `"roles":["operator"]`) ||
		!strings.Contains(body, `"groups":["devs","others"]`) || !strings.Contains(body, `"clusters":[]`) {
		t.Fatalf("/me of the ID token: %s", body)
	}

	other := rsaKey(t)
	now := time.Now()
	for _, c := range []struct {
		name, token, want string
	}{
		{"expired", is.token(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), "expired"},
		{"not yet valid", is.token(map[string]any{"nbf": now.Add(time.Hour).Unix()}), "not yet valid"},
		{"wrong audience", is.token(map[string]any{"aud": "someone-else"}), "wrong audience"},
		{"wrong issuer", is.token(map[string]any{"iss": "https://evil.example.com"}), "wrong issuer"},
		{"wrong signature", sign(t, other, "key-1", map[string]any{"iss": is.srv.URL, "aud": "kitefn",
			"sub": "x", "email": "x@example.com", "exp": now.Add(time.Hour).Unix()}), "bad signature"},
		{"unknown kid", sign(t, other, "key-404", map[string]any{"iss": is.srv.URL, "aud": "kitefn",
			"sub": "x", "email": "x@example.com", "exp": now.Add(time.Hour).Unix()}), "bad signature"},
		{"no username claim", is.token(map[string]any{"email": nil}), "KITEFN_OIDC_USERNAME_CLAIM"},
		{"not a JWT", "some-unknown-token-value", "unknown token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+c.token)
			if code != 401 || !strings.Contains(body, `"code":"unauthorized"`) || !strings.Contains(body, c.want) {
				t.Fatalf("%d %s, want 401 saying %q", code, body, c.want)
			}
			if strings.Contains(body, c.token) {
				t.Fatalf("the answer echoes the credential: %s", body)
			}
		})
	}

	// Rotation: the issuer switches keys; a token of the new key works (its kid makes the key set refetch),
	// one of the old key no longer does.
	old := is.token(nil)
	is.rotate("key-2")
	if code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+is.token(nil)); code != 200 {
		t.Fatalf("token of the rotated key: %d %s", code, body)
	}
	// go-oidc hands the refetched keys to waiting requests a moment before it replaces its cache, so the
	// retired key may verify once or twice more; it must stop doing so within the deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+old)
		if code == 401 && strings.Contains(body, "bad signature") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of the retired key still answered %d %s after 5s", code, body)
		}
		<-time.After(5 * time.Millisecond) // poll interval, bounded by the deadline above
	}

	// A caller with no role mapped is authenticated, then refused everything but nothing is served.
	tok := is.token(map[string]any{"groups": []string{"nobody"}})
	if code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+tok); code != 403 ||
		!strings.Contains(body, "needs the viewer role") || !strings.Contains(body, "has no role") {
		t.Fatalf("no role: %d %s", code, body)
	}
}

func TestOIDCIssuerDownAtStart(t *testing.T) {
	is := newIssuer(t)
	is.down.Store(true)
	h := oidcServer(t, access.OIDCConfig{Issuer: is.srv.URL, Audience: "kitefn", UsernameClaim: "sub",
		GroupsClaim: "groups", DefaultRole: "viewer"})
	tok := is.token(nil)
	code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+tok)
	if code != 503 || !strings.Contains(body, `"code":"auth_unavailable"`) || !strings.Contains(body, "discovery") {
		t.Fatalf("issuer down: %d %s, want 503 auth_unavailable", code, body)
	}
	// The bootstrap token does not depend on the issuer.
	if code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+token); code != 200 ||
		!strings.Contains(body, `"kind":"bootstrap"`) || !strings.Contains(body, `"roles":["admin"]`) {
		t.Fatalf("bootstrap while the issuer is down: %d %s", code, body)
	}
	is.down.Store(false)
	if code, body := status(t, h, "GET", "/api/v1/me", "Authorization", "Bearer "+tok); code != 200 ||
		!strings.Contains(body, `"name":"u-123"`) || !strings.Contains(body, `"roles":["viewer"]`) {
		t.Fatalf("issuer back: %d %s", code, body)
	}
}

func TestOIDCConfig(t *testing.T) {
	for _, c := range []access.OIDCConfig{
		{Issuer: "https://i", UsernameClaim: "sub", GroupsClaim: "groups"},                                    // no audience
		{Issuer: "https://i", Audience: "a", UsernameClaim: "sub", GroupsClaim: "groups", GroupRoles: "devs"}, // no role
		{Issuer: "https://i", Audience: "a", UsernameClaim: "sub", GroupsClaim: "groups", GroupRoles: "devs=root"},
		{Issuer: "https://i", Audience: "a", UsernameClaim: "sub", GroupsClaim: "groups", DefaultRole: "god"},
	} {
		if _, err := access.NewOIDC(c, nil); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

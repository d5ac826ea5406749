package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/kitefn/kitefn/shared/store"
)

// TokenPrefix starts every named API token's secret, so the authenticator knows its own and leak scanners can
// spot one ("kfn_" and 43 base64url characters: 32 random bytes).
const TokenPrefix = "kfn_"

// NewTokenSecret returns a fresh secret and the hash the store keeps of it.
func NewTokenSecret() (secret string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("token secret: %w", err)
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret), nil
}

// HashToken is what the store keeps of a secret: its SHA-256. The secrets are 256 random bits, so a plain hash
// (no salt, no stretching) cannot be reversed, and a lookup by hash stays one read.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// ErrTokenRefused is what the TokenAuthenticator answers for a kfn_ credential that names no live token
// (unknown, revoked or expired): a 401.
var ErrTokenRefused error = &refused{}

type refused struct{}

func (*refused) Error() string         { return "the API token is unknown, revoked or expired" }
func (*refused) HTTPStatus() int       { return 401 }
func (*refused) Code() string          { return "unauthorized" }
func (*refused) PublicMessage() string { return "the API token is unknown, revoked or expired" }

// TokenLookup is the part of the store the authenticator reads.
type TokenLookup interface {
	TokenByHash(ctx context.Context, hash []byte) (*store.Token, error)
}

// Defaults for TokenAuthenticator.
const (
	DefaultTokenCacheTTL  = 10 * time.Second
	DefaultTokenCacheSize = 4096
)

// TokenAuthenticator authenticates named API tokens against the store. Lookups are cached for TTL (found and
// not found alike, so a flood of made-up tokens does not reach the store), which is how long a revocation takes
// to reach the other replicas; Forget makes it immediate on this one.
type TokenAuthenticator struct {
	tokens TokenLookup
	ttl    time.Duration
	cache  *cache.LRUExpireCache // string(hash) → *store.Token, or nil for not found
	// gen is bumped by Forget: a lookup that started before does not cache what it read, which may be the
	// token just deleted. mu orders a lookup's check-and-add against Forget's bump-and-scan.
	mu  sync.Mutex
	gen uint64
	now func() time.Time
}

var _ Authenticator = (*TokenAuthenticator)(nil)

// NewTokenAuthenticator builds the authenticator; ttl <= 0 means DefaultTokenCacheTTL.
func NewTokenAuthenticator(tokens TokenLookup, ttl time.Duration) *TokenAuthenticator {
	if ttl <= 0 {
		ttl = DefaultTokenCacheTTL
	}
	return &TokenAuthenticator{tokens: tokens, ttl: ttl, cache: cache.NewLRUExpireCache(DefaultTokenCacheSize),
		now: time.Now}
}

// Authenticate implements Authenticator: credentials without TokenPrefix are not this authenticator's.
func (a *TokenAuthenticator) Authenticate(ctx context.Context, credential string) (*Caller, error) {
	if !strings.HasPrefix(credential, TokenPrefix) {
		return nil, nil
	}
	hash := HashToken(credential)
	key := string(hash)
	var tok *store.Token
	if v, ok := a.cache.Get(key); ok {
		tok, _ = v.(*store.Token)
	} else {
		a.mu.Lock()
		gen := a.gen
		a.mu.Unlock()
		t, err := a.tokens.TokenByHash(ctx, hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("looking up an API token: %w", err)
		default:
			tok = t
		}
		a.mu.Lock()
		if a.gen == gen {
			a.cache.Add(key, tok, a.ttl)
		}
		a.mu.Unlock()
	}
	if tok == nil || (tok.ExpiresAt != nil && !a.now().Before(*tok.ExpiresAt)) {
		return nil, ErrTokenRefused
	}
	return callerOf(tok), nil
}

// Forget drops the named token from this replica's cache (call it after revoking).
func (a *TokenAuthenticator) Forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	for _, k := range a.cache.Keys() {
		if v, ok := a.cache.Get(k); ok {
			if t, _ := v.(*store.Token); t != nil && t.Name == name {
				a.cache.Remove(k)
			}
		}
	}
}

// callerOf is the caller a token names. Roles the store holds were checked when the token was issued; one
// that is no longer a role is dropped rather than trusted.
func callerOf(t *store.Token) *Caller {
	c := &Caller{Name: t.Name, Kind: KindToken, Clusters: append([]string(nil), t.Clusters...),
		Namespaces: append([]string(nil), t.Namespaces...)}
	for _, n := range t.Roles {
		if r := Role(n); r.Valid() {
			c.Roles = append(c.Roles, r)
		}
	}
	return c
}

package access

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/kelseyhightower/envconfig"
)

// OIDCConfig is the OIDC ID token settings (env prefix KITEFN_). Without an issuer OIDC is off.
type OIDCConfig struct {
	Issuer   string `envconfig:"OIDC_ISSUER"`
	Audience string `envconfig:"OIDC_AUDIENCE"`
	// UsernameClaim names the caller ("sub" by default, as kube-apiserver: stable and unique; "email" reads
	// better in audit entries when the issuer verifies emails).
	UsernameClaim string `envconfig:"OIDC_USERNAME_CLAIM" default:"sub"`
	GroupsClaim   string `envconfig:"OIDC_GROUPS_CLAIM" default:"groups"`
	// GroupRoles maps groups to roles: "platform-admins=admin,devs=operator".
	GroupRoles string `envconfig:"OIDC_GROUP_ROLES"`
	// DefaultRole is every OIDC caller's role beside their groups' ones; empty gives none (every route 403).
	DefaultRole string `envconfig:"OIDC_DEFAULT_ROLE"`
	// DiscoveryRetry is how long a failed provider discovery is remembered before the next try.
	DiscoveryRetry time.Duration `envconfig:"OIDC_DISCOVERY_RETRY" default:"10s"`
}

// LoadOIDCConfig reads and validates the OIDC settings.
func LoadOIDCConfig() (OIDCConfig, error) {
	var c OIDCConfig
	if err := envconfig.Process("kitefn", &c); err != nil {
		return c, fmt.Errorf("OIDC configuration: %w", err)
	}
	_, err := c.parse()
	return c, err
}

// parse validates the settings and returns the group → roles mapping.
func (c OIDCConfig) parse() (map[string][]Role, error) {
	if c.Issuer == "" {
		return nil, nil
	}
	if c.Audience == "" {
		return nil, errors.New("KITEFN_OIDC_AUDIENCE must be set with KITEFN_OIDC_ISSUER (the client ID ID tokens are issued to)")
	}
	if c.UsernameClaim == "" || c.GroupsClaim == "" {
		return nil, errors.New("KITEFN_OIDC_USERNAME_CLAIM and KITEFN_OIDC_GROUPS_CLAIM must not be empty")
	}
	if c.DefaultRole != "" && !Role(c.DefaultRole).Valid() {
		return nil, fmt.Errorf("KITEFN_OIDC_DEFAULT_ROLE: %q is not a role (viewer, operator, admin)", c.DefaultRole)
	}
	out := map[string][]Role{}
	for _, pair := range strings.Split(c.GroupRoles, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		group, role, ok := strings.Cut(pair, "=")
		group, r := strings.TrimSpace(group), Role(strings.ToLower(strings.TrimSpace(role)))
		if !ok || group == "" || !r.Valid() {
			return nil, fmt.Errorf("KITEFN_OIDC_GROUP_ROLES: %q is not group=role (role: viewer, operator, admin)", pair)
		}
		if !slices.Contains(out[group], r) {
			out[group] = append(out[group], r)
		}
	}
	return out, nil
}

// OIDC authenticates OIDC ID tokens of one issuer: signature (keys from the issuer's JWKS, cached and
// refetched when a token names an unknown key, so rotation needs nothing), exp, nbf, iss and aud.
// Discovery is lazy: an issuer down at start does not stop the process; until it answers, ID tokens get a 503.
type OIDC struct {
	cfg    OIDCConfig
	roles  map[string][]Role
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	tried    time.Time
	err      error
}

// NewOIDC makes the authenticator; client (nil: http.DefaultClient) fetches discovery and keys.
func NewOIDC(cfg OIDCConfig, client *http.Client) (*OIDC, error) {
	roles, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	if cfg.Issuer == "" {
		return nil, errors.New("no OIDC issuer configured")
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &OIDC{cfg: cfg, roles: roles, client: client, now: time.Now}, nil
}

// discoveryTimeout bounds one discovery request (requests wait for it).
const discoveryTimeout = 5 * time.Second

// verifierFor discovers the provider once; a failure is remembered for DiscoveryRetry, so a down issuer is
// not asked on every request.
func (o *OIDC) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	if o.err != nil && o.now().Sub(o.tried) < o.cfg.DiscoveryRetry {
		return nil, o.err
	}
	o.tried = o.now()
	// Not the request's cancellation: a client that hangs up must not leave a failure cached for every caller.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discoveryTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		o.err = fmt.Errorf("%w: discovery of OIDC issuer %s failed: %v", ErrUnavailable, o.cfg.Issuer, err)
		return nil, o.err
	}
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.Audience})
	o.err = nil
	return o.verifier, nil
}

// looksLikeJWT tells an ID token (three base64url parts, a JSON header) from other bearer tokens.
func looksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

// Authenticate verifies an ID token and maps its claims to a caller; other credentials are not its kind.
func (o *OIDC) Authenticate(ctx context.Context, credential string) (*Caller, error) {
	if !looksLikeJWT(credential) {
		return nil, nil
	}
	v, err := o.verifierFor(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(ctx, credential)
	if err != nil {
		return nil, o.verifyError(err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, errors.New("the ID token's claims could not be read")
	}
	name, _ := claims[o.cfg.UsernameClaim].(string)
	if name == "" {
		return nil, fmt.Errorf("the ID token has no %q claim (KITEFN_OIDC_USERNAME_CLAIM)", o.cfg.UsernameClaim)
	}
	c := &Caller{Name: name, Kind: KindOIDC, Groups: stringsClaim(claims[o.cfg.GroupsClaim])}
	if o.cfg.DefaultRole != "" {
		c.Roles = append(c.Roles, Role(o.cfg.DefaultRole))
	}
	for _, g := range c.Groups {
		for _, r := range o.roles[g] {
			if !slices.Contains(c.Roles, r) {
				c.Roles = append(c.Roles, r)
			}
		}
	}
	return c, nil
}

// stringsClaim reads a claim that is a list of strings or one string.
func stringsClaim(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// verifyError says in words why a token was refused; the library's messages are matched, never passed on as
// they stand (they may quote claims).
func (o *OIDC) verifyError(err error) error {
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return fmt.Errorf("expired: the ID token expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "fetching keys"):
		return fmt.Errorf("%w: the keys of OIDC issuer %s could not be fetched", ErrUnavailable, o.cfg.Issuer)
	case strings.Contains(msg, "different provider"):
		return fmt.Errorf("wrong issuer: the ID token was not issued by %s", o.cfg.Issuer)
	case strings.Contains(msg, "expected audience"):
		return fmt.Errorf("wrong audience: the ID token is not for %s", o.cfg.Audience)
	case strings.Contains(msg, "nbf"):
		return errors.New("not yet valid: the ID token's nbf is in the future")
	case strings.Contains(msg, "failed to verify signature"):
		return errors.New("bad signature: no key of the issuer verifies the ID token")
	case strings.Contains(msg, "malformed"):
		return errors.New("malformed ID token")
	}
	return errors.New("the ID token could not be verified")
}

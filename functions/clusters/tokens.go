package clusters

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// TokenStore is the part of the store the token routes use.
type TokenStore interface {
	CreateToken(ctx context.Context, t *store.Token) (*store.Token, error)
	ListTokens(ctx context.Context) ([]*store.Token, error)
	DeleteToken(ctx context.Context, name string) error
}

// TokenCache is the authenticator's cache on this replica, told about a revocation so it takes effect here at
// once (other replicas follow within their cache TTL).
type TokenCache interface {
	Forget(name string)
}

// Recorder writes audit entries; a nil *access.Recorder records nothing.
type Recorder interface {
	Record(ctx context.Context, e store.AuditEntry)
}

type tokenRequest struct {
	Name       string   `json:"name"`
	Roles      []string `json:"roles"`
	Clusters   []string `json:"clusters,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
	ExpiresIn  string   `json:"expiresIn,omitempty"`
}

// tokenResponse is a token as the API shows it: never its hash, and its secret only in the create answer.
type tokenResponse struct {
	Name       string     `json:"name"`
	Roles      []string   `json:"roles"`
	Clusters   []string   `json:"clusters"`
	Namespaces []string   `json:"namespaces"`
	CreatedBy  string     `json:"createdBy,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	Token      string     `json:"token,omitempty"`
}

func tokenView(t *store.Token) tokenResponse {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return tokenResponse{Name: t.Name, Roles: nonNil(t.Roles), Clusters: nonNil(t.Clusters),
		Namespaces: nonNil(t.Namespaces), CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
}

// createToken issues a token: 32 random bytes shown once, only their SHA-256 stored.
func (f *Function) createToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req tokenRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &req); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	tok, err := newToken(ctx, req)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	secret, hash, err := access.NewTokenSecret()
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	tok.Hash = hash
	rec, err := f.tokens.CreateToken(ctx, tok)
	f.recordToken(ctx, "create", req.Name, err, http.StatusCreated)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	f.log.Infow("API token created", "name", rec.Name, "roles", rec.Roles, "createdBy", rec.CreatedBy)
	resp := tokenView(rec)
	resp.Token = secret
	w.Header().Set("Location", "/api/v1/tokens/"+rec.Name)
	w.Header().Set("Cache-Control", "no-store") // the secret must not sit in a cache
	httpapi.WriteJSON(w, http.StatusCreated, resp)
}

// newToken validates the request into the token to store (without its hash).
func newToken(ctx context.Context, req tokenRequest) (*store.Token, error) {
	if err := validateName(req.Name); err != nil {
		return nil, err
	}
	if len(req.Roles) == 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"roles is required: one or more of viewer, operator, admin").WithField("roles")
	}
	roles, bad := access.Roles(req.Roles)
	if bad != "" || len(roles) == 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"role %q is not one of viewer, operator, admin", bad).WithField("roles")
	}
	for field, patterns := range map[string][]string{"clusters": req.Clusters, "namespaces": req.Namespaces} {
		if err := validatePatterns(field, patterns); err != nil {
			return nil, err
		}
	}
	tok := &store.Token{Name: req.Name, Clusters: req.Clusters, Namespaces: req.Namespaces}
	for _, r := range roles {
		tok.Roles = append(tok.Roles, string(r))
	}
	if c, ok := access.CallerFrom(ctx); ok {
		tok.CreatedBy = access.Who(c)
	}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"expiresIn %q is not a positive duration like 720h", req.ExpiresIn).WithField("expiresIn")
		}
		exp := store.Now().Add(d)
		tok.ExpiresAt = &exp
	}
	return tok, nil
}

// validatePatterns admits scope patterns access.Match understands: a name, "*", "prefix*", each maybe negated.
func validatePatterns(field string, patterns []string) error {
	for _, p := range patterns {
		if p == "" || p == "!" || strings.IndexFunc(p, unicode.IsSpace) >= 0 {
			return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"%s pattern %q is not valid: want a name, \"*\", \"prefix*\" or one of them after \"!\", without spaces",
				field, p).WithField(field)
		}
	}
	return nil
}

type tokenListResponse struct {
	Items []tokenResponse `json:"items"`
}

func (f *Function) listTokens(w http.ResponseWriter, r *http.Request) {
	list, err := f.tokens.ListTokens(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	out := tokenListResponse{Items: make([]tokenResponse, 0, len(list))}
	for _, t := range list {
		out.Items = append(out.Items, tokenView(t))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// getToken serves GET /api/v1/tokens/{name}: one token as the list shows it (never the secret).
func (f *Function) getToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	list, err := f.tokens.ListTokens(r.Context()) // a handful of tokens: no by-name index in the stores
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	for _, t := range list {
		if t.Name == name {
			httpapi.WriteJSON(w, http.StatusOK, tokenView(t))
			return
		}
	}
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "API token %q not found", name))
}

// deleteToken revokes a token: on this replica at once, on others within their cache TTL.
func (f *Function) deleteToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	err := f.tokens.DeleteToken(ctx, name)
	if f.tokenCache != nil && (err == nil || errors.Is(err, store.ErrNotFound)) {
		f.tokenCache.Forget(name)
	}
	f.recordToken(ctx, "delete", name, err, http.StatusNoContent)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	f.log.Infow("API token revoked", "name", name)
	w.WriteHeader(http.StatusNoContent)
}

func (f *Function) recordToken(ctx context.Context, verb, name string, err error, ok int) {
	f.record(ctx, store.AuditEntry{Verb: verb, Resource: "tokens", Name: name, Outcome: outcome(err, ok)})
}

// record writes an audit entry when the function has a recorder.
func (f *Function) record(ctx context.Context, e store.AuditEntry) {
	if f.audit != nil {
		f.audit.Record(ctx, e)
	}
}

// outcome is the status a request answered: ok, or what err maps to.
func outcome(err error, ok int) int {
	if err == nil {
		return ok
	}
	return httpapi.AsError(err).Status
}

package runtime

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
)

// CodeAuthUnavailable is the error code of a 503 when a credential could not be checked (the OIDC issuer is
// down): retry, the credential may well be valid.
const CodeAuthUnavailable = "auth_unavailable"

// AccessConfig is what the platform adds to the bootstrap tokens: more authenticators (named API tokens, OIDC),
// how to name a cluster an ID refers to, and the authorisation table.
type AccessConfig struct {
	// Authenticators are asked in order after the bootstrap tokens; the first to recognise a credential decides.
	Authenticators []access.Authenticator
	// ClusterName resolves a cluster reference (a name or an ID) to the cluster's name, so scope patterns,
	// which name clusters, hold for IDs too; its error refuses the request (fail closed). Nil: references are
	// taken as names.
	ClusterName func(ctx context.Context, ref string) (string, error)
	// Table decides which role each route needs; nil is access.Routes().
	Table *access.Table
	// Ticket authenticates a ticket (POST /api/v1/terminal/tickets) given as ?ticket= on a GET under
	// /api/v1/terminal/ or /api/v1/logs/ without an Authorization header: browsers cannot set headers on a
	// WebSocket. A *access.Refusal (a ticket for another target) is a 403, any other error a 401. Nil: no
	// tickets.
	Ticket func(r *http.Request, ticket string) (*access.Caller, error)
}

// ticketOf is the ticket a request authenticates with instead of a bearer token, if any.
func ticketOf(r *http.Request) string {
	if r.Method != http.MethodGet || r.Header.Get("Authorization") != "" ||
		!(strings.HasPrefix(r.URL.Path, "/api/v1/terminal/") || strings.HasPrefix(r.URL.Path, "/api/v1/logs/")) {
		return ""
	}
	return r.URL.Query().Get("ticket")
}

// ServerOption configures NewServer.
type ServerOption func(*AccessConfig)

// WithAccess sets the authenticators, the cluster name resolver and the table.
func WithAccess(a AccessConfig) ServerOption {
	return func(c *AccessConfig) { *c = a }
}

// bootstrap authenticates the KITEFN_API_TOKENS tokens: admins everywhere. It compares in constant time so
// response timing does not reveal how much of a token matched.
type bootstrap struct{ tokens [][]byte }

func newBootstrap(tokens []string) bootstrap {
	var b bootstrap
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			b.tokens = append(b.tokens, []byte(t))
		}
	}
	return b
}

func (b bootstrap) Authenticate(_ context.Context, credential string) (*access.Caller, error) {
	got := []byte(credential)
	match := 0
	for _, t := range b.tokens {
		match |= subtle.ConstantTimeCompare(got, t)
	}
	if match != 1 {
		return nil, nil
	}
	return &access.Caller{Name: "bootstrap", Kind: access.KindBootstrap, Roles: []access.Role{access.Admin}}, nil
}

// authenticate finds the caller of every request through the chain and puts it in the context: 401 when the
// credential is missing, unknown or invalid (saying why, never echoing it), 503 when it could not be checked.
func authenticate(chain []access.Authenticator, tickets func(*http.Request, string) (*access.Caller, error),
	next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := ticketOf(r); t != "" && tickets != nil {
			c, err := tickets(r, t)
			var refusal *access.Refusal
			switch {
			case errors.As(err, &refusal):
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", refusal.Message))
			case err != nil || c == nil:
				invalid(w, r, fmt.Sprintf("the ticket is not valid: %v", err))
			default:
				next.ServeHTTP(w, r.WithContext(access.WithCaller(r.Context(), c)))
			}
			return
		}
		scheme, credential, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		credential = strings.TrimSpace(credential)
		if !ok || !strings.EqualFold(scheme, "Bearer") || credential == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kitefn"`)
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeUnauthorized,
				"missing bearer token: send the header Authorization: Bearer <token>"))
			return
		}
		for _, a := range chain {
			c, err := a.Authenticate(r.Context(), credential)
			if errors.Is(err, access.ErrUnavailable) {
				logging.FromContext(r.Context()).Warnw("a credential could not be checked", "error", err)
				w.Header().Set("Retry-After", "5")
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusServiceUnavailable, CodeAuthUnavailable,
					"the credential could not be checked: %v; retry shortly", err))
				return
			}
			if err != nil {
				invalid(w, r, "the bearer token is not valid: "+err.Error())
				return
			}
			if c != nil {
				next.ServeHTTP(w, r.WithContext(access.WithCaller(r.Context(), c)))
				return
			}
		}
		invalid(w, r, "the bearer token is not valid: unknown token")
	})
}

func invalid(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="kitefn", error="invalid_token"`)
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeUnauthorized, "%s", msg))
}

// authorize lets a request through when the table knows its route, the caller has the role it needs and every
// cluster it names is in the caller's scope. A route not in the table is denied: 404 (405 for another method of
// a known path), whatever the functions serve.
func authorize(acc AccessConfig, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, status, allow := acc.Table.Lookup(r)
		if m == nil {
			if status == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", allow)
				httpapi.WriteError(w, r, httpapi.Errorf(status, httpapi.CodeMethodNotAllowed,
					"%s is not allowed on %s (denied, not allowed); allowed: %s", r.Method, r.URL.Path, allow))
				return
			}
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
				"no route for %s %s (denied, not allowed)", r.Method, r.URL.Path))
			return
		}
		c, _ := access.CallerFrom(r.Context())
		var clusters []string
		if c != nil && len(c.Clusters) > 0 {
			for _, ref := range access.ClusterRefs(r, m.Cluster) {
				name := ref
				if acc.ClusterName != nil {
					n, err := acc.ClusterName(r.Context(), ref)
					if err != nil { // fail closed: an unresolved ID could name a cluster outside the scope
						httpapi.WriteError(w, r, err)
						return
					}
					if n != "" {
						name = n
					}
				}
				clusters = append(clusters, name)
			}
		}
		if err := access.Authorize(c, m.Rule, clusters); err != nil {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// meBody is GET /api/v1/me: who the caller is and what they may do.
type meBody struct {
	Name       string        `json:"name"`
	Kind       string        `json:"kind"`
	Roles      []access.Role `json:"roles"`
	Groups     []string      `json:"groups"`
	Clusters   []string      `json:"clusters"`
	Namespaces []string      `json:"namespaces"`
}

// me serves GET /api/v1/me on every service; empty scopes (all clusters, all namespaces) are [].
func me(w http.ResponseWriter, r *http.Request) {
	c, _ := access.CallerFrom(r.Context())
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	roles := c.Roles
	if roles == nil {
		roles = []access.Role{}
	}
	httpapi.WriteJSON(w, http.StatusOK, meBody{Name: c.Name, Kind: c.Kind, Roles: roles, Groups: orEmpty(c.Groups),
		Clusters: orEmpty(c.Clusters), Namespaces: orEmpty(c.Namespaces)})
}

// guard is the authenticated, authorised API: /api/v1/me here, everything else to api.
func guard(tokens []string, acc AccessConfig, api http.Handler) http.Handler {
	if acc.Table == nil {
		acc.Table = access.DefaultTable()
	}
	chain := append([]access.Authenticator{newBootstrap(tokens)}, acc.Authenticators...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/me", me)
	mux.Handle("/", api)
	return authenticate(chain, acc.Ticket, authorize(acc, mux))
}

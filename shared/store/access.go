package store

import (
	"context"
	"time"
)

// Token is a named API token as the store keeps it: only the SHA-256 of its secret, never the secret.
type Token struct {
	Name       string
	Hash       []byte // sha256 of the secret the caller presents
	Roles      []string
	Clusters   []string // scope patterns; empty = every cluster
	Namespaces []string // scope patterns; empty = every namespace
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  *time.Time // nil = never
}

// Tokens keeps named API tokens. Every backend implements it and passes storetest's token suite.
type Tokens interface {
	// CreateToken stores t (CreatedAt set by the store); a taken name is a *ConflictError.
	CreateToken(ctx context.Context, t *Token) (*Token, error)
	// TokenByHash finds the token whose Hash is hash, or ErrNotFound (wrapped).
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// ListTokens returns every token, by name.
	ListTokens(ctx context.Context) ([]*Token, error)
	// DeleteToken removes the named token, or ErrNotFound.
	DeleteToken(ctx context.Context, name string) error
}

// AuditEntry is one recorded action: who did what, where, with which outcome.
type AuditEntry struct {
	ID        string // set by the store: sortable by time
	Time      time.Time
	Who       string // the caller's name ("token:ci", "oidc:alice", "bootstrap")
	Cluster   string
	Verb      string // create, update, delete, apply, scale, restart, exec, proxy, …
	Resource  string
	Namespace string
	Name      string
	Outcome   int // the HTTP status answered
	RequestID string
	Detail    string // e.g. an apply's diff summary; never a Secret's data
}

// AuditFilter narrows ListAudit; zero fields match everything. Entries come newest first.
type AuditFilter struct {
	Who, Cluster, Verb string
	Since, Until       time.Time
	Limit              int    // default 100
	Continue           string // the token a previous page returned
}

// Audit keeps the audit log. Every backend implements it and passes storetest's audit suite.
type Audit interface {
	// AppendAudit records e (ID, and Time when zero, set by the store).
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns one page of entries newest first, and the continue token of the next page ("" = last).
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, string, error)
}

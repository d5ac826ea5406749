package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/kitefn/kitefn/shared/store"
)

// Token buckets, created by the first token write (files from before tokens have neither; a missing bucket
// reads as empty).
const (
	tokensBucket      = "tokens"       // name → JSON token
	tokenHashesBucket = "token_hashes" // sha256 → name: TokenByHash is one lookup
)

type tokenRecord struct {
	Name       string     `json:"name"`
	Hash       []byte     `json:"hash"`
	Roles      []string   `json:"roles,omitempty"`
	Clusters   []string   `json:"clusters,omitempty"`
	Namespaces []string   `json:"namespaces,omitempty"`
	CreatedBy  string     `json:"createdBy,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
}

// CreateToken implements store.Tokens: the token and its hash index are written in one transaction.
func (s *Store) CreateToken(ctx context.Context, t *store.Token) (*store.Token, error) {
	if err := store.CheckToken(backendName, t); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("create token %q", t.Name)
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("%s: %w", op, err))
	}
	rec := store.NewToken(t)
	raw, err := json.Marshal(tokenRecord{Name: rec.Name, Hash: rec.Hash, Roles: rec.Roles, Clusters: rec.Clusters,
		Namespaces: rec.Namespaces, CreatedBy: rec.CreatedBy, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt})
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", op, err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		tokens, err := tx.CreateBucketIfNotExists([]byte(tokensBucket))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", tokensBucket, err)
		}
		hashes, err := tx.CreateBucketIfNotExists([]byte(tokenHashesBucket))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", tokenHashesBucket, err)
		}
		if tokens.Get([]byte(rec.Name)) != nil {
			return store.TokenTaken(rec.Name)
		}
		if hashes.Get(rec.Hash) != nil {
			return &store.ConflictError{Reason: "another token has the same secret"}
		}
		if err := tokens.Put([]byte(rec.Name), raw); err != nil {
			return fmt.Errorf("write token: %w", err)
		}
		if err := hashes.Put(rec.Hash, []byte(rec.Name)); err != nil {
			return fmt.Errorf("write hash index: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return rec, nil
}

// TokenByHash implements store.Tokens.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("token by hash: %w", err))
	}
	var out *store.Token
	err := s.db.View(func(tx *bbolt.Tx) error {
		tokens, hashes := tx.Bucket([]byte(tokensBucket)), tx.Bucket([]byte(tokenHashesBucket))
		if tokens == nil || hashes == nil || len(hash) == 0 {
			return store.ErrTokenNotFound
		}
		name := hashes.Get(hash)
		if name == nil {
			return store.ErrTokenNotFound
		}
		raw := tokens.Get(name)
		if raw == nil {
			return store.ErrTokenNotFound
		}
		var err error
		out, err = decodeToken(raw)
		return err
	})
	if err != nil {
		return nil, s.wrap("token by hash", err)
	}
	return out, nil
}

// ListTokens implements store.Tokens; bbolt's key order is the name order.
func (s *Store) ListTokens(ctx context.Context) ([]*store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(fmt.Errorf("list tokens: %w", err))
	}
	out := []*store.Token{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		tokens := tx.Bucket([]byte(tokensBucket))
		if tokens == nil {
			return nil
		}
		return tokens.ForEach(func(k, v []byte) error {
			t, err := decodeToken(v)
			if err != nil {
				return fmt.Errorf("token %q: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("list tokens", err)
	}
	return out, nil
}

// DeleteToken implements store.Tokens: the token and its hash index go together.
func (s *Store) DeleteToken(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete token %q", name)
	if err := ctx.Err(); err != nil {
		return unavailable(fmt.Errorf("%s: %w", op, err))
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		tokens, hashes := tx.Bucket([]byte(tokensBucket)), tx.Bucket([]byte(tokenHashesBucket))
		if tokens == nil || hashes == nil {
			return store.ErrTokenNotFound
		}
		raw := tokens.Get([]byte(name))
		if raw == nil {
			return store.ErrTokenNotFound
		}
		t, err := decodeToken(raw)
		if err != nil {
			return err
		}
		if err := hashes.Delete(t.Hash); err != nil {
			return fmt.Errorf("delete hash index: %w", err)
		}
		if err := tokens.Delete([]byte(name)); err != nil {
			return fmt.Errorf("delete token: %w", err)
		}
		return nil
	})
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

func decodeToken(raw []byte) (*store.Token, error) {
	var rec tokenRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode token: %w", err)
	}
	return &store.Token{Name: rec.Name, Hash: rec.Hash, Roles: rec.Roles, Clusters: rec.Clusters,
		Namespaces: rec.Namespaces, CreatedBy: rec.CreatedBy, CreatedAt: rec.CreatedAt.UTC(),
		ExpiresAt: store.NormTimePtr(rec.ExpiresAt)}, nil
}

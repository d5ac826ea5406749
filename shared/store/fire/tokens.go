package fire

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kitefn/kitefn/shared/store"
)

// Tokens, with P the collection prefix:
//
//	P_tokens/h-<hex sha256>   the token: TokenByHash is one document read; field "name" orders ListTokens
//	P_token_names/n-<b64>     {hash}: exists while a token has that name, which keeps names unique

type tokenDoc struct {
	Name       string     `firestore:"name"`
	Hash       []byte     `firestore:"hash"`
	Roles      []string   `firestore:"roles"`
	Clusters   []string   `firestore:"clusters"`
	Namespaces []string   `firestore:"namespaces"`
	CreatedBy  string     `firestore:"createdBy"`
	CreatedAt  time.Time  `firestore:"createdAt"`
	ExpiresAt  *time.Time `firestore:"expiresAt"`
}

type tokenNameDoc struct {
	Hash []byte `firestore:"hash"`
}

func (s *Store) tokens() *firestore.CollectionRef { return s.client.Collection(s.prefix + "_tokens") }
func (s *Store) tokenNames() *firestore.CollectionRef {
	return s.client.Collection(s.prefix + "_token_names")
}

func (s *Store) tokenRef(hash []byte) *firestore.DocumentRef {
	return s.tokens().Doc("h-" + hex.EncodeToString(hash))
}

func (s *Store) tokenNameRef(name string) *firestore.DocumentRef {
	return s.tokenNames().Doc(nameDocID(name))
}

// CreateToken implements store.Tokens: one transaction checks the name and creates both documents.
func (s *Store) CreateToken(ctx context.Context, t *store.Token) (*store.Token, error) {
	if err := store.CheckToken(backendName, t); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("create token %q", t.Name)
	rec := store.NewToken(t)
	tokRef, nameRef := s.tokenRef(rec.Hash), s.tokenNameRef(rec.Name)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll([]*firestore.DocumentRef{nameRef, tokRef})
		if err != nil {
			return err
		}
		if snaps[0].Exists() {
			return store.TokenTaken(rec.Name)
		}
		if snaps[1].Exists() {
			return &store.ConflictError{Reason: "another token has the same secret"}
		}
		if err := tx.Create(tokRef, tokenDoc{Name: rec.Name, Hash: rec.Hash, Roles: rec.Roles,
			Clusters: rec.Clusters, Namespaces: rec.Namespaces, CreatedBy: rec.CreatedBy,
			CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt}); err != nil {
			return err
		}
		return tx.Create(nameRef, tokenNameDoc{Hash: rec.Hash})
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return rec, nil
}

// TokenByHash implements store.Tokens with one document read.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	if len(hash) == 0 {
		return nil, fmt.Errorf("%s token by hash: %w", backendName, store.ErrTokenNotFound)
	}
	snap, err := s.tokenRef(hash).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("%s token by hash: %w", backendName, store.ErrTokenNotFound)
	}
	if err != nil {
		return nil, s.wrap("token by hash", err)
	}
	t, err := tokenFrom(snap)
	if err != nil {
		return nil, s.wrap("token by hash", err)
	}
	return t, nil
}

// ListTokens implements store.Tokens.
func (s *Store) ListTokens(ctx context.Context) ([]*store.Token, error) {
	out := []*store.Token{}
	it := s.tokens().OrderBy("name", firestore.Asc).Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, s.wrap("list tokens", err)
		}
		t, err := tokenFrom(snap)
		if err != nil {
			return nil, s.wrap("list tokens", err)
		}
		out = append(out, t)
	}
}

// DeleteToken implements store.Tokens: the name document and the token go in one transaction.
func (s *Store) DeleteToken(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete token %q", name)
	nameRef := s.tokenNameRef(name)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(nameRef)
		if status.Code(err) == codes.NotFound {
			return store.ErrTokenNotFound
		}
		if err != nil {
			return err
		}
		var nd tokenNameDoc
		if err := snap.DataTo(&nd); err != nil {
			return fmt.Errorf("decode %s: %w", snap.Ref.ID, err)
		}
		if err := tx.Delete(s.tokenRef(nd.Hash)); err != nil {
			return err
		}
		return tx.Delete(nameRef)
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

func tokenFrom(snap *firestore.DocumentSnapshot) (*store.Token, error) {
	var d tokenDoc
	if err := snap.DataTo(&d); err != nil {
		return nil, fmt.Errorf("decode %s: %w", snap.Ref.ID, err)
	}
	return &store.Token{Name: d.Name, Hash: d.Hash, Roles: d.Roles, Clusters: d.Clusters,
		Namespaces: d.Namespaces, CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt.UTC(),
		ExpiresAt: store.NormTimePtr(d.ExpiresAt)}, nil
}

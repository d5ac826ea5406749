//go:build !kitefn_no_firestore

package backend

import (
	"context"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/fire"
)

// FirestoreBuilt reports whether this binary can open a Firestore store.
const FirestoreBuilt = true

func openFirestore(ctx context.Context, cfg Config) (store.Store, error) {
	return fire.Open(ctx, fire.Config{
		Project:          cfg.firestoreProject(),
		Database:         cfg.FirestoreDatabase,
		CollectionPrefix: cfg.FirestoreCollectionPrefix,
	})
}

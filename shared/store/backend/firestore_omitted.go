//go:build kitefn_no_firestore

package backend

import (
	"context"
	"errors"

	"github.com/kitefn/kitefn/shared/store"
)

// FirestoreBuilt reports whether this binary can open a Firestore store.
const FirestoreBuilt = false

// The Firestore client and gRPC cost several milliseconds of init at every cold start; images for other stores
// leave them out with -tags kitefn_no_firestore.
func openFirestore(context.Context, Config) (store.Store, error) {
	return nil, errors.New("KITEFN_STORE=firestore: this binary was built without Firestore (-tags kitefn_no_firestore)")
}

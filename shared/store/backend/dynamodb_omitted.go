//go:build kitefn_no_dynamodb

package backend

import (
	"context"
	"errors"

	"github.com/kitefn/kitefn/shared/store"
)

// DynamoDBBuilt reports whether this binary can open a DynamoDB store.
const DynamoDBBuilt = false

// The AWS SDK's service schemas cost milliseconds of init at every cold start; images for other stores leave
// them out with -tags kitefn_no_dynamodb.
func openDynamoDB(context.Context, Config) (store.Store, error) {
	return nil, errors.New("KITEFN_STORE=dynamodb: this binary was built without DynamoDB (-tags kitefn_no_dynamodb)")
}

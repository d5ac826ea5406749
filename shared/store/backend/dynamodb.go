//go:build !kitefn_no_dynamodb

package backend

import (
	"context"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/dynamo"
)

// DynamoDBBuilt reports whether this binary can open a DynamoDB store.
const DynamoDBBuilt = true

func openDynamoDB(ctx context.Context, cfg Config) (store.Store, error) {
	return dynamo.Open(ctx, dynamo.Config{
		Table:       cfg.DynamoDBTable,
		Region:      cfg.DynamoDBRegion,
		Endpoint:    cfg.DynamoDBEndpoint,
		CreateTable: cfg.DynamoDBCreateTable,
	})
}

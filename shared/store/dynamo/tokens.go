package dynamo

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kitefn/kitefn/shared/store"
)

// Tokens are two items, written and deleted in one transaction, each holding the whole token:
//
//	pk="token"                  sk=<fnv-64a of the name>  ListTokens queries this partition; the name's item
//	                                                      must not exist, which keeps names unique
//	pk="tokenhash#<hex sha256>" sk=0                      TokenByHash is one GetItem
//
// The sort key is a number in this table, so the name is hashed into one: two names with the same 64-bit
// hash would be refused as a taken name, which is a chance of about n²/2⁶⁵ for n tokens.
const (
	tokenPK         = "token"
	tokenHashPrefix = "tokenhash#"
)

type tokenItem struct {
	PK         string   `dynamodbav:"pk"`
	SK         uint64   `dynamodbav:"sk"`
	Name       string   `dynamodbav:"name"`
	Hash       []byte   `dynamodbav:"hash"`
	Roles      []string `dynamodbav:"roles,omitempty"`
	Clusters   []string `dynamodbav:"clusters,omitempty"`
	Namespaces []string `dynamodbav:"namespaces,omitempty"`
	CreatedBy  string   `dynamodbav:"createdBy,omitempty"`
	CreatedAt  string   `dynamodbav:"createdAt"`
	ExpiresAt  string   `dynamodbav:"expiresAt,omitempty"`
}

func tokenNameSK(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

func tokenNameKey(name string) map[string]types.AttributeValue {
	return key(tokenPK, tokenNameSK(name))
}

func tokenHashKey(hash []byte) map[string]types.AttributeValue {
	return key(tokenHashPrefix+hex.EncodeToString(hash), 0)
}

// CreateToken implements store.Tokens: both items in one transaction, neither may exist.
func (s *Store) CreateToken(ctx context.Context, t *store.Token) (*store.Token, error) {
	if err := store.CheckToken(backendName, t); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("create token %q", t.Name)
	rec := store.NewToken(t)
	it := tokenItem{Name: rec.Name, Hash: rec.Hash, Roles: rec.Roles, Clusters: rec.Clusters,
		Namespaces: rec.Namespaces, CreatedBy: rec.CreatedBy, CreatedAt: formatTime(rec.CreatedAt)}
	if rec.ExpiresAt != nil {
		it.ExpiresAt = formatTime(*rec.ExpiresAt)
	}
	put := func(pk string, sk uint64) (types.TransactWriteItem, error) {
		it.PK, it.SK = pk, sk
		av, err := attributevalue.MarshalMap(it)
		if err != nil {
			return types.TransactWriteItem{}, fmt.Errorf("encode token: %w", err)
		}
		return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: av,
			ConditionExpression: aws.String("attribute_not_exists(pk)")}}, nil
	}
	byName, err := put(tokenPK, tokenNameSK(rec.Name))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	byHash, err := put(tokenHashPrefix+hex.EncodeToString(rec.Hash), 0)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{byName, byHash}})
	if reasons, cancelled := cancellation(err); cancelled && len(reasons) == 2 {
		switch {
		case reasons[0] == reasonConditionFailed:
			return nil, s.wrap(op, store.TokenTaken(rec.Name))
		case reasons[1] == reasonConditionFailed:
			return nil, s.wrap(op, &store.ConflictError{Reason: "another token has the same secret"})
		case conflicted(reasons):
			return nil, s.wrap(op, &store.ConflictError{Reason: fmt.Sprintf("token %q is being written", rec.Name)})
		}
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return rec, nil
}

// TokenByHash implements store.Tokens with one consistent GetItem.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	if len(hash) == 0 {
		return nil, s.wrap("token by hash", store.ErrTokenNotFound)
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: tokenHashKey(hash),
		ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, s.wrap("token by hash", err)
	}
	if out.Item == nil {
		return nil, s.wrap("token by hash", store.ErrTokenNotFound)
	}
	t, err := tokenFromItem(out.Item)
	if err != nil {
		return nil, s.wrap("token by hash", err)
	}
	return t, nil
}

// ListTokens implements store.Tokens: a paged Query of the token partition, sorted by name here.
func (s *Store) ListTokens(ctx context.Context) ([]*store.Token, error) {
	out := []*store.Token{}
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: tokenPK}},
		ConsistentRead:            aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list tokens", err)
		}
		for _, av := range page.Items {
			t, err := tokenFromItem(av)
			if err != nil {
				return nil, s.wrap("list tokens", err)
			}
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *store.Token) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteToken implements store.Tokens: the name item gives the hash; both go in one transaction, on condition
// that the name item is still the one read.
func (s *Store) DeleteToken(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete token %q", name)
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: tokenNameKey(name),
		ConsistentRead: aws.Bool(true)})
	if err != nil {
		return s.wrap(op, err)
	}
	if out.Item == nil {
		return s.wrap(op, store.ErrTokenNotFound)
	}
	t, err := tokenFromItem(out.Item)
	if err != nil {
		return s.wrap(op, err)
	}
	if t.Name != name { // another name with the same 64-bit hash
		return s.wrap(op, store.ErrTokenNotFound)
	}
	cond := func(k map[string]types.AttributeValue) types.TransactWriteItem {
		return types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.table), Key: k,
			ConditionExpression:       aws.String("#name = :name"),
			ExpressionAttributeNames:  map[string]string{"#name": "name"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":name": &types.AttributeValueMemberS{Value: name}}}}
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{cond(tokenNameKey(name)), cond(tokenHashKey(t.Hash))}})
	if reasons, cancelled := cancellation(err); cancelled && len(reasons) > 0 && reasons[0] == reasonConditionFailed {
		return s.wrap(op, store.ErrTokenNotFound) // deleted meanwhile
	}
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

func tokenFromItem(av map[string]types.AttributeValue) (*store.Token, error) {
	var it tokenItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("decode token: %w", err)
	}
	t := &store.Token{Name: it.Name, Hash: it.Hash, Roles: it.Roles, Clusters: it.Clusters,
		Namespaces: it.Namespaces, CreatedBy: it.CreatedBy}
	var err error
	if t.CreatedAt, err = parseTime(it.CreatedAt); err != nil {
		return nil, fmt.Errorf("decode token %q createdAt: %w", it.Name, err)
	}
	if it.ExpiresAt != "" {
		e, err := parseTime(it.ExpiresAt)
		if err != nil {
			return nil, fmt.Errorf("decode token %q expiresAt: %w", it.Name, err)
		}
		t.ExpiresAt = &e
	}
	return t, nil
}

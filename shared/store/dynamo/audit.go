package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kitefn/kitefn/shared/store"
)

// The audit log is one partition, pk="audit", sorted by sk=<stamp> (store.AuditStamps: Unix nanoseconds, 19
// digits until 2286). ListAudit is a backwards Query over the stamp range; Who, Cluster and Verb are a
// FilterExpression. One partition takes about 1000 writes a second, far beyond what an audit log of API
// writes needs.
const auditPK = "audit"

type auditItem struct {
	PK        string `dynamodbav:"pk"`
	SK        uint64 `dynamodbav:"sk"`
	Time      string `dynamodbav:"time"`
	Who       string `dynamodbav:"who,omitempty"`
	Cluster   string `dynamodbav:"cluster,omitempty"`
	Verb      string `dynamodbav:"verb,omitempty"`
	Resource  string `dynamodbav:"resource,omitempty"`
	Namespace string `dynamodbav:"namespace,omitempty"`
	Name      string `dynamodbav:"name,omitempty"`
	Outcome   int    `dynamodbav:"outcome"`
	RequestID string `dynamodbav:"requestId,omitempty"`
	Detail    string `dynamodbav:"detail,omitempty"`
}

// AppendAudit implements store.Audit: a conditional put, the next stamp on a taken one.
func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	rec, err := store.PrepareAudit(e)
	if err != nil {
		return err
	}
	stamps, err := store.AuditStamps(rec.Time)
	if err != nil {
		return err
	}
	it := auditItem{PK: auditPK, Time: formatTime(rec.Time), Who: rec.Who, Cluster: rec.Cluster, Verb: rec.Verb,
		Resource: rec.Resource, Namespace: rec.Namespace, Name: rec.Name, Outcome: rec.Outcome,
		RequestID: rec.RequestID, Detail: rec.Detail}
	for _, n := range stamps {
		it.SK = n
		av, err := attributevalue.MarshalMap(it)
		if err != nil {
			return fmt.Errorf("append audit: encode: %w", err)
		}
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: av,
			ConditionExpression: aws.String("attribute_not_exists(pk)")})
		if _, taken := errors.AsType[*types.ConditionalCheckFailedException](err); taken {
			continue
		}
		if err != nil {
			return s.wrap("append audit", err)
		}
		e.ID, e.Time = store.AuditID(n), rec.Time
		return nil
	}
	return s.wrap("append audit", errors.New("every audit ID of this microsecond is taken"))
}

// ListAudit implements store.Audit.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, string, error) {
	r, err := f.Range()
	if err != nil {
		return nil, "", err
	}
	out := []*store.AuditEntry{}
	if r.Empty() {
		return out, "", nil
	}
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: auditPK},
			":lo": number(r.Lo),
			":hi": number(r.Hi - 1),
		},
		ScanIndexForward: aws.Bool(false),
		ConsistentRead:   aws.Bool(true),
	}
	var filters []string
	for i, kv := range [][2]string{{"who", f.Who}, {"cluster", f.Cluster}, {"verb", f.Verb}} {
		if kv[1] == "" {
			continue
		}
		n, v := "#f"+strconv.Itoa(i), ":f"+strconv.Itoa(i)
		if in.ExpressionAttributeNames == nil {
			in.ExpressionAttributeNames = map[string]string{}
		}
		in.ExpressionAttributeNames[n] = kv[0]
		in.ExpressionAttributeValues[v] = &types.AttributeValueMemberS{Value: kv[1]}
		filters = append(filters, n+" = "+v)
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	} else {
		in.Limit = aws.Int32(int32(r.Limit + 1)) // every item read is one of the page
	}
	pages := dynamodb.NewQueryPaginator(s.db, in)
	for pages.HasMorePages() && len(out) <= r.Limit {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, "", s.wrap("list audit", err)
		}
		for _, av := range page.Items {
			var it auditItem
			if err := attributevalue.UnmarshalMap(av, &it); err != nil {
				return nil, "", s.wrap("list audit", fmt.Errorf("decode audit entry: %w", err))
			}
			t, err := parseTime(it.Time)
			if err != nil {
				return nil, "", s.wrap("list audit", fmt.Errorf("decode audit entry %d time: %w", it.SK, err))
			}
			e := &store.AuditEntry{ID: store.AuditID(it.SK), Time: t, Who: it.Who, Cluster: it.Cluster,
				Verb: it.Verb, Resource: it.Resource, Namespace: it.Namespace, Name: it.Name, Outcome: it.Outcome,
				RequestID: it.RequestID, Detail: it.Detail}
			// The key condition already holds the range on DynamoDB; minidyn compares numbers as float64, which
			// blurs 19-digit stamps, so the range is checked here too.
			inRange := it.SK >= r.Lo && it.SK < r.Hi
			if inRange && f.Matches(e) && len(out) <= r.Limit {
				out = append(out, e)
			}
		}
	}
	page, next := store.AuditPage(out, r.Limit)
	return page, next, nil
}

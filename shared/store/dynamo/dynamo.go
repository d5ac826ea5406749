// Package dynamo is the DynamoDB store.Store backend. Several replicas may share one table: every write is one
// TransactWriteItems with conditions, so IDs stay sequential and names unique across replicas. Within one
// replica, writes are also serialised, which removes contention on the counter item there.
//
// One table, partition key "pk" (string) and sort key "sk" (number):
//
//	pk="cluster"      sk=<id>  the record; Query on pk returns records in ID order
//	pk="name#<name>"  sk=0     {id}: exists while a record has that name
//	pk="counter"      sk=0     {last}: the last ID handed out
package dynamo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kitefn/kitefn/shared/store"
)

// backendName is what Name returns and what *store.UnavailableError carries.
const backendName = "dynamodb"

// Defaults for Config.
const (
	DefaultTable  = "kitefn-clusters"
	DefaultRegion = "us-east-1"
)

// Item keys.
const (
	recordPK   = "cluster"
	counterPK  = "counter"
	namePrefix = "name#"
)

// Cancellation reason codes of TransactionCanceledException that matter here.
const (
	reasonConditionFailed = "ConditionalCheckFailed"
	reasonConflict        = "TransactionConflict"
)

// maxAttempts bounds the optimistic retries of one write (lost counter races, transaction conflicts, records
// changed between the read and the transaction).
const maxAttempts = 30

// tableWait bounds how long Open waits for a table it created to become active.
const tableWait = 2 * time.Minute

// Config says which table to use and how to reach it.
type Config struct {
	// Table is the table name; empty means "kitefn-clusters".
	Table string
	// Region is the AWS region; empty means "us-east-1".
	Region string
	// Endpoint, if set, replaces the regional endpoint (a local test server, a VPC endpoint). Response CRC32
	// validation is then off, because test servers do not send the header.
	Endpoint string
	// CreateTable creates the table if it is missing (local runs and tests).
	CreateTable bool
	// Credentials, if set, replace the SDK's default credential chain (tests use static ones).
	Credentials aws.CredentialsProvider
}

// Store is a store.Store over one DynamoDB table.
type Store struct {
	db    *dynamodb.Client
	table string
	// writes is a one-slot semaphore that serialises this instance's writes; unlike a sync.Mutex, waiting for
	// it respects the caller's context.
	writes store.WriteSlot
}

var _ store.Store = (*Store)(nil)

// Open builds a client and, if cfg.CreateTable, creates the table when it is missing and waits until it is
// active. Otherwise it does not contact DynamoDB: the first operation does.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Endpoint != "" {
		if u, err := url.Parse(cfg.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("dynamodb: endpoint %q is not an absolute URL like http://127.0.0.1:8000", cfg.Endpoint)
		}
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, unavailable(fmt.Errorf("load AWS config: %w", err))
	}
	db := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.DisableValidateResponseChecksum = true
		}
	})
	s := &Store{db: db, table: cfg.Table, writes: store.NewWriteSlot()}
	if cfg.CreateTable {
		if err := s.ensureTable(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ensureTable creates the table if it is missing and waits for it to be active. It polls DescribeTable itself
// instead of using the SDK's waiter: minidyn reports an empty TableStatus, which the waiter never accepts, so
// an empty status counts as ready too (real DynamoDB always sets one).
func (s *Store) ensureTable(ctx context.Context) error {
	_, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
	if err == nil {
		return s.waitActive(ctx)
	}
	if _, missing := errors.AsType[*types.ResourceNotFoundException](err); !missing {
		return unavailable(fmt.Errorf("describe table %s: %w", s.table, err))
	}
	_, err = s.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(s.table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if _, raced := errors.AsType[*types.ResourceInUseException](err); err != nil && !raced {
		return unavailable(fmt.Errorf("create table %s: %w", s.table, err))
	}
	return s.waitActive(ctx)
}

func (s *Store) waitActive(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, tableWait)
	defer cancel()
	for {
		out, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
		if err != nil {
			return unavailable(fmt.Errorf("describe table %s: %w", s.table, err))
		}
		switch out.Table.TableStatus {
		case types.TableStatusActive, "":
			return nil
		case types.TableStatusCreating, types.TableStatusUpdating:
		default:
			return unavailable(fmt.Errorf("table %s is %s", s.table, out.Table.TableStatus))
		}
		select {
		case <-ctx.Done():
			return unavailable(fmt.Errorf("table %s did not become active: %w", s.table, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
}

// Name implements store.Store.
func (s *Store) Name() string { return backendName }

// Close implements store.Store; the HTTP client needs no closing.
func (s *Store) Close() error { return nil }

// item is the stored form of a record. Times are RFC 3339 strings with microseconds.
type item struct {
	PK            string            `dynamodbav:"pk"`
	SK            uint64            `dynamodbav:"sk"`
	Name          string            `dynamodbav:"name"`
	Server        string            `dynamodbav:"server,omitempty"`
	Kubeconfig    []byte            `dynamodbav:"kubeconfig,omitempty"`
	Labels        map[string]string `dynamodbav:"labels,omitempty"`
	PromURL       string            `dynamodbav:"promUrl,omitempty"`
	PromStatus    string            `dynamodbav:"promStatus,omitempty"`
	PromMessage   string            `dynamodbav:"promMessage,omitempty"`
	PromCheckedAt string            `dynamodbav:"promCheckedAt,omitempty"`
	Impersonate   bool              `dynamodbav:"impersonate,omitempty"`
	CreatedAt     string            `dynamodbav:"createdAt"`
	UpdatedAt     string            `dynamodbav:"updatedAt"`
	Version       uint64            `dynamodbav:"version"`
}

func toItem(c *store.Cluster) (map[string]types.AttributeValue, error) {
	it := item{
		PK:          recordPK,
		SK:          c.ID,
		Name:        c.Name,
		Server:      c.Server,
		Kubeconfig:  c.Kubeconfig,
		Labels:      c.Labels,
		PromURL:     c.Prometheus.URL,
		PromStatus:  string(c.Prometheus.Status),
		PromMessage: c.Prometheus.Message,
		Impersonate: c.Impersonate,
		CreatedAt:   formatTime(c.CreatedAt),
		UpdatedAt:   formatTime(c.UpdatedAt),
		Version:     c.Version,
	}
	if c.Prometheus.CheckedAt != nil {
		it.PromCheckedAt = formatTime(*c.Prometheus.CheckedAt)
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("encode record %d: %w", c.ID, err)
	}
	return av, nil
}

func fromItem(av map[string]types.AttributeValue) (*store.Cluster, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	c := &store.Cluster{
		ID:         it.SK,
		Name:       it.Name,
		Server:     it.Server,
		Kubeconfig: it.Kubeconfig,
		Labels:     it.Labels,
		Prometheus: store.Prometheus{
			URL:     it.PromURL,
			Status:  store.PrometheusStatus(it.PromStatus),
			Message: it.PromMessage,
		},
		Impersonate: it.Impersonate,
		Version:     it.Version,
	}
	var err error
	if c.CreatedAt, err = parseTime(it.CreatedAt); err != nil {
		return nil, fmt.Errorf("decode record %d createdAt: %w", c.ID, err)
	}
	if c.UpdatedAt, err = parseTime(it.UpdatedAt); err != nil {
		return nil, fmt.Errorf("decode record %d updatedAt: %w", c.ID, err)
	}
	if it.PromCheckedAt != "" {
		t, err := parseTime(it.PromCheckedAt)
		if err != nil {
			return nil, fmt.Errorf("decode record %d promCheckedAt: %w", c.ID, err)
		}
		c.Prometheus.CheckedAt = &t
	}
	return c, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UTC(), err
}

func key(pk string, sk uint64) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": number(sk),
	}
}

func recordKey(id uint64) map[string]types.AttributeValue { return key(recordPK, id) }

func nameKey(name string) map[string]types.AttributeValue { return key(namePrefix+name, 0) }

func number(n uint64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatUint(n, 10)}
}

// nameLock is the item that holds name for record id; it must not exist yet.
func (s *Store) nameLock(name string, id uint64) types.TransactWriteItem {
	it := nameKey(name)
	it["id"] = number(id)
	return types.TransactWriteItem{Put: &types.Put{
		TableName:           aws.String(s.table),
		Item:                it,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}
}

// freeName deletes the name item, if it still belongs to record id.
func (s *Store) freeName(name string, id uint64) types.TransactWriteItem {
	return types.TransactWriteItem{Delete: &types.Delete{
		TableName:                 aws.String(s.table),
		Key:                       nameKey(name),
		ConditionExpression:       aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": "id"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": number(id)},
	}}
}

// Create implements store.Store. It reads the counter, then writes in one transaction: the name item (must not
// exist), the counter (must still hold what was read) and the record (must not exist). Losing the counter race
// to another replica retries; a taken name is a conflict; either way nothing was written.
func (s *Store) Create(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	if err := store.CheckInput(backendName, c); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("create %q", c.Name)
	if err := s.writes.Lock(ctx); err != nil {
		return nil, s.wrap(op, err)
	}
	defer s.writes.Unlock()

	rec := store.NewRecord(c)
	retries := contention()
	for attempt := 0; ; attempt++ {
		last, err := s.lastID(ctx)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		rec.ID = last + 1
		recItem, err := toItem(rec)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		counter := &types.Put{TableName: aws.String(s.table), Item: key(counterPK, 0)}
		counter.Item["last"] = number(rec.ID)
		if last == 0 {
			counter.ConditionExpression = aws.String("attribute_not_exists(pk)")
		} else {
			counter.ConditionExpression = aws.String("#last = :last")
			counter.ExpressionAttributeNames = map[string]string{"#last": "last"}
			counter.ExpressionAttributeValues = map[string]types.AttributeValue{":last": number(last)}
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			s.nameLock(rec.Name, rec.ID),
			{Put: counter},
			{Put: &types.Put{
				TableName:           aws.String(s.table),
				Item:                recItem,
				ConditionExpression: aws.String("attribute_not_exists(pk)"),
			}},
		}})
		if err == nil {
			return rec, nil
		}
		reasons, cancelled := cancellation(err)
		switch {
		case !cancelled || len(reasons) != 3:
			return nil, s.wrap(op, err)
		case reasons[0] == reasonConditionFailed:
			return nil, s.wrap(op, store.NameTaken(rec.Name))
		case reasons[1] == reasonConditionFailed, conflicted(reasons):
			// Another replica took the ID, or was writing the same items: read the counter again. (DynamoDB then
			// also reports the record, which that replica wrote, so this is decided before the record's reason.)
		case reasons[2] == reasonConditionFailed:
			return nil, s.wrap(op, fmt.Errorf("record %d exists although the counter says %d was the last ID", rec.ID, last))
		default:
			return nil, s.wrap(op, err)
		}
		if err := backoff(ctx, retries); err != nil {
			return nil, s.wrap(op, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err))
		}
	}
}

// lastID reads the counter; a missing counter means no ID was handed out yet.
func (s *Store) lastID(ctx context.Context) (uint64, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(counterPK, 0),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return 0, fmt.Errorf("read counter: %w", err)
	}
	if out.Item == nil {
		return 0, nil
	}
	var counter struct {
		Last uint64 `dynamodbav:"last"`
	}
	if err := attributevalue.UnmarshalMap(out.Item, &counter); err != nil {
		return 0, fmt.Errorf("decode counter: %w", err)
	}
	return counter.Last, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id uint64) (*store.Cluster, error) {
	c, err := s.get(ctx, id)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get %d", id), err)
	}
	return c, nil
}

func (s *Store) get(ctx context.Context, id uint64) (*store.Cluster, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            recordKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if out.Item == nil {
		return nil, store.ErrNotFound
	}
	return fromItem(out.Item)
}

// GetByName implements store.Store: the name item gives the ID, then the record. A rename between the two
// reads shows as a record with another name; reading again settles it.
func (s *Store) GetByName(ctx context.Context, name string) (*store.Cluster, error) {
	op := fmt.Sprintf("get %q", name)
	for range 5 {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(s.table),
			Key:            nameKey(name),
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return nil, s.wrap(op, err)
		}
		if out.Item == nil {
			return nil, s.wrap(op, store.ErrNotFound)
		}
		var lock struct {
			ID uint64 `dynamodbav:"id"`
		}
		if err := attributevalue.UnmarshalMap(out.Item, &lock); err != nil {
			return nil, s.wrap(op, fmt.Errorf("decode name item: %w", err))
		}
		c, err := s.get(ctx, lock.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, s.wrap(op, err)
		}
		if c.Name == name {
			return c, nil
		}
	}
	return nil, s.wrap(op, fmt.Errorf("the name item and the record disagree: %w", store.ErrNotFound))
}

// List implements store.Store with a paged, consistent Query: records share one partition, sorted by ID.
func (s *Store) List(ctx context.Context) ([]*store.Cluster, error) {
	out := []*store.Cluster{}
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: recordPK}},
		ConsistentRead:            aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", err)
		}
		for _, av := range page.Items {
			c, err := fromItem(av)
			if err != nil {
				return nil, s.wrap("list", err)
			}
			out = append(out, c)
		}
	}
	// DynamoDB returns the partition in sort-key order already, and sorting sorted input is cheap. minidyn
	// (the test server) orders numeric sort keys as strings (1, 10, 2, …), so the order is made certain here.
	slices.SortFunc(out, func(a, b *store.Cluster) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Update implements store.Store. It reads the record for its current name, then writes in one transaction: the
// record (if its version is still the one read) and, on a rename, the old name's removal and the new name.
func (s *Store) Update(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	if err := store.CheckInput(backendName, c); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("update %d", c.ID)
	if err := s.writes.Lock(ctx); err != nil {
		return nil, s.wrap(op, err)
	}
	defer s.writes.Unlock()

	retries := contention()
	for attempt := 0; ; attempt++ {
		old, err := s.get(ctx, c.ID)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		rec, err := store.NextVersion(old, c)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		recItem, err := toItem(rec)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		items := []types.TransactWriteItem{{Put: &types.Put{
			TableName:                 aws.String(s.table),
			Item:                      recItem,
			ConditionExpression:       aws.String("#version = :version"),
			ExpressionAttributeNames:  map[string]string{"#version": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":version": number(old.Version)},
		}}}
		if rec.Name != old.Name {
			items = append(items, s.freeName(old.Name, rec.ID), s.nameLock(rec.Name, rec.ID))
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return rec, nil
		}
		reasons, cancelled := cancellation(err)
		switch {
		case !cancelled || len(reasons) != len(items):
			return nil, s.wrap(op, err)
		case reasons[0] == reasonConditionFailed:
			// Changed or deleted since it was read: reading it again reports which, without waiting.
			if attempt < maxAttempts {
				continue
			}
		case len(reasons) == 3 && reasons[2] == reasonConditionFailed:
			return nil, s.wrap(op, store.NameTaken(rec.Name))
		case conflicted(reasons), len(reasons) == 3 && reasons[1] == reasonConditionFailed:
			// Another transaction was on these items, or the old name item moved: try again.
		default:
			return nil, s.wrap(op, err)
		}
		if err := backoff(ctx, retries); err != nil {
			return nil, s.wrap(op, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err))
		}
	}
}

// Delete implements store.Store: the record (if unchanged since it was read) and its name item go in one
// transaction.
func (s *Store) Delete(ctx context.Context, id uint64) error {
	op := fmt.Sprintf("delete %d", id)
	if err := s.writes.Lock(ctx); err != nil {
		return s.wrap(op, err)
	}
	defer s.writes.Unlock()

	retries := contention()
	for attempt := 0; ; attempt++ {
		old, err := s.get(ctx, id)
		if err != nil {
			return s.wrap(op, err)
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName:                 aws.String(s.table),
				Key:                       recordKey(id),
				ConditionExpression:       aws.String("#version = :version"),
				ExpressionAttributeNames:  map[string]string{"#version": "version"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":version": number(old.Version)},
			}},
			s.freeName(old.Name, id),
		}})
		if err == nil {
			return nil
		}
		reasons, cancelled := cancellation(err)
		switch {
		case !cancelled || len(reasons) != 2:
			return s.wrap(op, err)
		case reasons[0] == reasonConditionFailed:
			if attempt < maxAttempts {
				continue // changed or deleted since it was read: read it again
			}
		case conflicted(reasons), reasons[1] == reasonConditionFailed:
			// Another transaction was on these items, or the name item moved: try again.
		default:
			return s.wrap(op, err)
		}
		if err := backoff(ctx, retries); err != nil {
			return s.wrap(op, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err))
		}
	}
}

// cancellation returns the per-item reason codes ("None" for items that passed) of a cancelled transaction.
// minidyn reports only the first failing item; real DynamoDB reports all, which the callers handle alike.
func cancellation(err error) ([]string, bool) {
	tce, ok := errors.AsType[*types.TransactionCanceledException](err)
	if !ok {
		return nil, false
	}
	codes := make([]string, len(tce.CancellationReasons))
	for i, r := range tce.CancellationReasons {
		codes[i] = aws.ToString(r.Code)
	}
	return codes, true
}

// conflicted reports whether another transaction was in flight on one of the items: worth retrying.
func conflicted(reasons []string) bool {
	for _, r := range reasons {
		if r == reasonConflict {
			return true
		}
	}
	return false
}

// contention is the retry schedule of one write while replicas race for the same items: exponential from 5 ms,
// capped at 200 ms, with jitter so racing replicas spread out, for maxAttempts in all.
func contention() *wait.Backoff {
	return &wait.Backoff{Duration: 5 * time.Millisecond, Factor: 2, Jitter: 1, Cap: 200 * time.Millisecond,
		Steps: maxAttempts - 1}
}

// backoff waits the next step of b before another attempt; it fails once the steps are used or ctx ends.
func backoff(ctx context.Context, b *wait.Backoff) error {
	if b.Steps < 1 {
		return errors.New("too much contention")
	}
	t := time.NewTimer(b.Step())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wrap adds context; anything that is not a not-found, a conflict or refused input (an SDK or network error,
// an exhausted retry) becomes a *store.UnavailableError.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%s %s: %w", backendName, op, err)
	}
	if apiErr, ok := errors.AsType[smithy.APIError](err); ok && apiErr.ErrorCode() == "ValidationException" {
		// DynamoDB refused the input (a name too long for a key, an item over 400 KB): not an outage.
		class := store.ErrInvalid
		if strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "size") {
			class = store.ErrTooLarge
		}
		return fmt.Errorf("%s %s: %w: %s", backendName, op, class, apiErr.ErrorMessage())
	}
	return unavailable(fmt.Errorf("%s (table %s): %w", op, s.table, err))
}

func unavailable(err error) error {
	return &store.UnavailableError{Backend: backendName, Err: err}
}

package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/dynamo"
	"github.com/kitefn/kitefn/shared/store/storetest"
	"github.com/kitefn/kitefn/tests/emulators"
)

// endpoint is the minidyn server TestMain starts for the whole package.
var endpoint string

func TestMain(m *testing.M) {
	// Never let the SDK look for credentials on an instance metadata endpoint.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv, err := emulators.StartDynamoDB(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the DynamoDB test server the tests need: %v\n", err)
		os.Exit(1)
	}
	endpoint = srv.Endpoint
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func config(table, endpoint string) dynamo.Config {
	return dynamo.Config{
		Table:       table,
		Endpoint:    endpoint,
		Region:      "us-east-1",
		CreateTable: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
}

func open(t *testing.T, table string) *dynamo.Store {
	t.Helper()
	s, err := dynamo.Open(t.Context(), config(table, endpoint))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		table := fmt.Sprintf("conformance-%d", n.Add(1))
		return open(t, table), open(t, table)
	})
}

// TestListPages lists more than one Query page: DynamoDB pages by 1 MB, so records with 100 KB kubeconfigs
// force several pages there (minidyn may return them in one).
func TestListPages(t *testing.T) {
	ctx := t.Context()
	s := open(t, "list-pages")
	big := make([]byte, 100<<10)
	const n = 25 // 2.5 MB: at least three pages on real DynamoDB
	for i := range n {
		if _, err := s.Create(ctx, &store.Cluster{Name: fmt.Sprintf("big-%02d", i), Kubeconfig: big}); err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != n {
		t.Fatalf("list returned %d records, want %d", len(list), n)
	}
	for i, c := range list {
		if c.ID != uint64(i+1) || len(c.Kubeconfig) != len(big) {
			t.Fatalf("list[%d] = ID %d with %d bytes", i, c.ID, len(c.Kubeconfig))
		}
	}
}

// TestUnreachable points the client at a closed port: every operation must fail, within the caller's
// deadline, as a *store.UnavailableError naming the backend.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	cfg := config("unreachable", closed)
	cfg.CreateTable = false
	s, err := dynamo.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open without creating the table must not contact the server: %v", err)
	}
	storetest.Unreachable(t, s, "dynamodb", 2*time.Second)

	cfg.CreateTable = true
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := dynamo.Open(ctx, cfg); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open creating a table behind a closed port: %v, want a *store.UnavailableError", err)
	}
}

// TestMissingTable checks that a table that was never created is an outage, not an empty registry.
func TestMissingTable(t *testing.T) {
	cfg := config("never-created", endpoint)
	cfg.CreateTable = false
	s, err := dynamo.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.List(t.Context())
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "never-created") {
		t.Fatalf("List of a missing table: %v, want a *store.UnavailableError naming the table", err)
	}
}

func TestBadEndpoint(t *testing.T) {
	if _, err := dynamo.Open(t.Context(), config("t", "127.0.0.1:8000")); err == nil {
		t.Fatal("Open accepted an endpoint without a scheme")
	}
}

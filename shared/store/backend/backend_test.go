package backend_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/backend"
	"github.com/kitefn/kitefn/tests/emulators"
)

// load reads a Config from env alone: every variable the config reads is unset first (and restored after the
// test), so the machine's environment cannot leak in.
func load(t *testing.T, env map[string]string) backend.Config {
	t.Helper()
	for _, k := range []string{"STORE", "BBOLT_PATH", "FIRESTORE_PROJECT", "FIRESTORE_DATABASE",
		"FIRESTORE_COLLECTION_PREFIX", "DYNAMODB_TABLE", "DYNAMODB_ENDPOINT", "DYNAMODB_REGION",
		"DYNAMODB_CREATE_TABLE"} {
		unset(t, "KITEFN_"+k)
		unset(t, k) // envconfig falls back to the unprefixed name
	}
	unset(t, "GOOGLE_CLOUD_PROJECT")
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cfg backend.Config
	if err := envconfig.Process("KITEFN", &cfg); err != nil {
		t.Fatalf("envconfig: %v", err)
	}
	return cfg
}

func unset(t *testing.T, key string) {
	t.Helper()
	t.Setenv(key, "") // registers the restore
	os.Unsetenv(key)
}

func TestDefaults(t *testing.T) {
	cfg := load(t, nil)
	want := backend.Config{
		Store:                     "bbolt",
		BboltPath:                 "./data/kitefn.db",
		FirestoreDatabase:         "(default)",
		FirestoreCollectionPrefix: "kitefn",
		DynamoDBTable:             "kitefn-clusters",
		DynamoDBRegion:            "us-east-1",
	}
	if cfg != want {
		t.Fatalf("defaults = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestEnv(t *testing.T) {
	cfg := load(t, map[string]string{
		"KITEFN_STORE":                       "dynamodb",
		"KITEFN_FIRESTORE_PROJECT":           "proj",
		"KITEFN_FIRESTORE_COLLECTION_PREFIX": "ci-1",
		"KITEFN_DYNAMODB_TABLE":              "tbl",
		"KITEFN_DYNAMODB_ENDPOINT":           "http://127.0.0.1:8000",
		"KITEFN_DYNAMODB_REGION":             "eu-west-1",
		"KITEFN_DYNAMODB_CREATE_TABLE":       "true",
	})
	if cfg.Store != "dynamodb" || cfg.FirestoreProject != "proj" || cfg.FirestoreCollectionPrefix != "ci-1" ||
		cfg.DynamoDBTable != "tbl" || cfg.DynamoDBEndpoint != "http://127.0.0.1:8000" ||
		cfg.DynamoDBRegion != "eu-west-1" || !cfg.DynamoDBCreateTable {
		t.Fatalf("config from the environment = %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	base := load(t, nil)
	tests := []struct {
		name string
		edit func(*backend.Config)
		want []string // substrings of the error
	}{
		{"unknown store", func(c *backend.Config) { c.Store = "redis" }, []string{"KITEFN_STORE", "redis", "bbolt, firestore, dynamodb"}},
		{"empty bbolt path", func(c *backend.Config) { c.BboltPath = " " }, []string{"KITEFN_BBOLT_PATH"}},
		{"firestore without project", func(c *backend.Config) { c.Store = "firestore" }, []string{"KITEFN_FIRESTORE_PROJECT", "GOOGLE_CLOUD_PROJECT"}},
		{"firestore bad prefix and database", func(c *backend.Config) {
			c.Store, c.FirestoreProject, c.FirestoreCollectionPrefix, c.FirestoreDatabase = "firestore", "p", "a/b", ""
		}, []string{"KITEFN_FIRESTORE_COLLECTION_PREFIX", "KITEFN_FIRESTORE_DATABASE"}},
		{"dynamodb bad table", func(c *backend.Config) { c.Store, c.DynamoDBTable = "dynamodb", "x" }, []string{"KITEFN_DYNAMODB_TABLE"}},
		{"dynamodb bad region", func(c *backend.Config) { c.Store, c.DynamoDBRegion = "dynamodb", "US East" }, []string{"KITEFN_DYNAMODB_REGION"}},
		{"dynamodb bad endpoint", func(c *backend.Config) { c.Store, c.DynamoDBEndpoint = "dynamodb", "127.0.0.1:8000" }, []string{"KITEFN_DYNAMODB_ENDPOINT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := backend.Open(t.Context(), cfg); err == nil {
				t.Error("Open accepted it")
			}
		})
	}
}

func TestGoogleCloudProjectFallback(t *testing.T) {
	cfg := load(t, map[string]string{"KITEFN_STORE": "firestore", "GOOGLE_CLOUD_PROJECT": "from-gcloud"})
	if err := cfg.Validate(); err != nil {
		t.Fatalf("GOOGLE_CLOUD_PROJECT was not used: %v", err)
	}
}

// roundTrip creates and reads back one record through s.
func roundTrip(t *testing.T, s store.Store, name string) {
	t.Helper()
	ctx := t.Context()
	c, err := s.Create(ctx, &store.Cluster{Name: "one"})
	if err != nil {
		t.Fatalf("%s: create: %v", name, err)
	}
	if got, err := s.Get(ctx, c.ID); err != nil || got.Name != "one" {
		t.Fatalf("%s: get: %v, %v", name, got, err)
	}
	if s.Name() != name {
		t.Errorf("Name() = %q, want %q", s.Name(), name)
	}
}

func TestOpenBbolt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	path := filepath.Join(dir, "kitefn.db")
	cfg := load(t, map[string]string{"KITEFN_BBOLT_PATH": path})
	s, err := backend.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s, "bbolt")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory has mode %o, want 700", perm)
	}
	// A second open of the same file waits for the lock, then says so.
	if _, err := backend.Open(t.Context(), cfg); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("second open: %v, want an unavailable error saying the file is locked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDynamoDB(t *testing.T) {
	srv := emulators.MustDynamoDB(t)
	cfg := load(t, map[string]string{
		"KITEFN_STORE":                 "dynamodb",
		"KITEFN_DYNAMODB_ENDPOINT":     srv.Endpoint,
		"KITEFN_DYNAMODB_CREATE_TABLE": "true",
		// The SDK's default chain finds these; never let it ask an instance metadata endpoint.
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_EC2_METADATA_DISABLED": "true",
	})
	s, err := backend.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	roundTrip(t, s, "dynamodb")
}

func TestOpenFirestore(t *testing.T) {
	emu := emulators.MustFirestore(t)
	cfg := load(t, map[string]string{
		"KITEFN_STORE":                       "firestore",
		"KITEFN_FIRESTORE_PROJECT":           "kitefn-test",
		"KITEFN_FIRESTORE_COLLECTION_PREFIX": "backend-test",
		"FIRESTORE_EMULATOR_HOST":            emu.Host,
	})
	s, err := backend.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	roundTrip(t, s, "firestore")
}

// Package backend picks and opens the cluster registry's store from configuration. Callers load Config with
// envconfig under the prefix KITEFN (envconfig.Process("KITEFN", &cfg)), so the variables are KITEFN_STORE,
// KITEFN_BBOLT_PATH, and so on.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/bolt"
)

// The backends KITEFN_STORE can name.
const (
	BBolt     = "bbolt"
	Firestore = "firestore"
	DynamoDB  = "dynamodb"
)

// Config selects and configures the store. Field tags name the variables without the KITEFN_ prefix.
type Config struct {
	// Store is bbolt (one local file; one process), firestore or dynamodb.
	Store string `envconfig:"STORE" default:"bbolt"`

	// BboltPath is the bbolt file; its directory is created (0700) if missing.
	BboltPath string `envconfig:"BBOLT_PATH" default:"./data/kitefn.db"`

	// FirestoreProject is the Google Cloud project; empty falls back to GOOGLE_CLOUD_PROJECT. The client talks
	// to the emulator when FIRESTORE_EMULATOR_HOST is set.
	FirestoreProject          string `envconfig:"FIRESTORE_PROJECT"`
	FirestoreDatabase         string `envconfig:"FIRESTORE_DATABASE" default:"(default)"`
	FirestoreCollectionPrefix string `envconfig:"FIRESTORE_COLLECTION_PREFIX" default:"kitefn"`

	// DynamoDB credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID…, shared files, roles).
	DynamoDBTable string `envconfig:"DYNAMODB_TABLE" default:"kitefn-clusters"`
	// DynamoDBEndpoint replaces the regional endpoint, e.g. http://127.0.0.1:8000 for a local server.
	DynamoDBEndpoint string `envconfig:"DYNAMODB_ENDPOINT"`
	DynamoDBRegion   string `envconfig:"DYNAMODB_REGION" default:"us-east-1"`
	// DynamoDBCreateTable creates the table at start if it is missing (local runs and tests).
	DynamoDBCreateTable bool `envconfig:"DYNAMODB_CREATE_TABLE" default:"false"`
}

// The name checks are loops, not regexps: bounded repetitions like {3,255} compile to large programs, and
// package-level regexps are compiled at every cold start.

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// validPrefix: 1-100 letters, digits, '-' or '_', starting with a letter or digit.
func validPrefix(s string) bool {
	if len(s) < 1 || len(s) > 100 || !isAlnum(rune(s[0])) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !isAlnum(r) && r != '-' && r != '_' })
}

// validTable: 3-255 letters, digits, '_', '-' or '.'.
func validTable(s string) bool {
	return len(s) >= 3 && len(s) <= 255 &&
		!strings.ContainsFunc(s, func(r rune) bool { return !isAlnum(r) && r != '-' && r != '_' && r != '.' })
}

// validRegion: lower-case words of letters and digits joined by single '-' (us-east-1).
func validRegion(s string) bool {
	for _, part := range strings.Split(s, "-") {
		if part == "" || strings.ContainsFunc(part, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
			return false
		}
	}
	return true
}

// Validate checks the settings of the chosen backend and names the variable to fix. It reports every problem,
// not only the first.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Store {
	case BBolt:
		if strings.TrimSpace(c.BboltPath) == "" {
			bad("KITEFN_BBOLT_PATH is empty: set the path of the bbolt file, e.g. ./data/kitefn.db")
		}
	case Firestore:
		if c.firestoreProject() == "" {
			bad("KITEFN_STORE=firestore needs a project: set KITEFN_FIRESTORE_PROJECT (or GOOGLE_CLOUD_PROJECT)")
		}
		if c.FirestoreDatabase == "" {
			bad(`KITEFN_FIRESTORE_DATABASE is empty: use "(default)" for the default database`)
		}
		if !validPrefix(c.FirestoreCollectionPrefix) {
			bad("KITEFN_FIRESTORE_COLLECTION_PREFIX=%q: want 1-100 letters, digits, '-' or '_', starting with a "+
				"letter or digit", c.FirestoreCollectionPrefix)
		}
	case DynamoDB:
		if !validTable(c.DynamoDBTable) {
			bad("KITEFN_DYNAMODB_TABLE=%q: a table name is 3-255 letters, digits, '_', '-' or '.'", c.DynamoDBTable)
		}
		if !validRegion(c.DynamoDBRegion) {
			bad("KITEFN_DYNAMODB_REGION=%q is not an AWS region name such as us-east-1", c.DynamoDBRegion)
		}
		if c.DynamoDBEndpoint != "" {
			u, err := url.Parse(c.DynamoDBEndpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("KITEFN_DYNAMODB_ENDPOINT=%q: want an http or https URL such as http://127.0.0.1:8000",
					c.DynamoDBEndpoint)
			}
		}
	default:
		bad("KITEFN_STORE=%q: want one of %s, %s, %s", c.Store, BBolt, Firestore, DynamoDB)
	}
	return errors.Join(errs...)
}

func (c Config) firestoreProject() string {
	if c.FirestoreProject != "" {
		return c.FirestoreProject
	}
	return os.Getenv("GOOGLE_CLOUD_PROJECT")
}

// Open validates cfg and opens the chosen store. Errors reaching the backend are *store.UnavailableError.
func Open(ctx context.Context, cfg Config) (store.Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store configuration: %w", err)
	}
	switch cfg.Store {
	case BBolt:
		if err := os.MkdirAll(filepath.Dir(cfg.BboltPath), 0o700); err != nil {
			return nil, fmt.Errorf("bbolt store: create the directory of KITEFN_BBOLT_PATH=%s: %w", cfg.BboltPath, err)
		}
		s, err := bolt.Open(ctx, cfg.BboltPath, bolt.Options{})
		if err != nil {
			return nil, err
		}
		return s, nil
	case Firestore:
		return openFirestore(ctx, cfg)
	case DynamoDB:
		return openDynamoDB(ctx, cfg)
	}
	return nil, fmt.Errorf("store configuration: unknown store %q", cfg.Store) // unreachable after Validate
}

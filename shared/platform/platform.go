// Package platform holds what the functions of one process share: the registry store, the kubeconfig sealer,
// the cluster client cache and the event sender. One Platform per process (per warm instance); functions get
// what they need of it in their constructor (functions/catalog wires them).
package platform

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/backend"
)

// Config is the shared configuration (env prefix KITEFN_). Load fills the nested parts with the same prefix.
type Config struct {
	Store  backend.Config      `ignored:"true"`
	Kube   kube.Config         `ignored:"true"`
	Events events.SenderConfig `ignored:"true"`
	// EncryptionKey seals kubeconfigs (32 bytes, base64). EncryptionKeyFile holds it instead. Without either,
	// one-process mode keeps a generated key in DataDir/encryption.key; a deployed function refuses to start,
	// and never creates a missing key file (two replicas would seal with different keys).
	EncryptionKey     string   `envconfig:"ENCRYPTION_KEY"`
	EncryptionKeyFile string   `envconfig:"ENCRYPTION_KEY_FILE"`
	EncryptionOldKeys []string `envconfig:"ENCRYPTION_OLD_KEYS"`
	DataDir           string   `envconfig:"DATA_DIR" default:"./data"`
	// StoreTimeout bounds each registry call that has no deadline of its own.
	StoreTimeout time.Duration `envconfig:"STORE_TIMEOUT" default:"10s"`
	// TokenCacheTTL is how long a named API token's lookup is trusted on a replica (a revocation elsewhere
	// takes effect here within it); AuditTimeout bounds an audit write, so it never holds up a request.
	TokenCacheTTL time.Duration `envconfig:"TOKEN_CACHE_TTL" default:"10s"`
	AuditTimeout  time.Duration `envconfig:"AUDIT_TIMEOUT" default:"2s"`
}

// Platform is the per-process set of shared resources.
type Platform struct {
	Config  Config
	Runtime runtime.Config
	Store   store.Store
	Sealer  *kubeconfig.Sealer
	// TicketKey seals terminal tickets: derived from the sealing key, so every instance accepts the tickets
	// any of them issued, and one key serves one purpose.
	TicketKey []byte
	Clients   *kube.Cache
	Events    *events.Sender
	Log       *zap.SugaredLogger
	// TokenAuth authenticates named API tokens (kfn_…) over the store; Audit records into the store's log.
	TokenAuth *access.TokenAuthenticator
	Audit     *access.Recorder
	// local delivers events in-process in one-process mode without K_SINK; Bind tells it the consumers.
	local *events.Dispatcher
}

// AllMode reports whether every function runs in this process (FUNCTION_TARGET unset or "all").
func (p *Platform) AllMode() bool { return p.Runtime.AllMode() }

// Bind is the runtime.Options.Bind hook: in-process events go to the consumers among fns.
func (p *Platform) Bind(fns []runtime.Function) {
	if p.local != nil {
		p.local.SetConsumers(consumers(fns))
	}
}

// Sealer builds the kubeconfig sealer from the configured keys.
func (c Config) sealer(allMode bool) (*kubeconfig.Sealer, error) {
	s, _, err := c.sealing(allMode)
	return s, err
}

// sealing is the sealer and the ticket key, derived from the sealing key.
func (c Config) sealing(allMode bool) (*kubeconfig.Sealer, []byte, error) {
	keys, err := c.keys(allMode, true)
	if err != nil {
		return nil, nil, err
	}
	s, err := kubeconfig.NewSealer(keys...)
	if err != nil {
		return nil, nil, err
	}
	m := hmac.New(sha256.New, keys[0])
	m.Write([]byte("kitefn/terminal-ticket/v1"))
	return s, m.Sum(nil), nil
}

// keys reads the encryption keys, the sealing one first. Without files it only checks what the environment
// holds (kitefn -check-config must create nothing), and a key file's key is not returned.
func (c Config) keys(allMode, files bool) ([][]byte, error) {
	var keys [][]byte
	add := func(k []byte, err error, what string) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		keys = append(keys, k)
		return nil
	}
	var err error
	switch {
	case c.EncryptionKey != "":
		k, perr := kubeconfig.ParseKey(c.EncryptionKey)
		err = add(k, perr, "KITEFN_ENCRYPTION_KEY")
	case c.EncryptionKeyFile != "" && files && allMode:
		k, ferr := kubeconfig.LoadOrCreateKeyFile(c.EncryptionKeyFile)
		err = add(k, ferr, "KITEFN_ENCRYPTION_KEY_FILE")
	case c.EncryptionKeyFile != "" && files:
		k, ferr := kubeconfig.LoadKeyFile(c.EncryptionKeyFile)
		err = add(k, ferr, "KITEFN_ENCRYPTION_KEY_FILE (a deployed function never creates its key)")
	case allMode && files:
		k, ferr := kubeconfig.LoadOrCreateKeyFile(filepath.Join(c.DataDir, "encryption.key"))
		err = add(k, ferr, "local encryption key")
	case c.EncryptionKeyFile == "" && !allMode:
		err = errors.New("no encryption key: set KITEFN_ENCRYPTION_KEY (openssl rand -base64 32) or KITEFN_ENCRYPTION_KEY_FILE")
	}
	for i, s := range c.EncryptionOldKeys {
		if err != nil {
			break
		}
		k, perr := kubeconfig.ParseKey(s)
		err = add(k, perr, fmt.Sprintf("KITEFN_ENCRYPTION_OLD_KEYS[%d]", i))
	}
	return keys, err
}

// New opens the store and builds the sealer, the client cache and the sender. In one-process mode without
// K_SINK, events go to the in-process consumers Bind names.
func New(ctx context.Context, cfg Config, rcfg runtime.Config, log *zap.SugaredLogger) (*Platform, error) {
	sealer, ticketKey, err := cfg.sealing(rcfg.AllMode())
	if err != nil {
		return nil, err
	}
	st, err := backend.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("opening the %s store: %w", cfg.Store.Store, err)
	}
	st = store.WithTimeout(st, cfg.StoreTimeout)
	clients, err := kube.NewCache(st, sealer, cfg.Kube)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	var sender *events.Sender
	var local *events.Dispatcher
	switch {
	case cfg.Events.Sink != "":
		sender, err = events.NewSender(cfg.Events)
	case rcfg.AllMode():
		local = events.NewDispatcher(log)
		sender, err = events.NewLocalSender(cfg.Events, local)
	default:
		log.Warn("K_SINK is not set: cluster events are not sent (bind the service to a Broker with a SinkBinding)")
	}
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &Platform{Config: cfg, Runtime: rcfg, Store: st, Sealer: sealer, TicketKey: ticketKey, Clients: clients, Events: sender, Log: log,
		TokenAuth: access.NewTokenAuthenticator(st, cfg.TokenCacheTTL), Audit: access.NewRecorder(st, cfg.AuditTimeout),
		local: local}, nil
}

// Load reads the configuration from the environment and validates it.
func Load() (Config, error) {
	var c Config
	for _, part := range []any{&c, &c.Store, &c.Kube, &c.Events} {
		if err := envconfig.Process("kitefn", part); err != nil {
			return c, fmt.Errorf("configuration: %w", err)
		}
	}
	if _, set := os.LookupEnv("KITEFN_BBOLT_PATH"); !set {
		c.Store.BboltPath = filepath.Join(c.DataDir, "kitefn.db") // the data dir holds everything local
	}
	if err := c.Store.Validate(); err != nil {
		return c, err
	}
	if err := c.Kube.Validate(); err != nil {
		return c, err
	}
	return c, c.Events.Validate()
}

// Check is the runtime.Options.Check hook: it validates the shared configuration and the encryption keys without
// opening the store or creating any file.
func Check(rcfg runtime.Config) error {
	cfg, err := Load()
	if err != nil {
		return err
	}
	if (cfg.Store.Store == backend.Firestore && !backend.FirestoreBuilt) ||
		(cfg.Store.Store == backend.DynamoDB && !backend.DynamoDBBuilt) {
		return fmt.Errorf("KITEFN_STORE=%s: this binary was built without it (make build STORE=%s)",
			cfg.Store.Store, cfg.Store.Store)
	}
	if _, err := access.LoadOIDCConfig(); err != nil {
		return err
	}
	_, err = cfg.keys(rcfg.AllMode(), false)
	return err
}

// Setup is the runtime.Options.Setup hook: it loads the config and builds the Platform the functions are
// constructed over.
func Setup(ctx context.Context, rcfg runtime.Config, log *zap.SugaredLogger) (*Platform, func(context.Context) error, error) {
	cfg, err := Load()
	if err != nil {
		return nil, nil, err
	}
	p, err := New(ctx, cfg, rcfg, log)
	if err != nil {
		return nil, nil, err
	}
	return p, func(context.Context) error { return p.Close() }, nil
}

// Close releases the store.
func (p *Platform) Close() error { return p.Store.Close() }

// consumers lists the functions that take CloudEvents, for in-process delivery.
func consumers(fns []runtime.Function) []events.Consumer {
	var out []events.Consumer
	for _, f := range fns {
		if c, ok := f.Value.(runtime.EventConsumer); ok {
			out = append(out, events.Consumer{Name: f.Name, Types: c.ConsumesEvents(),
				Handler: http.HandlerFunc(f.Value.Handle)})
		}
	}
	return out
}

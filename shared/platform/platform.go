// Package platform holds what the functions of one process share: the registry store, the kubeconfig sealer,
// the cluster client cache and the event sender. One Platform per process (per warm instance); functions get
// it from the context passed to Start.
package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"

	"github.com/kitefn/kitefn/events"
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
	// one-process mode keeps a generated key in DataDir/encryption.key; a deployed function refuses to start.
	EncryptionKey     string   `envconfig:"ENCRYPTION_KEY"`
	EncryptionKeyFile string   `envconfig:"ENCRYPTION_KEY_FILE"`
	EncryptionOldKeys []string `envconfig:"ENCRYPTION_OLD_KEYS"`
	AllowExecPlugins  bool     `envconfig:"ALLOW_EXEC_PLUGINS"`
	DataDir           string   `envconfig:"DATA_DIR" default:"./data"`
	// StoreTimeout bounds each registry call that has no deadline of its own.
	StoreTimeout time.Duration `envconfig:"STORE_TIMEOUT" default:"10s"`
}

// Platform is the per-process set of shared resources.
type Platform struct {
	Config  Config
	Store   store.Store
	Sealer  *kubeconfig.Sealer
	Clients *kube.Cache
	Events  *events.Sender
	Log     *zap.SugaredLogger
}

type ctxKey struct{}

// WithPlatform puts p in ctx for the functions' Start.
func WithPlatform(ctx context.Context, p *Platform) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the Platform in ctx, or an error that says the function was started without one.
func From(ctx context.Context) (*Platform, error) {
	p, ok := ctx.Value(ctxKey{}).(*Platform)
	if !ok {
		return nil, errors.New("no platform in the start context: start functions through runtime.Main or platform.Setup")
	}
	return p, nil
}

// Sealer builds the kubeconfig sealer from the configured keys.
func (c Config) sealer(allMode bool) (*kubeconfig.Sealer, error) {
	var keys [][]byte
	switch {
	case c.EncryptionKey != "":
		k, err := kubeconfig.ParseKey(c.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("KITEFN_ENCRYPTION_KEY: %w", err)
		}
		keys = append(keys, k)
	case c.EncryptionKeyFile != "":
		k, err := kubeconfig.LoadOrCreateKeyFile(c.EncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KITEFN_ENCRYPTION_KEY_FILE: %w", err)
		}
		keys = append(keys, k)
	case allMode:
		k, err := kubeconfig.LoadOrCreateKeyFile(filepath.Join(c.DataDir, "encryption.key"))
		if err != nil {
			return nil, fmt.Errorf("local encryption key: %w", err)
		}
		keys = append(keys, k)
	default:
		return nil, errors.New("no encryption key: set KITEFN_ENCRYPTION_KEY (openssl rand -base64 32) or KITEFN_ENCRYPTION_KEY_FILE")
	}
	for i, s := range c.EncryptionOldKeys {
		k, err := kubeconfig.ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("KITEFN_ENCRYPTION_OLD_KEYS[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return kubeconfig.NewSealer(keys...)
}

// New opens the store and builds the sealer, the client cache and the sender. In one-process mode without
// K_SINK, events go to the in-process consumers among fns.
func New(ctx context.Context, cfg Config, rcfg runtime.Config, log *zap.SugaredLogger, fns []runtime.Function) (*Platform, error) {
	if err := cfg.Events.Validate(); err != nil {
		return nil, err
	}
	sealer, err := cfg.sealer(rcfg.AllMode())
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
	switch {
	case cfg.Events.Sink != "":
		sender, err = events.NewSender(cfg.Events)
	case rcfg.AllMode():
		sender, err = events.NewLocalSender(cfg.Events, events.Dispatcher(log, consumers(fns)))
	default:
		log.Warn("K_SINK is not set: cluster events are not sent (bind the service to a Broker with a SinkBinding)")
	}
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &Platform{Config: cfg, Store: st, Sealer: sealer, Clients: clients, Events: sender, Log: log}, nil
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
	switch {
	case cfg.EncryptionKey != "":
		if _, err := kubeconfig.ParseKey(cfg.EncryptionKey); err != nil {
			return fmt.Errorf("KITEFN_ENCRYPTION_KEY: %w", err)
		}
	case cfg.EncryptionKeyFile != "" || rcfg.AllMode():
	default:
		return errors.New("no encryption key: set KITEFN_ENCRYPTION_KEY (openssl rand -base64 32) or KITEFN_ENCRYPTION_KEY_FILE")
	}
	for i, s := range cfg.EncryptionOldKeys {
		if _, err := kubeconfig.ParseKey(s); err != nil {
			return fmt.Errorf("KITEFN_ENCRYPTION_OLD_KEYS[%d]: %w", i, err)
		}
	}
	return nil
}

// Setup is the runtime.Options.Setup hook: it loads the config, builds the Platform and hands it to the
// functions' Start through the context.
func Setup(ctx context.Context, rcfg runtime.Config, log *zap.SugaredLogger, fns []runtime.Function) (
	context.Context, func(context.Context) error, error) {
	cfg, err := Load()
	if err != nil {
		return nil, nil, err
	}
	p, err := New(ctx, cfg, rcfg, log, fns)
	if err != nil {
		return nil, nil, err
	}
	return WithPlatform(ctx, p), func(context.Context) error { return p.Close() }, nil
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

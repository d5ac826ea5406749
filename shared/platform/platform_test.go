package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A deployed function must never invent its encryption key: two replicas would seal with different keys and
// each could open only its own records. One-process mode keeps a generated key so `make run` needs no setup.
func TestDeployedFunctionNeverCreatesItsKey(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "key")
	cfg := Config{EncryptionKeyFile: missing, DataDir: dir}

	_, err := cfg.sealer(false)
	if err == nil || !strings.Contains(err.Error(), "KITEFN_ENCRYPTION_KEY_FILE") {
		t.Fatalf("deployed mode with a missing key file: err = %v, want an error naming KITEFN_ENCRYPTION_KEY_FILE", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("deployed mode created the key file (stat: %v)", err)
	}

	if _, err := cfg.sealer(true); err != nil {
		t.Fatalf("one-process mode: %v", err)
	}
	if _, err := os.Stat(missing); err != nil {
		t.Fatalf("one-process mode did not keep its generated key: %v", err)
	}
	// Now the file exists, a deployed function reads it.
	if _, err := cfg.sealer(false); err != nil {
		t.Fatalf("deployed mode with the key file present: %v", err)
	}
	// Without any key a deployed function refuses to start.
	if _, err := (Config{DataDir: dir}).sealer(false); err == nil {
		t.Fatal("deployed mode without a key started")
	}
}

// The impersonation settings are read with the rest of the kube configuration and checked by -check-config.
func TestImpersonationConfig(t *testing.T) {
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Kube; k.ImpersonationCacheSize != 512 || k.ImpersonateTokenPrefix != "token:" || k.ImpersonateOIDCPrefix != "oidc:" {
		t.Fatalf("defaults: %d %q %q", k.ImpersonationCacheSize, k.ImpersonateTokenPrefix, k.ImpersonateOIDCPrefix)
	}
	// An empty prefix is a choice, not a missing value.
	t.Setenv("KITEFN_IMPERSONATE_TOKEN_PREFIX", "")
	t.Setenv("KITEFN_IMPERSONATE_OIDC_PREFIX", "sso:")
	t.Setenv("KITEFN_IMPERSONATION_CACHE_SIZE", "7")
	if cfg, err = Load(); err != nil {
		t.Fatal(err)
	}
	if k := cfg.Kube; k.ImpersonationCacheSize != 7 || k.ImpersonateTokenPrefix != "" || k.ImpersonateOIDCPrefix != "sso:" {
		t.Fatalf("from the environment: %d %q %q", k.ImpersonationCacheSize, k.ImpersonateTokenPrefix, k.ImpersonateOIDCPrefix)
	}
	t.Setenv("KITEFN_IMPERSONATION_CACHE_SIZE", "0")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "KITEFN_IMPERSONATION_CACHE_SIZE") {
		t.Fatalf("a cache size of 0: %v, want an error naming KITEFN_IMPERSONATION_CACHE_SIZE", err)
	}
}

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

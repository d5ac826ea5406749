package kubeconfig

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sealVersion prefixes every sealed blob so the format can change without guessing.
const sealVersion = 1

// aad binds ciphertexts to their purpose: a sealed kubeconfig cannot be replayed as some other sealed value.
var aad = []byte("kitefn/kubeconfig/v1")

// Sealer encrypts kubeconfigs with AES-256-GCM. The first key seals; every key opens, so keys can be rotated
// by putting the new one first and keeping the old ones until every record was rewritten.
type Sealer struct {
	keys []sealKey
}

type sealKey struct {
	id   [4]byte // first bytes of SHA-256 of the key: picks the key on Open without trying them all
	aead cipher.AEAD
}

// NewSealer takes 32-byte keys, the sealing key first.
func NewSealer(keys ...[]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no encryption key")
	}
	s := &Sealer{}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("encryption key %d is %d bytes, want 32 (AES-256)", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("encryption key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("encryption key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(k)
		var id [4]byte
		copy(id[:], sum[:4])
		s.keys = append(s.keys, sealKey{id: id, aead: aead})
	}
	return s, nil
}

// Seal encrypts plaintext: version byte, key id, nonce, ciphertext+tag.
func (s *Sealer) Seal(plaintext []byte) ([]byte, error) {
	k := s.keys[0]
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("reading nonce: %w", err)
	}
	out := make([]byte, 0, 1+4+len(nonce)+len(plaintext)+k.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, k.id[:]...)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts what Seal produced with any of the keys.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	if len(sealed) < 5 || sealed[0] != sealVersion {
		return nil, errors.New("sealed kubeconfig has an unknown format")
	}
	for _, k := range s.keys {
		if string(k.id[:]) != string(sealed[1:5]) {
			continue
		}
		rest := sealed[5:]
		if len(rest) < k.aead.NonceSize() {
			return nil, errors.New("sealed kubeconfig is truncated")
		}
		plain, err := k.aead.Open(nil, rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():], aad)
		if err != nil {
			return nil, fmt.Errorf("decrypting kubeconfig: %w", err)
		}
		return plain, nil
	}
	return nil, errors.New("kubeconfig was sealed with a key this server does not have (check KITEFN_ENCRYPTION_KEY)")
}

// ParseKey decodes a key given as base64 (standard or URL, padded or not) or 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding,
		base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("encryption key must be 32 bytes, base64-encoded (openssl rand -base64 32)")
}

// LoadKeyFile reads a base64 key from path; a missing file is an error (a deployed function must never invent
// a key: two replicas would seal with different ones).
func LoadKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateKeyFile reads a base64 key from path, or makes one there (0600) if the file does not exist: the
// local default, so `make run` needs no setup while the data stays encrypted at rest.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	k, err := LoadKeyFile(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	k = make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it first: use theirs
			return LoadOrCreateKeyFile(path)
		}
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	return k, f.Sync()
}

package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Tokens returns the API tokens from config. In one-process mode with none configured it reuses or creates a
// token file under DataDir and says so (created reports that); a deployed function must be given tokens.
func (c Config) Tokens() (tokens []string, generatedPath string, err error) {
	for _, t := range c.APITokens {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	if c.APITokensFile != "" {
		data, err := os.ReadFile(c.APITokensFile)
		if err != nil {
			return nil, "", fmt.Errorf("reading KITEFN_API_TOKENS_FILE: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				tokens = append(tokens, line)
			}
		}
	}
	for _, t := range tokens {
		if len(t) < 16 {
			return nil, "", errors.New("API tokens must be at least 16 characters (openssl rand -hex 24)")
		}
	}
	if len(tokens) > 0 {
		return tokens, "", nil
	}
	if !c.AllMode() {
		return nil, "", errors.New("no API token configured: set KITEFN_API_TOKENS or KITEFN_API_TOKENS_FILE")
	}
	path := filepath.Join(c.DataDir, "api-token")
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) >= 16 {
		return []string{strings.TrimSpace(string(data))}, path, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", fmt.Errorf("generating API token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("creating data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return nil, "", fmt.Errorf("writing API token file: %w", err)
	}
	return []string{tok}, path, nil
}

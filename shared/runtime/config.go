package runtime

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// Config is the runtime's own configuration. envconfig reads KITEFN_<NAME> and falls back to the bare <NAME>
// for the variables Knative sets (LISTEN_ADDRESS, PORT, FUNCTION_TARGET, K_SERVICE).
type Config struct {
	ListenAddress   string        `envconfig:"LISTEN_ADDRESS"`
	Port            string        `envconfig:"PORT"`
	Target          string        `envconfig:"FUNCTION_TARGET" default:"all"`
	KService        string        `envconfig:"K_SERVICE"`
	LogFormat       string        `envconfig:"LOG_FORMAT"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s"`
	// APITokens are the bearer tokens every route but health requires (comma-separated); APITokensFile holds
	// one per line. With neither, one-process mode makes a token under DataDir and prints it; a deployed
	// function refuses to start.
	APITokens     []string `envconfig:"API_TOKENS"`
	APITokensFile string   `envconfig:"API_TOKENS_FILE"`
	DataDir       string   `envconfig:"DATA_DIR" default:"./data"`
	// RateLimit is the requests per second each caller may send (its burst RateBurst); 0 turns limiting off.
	RateLimit float64 `envconfig:"RATE_LIMIT" default:"20"`
	RateBurst int     `envconfig:"RATE_BURST" default:"40"`
	// CORSOrigins are the exact browser origins allowed to call the API (comma-separated); empty sends no CORS
	// headers at all.
	CORSOrigins []string `envconfig:"CORS_ORIGINS"`
}

// AllMode reports whether every function runs in this process.
func (c Config) AllMode() bool { return c.Target == "" || c.Target == "all" }

// Address is where to listen: LISTEN_ADDRESS, else PORT on every interface (what Knative sets), else
// [::]:8080 for a deployed function and 127.0.0.1:8080 for the local one-process mode, so a laptop run is not
// reachable from the network by accident.
func (c Config) Address() string {
	switch {
	case c.ListenAddress != "":
		return c.ListenAddress
	case c.Port != "":
		return net.JoinHostPort("::", c.Port)
	case c.AllMode():
		return "127.0.0.1:8080"
	}
	return "[::]:8080"
}

// Format is the log encoding: JSON in a cluster (K_SERVICE set), console locally, unless set.
func (c Config) Format() string {
	if c.LogFormat != "" {
		return c.LogFormat
	}
	if c.KService != "" {
		return "json"
	}
	return "console"
}

// Validate checks the config against the known function names.
func (c Config) Validate(known []string) error {
	if !c.AllMode() {
		found := false
		for _, k := range known {
			found = found || k == c.Target
		}
		if !found {
			return fmt.Errorf("FUNCTION_TARGET %q is not a function; use one of %s, or all",
				c.Target, strings.Join(known, ", "))
		}
	}
	if _, _, err := net.SplitHostPort(c.Address()); err != nil {
		return fmt.Errorf("listen address %q is not host:port: %w", c.Address(), err)
	}
	if f := c.Format(); f != "json" && f != "console" {
		return fmt.Errorf("KITEFN_LOG_FORMAT must be json or console, got %q", f)
	}
	if c.RateLimit < 0 || c.RateBurst < 0 {
		return fmt.Errorf("KITEFN_RATE_LIMIT (%g) and KITEFN_RATE_BURST (%d) must not be negative", c.RateLimit, c.RateBurst)
	}
	if c.RateLimit > 0 && c.RateBurst == 0 {
		return errors.New("KITEFN_RATE_BURST must be at least 1 when KITEFN_RATE_LIMIT is set (0 refuses every request)")
	}
	if _, err := httpapi.ParseOrigins(c.CORSOrigins); err != nil {
		return fmt.Errorf("KITEFN_CORS_ORIGINS: %w", err)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("KITEFN_SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout)
	}
	return nil
}

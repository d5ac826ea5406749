package emulators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MinidynServerEnv names a prebuilt tests/cmd/minidyn-server binary to run instead of building one.
const MinidynServerEnv = "KITEFN_MINIDYN_SERVER"

// minidynPackage is the server's import path; `go build` finds it from any directory inside the module.
const minidynPackage = "github.com/kitefn/kitefn/tests/cmd/minidyn-server"

// DynamoDB is a running minidyn server speaking the DynamoDB JSON API. minidyn's limits (measured): no
// X-Amz-Crc32 header (clients must disable response checksum validation), DescribeTable reports an empty
// TableStatus (table waiters hang), Scan filters on missing attributes fail. TransactWriteItems works.
type DynamoDB struct {
	// Endpoint is "http://127.0.0.1:PORT", for the SDK's BaseEndpoint.
	Endpoint string
	proc     *process
	dir      string // holds the binary built for this server
}

// StartDynamoDB builds tests/cmd/minidyn-server (or uses $KITEFN_MINIDYN_SERVER), runs it on a free loopback
// port and waits until it answers HTTP. Building needs the go tool and a working directory inside the module,
// as tests have.
func StartDynamoDB(ctx context.Context) (*DynamoDB, error) {
	ctx, cancel := withStartTimeout(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "minidyn-server-")
	if err != nil {
		return nil, fmt.Errorf("minidyn server: %w", err)
	}
	bin, err := minidynBinary(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	out := &tailBuffer{}
	proc, err := startProcess("minidyn server", out, bin, "-addr", "127.0.0.1:0")
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// The server listens before it prints its address, so there is no free-port race.
	var endpoint string
	err = proc.waitReady(ctx, func(ctx context.Context) error {
		if endpoint == "" {
			addr, ok := out.lineAfter("listening on ")
			if !ok {
				return errors.New("no address printed yet")
			}
			endpoint = "http://" + addr
		}
		return probeHTTP(ctx, endpoint)
	})
	if err != nil {
		_ = proc.Stop()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &DynamoDB{Endpoint: endpoint, proc: proc, dir: dir}, nil
}

// MustDynamoDB starts a server for one test and stops it when the test ends; it fails t if the server cannot
// start.
func MustDynamoDB(t testing.TB) *DynamoDB {
	t.Helper()
	d, err := StartDynamoDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func minidynBinary(ctx context.Context, dir string) (string, error) {
	if bin := os.Getenv(MinidynServerEnv); bin != "" {
		if !fileExists(bin) {
			return "", fmt.Errorf("minidyn server: %s=%s, but there is no such file", MinidynServerEnv, bin)
		}
		return bin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("minidyn server: the go tool is not on PATH, so %s cannot be built; "+
			"build it yourself and set %s", minidynPackage, MinidynServerEnv)
	}
	bin := filepath.Join(dir, "minidyn-server")
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, minidynPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("minidyn server: go build %s (from a directory inside the kitefn module) failed "+
			"after %v: %w\n%s", minidynPackage, time.Since(start).Round(time.Millisecond), err, out)
	}
	return bin, nil
}

// probeHTTP succeeds once anything answers HTTP at endpoint (minidyn answers GET with 405).
func probeHTTP(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Output returns the tail of the server's log, for diagnosing a failing test.
func (d *DynamoDB) Output() string { return d.proc.out.String() }

// Stop ends the server (its data is lost) and removes the binary built for it. It is safe to call twice.
func (d *DynamoDB) Stop() error {
	if d == nil || d.proc == nil {
		return errors.New("minidyn server: not started")
	}
	err := d.proc.Stop()
	if rmErr := os.RemoveAll(d.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("minidyn server: remove %s: %w", d.dir, rmErr)
	}
	return err
}

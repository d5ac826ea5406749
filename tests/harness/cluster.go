// Package harness starts a real etcd and kube-apiserver on loopback for integration tests and hands out
// kubeconfigs for a few token-authenticated users. Binaries come from build-tools.sh (`make tools`).
//
// Once per package, from TestMain:
//
//	func TestMain(m *testing.M) {
//		c, err := harness.Start(context.Background())
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		c.Stop()
//		os.Exit(code)
//	}
//
// or per test with harness.MustStart(t).
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// AdminUser is in system:masters: it may do anything.
	AdminUser = "admin"
	// ViewerUser has no group but system:authenticated, so RBAC denies it almost everything until a test
	// binds it a role.
	ViewerUser = "viewer"

	// DefaultServiceClusterIPRange holds ~65k ClusterIPs, enough for benchmarks that create thousands of
	// Services (a /24 runs out at ~254).
	DefaultServiceClusterIPRange = "10.96.0.0/16"
	// DefaultStartTimeout bounds Start from launching etcd to the apiserver's /readyz answering 200.
	DefaultStartTimeout = 60 * time.Second

	// KeepDirEnv, set to 1, keeps every cluster's Dir (etcd data, certs, logs) after Stop.
	KeepDirEnv = "KITEFN_KEEP_CLUSTER_DIR"

	logTailLines   = 40
	portAttempts   = 5
	apiserverGrace = 15 * time.Second
	etcdGrace      = 10 * time.Second
	clusterName    = "kitefn-test"
	dirPattern     = "kitefn-cluster-*"
	ownerFile      = "owner.pid"
)

// user is a token-authenticated user of the static --token-auth-file.
type user struct {
	Name   string
	Groups []string
}

// Option changes how Start runs the cluster.
type Option func(*options)

type options struct {
	toolsDir       string
	serviceCIDR    string
	users          []user
	apiserverFlags []string
	startTimeout   time.Duration
	keepDir        bool
}

// WithToolsDir uses the etcd and kube-apiserver binaries in dir instead of ToolsDir's answer.
func WithToolsDir(dir string) Option { return func(o *options) { o.toolsDir = dir } }

// WithServiceClusterIPRange sets --service-cluster-ip-range (default DefaultServiceClusterIPRange).
func WithServiceClusterIPRange(cidr string) Option { return func(o *options) { o.serviceCIDR = cidr } }

// WithUser adds a token-authenticated user with these groups (besides system:authenticated, which every
// authenticated user gets). Replaces a user of the same name, admin and viewer included.
func WithUser(name string, groups ...string) Option {
	return func(o *options) {
		o.users = slices.DeleteFunc(o.users, func(u user) bool { return u.Name == name })
		o.users = append(o.users, user{Name: name, Groups: groups})
	}
}

// WithAPIServerFlags appends flags ("--name=value") after the harness's own; for a flag given twice the last
// value wins, except list flags, which add up.
func WithAPIServerFlags(flags ...string) Option {
	return func(o *options) { o.apiserverFlags = append(o.apiserverFlags, flags...) }
}

// WithStartTimeout bounds the wait for readiness (default DefaultStartTimeout).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithKeepDir keeps Dir after Stop, for looking at the logs.
func WithKeepDir() Option { return func(o *options) { o.keepDir = true } }

// Cluster is a running etcd + kube-apiserver pair. Its fields are read-only.
type Cluster struct {
	// URL is the apiserver's https://127.0.0.1:PORT.
	URL string
	// EtcdURL is etcd's client URL, for tests that need to look under the apiserver.
	EtcdURL string
	// Dir holds etcd's data (etcd/), the generated serving cert (certs/), the token file, the service
	// account key pair, one kubeconfig per user and the logs etcd.log and kube-apiserver.log.
	Dir string
	// ToolsDir is the folder the binaries came from.
	ToolsDir string
	// CAData is the PEM of the apiserver's self-signed serving cert and its CA, as written to certs/.
	CAData []byte
	// StartDuration is how long Start took from launching etcd to the apiserver being ready.
	StartDuration time.Duration

	opts      options
	tokens    map[string]string
	etcd      *process
	apiserver *process

	mu      sync.Mutex
	kwoks   []*Kwok
	stopped bool
}

// Start runs etcd and kube-apiserver on free loopback ports and returns once /readyz answers 200. ctx bounds
// only the start: the cluster lives until Stop, which the caller must call.
func Start(ctx context.Context, opts ...Option) (*Cluster, error) {
	o := options{
		serviceCIDR:  DefaultServiceClusterIPRange,
		users:        []user{{Name: AdminUser, Groups: []string{"system:masters"}}, {Name: ViewerUser}},
		startTimeout: DefaultStartTimeout,
		keepDir:      os.Getenv(KeepDirEnv) == "1",
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := validateUsers(o.users); err != nil {
		return nil, err
	}
	var err error
	if o.toolsDir == "" {
		o.toolsDir, err = ToolsDir(ctx)
	} else if missing := missingTools(o.toolsDir, []string{"etcd", "kube-apiserver"}); len(missing) > 0 {
		err = fmt.Errorf("tools folder %s lacks %s: `make tools` builds them", o.toolsDir, strings.Join(missing, ", "))
	}
	if err != nil {
		return nil, err
	}

	sweepStaleDirs()
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, fmt.Errorf("create cluster folder: %w", err)
	}
	c := &Cluster{Dir: dir, ToolsDir: o.toolsDir, opts: o, tokens: map[string]string{}}
	if err := c.start(ctx); err != nil {
		c.opts.keepDir = true // the logs explain the failure
		c.Stop()
		return nil, fmt.Errorf("start test cluster (files kept in %s): %w", dir, err)
	}
	return c, nil
}

// MustStart starts a cluster for one test (or benchmark) and stops it when the test ends; a failed test
// keeps the logs in Dir and says so.
func MustStart(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	c, err := Start(tb.Context(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() && !c.opts.keepDir {
			c.opts.keepDir = true
			tb.Logf("test cluster logs kept in %s", c.Dir)
		}
		c.Stop()
	})
	return c
}

func (c *Cluster) start(ctx context.Context) error {
	if err := os.WriteFile(filepath.Join(c.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write owner pid: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.startTimeout)
	defer cancel()
	began := time.Now()

	// The RSA key takes ~100 ms on a loaded box: make it while etcd starts.
	keyErr := make(chan error, 1)
	go func() { keyErr <- writeServiceAccountKeys(c.Dir) }()
	if err := c.writeTokens(); err != nil {
		return err
	}
	etcdErr := c.startEtcd(ctx)
	if err := errors.Join(<-keyErr, etcdErr); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	c.StartDuration = time.Since(began)
	for _, u := range c.opts.users {
		if err := os.WriteFile(c.KubeconfigFile(u.Name), c.Kubeconfig(u.Name), 0o600); err != nil {
			return fmt.Errorf("write kubeconfig of %s: %w", u.Name, err)
		}
	}
	return nil
}

// Stop ends kwok (if started), then the apiserver, then etcd, and removes Dir unless kept. The order matters:
// an apiserver whose etcd is gone hangs for 30 s on shutdown. Safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	kwoks := c.kwoks
	c.mu.Unlock()

	for _, k := range kwoks {
		k.Stop()
	}
	if c.apiserver != nil {
		c.apiserver.stop(apiserverGrace)
	}
	if c.etcd != nil {
		c.etcd.stop(etcdGrace)
	}
	if c.opts.keepDir {
		_ = os.RemoveAll(filepath.Join(c.Dir, "etcd")) // the data is big and useless without the cluster
		_ = os.Remove(filepath.Join(c.Dir, ownerFile)) // kept on purpose: not for sweepStaleDirs
		return
	}
	_ = os.RemoveAll(c.Dir)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	dataDir := filepath.Join(c.Dir, "etcd")
	for attempt := 1; ; attempt++ {
		ports, err := pickPorts(2)
		if err != nil {
			return err
		}
		// A lost race may have left a member with the old peer URL in the data dir.
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("clear etcd data dir: %w", err)
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		args := []string{
			"--name=kitefn",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=kitefn=" + peer,
			"--unsafe-no-fsync=true", // the data dies with the test: fsync only slows it down
			// A single member needs no slack for peers: the default 1 s election timeout costs ~0.8 s per start.
			"--heartbeat-interval=10",
			"--election-timeout=100",
			"--log-level=warn",
		}
		// ETCD_* variables of the test's environment would silently override these flags.
		p, err := startProcess("etcd", filepath.Join(c.ToolsDir, "etcd"), args,
			filepath.Join(c.Dir, "etcd.log"), nil, "ETCD_")
		if err != nil {
			return err
		}
		c.etcd = p
		err = waitEtcd(ctx, p, client)
		if err == nil {
			c.EtcdURL = client
			return nil
		}
		p.stop(etcdGrace)
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			return err
		}
	}
}

// waitEtcd polls etcd's /health until it reports a leader.
func waitEtcd(ctx context.Context, p *process, client string) error {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	var last string
	for {
		if err := p.exitedEarly("etcd", "healthy"); err != nil {
			return err
		}
		if body, code, err := get(ctx, hc, client+"/health", ""); err != nil {
			last = err.Error()
		} else if code == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
			return nil
		} else {
			last = fmt.Sprintf("HTTP %d: %s", code, bytes.TrimSpace(body))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy in time (%w); last /health: %s; last %d lines of %s:\n%s",
				ctx.Err(), last, logTailLines, p.logPath, p.logTail(logTailLines))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	certDir := filepath.Join(c.Dir, "certs")
	for attempt := 1; ; attempt++ {
		ports, err := pickPorts(1)
		if err != nil {
			return err
		}
		port := strconv.Itoa(ports[0])
		args := []string{
			"--etcd-servers=" + c.EtcdURL,
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--cert-dir=" + certDir,
			"--token-auth-file=" + filepath.Join(c.Dir, "tokens.csv"),
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://127.0.0.1:" + port + "/",
			"--service-account-key-file=" + filepath.Join(c.Dir, "sa.pub"),
			"--service-account-signing-key-file=" + filepath.Join(c.Dir, "sa.key"),
			"--service-cluster-ip-range=" + c.opts.serviceCIDR,
			"--allow-privileged=true",
			"--disable-admission-plugins=ServiceAccount",
			// Left alone, a loopback bind address makes the apiserver advertise the host's default-route
			// address, and fail to start on a host without one; loopback endpoints for the "kubernetes"
			// Service are invalid, so its reconciler is off.
			"--advertise-address=127.0.0.1",
			"--endpoint-reconciler-type=none",
			"--profiling=false",
		}
		args = append(args, c.opts.apiserverFlags...)
		p, err := startProcess("kube-apiserver", filepath.Join(c.ToolsDir, "kube-apiserver"), args,
			filepath.Join(c.Dir, "kube-apiserver.log"), nil)
		if err != nil {
			return err
		}
		c.apiserver = p
		c.URL = "https://127.0.0.1:" + port
		err = c.waitReady(ctx, p, certDir)
		if err == nil {
			return nil
		}
		p.stop(apiserverGrace)
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			return err
		}
	}
}

// waitReady polls /readyz as admin, trusting only the serving cert the apiserver wrote to certDir.
func (c *Cluster) waitReady(ctx context.Context, p *process, certDir string) error {
	certFile := filepath.Join(certDir, "apiserver.crt")
	var hc *http.Client
	last := "no serving certificate in " + certDir + " yet"
	defer func() {
		if hc != nil {
			hc.CloseIdleConnections()
		}
	}()
	for {
		if err := p.exitedEarly("kube-apiserver", "ready"); err != nil {
			return err
		}
		if hc == nil {
			// The file is written non-atomically before serving starts: accept it once it parses whole.
			if pool, pemData, ok := loadCertPool(certFile); ok {
				c.CAData = pemData
				hc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				}}
			}
		}
		if hc != nil {
			body, code, err := get(ctx, hc, c.URL+"/readyz", c.tokens[AdminUser])
			switch {
			case err != nil:
				last = err.Error()
			case code == http.StatusOK:
				return nil
			default:
				last = fmt.Sprintf("HTTP %d: %s", code, failedChecks(body))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready within %s (%w); last /readyz: %s; last %d lines of %s:\n%s",
				c.opts.startTimeout, ctx.Err(), last, logTailLines, p.logPath, p.logTail(logTailLines))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loadCertPool reads the apiserver's generated cert file (serving cert followed by its CA).
func loadCertPool(path string) (*x509.CertPool, []byte, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, false
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, false
		}
		pool.AddCert(cert)
		n++
	}
	return pool, data, n >= 2
}

// failedChecks keeps the failing lines of a /readyz answer, which lists every check.
func failedChecks(body []byte) string {
	var failed []string
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, line)
		}
	}
	if len(failed) == 0 {
		return strings.TrimSpace(string(body))
	}
	return strings.Join(failed, "; ")
}

func get(ctx context.Context, hc *http.Client, url, token string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return body, resp.StatusCode, err
}

func validateUsers(users []user) error {
	for _, u := range users {
		if u.Name == "" || strings.ContainsAny(u.Name, ",\"\n\r/\\") {
			return fmt.Errorf("harness user name %q: must be non-empty, without commas, quotes, slashes or newlines", u.Name)
		}
		for _, g := range u.Groups {
			if g == "" || strings.ContainsAny(g, ",\"\n\r") {
				return fmt.Errorf("harness user %s: group %q must be non-empty, without commas, quotes or newlines", u.Name, g)
			}
		}
	}
	return nil
}

// writeTokens writes the static token file: token,user,uid,"group1,group2".
func (c *Cluster) writeTokens() error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, u := range c.opts.users {
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return fmt.Errorf("make token: %w", err)
		}
		token := hex.EncodeToString(raw)
		c.tokens[u.Name] = token
		record := []string{token, u.Name, u.Name}
		if len(u.Groups) > 0 {
			record = append(record, strings.Join(u.Groups, ","))
		}
		if err := w.Write(record); err != nil {
			return fmt.Errorf("write token file: %w", err)
		}
	}
	w.Flush()
	if err := os.WriteFile(filepath.Join(c.Dir, "tokens.csv"), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}

// writeServiceAccountKeys writes the RSA pair the apiserver signs and verifies service account tokens with.
func writeServiceAccountKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), priv, 0o600); err != nil {
		return fmt.Errorf("write service account key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return fmt.Errorf("write service account public key: %w", err)
	}
	return nil
}

// sweepStaleDirs removes cluster folders left by test binaries that died without Stop (their children died
// with them through Pdeathsig). Folders without an owner file are being created, or were kept on purpose.
func sweepStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern))
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid != os.Getpid() && !pidAlive(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// Users lists the names of the pre-provisioned users.
func (c *Cluster) Users() []string {
	names := make([]string, 0, len(c.opts.users))
	for _, u := range c.opts.users {
		names = append(names, u.Name)
	}
	return names
}

// Token returns the bearer token of a user; it panics on an unknown user, a mistake in the test itself.
func (c *Cluster) Token(user string) string {
	token, ok := c.tokens[user]
	if !ok {
		panic(fmt.Sprintf("harness: no user %q (have %s; add one with WithUser)", user, strings.Join(c.Users(), ", ")))
	}
	return token
}

// Kubeconfig returns a kubeconfig YAML for user: the server URL, the apiserver's CA and the user's token.
func (c *Cluster) Kubeconfig(user string) []byte {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: c.Token(user)}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: user}
	cfg.CurrentContext = user
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		panic(fmt.Sprintf("harness: encode kubeconfig: %v", err)) // only plain strings and bytes inside
	}
	return out
}

// AdminKubeconfig is Kubeconfig(AdminUser).
func (c *Cluster) AdminKubeconfig() []byte { return c.Kubeconfig(AdminUser) }

// KubeconfigFile returns the path of user's kubeconfig in Dir, for child processes (KUBECONFIG, --kubeconfig).
func (c *Cluster) KubeconfigFile(user string) string {
	c.Token(user) // panics on an unknown user
	if user == AdminUser {
		return filepath.Join(c.Dir, "kubeconfig")
	}
	return filepath.Join(c.Dir, "kubeconfig-"+strings.ReplaceAll(user, ":", "_"))
}

// RESTConfig returns a new admin config. Client-side rate limiting is off (QPS -1): the apiserver is the
// test's own and client-go's default of 5 QPS would make benchmarks measure the limiter.
func (c *Cluster) RESTConfig() *rest.Config { return c.RESTConfigFor(AdminUser) }

// RESTConfigFor returns a new config for user, without client-side rate limiting.
func (c *Cluster) RESTConfigFor(user string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     c.Token(user),
		TLSClientConfig: rest.TLSClientConfig{CAData: bytes.Clone(c.CAData)},
		QPS:             -1,
	}
}

// Command bench measures what the foundation promises and prints a table with ratios against baselines
// measured in the same run: per store backend, 100 concurrent registrations and the p50 of one registration
// through the clusters API (beside a bare store create), and the cold start of the kitefn binary beside a bare
// net/http + client-go binary (goal: at most 1.5x), a pods LIST through the resources function, and search
// (cold, warm, index memory, ten clusters) and relations beside a bare client-go floor and the seed's design.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/emulators"
)

const token = "bench-token-0123456789abcdef"

const kubeconfig = `apiVersion: v1
kind: Config
current-context: bench
clusters:
- name: bench
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: Zm9v}
users:
- name: bench
  user: {token: bench-cluster-token}
contexts:
- name: bench
  context: {cluster: bench, user: bench}
`

func main() {
	only := flag.String("only", "", "run one part: stores, coldstart, resources, search or terminal")
	var so searchOptions
	flag.Float64Var(&so.scale, "search-scale", 1, "scale of the search seed (1: 10,000 pods, 2,000 deployments, 2,000 services, 5,000 configmaps)")
	flag.IntVar(&so.runs, "search-runs", 15, "measured runs per search row (warm rows take twice as many)")
	var to terminalOptions
	flag.IntVar(&to.sessions, "terminal-sessions", 1000, "concurrent idle pod-terminal sessions of the terminal part")
	flag.IntVar(&to.logMB, "terminal-log-mb", 50, "MiB of the followed pod's log file in the terminal part")
	flag.Parse()
	if err := run(context.Background(), *only, so, to); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, only string, so searchOptions, to terminalOptions) error {
	tmp, err := os.MkdirTemp("", "kitefn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	parts := []part{
		{"stores", func() error { return benchStores(ctx, tmp, w) }},
		{"coldstart", func() error { return benchColdStart(tmp, w) }},
		{"resources", func() error { return benchResources(ctx, tmp, w) }},
		{"search", func() error { return benchSearch(ctx, tmp, w, so) }},
		{"terminal", func() error { return benchTerminal(ctx, tmp, w, to) }},
	}
	// A failing part is reported and the others still run: the bench fails at the end.
	var errs []error
	for _, p := range parts {
		if only == "" || only == p.name {
			if err := p.run(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			}
		}
	}
	if only != "" && len(errs) == 0 && !slices.ContainsFunc(parts, func(p part) bool { return p.name == only }) {
		return fmt.Errorf("no part %q", only)
	}
	return errors.Join(errs...)
}

// part is one benchmark of the run, selected by -only.
type part struct {
	name string
	run  func() error
}

func benchStores(ctx context.Context, tmp string, w *tabwriter.Writer) error {
	fmt.Println("starting the Firestore emulator and the DynamoDB server…")
	fs, err := emulators.StartFirestore(ctx)
	if err != nil {
		return err
	}
	defer fs.Stop()
	dy, err := emulators.StartDynamoDB(ctx)
	if err != nil {
		return err
	}
	defer dy.Stop()

	backends := []struct {
		name string
		env  map[string]string
	}{
		{"bbolt", map[string]string{"KITEFN_STORE": "bbolt", "KITEFN_BBOLT_PATH": filepath.Join(tmp, "bench.db")}},
		{"firestore", map[string]string{"KITEFN_STORE": "firestore", "FIRESTORE_EMULATOR_HOST": fs.Host,
			"KITEFN_FIRESTORE_PROJECT": "kitefn-bench", "KITEFN_FIRESTORE_COLLECTION_PREFIX": fmt.Sprintf("bench%d", time.Now().UnixNano())}},
		{"dynamodb", map[string]string{"KITEFN_STORE": "dynamodb", "KITEFN_DYNAMODB_ENDPOINT": dy.Endpoint,
			"KITEFN_DYNAMODB_CREATE_TABLE": "true", "KITEFN_DYNAMODB_TABLE": "kitefn-bench",
			"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}},
	}
	type storeRow struct {
		name                 string
		concurrent, p50, raw time.Duration
	}
	var rows []storeRow
	for _, b := range backends {
		fmt.Printf("registrations on %s…\n", b.name)
		conc, p50, raw, err := benchStore(ctx, tmp, b.env)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		rows = append(rows, storeRow{b.name, conc, p50, raw})
	}

	fmt.Println()
	fmt.Fprintln(w, "store\t100 concurrent registrations\tp50 registration (API)\tp50 store create (baseline)\tAPI / store\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.2fx\t\n", r.name, r.concurrent.Round(time.Millisecond),
			r.p50.Round(10*time.Microsecond), r.raw.Round(10*time.Microsecond), float64(r.p50)/float64(r.raw))
	}
	return w.Flush()
}

func benchColdStart(tmp string, w *tabwriter.Writer) error {
	fmt.Println("cold starts (median of 20, alternating)…")
	bins, err := buildBinaries(tmp)
	if err != nil {
		return err
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	common := []string{"KITEFN_API_TOKENS=" + token, "KITEFN_ENCRYPTION_KEY=" + key,
		"KITEFN_BBOLT_PATH=" + filepath.Join(tmp, "cold.db"), "KITEFN_IMPORT_KUBECONFIG=false", "KITEFN_LOG_LEVEL=warn"}
	clustersEnv := append([]string{"FUNCTION_TARGET=clusters"}, common...)
	variants := []struct {
		name string
		bin  string
		env  []string
	}{
		{"baseline: net/http + client-go", bins["baseline"], nil},
		{"kitefn, all stores, FUNCTION_TARGET=clusters", bins["all"], clustersEnv},
		{"kitefn, all stores, FUNCTION_TARGET=all", bins["all"], append([]string{"FUNCTION_TARGET=all", "KITEFN_DATA_DIR=" + tmp}, common...)},
		{"kitefn bbolt image, FUNCTION_TARGET=clusters", bins["bbolt"], clustersEnv},
		{"kitefn firestore image (bbolt store here)", bins["firestore"], clustersEnv},
		{"kitefn dynamodb image (bbolt store here)", bins["dynamodb"], clustersEnv},
	}
	samples := make([][]time.Duration, len(variants))
	for i := 0; i < 20; i++ {
		for v, variant := range variants {
			d, err := coldStart(variant.bin, variant.env)
			if err != nil {
				return fmt.Errorf("%s: %w", variant.name, err)
			}
			samples[v] = append(samples[v], d)
		}
	}

	fmt.Println()
	baseline := median(samples[0])
	fmt.Fprintln(w, "binary\tcold start p50\tmin\tmax\tvs baseline (goal <= 1.50x)\t")
	for v, variant := range variants {
		m := median(samples[v])
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.2fx\t\n", variant.name, m.Round(100*time.Microsecond),
			minOf(samples[v]).Round(100*time.Microsecond), maxOf(samples[v]).Round(100*time.Microsecond),
			float64(m)/float64(baseline))
	}
	return w.Flush()
}

// benchStore serves the clusters function over the backend configured by env and measures registrations.
func benchStore(ctx context.Context, tmp string, env map[string]string) (concurrent, p50, raw time.Duration, err error) {
	for _, k := range []string{"KITEFN_STORE", "KITEFN_BBOLT_PATH", "FIRESTORE_EMULATOR_HOST"} {
		os.Unsetenv(k)
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	os.Setenv("KITEFN_DATA_DIR", tmp)
	os.Setenv("KITEFN_IMPORT_KUBECONFIG", "false")
	os.Setenv("FUNCTION_TARGET", "all")
	var rcfg runtime.Config
	if err := envconfig.Process("kitefn", &rcfg); err != nil {
		return 0, 0, 0, err
	}
	rcfg.RateLimit = 0 // the benchmark measures kitefn, not the per-caller limit
	cfg, err := platform.Load()
	if err != nil {
		return 0, 0, 0, err
	}
	log := zap.NewNop().Sugar()
	p, err := platform.New(ctx, cfg, rcfg, log)
	if err != nil {
		return 0, 0, 0, err
	}
	defer p.Close()
	fns := []runtime.Function{{Name: "clusters", Value: apitest.Function("clusters").New(p)}}
	srv, err := runtime.NewServer(rcfg, log, fns, []string{token})
	if err != nil {
		return 0, 0, 0, err
	}
	if err := srv.Start(logging.WithLogger(ctx, log)); err != nil {
		return 0, 0, 0, err
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}

	register := func(name string) error {
		body := fmt.Sprintf(`{"name":%q,"kubeconfig":%q}`, name, kubeconfig)
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/clusters", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			b, _ := io.ReadAll(res.Body)
			return fmt.Errorf("register %s: %d %s", name, res.StatusCode, b)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}

	var single []time.Duration
	for i := 0; i < 30; i++ {
		start := time.Now()
		if err := register(fmt.Sprintf("single-%d", i)); err != nil {
			return 0, 0, 0, err
		}
		single = append(single, time.Since(start))
	}
	var rawSamples []time.Duration
	for i := 0; i < 30; i++ {
		start := time.Now()
		if _, err := p.Store.Create(ctx, &store.Cluster{Name: fmt.Sprintf("raw-%d", i), Server: "https://x",
			Kubeconfig: []byte("sealed"), Prometheus: store.Prometheus{Status: store.PrometheusPending}}); err != nil {
			return 0, 0, 0, err
		}
		rawSamples = append(rawSamples, time.Since(start))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	start := time.Now()
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := register(fmt.Sprintf("concurrent-%d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	concurrent = time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, 0, err
	}
	list, err := p.Store.List(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(list) != 160 || list[len(list)-1].ID != 160 {
		return 0, 0, 0, fmt.Errorf("after 160 creates the registry holds %d records, last id %d", len(list), list[len(list)-1].ID)
	}
	return concurrent, median(single), median(rawSamples), nil
}

// buildBinaries builds the baseline and kitefn with the same flags as `make build`: with every store, and as
// the per-store images (STORE=… in the Makefile) that leave the other cloud SDK out.
func buildBinaries(tmp string) (map[string]string, error) {
	builds := []struct{ name, pkg, tags string }{
		{"baseline", "./tests/bench/baseline", ""},
		{"all", ".", ""},
		{"bbolt", ".", "kitefn_no_firestore,kitefn_no_dynamodb"},
		{"firestore", ".", "kitefn_no_dynamodb"},
		{"dynamodb", ".", "kitefn_no_firestore"},
	}
	out := map[string]string{}
	for _, b := range builds {
		path, err := goBuild(tmp, b.name, b.pkg, b.tags)
		if err != nil {
			return nil, err
		}
		out[b.name] = path
	}
	return out, nil
}

// goBuild builds pkg as `make build` does, into tmp/bin-name.
func goBuild(tmp, name, pkg, tags string) (string, error) {
	path := filepath.Join(tmp, "bin-"+name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-tags="+tags, "-o", path, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", name, err, msg)
	}
	return path, nil
}

// coldStart is exec → first 200 from /health/readiness.
func coldStart(bin string, env []string) (time.Duration, error) {
	proc, err := startReady(bin, env)
	if err != nil {
		return 0, err
	}
	proc.kill()
	return proc.ready, nil
}

// process is a kitefn (or baseline) binary serving on addr.
type process struct {
	cmd   *exec.Cmd
	addr  string
	ready time.Duration // exec → first 200 from /health/readiness
	out   *lockedBuffer
}

// lockedBuffer is a process's output, which may be read while the process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startReady runs bin on a free port and returns once /health/readiness answers 200.
func startReady(bin string, env []string) (*process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "LISTEN_ADDRESS=" + addr}, env...)
	p := &process{cmd: cmd, addr: addr, out: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for time.Since(start) < 10*time.Second {
		res, err := client.Get("http://" + addr + "/health/readiness")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				p.ready = time.Since(start)
				return p, nil
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	p.kill()
	return nil, fmt.Errorf("not ready within 10 s:\n%s", p.out.String())
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// percentile is the nearest-rank percentile p (0 < p <= 1).
func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[max(0, int(math.Ceil(p*float64(len(s))))-1)]
}

func minOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func maxOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

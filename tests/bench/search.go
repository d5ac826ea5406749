package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

const (
	// coldTerm is what the cold runs and the baselines search for: at every scale it names a few Pods.
	coldTerm      = "0042"
	searchCluster = "bench"
	// searchClusters is how many names the same apiserver is registered under for the multi-cluster rows.
	searchClusters = 10
	indexDeadline  = 3 * time.Minute
)

// searchTypes restricts kitefn's searches to the kinds the baselines list.
const searchTypes = "pods,deployments,services,configmaps"

// terms makes the warm searches' terms, never the same twice (so no answer can come from a result cache):
// seeded names, whole or cut, and every eighth one a term that matches nothing.
type terms struct {
	seed searchSeed
	n    int
	used map[string]bool
}

func (t *terms) next() (term string, match bool) {
	for {
		t.n++
		c := t.n
		if c%8 == 0 {
			return fmt.Sprintf("zz-none-%d", c), false
		}
		kind := []struct {
			format string
			count  int
		}{{"pod-%05d", t.seed.pods}, {"deploy-%04d", t.seed.deployments}, {"svc-%04d", t.seed.services},
			{"cm-%04d", t.seed.configmaps}}[c%4]
		name := fmt.Sprintf(kind.format, (c*7919)%kind.count)
		switch (c / 4) % 3 {
		case 1: // a prefix: up to ten objects
			term = name[:len(name)-1]
		case 2: // the number's last four digits: objects of every kind
			term = name[len(name)-4:]
		default:
			term = name
		}
		if !t.used[term] || t.n > 100000 {
			t.used[term] = true
			return term, true
		}
	}
}

// searchOptions are the search part's flags.
type searchOptions struct {
	scale float64
	runs  int
}

// benchSearch seeds a real apiserver and measures kitefn's search (cold, warm, memory, ten clusters) and
// relations beside the baselines, all in the same run. A kitefn row that fails is printed as such and the part
// returns an error after the table, so the baselines still show.
func benchSearch(ctx context.Context, tmp string, w *tabwriter.Writer, o searchOptions) error {
	seed := scaledSeed(o.scale)
	fmt.Printf("starting kube-apiserver and seeding %d pods, %d deployments, %d services, %d configmaps in %d namespaces…\n",
		seed.pods, seed.deployments, seed.services, seed.configmaps, searchNamespaces)
	kube, err := harness.Start(ctx)
	if err != nil {
		return err
	}
	defer kube.Stop()
	rc := kube.RESTConfig()
	rc.QPS, rc.Burst = -1, 0 // seeding is bounded by the workers, not a client-side limiter
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := seedSearch(ctx, cs, seed); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := seedRelations(ctx, cs); err != nil {
		return fmt.Errorf("seed relations: %w", err)
	}
	seeded := seed.total() + relationObjects
	took := time.Since(start)
	// The ReplicaSet and the namespaces were created too.
	created := seeded + 1 + searchNamespaces + 1
	fmt.Printf("seeded %d objects in %s (%.0f/s, %d workers)\n", created, took.Round(100*time.Millisecond),
		float64(created)/took.Seconds(), seedWorkers)

	kc := filepath.Join(tmp, "search-kubeconfig")
	if err := os.WriteFile(kc, kube.AdminKubeconfig(), 0o600); err != nil {
		return err
	}
	register, coldSearch, err := prepareKitefn(ctx, tmp, kube)
	if err != nil {
		return err
	}
	rows, objects, coldRes, err := searchBaselines(ctx, tmp, kc, rc, o.runs, coldSearch)
	if err != nil {
		return err
	}
	fmt.Printf("the baselines list %d objects of the 4 kinds\n", objects)

	k, err := benchSearchKitefn(ctx, register, seed, o.runs)
	if err != nil {
		return err
	}
	k.cold = coldRes
	floor, floorWarm, seedRow, floor10 := rows[0], rows[1], rows[2], rows[len(rows)-1]
	cold := searchRow{name: "kitefn: first search on a cold instance", res: k.cold,
		vs: &floor.res, vsSeed: &seedRow.res, goal: "<= 1.30x floor, >= 5x seed",
		met: func(p50 time.Duration) bool {
			return float64(p50) <= 1.3*float64(floor.res.p50()) && float64(seedRow.res.p50()) >= 5*float64(p50)
		}}
	table := append(rows[:len(rows)-1:len(rows)-1], cold,
		searchRow{name: "kitefn: warm-index search, server-side", res: k.warmServer, vs: &floorWarm.res, goal: "<= 2 ms", met: under(2 * time.Millisecond)},
		searchRow{name: "kitefn: warm-index search, through HTTP", res: k.warmHTTP, vs: &floorWarm.res},
		floor10,
		searchRow{name: fmt.Sprintf("kitefn: %d clusters warm (clusters=_all), server-side", searchClusters), res: k.multiServer, vs: &floor10.res, goal: "<= 5 ms", met: under(5 * time.Millisecond)},
		searchRow{name: fmt.Sprintf("kitefn: %d clusters warm (clusters=_all), through HTTP", searchClusters), res: k.multiHTTP, vs: &floor10.res},
		searchRow{name: fmt.Sprintf("kitefn: relations of a Deployment with %d pods, depth 3, warm", relPods), res: k.relations, goal: "<= 100 ms", met: under(100 * time.Millisecond)},
	)

	fmt.Println()
	fmt.Fprintf(w, "search %d objects (4 kinds, %d namespaces)\tp50\tp90\truns\tvs floor\tseed / this\tgoal\tmet\t\n", objects, searchNamespaces)
	var failed failures
	for _, r := range table {
		fmt.Fprintln(w, r.line())
		failed.add(r.name, r.res.err)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println()
	fmt.Fprintln(w, "index memory\tobjects\tbytes\tbytes per object\tgoal\tmet\t")
	for _, m := range k.memory {
		fmt.Fprintln(w, m.line())
		failed.add(m.name, m.err)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, n := range k.notes {
		fmt.Println("note:", n)
	}
	return failed.err()
}

// failures are the rows that failed, grouped by error (one route failing fails several rows).
type failures struct {
	errs []error
	rows [][]string
}

func (f *failures) add(row string, err error) {
	if err == nil {
		return
	}
	for i, e := range f.errs {
		if errorKey(e) == errorKey(err) {
			f.rows[i] = append(f.rows[i], row)
			return
		}
	}
	f.errs = append(f.errs, err)
	f.rows = append(f.rows, []string{row})
}

// errorKey groups errors: a route's answers differ only in their request ids.
func errorKey(err error) string {
	if se := (*statusError)(nil); errors.As(err, &se) {
		return fmt.Sprintf("%s %d", se.path, se.status)
	}
	return err.Error()
}

func (f *failures) err() error {
	if len(f.errs) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("kitefn rows failed:")
	for i, e := range f.errs {
		fmt.Fprintf(&b, "\n  %s\n    <- %s", e, strings.Join(f.rows[i], "; "))
	}
	return errors.New(b.String())
}

// searchBaselines measures the floor (new processes and a warm connection), the seed's design, kubectl when it
// is on the PATH, and ten clusters' floor (last). The floor's cold runs, kitefn's cold searches and the seed's
// design alternate, so that the load of the machine weighs on them alike. objects is what the floor listed.
func searchBaselines(ctx context.Context, tmp, kc string, rc *rest.Config, runs int, cold func() (time.Duration, error)) ([]searchRow, int64, samples, error) {
	fmt.Printf("%d rounds of: the bare client-go floor in a new process, kitefn's first search in a new process, the seed's design…\n", runs)
	var coldRes samples
	bin, err := goBuild(tmp, "floor", "./tests/bench/floor", "")
	if err != nil {
		return nil, 0, coldRes, err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, 0, coldRes, err
	}
	if _, _, err := seedDesign(ctx, dc, coldTerm); err != nil { // warms its connection
		return nil, 0, coldRes, fmt.Errorf("seed's design: %w", err)
	}
	var fresh, seedRes samples
	var res *floorResult
	for i := 0; i < runs; i++ {
		s, r, err := runFloor(ctx, bin, kc, coldTerm, 1, 1, true)
		if err != nil {
			return nil, 0, coldRes, err
		}
		fresh.d, res = append(fresh.d, s...), r
		if r.Matches == 0 {
			return nil, 0, coldRes, fmt.Errorf("the floor found no name holding %q among %d objects", coldTerm, r.Objects)
		}
		if coldRes.err == nil {
			coldRes.add(cold())
		}
		start := time.Now()
		objects, matches, err := seedDesign(ctx, dc, coldTerm)
		if err != nil {
			return nil, 0, coldRes, fmt.Errorf("seed's design: %w", err)
		}
		seedRes.d = append(seedRes.d, time.Since(start))
		if objects != r.Objects || matches != r.Matches {
			return nil, 0, coldRes, fmt.Errorf("seed's design listed %d objects and matched %d, the floor %d and %d", objects, matches, r.Objects, r.Matches)
		}
	}
	fmt.Println("the floor on a warm connection, for ten clusters, kubectl…")
	warm, _, err := runFloor(ctx, bin, kc, coldTerm, runs, 1, false)
	if err != nil {
		return nil, 0, coldRes, err
	}
	ten, _, err := runFloor(ctx, bin, kc, coldTerm, runs, searchClusters, false)
	if err != nil {
		return nil, 0, coldRes, err
	}
	rows := []searchRow{
		{name: "floor: bare client-go, 4 concurrent metadata protobuf LISTs, new process", res: fresh},
		{name: "floor: same, warm connection", res: samples{d: warm}},
		{name: "seed's design: 4 concurrent full dynamic LISTs + filter, warm connection", res: seedRes, vs: &fresh},
	}
	if path, err := exec.LookPath("kubectl"); err == nil {
		rows = append(rows, searchRow{name: "kubectl get pods,deploy,svc,cm -A -o name | grep", res: measureKubectl(ctx, path, kc, runs), vs: &fresh})
	} else {
		fmt.Println("kubectl is not on the PATH: its row is left out")
	}
	rows = append(rows, searchRow{name: fmt.Sprintf("floor: %d clusters, %d concurrent LISTs, warm connections", searchClusters, 4*searchClusters), res: samples{d: ten}})
	return rows, res.Objects, coldRes, nil
}

// measureKubectl times the shell pipeline a user would type; a failure is its row's, not the bench's.
func measureKubectl(ctx context.Context, path, kc string, runs int) samples {
	var out samples
	script := fmt.Sprintf("%q --kubeconfig %q get pods,deploy,svc,cm -A -o name | grep -- %q", path, kc, coldTerm)
	for i := 0; i <= runs; i++ {
		start := time.Now()
		if msg, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput(); err != nil {
			out.err = fmt.Errorf("%s: %v: %s", script, err, msg)
			return out
		}
		if i > 0 { // the first run fills kubectl's discovery cache
			out.d = append(out.d, time.Since(start))
		}
	}
	return out
}

// kitefnSearch is what the kitefn rows measured.
type kitefnSearch struct {
	cold, warmServer, warmHTTP, multiServer, multiHTTP, relations samples
	memory                                                        []memoryRow
	notes                                                         []string
}

// prepareKitefn sets the environment kitefn's search runs in, registers the apiserver as searchCluster and
// builds the kitefn binary. register adds a name for the apiserver through an instance's store; cold starts a
// new kitefn process (FUNCTION_TARGET=search: a cold instance with an empty index) and times its first search.
func prepareKitefn(ctx context.Context, tmp string, kube *harness.Cluster) (register func(*searchInstance, string) error, cold func() (time.Duration, error), err error) {
	env := map[string]string{"KITEFN_STORE": "bbolt", "KITEFN_BBOLT_PATH": filepath.Join(tmp, "search.db"),
		"KITEFN_DATA_DIR": tmp, "FUNCTION_TARGET": "all", "KITEFN_IMPORT_KUBECONFIG": "false", "K_SINK": "",
		"KITEFN_ENCRYPTION_KEY": apitest.EncryptionKey, "KITEFN_PROMETHEUS_URLS": "", "KITEFN_LOG_LEVEL": "warn",
		// Ten clusters of the full seed must fit: an eviction would leave the rows measuring a partial index.
		"KITEFN_SEARCH_INDEX_BUDGET": "4Gi"}
	for k, v := range env {
		os.Setenv(k, v)
	}
	register = func(inst *searchInstance, name string) error {
		sealed, err := inst.p.Sealer.Seal(kube.AdminKubeconfig())
		if err != nil {
			return err
		}
		_, err = inst.p.Store.Create(ctx, &store.Cluster{Name: name, Server: kube.URL, Kubeconfig: sealed,
			Prometheus: store.Prometheus{Status: store.PrometheusPending}})
		return err
	}
	inst, err := startSearch(ctx)
	if err != nil {
		return nil, nil, err
	}
	err = register(inst, searchCluster)
	inst.close() // the cold processes open the same bbolt file
	if err != nil {
		return nil, nil, err
	}
	bin, err := goBuild(tmp, "kitefn-search", ".", "")
	if err != nil {
		return nil, nil, err
	}
	env["FUNCTION_TARGET"], env["KITEFN_API_TOKENS"] = "search", token
	var procEnv []string
	for k, v := range env {
		procEnv = append(procEnv, k+"="+v)
	}
	cold = func() (time.Duration, error) {
		proc, err := startReady(bin, procEnv)
		if err != nil {
			return 0, fmt.Errorf("cold kitefn: %w", err)
		}
		defer proc.kill()
		a, err := newSearchClient("http://"+proc.addr).search(ctx, url.Values{"q": {coldTerm}, "cluster": {searchCluster}, "types": {searchTypes}})
		if err == nil && a.total() == 0 {
			err = fmt.Errorf("no item for %q", coldTerm)
		}
		return a.http, err
	}
	return register, cold, nil
}

// benchSearchKitefn measures kitefn's warm search in this process, through the real runtime, so that its heap
// can be read: the index, ten clusters and relations. Only setting up fails it; a route that answers badly
// fails its rows.
func benchSearchKitefn(ctx context.Context, register func(*searchInstance, string) error, seed searchSeed, runs int) (*kitefnSearch, error) {
	seeded := seed.total() + relationObjects
	out := &kitefnSearch{}
	fmt.Println("kitefn: building the index of a warm instance…")
	before := heapInUse()
	inst, err := startSearch(ctx)
	if err != nil {
		return nil, err
	}
	defer inst.close()
	if _, err := inst.search(ctx, url.Values{"q": {coldTerm}, "cluster": {searchCluster}, "types": {searchTypes}}); err != nil {
		out.fail(err)
		out.relations = measureRelations(ctx, inst, runs)
		return out, nil
	}
	stats, err := inst.waitIndexed(ctx, []string{searchCluster}, seeded)
	after := heapInUse()
	st := stats[searchCluster]
	out.memory = append(out.memory,
		memoryRow{name: "kitefn: GET /api/v1/search/status (index's own count)", objects: st.objects, bytes: st.bytes, err: err},
		memoryRow{name: "kitefn: heap in use after GC, index built minus before", objects: max(st.objects, int64(seeded)),
			bytes: int64(after) - int64(before)})

	fmt.Println("kitefn: warm searches…")
	gen := &terms{seed: seed, used: map[string]bool{coldTerm: true}}
	warm := func(server, through *samples, q url.Values, want func(searchAnswer) error) {
		for i := 0; i < 2*runs+1; i++ {
			term, match := gen.next()
			q.Set("q", term)
			a, err := inst.search(ctx, q)
			if err == nil {
				err = want(a)
			}
			if err == nil && (a.total() > 0) != match {
				err = fmt.Errorf("%q answered %d items", term, a.total())
			}
			through.add(a.http, err)
			if err == nil && a.server < 0 {
				err = errors.New("neither a Server-Timing search;dur= header nor clusters[].elapsedMs")
			}
			server.add(a.server, err)
		}
	}
	fromIndex := func(clusters int) func(searchAnswer) error {
		return func(a searchAnswer) error {
			if len(a.Clusters) != clusters {
				return fmt.Errorf("the answer names %d clusters, want %d", len(a.Clusters), clusters)
			}
			for _, c := range a.Clusters {
				if c.Source != "index" {
					return fmt.Errorf("cluster %s answered from %q, not the index", c.Name, c.Source)
				}
			}
			return nil
		}
	}
	warm(&out.warmServer, &out.warmHTTP, url.Values{"cluster": {searchCluster}, "types": {searchTypes}}, fromIndex(1))

	fmt.Printf("kitefn: relations of the %d-pod Deployment…\n", relPods)
	out.relations = measureRelations(ctx, inst, runs)

	fmt.Printf("kitefn: registering %d more names for the apiserver and indexing them…\n", searchClusters-1)
	names := []string{searchCluster}
	for i := 1; i < searchClusters; i++ {
		names = append(names, fmt.Sprintf("%s-%02d", searchCluster, i))
		if err := register(inst, names[i]); err != nil {
			return nil, err
		}
	}
	all := url.Values{"q": {coldTerm}, "clusters": {"_all"}, "types": {searchTypes}}
	if _, err := inst.search(ctx, all); err != nil {
		out.multiServer.err, out.multiHTTP.err = err, err
		return out, nil
	}
	if _, err := inst.waitIndexed(ctx, names, seeded); err != nil {
		out.notes = append(out.notes, fmt.Sprintf("ten clusters: %v", err))
	}
	warm(&out.multiServer, &out.multiHTTP, url.Values{"clusters": {"_all"}, "types": {searchTypes}}, fromIndex(searchClusters))
	return out, nil
}

// measureRelations times the relations of the seeded Deployment, after one call that warms whatever it uses.
func measureRelations(ctx context.Context, inst *searchInstance, runs int) samples {
	var out samples
	for i := 0; i <= runs && out.err == nil; i++ {
		d, err := inst.relations(ctx)
		if i > 0 || err != nil {
			out.add(d, err)
		}
	}
	return out
}

// fail marks every warm search row as failed by err.
func (k *kitefnSearch) fail(err error) {
	for _, s := range []*samples{&k.warmServer, &k.warmHTTP, &k.multiServer, &k.multiHTTP} {
		s.err = err
	}
	k.memory = append(k.memory, memoryRow{name: "kitefn: index memory", err: err})
}

// searchInstance is one kitefn process's worth of search function in this process: its own platform (store
// handle, client cache), runtime and listener, so a new one starts with an empty index.
type searchInstance struct {
	*searchClient
	p   *platform.Platform
	srv *runtime.Server
	ts  *httptest.Server
}

func startSearch(ctx context.Context) (*searchInstance, error) {
	var rcfg runtime.Config
	if err := envconfig.Process("kitefn", &rcfg); err != nil {
		return nil, err
	}
	rcfg.RateLimit = 0 // the benchmark measures kitefn, not the per-caller limit
	cfg, err := platform.Load()
	if err != nil {
		return nil, err
	}
	log := zap.NewNop().Sugar()
	p, err := platform.New(ctx, cfg, rcfg, log)
	if err != nil {
		return nil, err
	}
	opts := runtime.Options[*platform.Platform]{Functions: []apitest.Fn{apitest.Function("search")},
		Bind: func(p *platform.Platform, fns []runtime.Function) { p.Bind(fns) }}
	srv, err := runtime.NewServer(rcfg, log, opts.Build(rcfg, p), []string{token})
	if err == nil {
		err = srv.Start(logging.WithLogger(ctx, log))
	}
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	ts := httptest.NewServer(srv.Handler())
	return &searchInstance{searchClient: newSearchClient(ts.URL), p: p, srv: srv, ts: ts}, nil
}

func (s *searchInstance) close() {
	s.ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.srv.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench: stopping the search function:", err)
	}
	_ = s.p.Close()
}

// searchClient calls a search function at url with the bench's token.
type searchClient struct {
	url string
	hc  *http.Client
}

func newSearchClient(url string) *searchClient {
	return &searchClient{url: url, hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// get calls the function and times the call; a non-200 answer is an error quoting the body.
func (s *searchClient) get(ctx context.Context, path string) (http.Header, []byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	res, err := s.hc.Do(req)
	if err != nil {
		return nil, nil, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	took := time.Since(start)
	if err != nil {
		return nil, nil, took, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, nil, took, &statusError{path: path, status: res.StatusCode, body: body}
	}
	return res.Header, body, took, nil
}

// statusError is a route's non-200 answer.
type statusError struct {
	path   string
	status int
	body   []byte
}

func (e *statusError) Error() string {
	return fmt.Sprintf("GET %s answered %d: %.300s", e.path, e.status, bytes.TrimSpace(e.body))
}

// short is the status and the error code of the JSON error shape, for the table.
func (e *statusError) short() string {
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(e.body, &b)
	return strings.TrimSpace(fmt.Sprintf("%d %s", e.status, b.Error.Code))
}

// searchAnswer is GET /api/v1/search's answer, with the two durations measured.
type searchAnswer struct {
	Items    []json.RawMessage `json:"items"`
	Total    int64             `json:"total"`
	Partial  bool              `json:"partial"`
	Errors   []json.RawMessage `json:"errors"`
	Clusters []struct {
		Name      string  `json:"name"`
		Status    string  `json:"status"`
		Source    string  `json:"source"`
		ElapsedMs float64 `json:"elapsedMs"`
	} `json:"clusters"`
	http, server time.Duration
}

func (a searchAnswer) total() int64 { return max(a.Total, int64(len(a.Items))) }

// search runs one search; server is the Server-Timing search;dur=, else the slowest clusters[].elapsedMs,
// else -1.
func (s *searchClient) search(ctx context.Context, q url.Values) (searchAnswer, error) {
	var a searchAnswer
	h, body, took, err := s.get(ctx, "/api/v1/search?"+q.Encode())
	a.http = took
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("search answer %.200s: %w", body, err)
	}
	a.http = took
	if a.Partial || len(a.Errors) > 0 {
		return a, fmt.Errorf("partial answer: %.300s", body)
	}
	a.server = -1
	if d, ok := serverTiming(h, "search"); ok {
		a.server = d
	} else {
		for _, c := range a.Clusters {
			a.server = max(a.server, time.Duration(c.ElapsedMs*float64(time.Millisecond)))
		}
	}
	return a, nil
}

// relations fetches the seeded Deployment's graph at depth 3 and checks it holds the ReplicaSet's Pods.
func (s *searchClient) relations(ctx context.Context) (time.Duration, error) {
	_, body, took, err := s.get(ctx, fmt.Sprintf("/api/v1/relations/deployments/%s/%s?depth=3&cluster=%s", relNamespace, relName, searchCluster))
	if err != nil {
		return took, err
	}
	var g struct {
		Nodes []json.RawMessage `json:"nodes"`
		Edges []json.RawMessage `json:"edges"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		return took, fmt.Errorf("relations answer %.200s: %w", body, err)
	}
	// The Deployment, its ReplicaSet and the Pods at least (the Service and the ConfigMap come on top).
	if len(g.Nodes) < relPods+2 || len(g.Edges) < relPods+1 {
		return took, fmt.Errorf("relations answered %d nodes and %d edges, want at least %d and %d", len(g.Nodes), len(g.Edges), relPods+2, relPods+1)
	}
	return took, nil
}

// indexStat is one cluster's line of the status route.
type indexStat struct{ objects, bytes int64 }

// waitIndexed polls GET /api/v1/search/status until every named cluster holds at least want objects (the
// index may hold more kinds than the seeded ones).
func (s *searchClient) waitIndexed(ctx context.Context, names []string, want int) (map[string]indexStat, error) {
	deadline := time.Now().Add(indexDeadline)
	for {
		_, body, _, err := s.get(ctx, "/api/v1/search/status")
		if err != nil {
			return nil, err
		}
		stats, ok := parseStatus(body)
		if !ok {
			return nil, fmt.Errorf("no objects count per cluster in the status answer %.300s", body)
		}
		done := true
		for _, n := range names {
			done = done && stats[n].objects >= int64(want)
		}
		if done {
			return stats, nil
		}
		if time.Now().After(deadline) {
			return stats, fmt.Errorf("after %s the index holds %v, want %d objects in each of %v", indexDeadline, stats, want, names)
		}
		time.Sleep(100 * time.Millisecond) // polling another process's progress: nothing to wait on
	}
}

// parseStatus reads the status answer defensively: clusters as a list of objects with a name, or as an
// object keyed by name, each with a count whose key holds "object" and a size whose key holds "byte" or
// "memory" (directly or one level down).
func parseStatus(body []byte) (map[string]indexStat, bool) {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return nil, false
	}
	entries := map[string]any{}
	top, _ := doc.(map[string]any)
	list := doc
	if top != nil {
		if c, ok := top["clusters"]; ok {
			list = c
		} else if c, ok := top["items"]; ok {
			list = c
		}
	}
	switch l := list.(type) {
	case []any:
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				name, _ := m["name"].(string)
				if name == "" {
					name, _ = m["cluster"].(string)
				}
				entries[name] = m
			}
		}
	case map[string]any:
		entries = l
	}
	out := map[string]indexStat{}
	found := false
	for name, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		objects, okO := findNumber(m, "objects", func(k string) bool { return strings.Contains(k, "object") }, 1)
		size, _ := findNumber(m, "bytes", func(k string) bool { return strings.Contains(k, "byte") || strings.Contains(k, "memory") }, 1)
		if okO {
			found = true
			out[name] = indexStat{objects: int64(objects), bytes: int64(size)}
		}
	}
	return out, found
}

// findNumber is the number under key in m, else the first under a key match accepts (lower-cased), in m or,
// depth levels down, in its objects.
func findNumber(m map[string]any, key string, match func(string) bool, depth int) (float64, bool) {
	if n, ok := m[key].(float64); ok {
		return n, true
	}
	for k, v := range m {
		if n, ok := v.(float64); ok && match(strings.ToLower(k)) {
			return n, true
		}
	}
	if depth > 0 {
		for _, v := range m {
			if sub, ok := v.(map[string]any); ok {
				if n, ok := findNumber(sub, key, match, depth-1); ok {
					return n, true
				}
			}
		}
	}
	return 0, false
}

// serverTiming is metric's dur= in the Server-Timing header (milliseconds).
func serverTiming(h http.Header, metric string) (time.Duration, bool) {
	for _, v := range h.Values("Server-Timing") {
		for _, m := range strings.Split(v, ",") {
			params := strings.Split(strings.TrimSpace(m), ";")
			if strings.TrimSpace(params[0]) != metric {
				continue
			}
			for _, p := range params[1:] {
				if d, ok := strings.CutPrefix(strings.TrimSpace(p), "dur="); ok {
					if ms, err := strconv.ParseFloat(d, 64); err == nil {
						return time.Duration(ms * float64(time.Millisecond)), true
					}
				}
			}
		}
	}
	return 0, false
}

func heapInUse() uint64 {
	var ms goruntime.MemStats
	goruntime.GC()
	goruntime.GC()
	goruntime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// samples are one row's durations, or the error that stopped them.
type samples struct {
	d   []time.Duration
	err error
}

func (s *samples) add(d time.Duration, err error) {
	if s.err != nil {
		return
	}
	if err != nil {
		s.err = err
		return
	}
	s.d = append(s.d, d)
}

func (s samples) p50() time.Duration { return median(s.d) }

// p90 is the nearest-rank 90th percentile.
func (s samples) p90() time.Duration { return percentile(s.d, 0.9) }

// searchRow is a line of the search table: vs is the baseline it is divided by, vsSeed the seed's design it is
// compared to (seed / this: how many times faster), met says whether the p50 meets the goal.
type searchRow struct {
	name       string
	res        samples
	vs, vsSeed *samples
	goal       string
	met        func(p50 time.Duration) bool
}

func under(limit time.Duration) func(time.Duration) bool {
	return func(p50 time.Duration) bool { return p50 <= limit }
}

func (r searchRow) line() string {
	if r.res.err != nil {
		return fmt.Sprintf("%s\tFAILED: %s\t\t\t\t\t%s\tno\t", r.name, oneLine(r.res.err), r.goal)
	}
	ratio := func(a, b time.Duration) string {
		r := float64(a) / float64(b)
		if r < 0.1 {
			return fmt.Sprintf("%.2gx", r) // warm rows are a small fraction of a LIST
		}
		return fmt.Sprintf("%.2fx", r)
	}
	p50 := r.res.p50()
	vs, seed, met := "", "", ""
	if r.vs != nil && r.vs.err == nil {
		vs = ratio(p50, r.vs.p50())
	}
	if r.vsSeed != nil && r.vsSeed.err == nil {
		seed = ratio(r.vsSeed.p50(), p50)
	}
	if r.met != nil {
		met = map[bool]string{true: "yes", false: "NO"}[r.met(p50)]
	}
	return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t", r.name, fmtDuration(p50), fmtDuration(r.res.p90()),
		len(r.res.d), vs, seed, r.goal, met)
}

// memoryRow is a line of the index memory table (goal: at most 1 KiB per object).
type memoryRow struct {
	name           string
	objects, bytes int64
	err            error
}

func (m memoryRow) line() string {
	if m.err != nil {
		return fmt.Sprintf("%s\tFAILED: %s\t\t\t<= 1024\tno\t", m.name, oneLine(m.err))
	}
	per := float64(m.bytes) / float64(max(m.objects, 1))
	return fmt.Sprintf("%s\t%d\t%d\t%.0f\t<= 1024\t%s\t", m.name, m.objects, m.bytes, per,
		map[bool]string{true: "yes", false: "NO"}[per <= 1024])
}

// oneLine is err short enough for a table cell; the whole error is printed after the table.
func oneLine(err error) string {
	if se := (*statusError)(nil); errors.As(err, &se) {
		return se.short()
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

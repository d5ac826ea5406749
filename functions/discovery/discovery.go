// Package discovery is the function that finds each registered cluster's Prometheus, so metrics work without
// anyone typing a URL. It takes the dev.kitefn.cluster.created CloudEvent (and .updated when the Prometheus
// URL was cleared or the kubeconfig replaced), searches the cluster's Services, probes the candidates through
// the kube-apiserver's service proxy, records the outcome in the registry (prometheus.status, url, message,
// checkedAt) and emits dev.kitefn.prometheus.discovered. POST /api/v1/clusters/{ref}/prometheus/discover runs
// it on demand.
package discovery

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/validation"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/prometheus"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
)

// DiscoverPath is the re-detect route.
const DiscoverPath = "/api/v1/clusters/{ref}/prometheus/discover"

const (
	// dedupeSize is how many event (source, id) pairs an instance remembers.
	dedupeSize = 4096
	// backgroundParallelism bounds the discoveries one-process mode runs at once (an import of many contexts
	// emits many events at once).
	backgroundParallelism = 4
	// envMessage marks a manual URL that came from KITEFN_PROMETHEUS_URLS rather than from a user: discovery
	// may refresh it from the variable, never a user's.
	envMessage = "set by KITEFN_PROMETHEUS_URLS"
)

// Config is the discovery function's configuration (env prefix KITEFN_).
type Config struct {
	// PrometheusURLs maps cluster names to Prometheus URLs that win over discovery: "prod=https://…,dev=…".
	PrometheusURLs string `envconfig:"PROMETHEUS_URLS"`
	// Timeout is the budget of one discovery; ProbeTimeout of one candidate's probe.
	Timeout      time.Duration `envconfig:"DISCOVERY_TIMEOUT" default:"30s"`
	ProbeTimeout time.Duration `envconfig:"DISCOVERY_PROBE_TIMEOUT" default:"2s"`
	// Namespaces are searched first, in order; AllNamespaces then searches every other one.
	Namespaces    []string `envconfig:"DISCOVERY_NAMESPACES" default:"monitoring,prometheus,kube-prometheus,observability,kube-system"`
	AllNamespaces bool     `envconfig:"DISCOVERY_ALL_NAMESPACES" default:"true"`
	// ExternalURLs saves a LoadBalancer, Ingress or NodePort address when kitefn reaches Prometheus there
	// directly; false keeps every URL on the apiserver's service proxy.
	ExternalURLs bool `envconfig:"DISCOVERY_EXTERNAL_URLS" default:"true"`
}

// LoadConfig reads and validates the configuration, and parses KITEFN_PROMETHEUS_URLS.
func LoadConfig() (Config, map[string]string, error) {
	var c Config
	if err := envconfig.Process("kitefn", &c); err != nil {
		return c, nil, fmt.Errorf("discovery configuration: %w", err)
	}
	switch {
	case c.Timeout <= 0:
		return c, nil, fmt.Errorf("KITEFN_DISCOVERY_TIMEOUT must be positive, got %s", c.Timeout)
	case c.ProbeTimeout <= 0 || c.ProbeTimeout > c.Timeout:
		return c, nil, fmt.Errorf("KITEFN_DISCOVERY_PROBE_TIMEOUT must be positive and at most "+
			"KITEFN_DISCOVERY_TIMEOUT (%s), got %s", c.Timeout, c.ProbeTimeout)
	case len(c.Namespaces) == 0 && !c.AllNamespaces:
		return c, nil, fmt.Errorf("KITEFN_DISCOVERY_NAMESPACES is empty and KITEFN_DISCOVERY_ALL_NAMESPACES " +
			"is false: there is nowhere to search")
	}
	for i, ns := range c.Namespaces {
		c.Namespaces[i] = strings.TrimSpace(ns)
		if errs := validation.IsDNS1123Label(c.Namespaces[i]); len(errs) > 0 {
			return c, nil, fmt.Errorf("KITEFN_DISCOVERY_NAMESPACES: %q is not a namespace name: %s",
				c.Namespaces[i], strings.Join(errs, "; "))
		}
	}
	urls, err := ParseURLs(c.PrometheusURLs)
	if err != nil {
		return c, nil, err
	}
	return c, urls, nil
}

// ParseURLs reads KITEFN_PROMETHEUS_URLS: comma-separated name=URL pairs, the URL absolute http(s) without
// credentials, or a service-proxy path (/api/v1/namespaces/NS/services/NAME:PORT/proxy).
func ParseURLs(raw string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(raw, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, u, ok := strings.Cut(pair, "=")
		name, u = strings.TrimSpace(name), strings.TrimSpace(u)
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("KITEFN_PROMETHEUS_URLS: %q is not name=URL", redactPair(pair))
		}
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return nil, fmt.Errorf("KITEFN_PROMETHEUS_URLS: %q is not a cluster name: %s", name,
				strings.Join(errs, "; "))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("KITEFN_PROMETHEUS_URLS: cluster %q is listed twice", name)
		}
		if err := prometheus.CheckURL(u); err != nil {
			return nil, fmt.Errorf("KITEFN_PROMETHEUS_URLS: cluster %q: %w", name, err)
		}
		out[name] = u
	}
	return out, nil
}

// redactPair hides a URL's user info in an error message.
func redactPair(pair string) string {
	if u, err := url.Parse(pair[strings.Index(pair, "=")+1:]); err == nil && u.User != nil {
		return "…"
	}
	return pair
}

// Registry is the store as this function uses it.
type Registry interface {
	Get(ctx context.Context, id uint64) (*store.Cluster, error)
	GetByName(ctx context.Context, name string) (*store.Cluster, error)
	List(ctx context.Context) ([]*store.Cluster, error)
	Update(ctx context.Context, c *store.Cluster) (*store.Cluster, error)
}

// Clients gives a cluster's cached client by name or ID.
type Clients interface {
	Client(ctx context.Context, ref string) (*kube.Client, error)
}

// Sender emits CloudEvents.
type Sender interface {
	Send(ctx context.Context, e cloudevents.Event) error
}

// Function is the discovery function.
type Function struct {
	cfg     Config
	urls    map[string]string
	reg     Registry
	clients Clients
	events  Sender // nil: events are off
	log     *zap.SugaredLogger
	mux     *httpapi.Mux
	direct  *http.Client
	now     func() time.Time
	// allMode: events arrive in-process from the clusters function, which waits for the answer, so discovery
	// runs in the background and the answer is 202.
	allMode bool
	// seen remembers the events this instance handled (source + id), against redelivery; the registry state
	// covers redelivery to another replica.
	seen    *lru.Cache[string, struct{}]
	flight  singleflight.Group
	started atomic.Bool

	bgMu      sync.Mutex
	bgCtx     context.Context
	bgCancel  context.CancelFunc
	bgWG      sync.WaitGroup
	bgSlots   *semaphore.Weighted
	bgStopped bool
}

var (
	_ runtime.Starter       = (*Function)(nil)
	_ runtime.Stopper       = (*Function)(nil)
	_ runtime.Router        = (*Function)(nil)
	_ runtime.EventConsumer = (*Function)(nil)
)

// Deps is what the function works with, handed in by its constructor.
type Deps struct {
	Registry Registry
	Clients  Clients
	Events   Sender // nil: events are off
	// AllMode: events arrive in-process from the clusters function, which waits for the answer.
	AllMode bool
	// Audit records re-detect requests (nil: not recorded).
	Audit access.EntryRecorder
}

// New makes the function over its dependencies; Start reads its configuration.
func New(d Deps) *Function {
	seen, _ := lru.New[string, struct{}](dedupeSize) // fails only for a size below 1
	f := &Function{mux: httpapi.NewMux(), seen: seen, now: time.Now, reg: d.Registry, clients: d.Clients,
		events: d.Events, allMode: d.AllMode}
	redetect := f.redetect
	if d.Audit != nil {
		// A re-detect may rewrite the record's Prometheus settings: a registry change, audited as such.
		redetect = func(w http.ResponseWriter, r *http.Request) {
			ref := r.PathValue("ref")
			access.Audited(d.Audit, store.AuditEntry{Verb: "discover", Resource: "clusters", Cluster: ref, Name: ref},
				f.redetect)(w, r)
		}
	}
	f.mux.Handle(http.MethodPost, DiscoverPath, redetect)
	return f
}

// CheckConfig validates the configuration (kitefn -check-config).
func CheckConfig() error {
	_, _, err := LoadConfig()
	return err
}

// Start reads the configuration. In one-process mode it then discovers, in the background, every cluster still
// pending (registered while the function was not running, or imported at start).
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, urls, err := LoadConfig()
	if err != nil {
		return err
	}
	f.cfg, f.urls = cfg, urls
	f.log = logging.FromContext(ctx).With("function", "discovery")
	f.direct = directClient(cfg.ProbeTimeout)
	f.bgCtx, f.bgCancel = context.WithCancel(logging.WithLogger(context.WithoutCancel(ctx), f.log))
	f.bgSlots = semaphore.NewWeighted(backgroundParallelism)
	f.started.Store(true)
	if f.allMode {
		f.spawn(f.sweep)
	}
	return nil
}

// Stop lets background discoveries finish within ctx, then cancels them (a cancelled one saves nothing: the
// cluster stays pending and the next start picks it up).
func (f *Function) Stop(ctx context.Context) error {
	f.bgMu.Lock()
	f.bgStopped = true
	f.bgMu.Unlock()
	if f.bgCancel == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		f.bgWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		f.bgCancel()
		return nil
	case <-ctx.Done():
	}
	f.bgCancel()
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("discovery: background runs did not stop: %w", ctx.Err())
	}
}

// Routes are the paths this function serves in one-process mode. "/" is not one: events arrive in-process.
func (f *Function) Routes() []string { return f.mux.Paths() }

// ConsumesEvents are the CloudEvent types discovery takes at "/".
func (f *Function) ConsumesEvents() []string {
	return []string{events.TypeClusterCreated, events.TypeClusterUpdated}
}

// Handle serves CloudEvents at POST / and the re-detect route.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && r.Method == http.MethodPost {
		f.receive(w, r)
		return
	}
	f.mux.ServeHTTP(w, r)
}

// spawn runs fn in the background, at most backgroundParallelism at once, until Stop.
func (f *Function) spawn(fn func(ctx context.Context)) bool {
	f.bgMu.Lock()
	defer f.bgMu.Unlock()
	if f.bgStopped {
		return false
	}
	f.bgWG.Add(1)
	go func() {
		defer f.bgWG.Done()
		if f.bgSlots.Acquire(f.bgCtx, 1) != nil {
			return // stopped
		}
		defer f.bgSlots.Release(1)
		fn(f.bgCtx)
	}()
	return true
}

// sweep discovers every pending cluster (one-process mode start).
func (f *Function) sweep(ctx context.Context) {
	all, err := f.reg.List(ctx)
	if err != nil {
		f.log.Warnw("not looking for pending clusters: listing the registry failed", "error", err)
		return
	}
	for _, c := range all {
		if c.Prometheus.Status != store.PrometheusPending {
			continue
		}
		id := c.ID
		f.spawn(func(ctx context.Context) {
			if _, err := f.runShared(ctx, id, onPending, "start"); err != nil {
				f.log.Warnw("discovery failed", "cluster", id, "error", err)
			}
		})
	}
}

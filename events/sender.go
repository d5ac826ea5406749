package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cecontext "github.com/cloudevents/sdk-go/v2/context"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"go.uber.org/zap"
)

// SenderConfig is read from the environment: K_SINK and K_CE_OVERRIDES come from a Knative SinkBinding (no
// prefix); the retry knobs are kitefn's.
type SenderConfig struct {
	Sink        string        `envconfig:"K_SINK"`
	CEOverrides string        `envconfig:"K_CE_OVERRIDES"`
	Attempts    int           `envconfig:"EVENT_ATTEMPTS" default:"4"`
	Backoff     time.Duration `envconfig:"EVENT_BACKOFF" default:"200ms"`
	Timeout     time.Duration `envconfig:"EVENT_TIMEOUT" default:"10s"`
}

// Validate checks the config and says which variable is wrong.
func (c SenderConfig) Validate() error {
	if c.Sink != "" {
		u, err := url.Parse(c.Sink)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("K_SINK must be an http(s) URL, got %q", c.Sink)
		}
	}
	if _, err := parseOverrides(c.CEOverrides); err != nil {
		return err
	}
	if c.Attempts < 1 || c.Attempts > 20 {
		return fmt.Errorf("KITEFN_EVENT_ATTEMPTS must be between 1 and 20, got %d", c.Attempts)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("KITEFN_EVENT_TIMEOUT must be positive, got %s", c.Timeout)
	}
	return nil
}

// overrides is the K_CE_OVERRIDES document a SinkBinding injects: extensions to set on every event.
type overrides struct {
	Extensions map[string]any `json:"extensions"`
}

func parseOverrides(raw string) (overrides, error) {
	var o overrides
	if raw == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return o, fmt.Errorf("K_CE_OVERRIDES must be JSON like {\"extensions\":{\"name\":\"value\"}}: %w", err)
	}
	return o, nil
}

// Sender delivers events with bounded, exponentially backed-off retries. A nil *Sender sends nothing (events
// are off: no K_SINK and no in-process receivers), so callers need no special case.
type Sender struct {
	client    cloudevents.Client
	cfg       SenderConfig
	overrides overrides
	target    string
}

// NewSender sends to cfg.Sink over HTTP. It returns nil (events off) when no sink is configured.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Sink == "" {
		return nil, nil
	}
	return newSender(cfg, cfg.Sink, http.DefaultTransport)
}

// NewLocalSender delivers to handler inside this process, through the same CloudEvents HTTP encoding and
// decoding a remote sink would see: that is how one-process mode feeds the discovery function.
func NewLocalSender(cfg SenderConfig, handler http.Handler) (*Sender, error) {
	return newSender(cfg, "http://in-process.kitefn.local/", handlerTransport{handler})
}

func newSender(cfg SenderConfig, target string, rt http.RoundTripper) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ov, _ := parseOverrides(cfg.CEOverrides)
	p, err := cehttp.New(cehttp.WithTarget(target), cehttp.WithRoundTripper(rt),
		cehttp.WithIsRetriableFunc(retriable))
	if err != nil {
		return nil, fmt.Errorf("creating CloudEvents HTTP protocol: %w", err)
	}
	c, err := cloudevents.NewClient(p, cloudevents.WithTimeNow(), cloudevents.WithUUIDs())
	if err != nil {
		return nil, fmt.Errorf("creating CloudEvents client: %w", err)
	}
	return &Sender{client: c, cfg: cfg, overrides: ov, target: target}, nil
}

// retriable: 5xx and throttling are worth another try; other 4xx mean the receiver will never take the event.
// 404 is included because a Broker that is still becoming ready answers it.
func retriable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		status == http.StatusNotFound
}

// Target names where events go, for logs.
func (s *Sender) Target() string {
	if s == nil {
		return ""
	}
	return s.target
}

// Send delivers e, applying K_CE_OVERRIDES, and returns an error once the attempts are spent. The event's
// own id is kept across attempts so the receiver can dedupe.
func (s *Sender) Send(ctx context.Context, e cloudevents.Event) error {
	if s == nil {
		return nil
	}
	for name, v := range s.overrides.Extensions {
		e.SetExtension(name, v)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("invalid event %s: %w", e.Type(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	ctx = cecontext.WithRetriesExponentialBackoff(ctx, s.cfg.Backoff, s.cfg.Attempts-1)
	res := s.client.Send(ctx, e)
	if protocol.IsACK(res) {
		return nil
	}
	return fmt.Errorf("sending %s (id %s) to %s: %w", e.Type(), e.ID(), s.target, res)
}

// NewClusterEvent builds a cluster lifecycle event.
func NewClusterEvent(eventType string, data ClusterData) (cloudevents.Event, error) {
	e := cloudevents.NewEvent()
	e.SetID(ClusterEventID(eventType, data.Cluster.ID, data.Cluster.Version))
	e.SetType(eventType)
	e.SetSource(SourceClusters)
	e.SetSubject(Subject(data.Cluster.ID))
	e.SetTime(time.Now().UTC())
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		return e, fmt.Errorf("encoding %s data: %w", eventType, err)
	}
	return e, nil
}

// handlerTransport serves requests with an http.Handler in-process (no test packages in the binary).
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w := &bufferedResponse{header: http.Header{}}
	t.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(w.status), StatusCode: w.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// Consumer is an in-process receiver of some event types, as a Knative Trigger would filter for it.
type Consumer struct {
	Name    string
	Types   []string
	Handler http.Handler
}

// Dispatcher delivers a CloudEvent posted to it to every consumer of its type. An event nobody consumes is
// accepted: a Broker with no matching Trigger drops it too. The worst consumer status is returned, so a
// consumer asking for a retry (5xx) gets one.
type Dispatcher struct {
	log       *zap.SugaredLogger
	mu        sync.RWMutex
	consumers []Consumer
}

// NewDispatcher makes a dispatcher with no consumers yet (the functions are constructed after it).
func NewDispatcher(log *zap.SugaredLogger) *Dispatcher { return &Dispatcher{log: log} }

// SetConsumers replaces the consumers.
func (d *Dispatcher) SetConsumers(cs []Consumer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.consumers = slices.Clone(cs)
}

func (d *Dispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading event: "+err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.RLock()
	consumers := d.consumers
	d.mu.RUnlock()
	eventType := r.Header.Get("Ce-Type")
	status := http.StatusAccepted
	for _, c := range consumers {
		if !slices.Contains(c.Types, eventType) {
			continue
		}
		rec := &bufferedResponse{header: http.Header{}}
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		c.Handler.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if rec.status >= 300 {
			d.log.Warnw("in-process event consumer refused event", "function", c.Name, "type", eventType,
				"status", rec.status, "body", strings.TrimSpace(rec.body.String()))
			status = max(status, rec.status)
		}
	}
	w.WriteHeader(status)
}

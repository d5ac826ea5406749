package prometheus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kitefn/kitefn/shared/kube"
)

// Defaults of a Client.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 32 << 20
)

// Client queries one Prometheus (or a compatible server: Thanos Query, VictoriaMetrics) through a saved URL.
// It is safe for concurrent use.
type Client struct {
	base     *url.URL
	hc       *http.Client
	target   string
	proxied  bool
	timeout  time.Duration
	maxBytes int64
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client used for an absolute URL (default: one over http.DefaultTransport). A
// service-proxy path always uses the cluster's own client, which carries its credentials.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call whose context has no deadline (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxResponseBytes bounds the body read from one answer (default DefaultMaxResponseBytes).
func WithMaxResponseBytes(n int64) Option { return func(c *Client) { c.maxBytes = n } }

// New makes a client for a saved URL. A service-proxy path needs cluster: requests go to its apiserver with
// its credentials and connection pool. An absolute URL is used directly and cluster may be nil.
func New(cluster *kube.Client, saved string, opts ...Option) (*Client, error) {
	if err := CheckURL(saved); err != nil {
		return nil, err
	}
	c := &Client{target: saved, timeout: DefaultTimeout, maxBytes: DefaultMaxResponseBytes}
	for _, o := range opts {
		o(c)
	}
	if IsServiceProxyPath(saved) {
		if cluster == nil || cluster.REST == nil || cluster.HTTP == nil {
			return nil, errors.New("a service-proxy Prometheus URL needs the cluster's client")
		}
		ref, err := ParseServiceProxyPath(saved)
		if err != nil {
			return nil, err
		}
		host, _, err := rest.DefaultServerUrlFor(cluster.REST)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: apiserver URL: %w", cluster.Name, err)
		}
		// The host may carry a path prefix (an apiserver behind a relocating proxy): keep it.
		c.base = host.JoinPath(ref.Path())
		c.hc, c.proxied = cluster.HTTP, true
	} else {
		u, _ := url.Parse(saved)
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		c.base = u
		if c.hc == nil {
			c.hc = &http.Client{Transport: http.DefaultTransport}
		}
	}
	return c, nil
}

// URL is the saved URL this client uses.
func (c *Client) URL() string { return c.target }

// ViaServiceProxy reports whether requests go through the cluster's apiserver.
func (c *Client) ViaServiceProxy() bool { return c.proxied }

// BuildInfo is what /api/v1/status/buildinfo answers.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Branch    string `json:"branch,omitempty"`
	BuildDate string `json:"buildDate,omitempty"`
	GoVersion string `json:"goVersion,omitempty"`
}

// Range is the time range and resolution of a range query.
type Range struct {
	Start, End time.Time
	Step       time.Duration
}

// Data is the data of a query answer. Result is kept raw; Vector, Matrix and Scalar decode it.
type Data struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
	// Warnings are the answer's warnings (partial data, etc.), to show a user.
	Warnings []string `json:"-"`
}

// APIError is an error Prometheus reported itself (bad query, timeout, …).
type APIError struct {
	StatusCode int
	Type       string
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("prometheus: %s (HTTP %d): %s", e.Type, e.StatusCode, e.Message)
}

// ProxyError is the kube-apiserver's own answer to a service-proxy request: the Service has no ready endpoint,
// cannot be reached, does not exist, or the credentials may not proxy to it.
type ProxyError struct {
	StatusCode int
	Reason     string
	Message    string
}

func (e *ProxyError) Error() string {
	return fmt.Sprintf("kube-apiserver service proxy: HTTP %d %s: %s", e.StatusCode, e.Reason, e.Message)
}

// Forbidden reports whether the cluster's credentials were refused (401/403): no reachability problem, a
// permission one (get on services/proxy).
func (e *ProxyError) Forbidden() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// ErrNotPrometheus is matched (errors.Is) by answers that are not the Prometheus API's JSON.
var ErrNotPrometheus = errors.New("not a Prometheus API answer")

// BuildInfo asks /api/v1/status/buildinfo.
func (c *Client) BuildInfo(ctx context.Context) (*BuildInfo, error) {
	var info BuildInfo
	if _, err := c.get(ctx, "api/v1/status/buildinfo", nil, &info); err != nil {
		return nil, err
	}
	if info.Version == "" {
		return nil, fmt.Errorf("%w: buildinfo without a version from %s", ErrNotPrometheus, c.target)
	}
	return &info, nil
}

// Query runs an instant query at a time (the server's now when zero).
func (c *Client) Query(ctx context.Context, query string, at time.Time) (*Data, error) {
	q := url.Values{"query": {query}}
	if !at.IsZero() {
		q.Set("time", formatTime(at))
	}
	return c.query(ctx, "api/v1/query", q)
}

// QueryRange runs a range query.
func (c *Client) QueryRange(ctx context.Context, query string, r Range) (*Data, error) {
	if r.Step <= 0 || r.End.Before(r.Start) {
		return nil, fmt.Errorf("prometheus: bad range: start %s, end %s, step %s", r.Start, r.End, r.Step)
	}
	q := url.Values{"query": {query}, "start": {formatTime(r.Start)}, "end": {formatTime(r.End)},
		"step": {strconv.FormatFloat(r.Step.Seconds(), 'f', -1, 64)}}
	return c.query(ctx, "api/v1/query_range", q)
}

func (c *Client) query(ctx context.Context, path string, q url.Values) (*Data, error) {
	var d Data
	warnings, err := c.get(ctx, path, q, &d)
	if err != nil {
		return nil, err
	}
	if d.ResultType == "" {
		return nil, fmt.Errorf("%w: query answer without a resultType from %s", ErrNotPrometheus, c.target)
	}
	d.Warnings = warnings
	return &d, nil
}

// Probe tells whether a Prometheus-compatible API answers: /api/v1/status/buildinfo, or, when the server
// answered that with something else (older Prometheus, some compatible servers), the query `up`. The
// returned BuildInfo has an empty Version when only the query answered.
func (c *Client) Probe(ctx context.Context) (*BuildInfo, error) {
	info, err := c.BuildInfo(ctx)
	if err == nil {
		return info, nil
	}
	var pe *ProxyError
	if errors.As(err, &pe) || ctx.Err() != nil || !(errors.Is(err, ErrNotPrometheus) || isAPIError(err)) {
		return nil, err // the server was not reached: asking again another way cannot help
	}
	if _, qerr := c.Query(ctx, "up", time.Time{}); qerr != nil {
		return nil, fmt.Errorf("%w; query up: %w", err, qerr)
	}
	return &BuildInfo{}, nil
}

func isAPIError(err error) bool {
	var ae *APIError
	return errors.As(err, &ae)
}

// envelope is the Prometheus API's answer shape.
type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// kubeStatus is the part of a Kubernetes Status the apiserver answers with when it cannot proxy.
type kubeStatus struct {
	Kind    string `json:"kind"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (c *Client) get(ctx context.Context, path string, q url.Values, into any) ([]string, error) {
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("prometheus: building request for %s: %w", c.target, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus at %s: %w", c.target, unwrapURLError(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, c.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("prometheus at %s: reading the answer: %w", c.target, err)
	}
	if int64(len(body)) > c.maxBytes {
		return nil, fmt.Errorf("prometheus at %s: the answer is larger than %d bytes", c.target, c.maxBytes)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || (env.Status != "success" && env.Status != "error") {
		if c.proxied {
			var st kubeStatus
			if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
				return nil, &ProxyError{StatusCode: res.StatusCode, Reason: st.Reason, Message: st.Message}
			}
		}
		return nil, fmt.Errorf("%w: HTTP %d from %s: %s", ErrNotPrometheus, res.StatusCode, c.target, snippet(body))
	}
	if env.Status == "error" {
		return nil, &APIError{StatusCode: res.StatusCode, Type: env.ErrorType, Message: env.Error}
	}
	if err := json.Unmarshal(env.Data, into); err != nil {
		return nil, fmt.Errorf("%w: undecodable data from %s: %v", ErrNotPrometheus, c.target, err)
	}
	return env.Warnings, nil
}

// unwrapURLError drops *url.Error's "Get <url>:" prefix: the URL may hold a query, and the caller names the
// target already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// snippet is the start of a body, on one line, for error messages.
func snippet(body []byte) string {
	const max = 120
	s := strings.Join(strings.Fields(string(bytes.ToValidUTF8(body, nil))), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', -1, 64)
}

// Sample is one series' value at one time (an instant vector element). JSON: {"metric": {...}, "value": [t,
// "v"]}, as Prometheus writes it.
type Sample struct {
	Metric map[string]string
	Time   time.Time
	Value  float64
}

// Series is one series' values over time (a range vector element).
type Series struct {
	Metric map[string]string `json:"metric"`
	Points []Point           `json:"values"`
}

// Point is a value at a time. JSON: [unix seconds, "value"], as Prometheus writes it ("NaN" and "+Inf"
// included).
type Point struct {
	Time  time.Time
	Value float64
}

// UnmarshalJSON reads [1712345678.123, "42"].
func (p *Point) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("prometheus: a point must be [time, \"value\"]: %w", err)
	}
	var ts float64
	if err := json.Unmarshal(raw[0], &ts); err != nil {
		return fmt.Errorf("prometheus: point time: %w", err)
	}
	var v string
	if err := json.Unmarshal(raw[1], &v); err != nil {
		return fmt.Errorf("prometheus: point value: %w", err)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("prometheus: point value %q: %w", v, err)
	}
	// Prometheus timestamps have millisecond precision.
	p.Time = time.UnixMilli(int64(math.Round(ts * 1e3))).UTC()
	p.Value = f
	return nil
}

// MarshalJSON writes the same shape back.
func (p Point) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]any{float64(p.Time.UnixMilli()) / 1e3, strconv.FormatFloat(p.Value, 'f', -1, 64)})
}

type sampleJSON struct {
	Metric map[string]string `json:"metric"`
	Value  Point             `json:"value"`
}

// UnmarshalJSON reads {"metric": {...}, "value": [t, "v"]}.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var raw sampleJSON
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = Sample{Metric: raw.Metric, Time: raw.Value.Time, Value: raw.Value.Value}
	return nil
}

// MarshalJSON writes the same shape back.
func (s Sample) MarshalJSON() ([]byte, error) {
	return json.Marshal(sampleJSON{Metric: s.Metric, Value: Point{Time: s.Time, Value: s.Value}})
}

// Vector decodes an instant vector.
func (d *Data) Vector() ([]Sample, error) {
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus: result is a %s, not a vector", d.ResultType)
	}
	var out []Sample
	if err := json.Unmarshal(d.Result, &out); err != nil {
		return nil, fmt.Errorf("prometheus: decoding vector: %w", err)
	}
	return out, nil
}

// Matrix decodes a range vector.
func (d *Data) Matrix() ([]Series, error) {
	if d.ResultType != "matrix" {
		return nil, fmt.Errorf("prometheus: result is a %s, not a matrix", d.ResultType)
	}
	var out []Series
	if err := json.Unmarshal(d.Result, &out); err != nil {
		return nil, fmt.Errorf("prometheus: decoding matrix: %w", err)
	}
	return out, nil
}

// Scalar decodes a scalar.
func (d *Data) Scalar() (Point, error) {
	var p Point
	if d.ResultType != "scalar" {
		return p, fmt.Errorf("prometheus: result is a %s, not a scalar", d.ResultType)
	}
	if err := json.Unmarshal(d.Result, &p); err != nil {
		return p, fmt.Errorf("prometheus: decoding scalar: %w", err)
	}
	return p, nil
}

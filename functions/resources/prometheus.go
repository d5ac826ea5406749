package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/prometheus"
	"github.com/kitefn/kitefn/shared/store"
)

// Error codes of the Prometheus query routes.
const (
	CodePrometheusError       = "prometheus_error"       // Prometheus answered with its own error (bad PromQL, …)
	CodePrometheusUnreachable = "prometheus_unreachable" // no answer, or not a Prometheus API answer
	CodePrometheusTimeout     = "prometheus_timeout"
	CodePrometheusPending     = "prometheus_pending"   // discovery has not finished
	CodePrometheusNotFound    = "prometheus_not_found" // discovery found none
	CodePrometheusFailed      = "prometheus_failed"    // discovery failed
)

// maxPoints is Prometheus's own limit of points per series of a range query; asking for more is refused here
// before a large answer is computed.
const maxPoints = 11000

// promQuery answers GET /api/v1/clusters/{ref}/prometheus/query?query=&time= (an instant query).
func (f *Function) promQuery(w http.ResponseWriter, r *http.Request) {
	if err := scopeClusterWide(r.Context(), "query prometheus"); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	query, err := promQL(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	var at time.Time
	if s := q.Get("time"); s != "" {
		if at, err = promTime(s, "time"); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
	}
	f.promRun(w, r, func(ctx context.Context, c *prometheus.Client) (*prometheus.Data, error) {
		return c.Query(ctx, query, at)
	})
}

// promQueryRange answers GET /api/v1/clusters/{ref}/prometheus/query_range?query=&start=&end=&step=.
func (f *Function) promQueryRange(w http.ResponseWriter, r *http.Request) {
	if err := scopeClusterWide(r.Context(), "query prometheus"); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	query, err := promQL(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	var rg prometheus.Range
	if rg.Start, err = promTime(q.Get("start"), "start"); err == nil {
		if rg.End, err = promTime(q.Get("end"), "end"); err == nil {
			rg.Step, err = promStep(q.Get("step"))
		}
	}
	if err == nil && rg.End.Before(rg.Start) {
		err = httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "end is before start").WithField("end")
	}
	if err == nil && rg.End.Sub(rg.Start)/rg.Step >= maxPoints {
		err = httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"start, end and step ask for more than %d points per series: use a larger step", maxPoints).WithField("step")
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	f.promRun(w, r, func(ctx context.Context, c *prometheus.Client) (*prometheus.Data, error) {
		return c.QueryRange(ctx, query, rg)
	})
}

func promQL(r *http.Request) (string, error) {
	query := r.URL.Query().Get("query")
	if query == "" {
		return "", httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "query (PromQL) is required").WithField("query")
	}
	return query, nil
}

// promTime reads a time as Prometheus does: RFC 3339 or Unix seconds (with a fraction).
func promTime(s, field string) (time.Time, error) {
	if s == "" {
		return time.Time{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%s is required", field).WithField(field)
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(secs) && !math.IsInf(secs, 0) {
		return time.UnixMilli(int64(math.Round(secs * 1e3))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
		"%s must be RFC 3339 or Unix seconds, got %q", field, s).WithField(field)
}

// promStep reads a step: a duration (15s, 1m) or seconds.
func promStep(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if secs, ferr := strconv.ParseFloat(s, 64); ferr == nil && secs < math.MaxInt64/1e9 {
			d, err = time.Duration(secs*float64(time.Second)), nil
		}
	}
	if err != nil || d <= 0 {
		return 0, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"step must be a positive duration (15s, 1m) or seconds, got %q", s).WithField("step")
	}
	return d, nil
}

// promAnswer is a query's answer in the Prometheus API's own success shape, so its clients parse it as is.
type promAnswer struct {
	Status   string   `json:"status"`
	Data     promData `json:"data"`
	Warnings []string `json:"warnings,omitempty"`
}

type promData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// promRun finds the cluster's saved Prometheus URL and runs a query against it, bounded in time and size.
func (f *Function) promRun(w http.ResponseWriter, r *http.Request, run func(context.Context, *prometheus.Client) (*prometheus.Data, error)) {
	ref := r.PathValue("ref")
	c, err := f.promClient(r.Context(), ref)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.PrometheusTimeout)
	defer cancel()
	d, err := run(ctx, c)
	if err != nil {
		f.writePromError(w, r, ref, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, promAnswer{Status: "success",
		Data: promData{ResultType: d.ResultType, Result: d.Result}, Warnings: d.Warnings})
}

// promClient is a client for the Prometheus the registry saved for a cluster: an absolute URL directly, a
// service-proxy path through the cluster's apiserver with its credentials.
func (f *Function) promClient(ctx context.Context, ref string) (*prometheus.Client, error) {
	rec, err := clusterhttp.Lookup(ctx, f.registry, ref)
	if err != nil {
		return nil, err
	}
	p := rec.Prometheus
	switch {
	case p.Status == store.PrometheusNotFound:
		return nil, httpapi.Errorf(http.StatusNotFound, CodePrometheusNotFound,
			"no Prometheus was found in cluster %q (%s): set one with PATCH /api/v1/clusters/%s {\"prometheusURL\": ...}",
			rec.Name, p.Message, rec.Name)
	case p.Status == store.PrometheusFailed:
		return nil, httpapi.Errorf(http.StatusConflict, CodePrometheusFailed,
			"Prometheus discovery failed for cluster %q (%s): retry it with POST /api/v1/clusters/%s/prometheus/discover",
			rec.Name, p.Message, rec.Name)
	case p.URL == "":
		return nil, httpapi.Errorf(http.StatusConflict, CodePrometheusPending,
			"the Prometheus of cluster %q is not known yet (discovery status %q): retry shortly", rec.Name, p.Status)
	}
	var kc *kube.Client
	if prometheus.IsServiceProxyPath(p.URL) {
		if kc, err = f.clients.Client(ctx, strconv.FormatUint(rec.ID, 10)); err != nil {
			return nil, err
		}
	}
	c, err := prometheus.New(kc, p.URL, prometheus.WithTimeout(f.cfg.PrometheusTimeout),
		prometheus.WithMaxResponseBytes(f.cfg.PrometheusMaxBytes))
	if err != nil {
		return nil, httpapi.Errorf(http.StatusConflict, CodePrometheusFailed,
			"cluster %q has an unusable Prometheus URL: %v", rec.Name, err)
	}
	return c, nil
}

// promErrorBody is the stable error shape, with Prometheus's own error kept apart when it answered one.
type promErrorBody struct {
	Error     promError `json:"error"`
	RequestID string    `json:"requestId,omitempty"`
}

type promError struct {
	httpapi.Error
	Prometheus *promDetail `json:"prometheus,omitempty"`
}

type promDetail struct {
	Status    int    `json:"status"`    // Prometheus's HTTP status
	ErrorType string `json:"errorType"` // bad_data, execution, timeout, …
	Error     string `json:"error"`
}

// writePromError tells Prometheus's own errors (bad PromQL: its 400 bad_data; 422 execution) from the
// apiserver's service-proxy answers and from not reaching it at all.
func (f *Function) writePromError(w http.ResponseWriter, r *http.Request, ref string, err error) {
	var pe *prometheus.APIError
	var proxy *prometheus.ProxyError
	var out promError
	switch {
	case errors.As(err, &pe):
		status := pe.StatusCode
		if status < 400 || status >= 500 {
			status = http.StatusBadGateway
		}
		if pe.Type == "timeout" {
			status = http.StatusGatewayTimeout
		}
		out.Error = httpapi.Error{Status: status, Code: CodePrometheusError,
			Message: fmt.Sprintf("Prometheus of cluster %q: %s: %s", ref, pe.Type, pe.Message)}
		out.Prometheus = &promDetail{Status: pe.StatusCode, ErrorType: pe.Type, Error: pe.Message}
	case errors.As(err, &proxy) && proxy.StatusCode == http.StatusForbidden:
		out.Error = httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden,
			Message: fmt.Sprintf("cluster %q refused to proxy to its Prometheus: %s", ref, proxy.Message)}
	case errors.As(err, &proxy) && proxy.StatusCode == http.StatusUnauthorized:
		out.Error = httpapi.Error{Status: http.StatusBadGateway, Code: "cluster_credentials_rejected",
			Message: fmt.Sprintf("cluster %q rejected kitefn's credentials: %s (rotate its kubeconfig)", ref, proxy.Message)}
	case errors.As(err, &proxy):
		out.Error = httpapi.Error{Status: http.StatusBadGateway, Code: CodePrometheusUnreachable,
			Message: fmt.Sprintf("cluster %q could not reach its Prometheus through the service proxy (HTTP %d %s): %s",
				ref, proxy.StatusCode, proxy.Reason, proxy.Message)}
	case errors.Is(err, context.DeadlineExceeded):
		out.Error = httpapi.Error{Status: http.StatusGatewayTimeout, Code: CodePrometheusTimeout,
			Message: fmt.Sprintf("the Prometheus of cluster %q did not answer within %s", ref, f.cfg.PrometheusTimeout)}
	default:
		out.Error = httpapi.Error{Status: http.StatusBadGateway, Code: CodePrometheusUnreachable,
			Message: fmt.Sprintf("the Prometheus of cluster %q: %v", ref, err)}
	}
	if out.Error.Status >= 500 {
		f.log.Warnw("prometheus query failed", "cluster", ref, "status", out.Error.Status, "error", err)
	}
	httpapi.WriteJSON(w, out.Error.Status, promErrorBody{Error: out, RequestID: httpapi.RequestIDFrom(r.Context())})
}

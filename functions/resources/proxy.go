package resources

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// proxyPrefix is where a registered cluster's own API is served: /k8s/clusters/{cluster}/api/v1/pods is that
// cluster's /api/v1/pods, as `kubectl proxy` serves it.
const proxyPrefix = "/k8s/clusters/"

// proxyMethods are the methods the proxy forwards (GET covers HEAD).
var proxyMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// proxy forwards the request to the cluster's API once the caller's role and scope admit it.
func (f *Function) proxy(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("cluster")
	caller, _ := access.CallerFrom(r.Context())
	if caller == nil { // never resolve a cluster (nor reveal whether it exists) for an unknown caller
		writeStatus(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"no authenticated caller on the request"))
		return
	}
	cl, err := f.clients.Client(r.Context(), ref)
	if err != nil {
		var nf *kube.NotFoundError
		if errors.As(err, &nf) {
			err = httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q not found", ref)
		}
		writeStatus(w, r, err)
		return
	}
	path, rawPath := clusterPath(r.URL)
	req := parseK8sRequest(r.Method, path, r.URL.Query())
	if why := authorise(caller, cl.Name, req); why != "" {
		writeStatus(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "kitefn: %s", why))
		return
	}
	// On a cluster that impersonates, the caller's identity: the cluster's RBAC decides, its audit names them.
	acting, err := clusterhttp.ActingFor(r.Context(), f.clients, cl)
	if err != nil {
		writeStatus(w, r, err)
		return
	}
	pc, err := proxyConnFor(cl)
	if err != nil {
		writeStatus(w, r, err)
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = path, rawPath
	out.RequestURI = ""
	out.Header = forwardHeaders(r.Header)
	// Set on the request rather than by acting's transport, so plain and upgraded requests (exec, whose
	// transport is built from the base connection) carry it alike; the caller's own were stripped above.
	if as := acting.As; as != nil {
		out.Header.Set(transport.ImpersonateUserHeader, as.User)
		for _, g := range as.Groups {
			out.Header.Add(transport.ImpersonateGroupHeader, g)
		}
	}
	h := proxy.NewUpgradeAwareHandler(pc.target, pc.transport, false, false, statusResponder{cluster: cl.Name})
	h.UpgradeTransport = pc.upgrade
	h.UseRequestLocation = true // the path and query are the caller's, under the cluster's base URL
	h.UseLocationHost = true
	h.AppendLocationPath = true // a server URL with a path (a Rancher-style gateway) keeps it
	h.ServeHTTP(hijackWriter{w}, out)
}

// clusterPath is the request's path below /k8s/clusters/{cluster}, unescaped and as sent.
func clusterPath(u *url.URL) (path, raw string) {
	parts := strings.SplitN(strings.TrimPrefix(u.EscapedPath(), "/"), "/", 4) // k8s, clusters, {cluster}, rest
	raw = "/"
	if len(parts) == 4 {
		raw += parts[3]
	}
	path, err := url.PathUnescape(raw)
	if err != nil { // the mux unescaped it already, so it is valid
		path = raw
	}
	if path == raw {
		raw = ""
	}
	return path, raw
}

// forwardHeaders copies the caller's headers without the ones that must not reach the cluster: the caller's
// Authorization is kitefn's token (the cluster's credentials are added by its transport, which adds them only
// when the request has none), cookies are kitefn's, and Impersonate-* would let a caller choose who they are on
// the cluster — kitefn alone decides that.
func forwardHeaders(in http.Header) http.Header {
	out := in.Clone()
	for k := range out {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == "Authorization" || ck == "Cookie" || strings.HasPrefix(ck, "Impersonate-") {
			delete(out, k)
		}
	}
	return out
}

// proxyConn is how one cluster connection is proxied to: kept on the connection (Attached), so a new
// kubeconfig gives a new one and requests share the connection pool of the cluster's other clients.
type proxyConn struct {
	target    *url.URL
	transport http.RoundTripper
	upgrade   proxy.UpgradeRequestRoundTripper
}

type proxyConnKey struct{}

func proxyConnFor(cl *kube.Client) (*proxyConn, error) {
	v, err := cl.Attached(proxyConnKey{}, func(cl *kube.Client) (any, error) { return newProxyConn(cl) })
	if err != nil {
		return nil, err
	}
	return v.(*proxyConn), nil
}

func newProxyConn(cl *kube.Client) (*proxyConn, error) {
	rc := cl.Stream.REST
	target, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: server URL: %w", cl.Name, err)
	}
	if !strings.HasSuffix(target.Path, "/") {
		target.Path += "/" // else the handler redirects GET of the root
	}
	upgrade, err := upgradeTransport(rc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: upgrade transport: %w", cl.Name, err)
	}
	// The streaming client's transport: credentials, TLS and the pool, without the request timeout.
	return &proxyConn{target: target, transport: rejectedCredentials{cl.Stream.HTTP.Transport, cl.Name}, upgrade: upgrade},
		nil
}

// upgradeTransport is how upgraded connections (exec, attach, port-forward: SPDY and WebSocket) reach the
// cluster: a raw TLS dial with the cluster's TLS settings (HTTP/1.1 only, which upgrades need), then the
// request passed through the cluster's credential wrappers so it carries the cluster's credentials. This is
// what `kubectl proxy` does.
func upgradeTransport(rc *rest.Config) (proxy.UpgradeRequestRoundTripper, error) {
	tc, err := rc.TransportConfig()
	if err != nil {
		return nil, err
	}
	tlsConfig, err := transport.TLSConfigFor(tc)
	if err != nil {
		return nil, err
	}
	conn := utilnet.SetOldTransportDefaults(&http.Transport{
		TLSClientConfig: tlsConfig,
		DialContext:     (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	})
	withCreds, err := transport.HTTPWrappersForConfig(tc, proxy.MirrorRequest)
	if err != nil {
		return nil, err
	}
	return proxy.NewUpgradeRequestRoundTripper(conn, withCreds), nil
}

// rejectedCredentials turns the cluster's 401 — it refused kitefn's stored credentials — into a 502: passed on
// as it is, kubectl would tell the user their own (kitefn) token is wrong.
type rejectedCredentials struct {
	next    http.RoundTripper
	cluster string
}

func (t rejectedCredentials) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(req)
	if err != nil || res.StatusCode != http.StatusUnauthorized {
		return res, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	e := httpapi.Errorf(http.StatusBadGateway, kube.CodeClusterUnauthorized,
		"cluster %q rejected kitefn's credentials (rotate its kubeconfig)", t.cluster)
	body, err := json.Marshal(statusOf(e, httpapi.RequestIDFrom(req.Context())))
	if err != nil {
		return nil, fmt.Errorf("encoding status: %w", err)
	}
	res.StatusCode, res.Status = e.Status, fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	res.Header = http.Header{"Content-Type": {"application/json"}}
	res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return res, nil
}

// statusResponder answers what went wrong reaching the cluster (unreachable, timed out, refused upgrade).
type statusResponder struct{ cluster string }

func (s statusResponder) Error(w http.ResponseWriter, r *http.Request, err error) {
	writeStatus(w, r, kube.APIError(s.cluster, err))
}

// statusBody is a Kubernetes Status (so kubectl and client-go show the message as the server's) that also
// carries kitefn's error shape, so kitefn's own clients read it as every other kitefn error.
type statusBody struct {
	metav1.TypeMeta `json:",inline"`
	Status          string              `json:"status"`
	Message         string              `json:"message"`
	Reason          metav1.StatusReason `json:"reason"`
	Code            int                 `json:"code"`
	Error           *httpapi.Error      `json:"error"`
	RequestID       string              `json:"requestId,omitempty"`
}

func statusOf(e *httpapi.Error, requestID string) statusBody {
	return statusBody{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Message: e.Message, Reason: reasonFor(e.Status), Code: e.Status, Error: e, RequestID: requestID}
}

// writeStatus answers err as a Kubernetes Status.
func writeStatus(w http.ResponseWriter, r *http.Request, err error) {
	e := httpapi.AsError(err)
	if e.Status >= 500 {
		logging.FromContext(r.Context()).Errorw("proxy request failed", "status", e.Status, "error", err)
	}
	httpapi.WriteJSON(w, e.Status, statusOf(e, httpapi.RequestIDFrom(r.Context())))
}

// reasonFor is the Status reason the apiserver gives with code.
func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusConflict:
		return metav1.StatusReasonConflict
	case http.StatusUnprocessableEntity:
		return metav1.StatusReasonInvalid
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	}
	return metav1.StatusReasonInternalError
}

// hijackWriter gives the proxy the http.Hijacker it type-asserts for upgrades, through middleware writers that
// only expose it by Unwrap (http.ResponseController).
type hijackWriter struct{ http.ResponseWriter }

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w hijackWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

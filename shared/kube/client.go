package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/kitefn/kitefn/shared/store"
)

// Client is what a function uses for one cluster: the registry record it was resolved from (ID, Name,
// Version) over the cluster's connection. A record change that leaves the connection settings alone (labels, a
// rename, a status write) gives a new Client over the same *Conn, so what hangs on the connection survives.
type Client struct {
	ID      uint64
	Name    string
	Version uint64 // the registry version this view was made from
	// Impersonate is the record's setting: requests for a caller should act as them (Cache.ActingAs).
	Impersonate bool
	// As is who this client acts as on the cluster; nil: the stored kubeconfig's own identity.
	As *Identity
	*Conn
}

// API is one set of clients over one HTTP client.
type API struct {
	REST       *rest.Config
	HTTP       *http.Client
	Kubernetes kubernetes.Interface
	Dynamic    dynamic.Interface
	Metadata   metadata.Interface
}

// Conn is the heavy part of a cluster's client: one transport (one connection pool) and one rate limiter
// shared by the request clients (API, bounded by KITEFN_KUBE_TIMEOUT) and the streaming clients (Stream: no
// overall timeout, for watches, exec and logs, which end when their context does).
type Conn struct {
	API
	Stream API

	fingerprint string // what the connection was built from; "" when unknown (NewClient)

	mu       sync.Mutex
	attached map[any]any
}

// Attached returns the value kept on this client's connection under key, building it on first use. Functions
// hang their per-cluster caches here (a RESTMapper, a CRD resolver): they live exactly as long as the
// connection, so a new kubeconfig or a deleted cluster drops them, and a label edit or a rename does not.
// build should use only the connection: the Client it gets is whichever view asked first. An impersonating
// client (As set) has its own: what was built acting as one caller never serves another.
func (cl *Client) Attached(key any, build func(*Client) (any, error)) (any, error) {
	c := cl.Conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.attached[key]; ok {
		return v, nil
	}
	v, err := build(cl)
	if err != nil {
		return nil, err
	}
	if c.attached == nil {
		c.attached = map[any]any{}
	}
	c.attached[key] = v
	return v, nil
}

// CloseIdle closes the connection's idle TCP connections. http.Client.CloseIdleConnections cannot reach them
// through client-go's wrapping round-trippers; CloseIdleConnectionsFor unwraps them.
func (c *Conn) CloseIdle() { utilnet.CloseIdleConnectionsFor(c.HTTP.Transport) }

// view is a Client for rec over c.
func (c *Conn) view(rec *store.Cluster) *Client {
	return &Client{ID: rec.ID, Name: rec.Name, Version: rec.Version, Impersonate: rec.Impersonate, Conn: c}
}

// RESTConfig turns a standalone kubeconfig into a rest.Config with kitefn's limits applied.
func RESTConfig(kubeconfig []byte, cfg Config) (*rest.Config, error) {
	rc, _, err := restConfig(kubeconfig, cfg)
	return rc, err
}

// restConfig is RESTConfig and the fingerprint of the connection settings it was made from.
func restConfig(kubeconfig []byte, cfg Config) (*rest.Config, string, error) {
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, "", fmt.Errorf("building client config: %w", err)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("building client config: %w", err)
	}
	// Explicit limits: client-go's defaults (5 QPS) throttle a dashboard, and no limit at all lets one busy
	// user flood a cluster.
	rc.QPS, rc.Burst, rc.Timeout = cfg.QPS, cfg.Burst, cfg.Timeout
	rc.UserAgent = cfg.UserAgent
	fp, err := fingerprint(raw)
	if err != nil {
		return nil, "", err
	}
	return rc, fp, nil
}

// fingerprint hashes what a connection is made of: the current context's cluster (server, CA, TLS server
// name, insecure, proxy URL) and user (token, client certificate and key, username and password,
// impersonation, exec and auth-provider plugins). Two kubeconfigs with one fingerprint make the same
// connection.
func fingerprint(raw *clientcmdapi.Config) (string, error) {
	kctx := raw.Contexts[raw.CurrentContext]
	if kctx == nil {
		return "", fmt.Errorf("building client config: no current context")
	}
	var parts struct {
		Cluster clientcmdapi.Cluster
		User    clientcmdapi.AuthInfo
	}
	if c := raw.Clusters[kctx.Cluster]; c != nil {
		parts.Cluster = *c
	}
	if u := raw.AuthInfos[kctx.AuthInfo]; u != nil {
		parts.User = *u
	}
	parts.Cluster.LocationOfOrigin, parts.Cluster.Extensions = "", nil
	parts.User.LocationOfOrigin, parts.User.Extensions = "", nil
	b, err := json.Marshal(parts) // map keys are sorted: stable
	if err != nil {
		return "", fmt.Errorf("fingerprinting client config: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// NewClient builds a connection from rc for rec: see newConn.
func NewClient(rec *store.Cluster, rc *rest.Config) (*Client, error) {
	c, err := newConn(rec.Name, rc, "")
	if err != nil {
		return nil, err
	}
	return c.view(rec), nil
}

// newConn builds the typed, dynamic and metadata clients, twice (bounded and streaming), over one transport
// and one rate limiter: client-go would give each client its own limiter, tripling the cluster's real limit.
// Apiserver warnings go to the request's Warnings collector (WithWarnings).
func newConn(name string, rc *rest.Config, fp string) (*Conn, error) {
	rc = rest.CopyConfig(rc)
	if rc.RateLimiter == nil && rc.QPS > 0 {
		rc.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(rc.QPS, rc.Burst)
	}
	if rc.WarningHandler == nil && rc.WarningHandlerWithContext == nil {
		rc.WarningHandlerWithContext = warningHandler{}
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: building HTTP client: %w", name, err)
	}
	api, err := newAPI(name, rc, hc)
	if err != nil {
		return nil, err
	}
	src := rest.CopyConfig(rc)
	src.Timeout = 0
	stream, err := newAPI(name, src, &http.Client{Transport: hc.Transport})
	if err != nil {
		return nil, err
	}
	return &Conn{API: api, Stream: stream, fingerprint: fp}, nil
}

func newAPI(name string, rc *rest.Config, hc *http.Client) (API, error) {
	cs, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return API{}, fmt.Errorf("cluster %q: building clientset: %w", name, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(rc, hc)
	if err != nil {
		return API{}, fmt.Errorf("cluster %q: building dynamic client: %w", name, err)
	}
	md, err := metadata.NewForConfigAndClient(rc, hc)
	if err != nil {
		return API{}, fmt.Errorf("cluster %q: building metadata client: %w", name, err)
	}
	return API{REST: rc, HTTP: hc, Kubernetes: cs, Dynamic: dyn, Metadata: md}, nil
}

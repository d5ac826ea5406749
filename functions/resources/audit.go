package resources

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/store"
)

// Recorder writes audit entries; a nil *access.Recorder records nothing.
type Recorder interface {
	Record(ctx context.Context, e store.AuditEntry)
}

// Bounds of an apply's diff summary: how deep field paths go and how many are named.
const (
	diffDepth    = 5
	maxDiffPaths = 8
)

// auditedWrite records one entry per request to a write route (delete, scale, restart) on the selected
// cluster; the handler names its target with noteTarget once the path is resolved.
func (f *Function) auditedWrite(verb string, h http.HandlerFunc) http.HandlerFunc {
	if f.audit == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		v := verb
		if v == "" { // POST …/{name}/scale or …/restart: the path's last segment
			p := strings.Trim(r.PathValue("path"), "/")
			v = p[strings.LastIndex(p, "/")+1:]
		}
		access.Audited(f.audit, store.AuditEntry{Cluster: client(r).Name, Verb: v}, h)(w, r)
	}
}

// noteTarget names the object a write acts on in the request's audit entry.
func noteTarget(ctx context.Context, req request) {
	a := access.AuditOf(ctx)
	a.Resource, a.Namespace, a.Name = resourceName(req.gvr), req.namespace, req.name
}

// resourceName is a resource as audit entries name it: "configmaps", "deployments.apps".
func resourceName(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource
	}
	return gvr.Resource + "." + gvr.Group
}

func noteDelete(ctx context.Context, opts metav1.DeleteOptions) {
	var d []string
	if opts.DryRun != nil {
		d = append(d, "dry-run")
	}
	if opts.PropagationPolicy != nil {
		d = append(d, "propagationPolicy "+string(*opts.PropagationPolicy))
	}
	if opts.GracePeriodSeconds != nil {
		d = append(d, "gracePeriodSeconds "+strconv.FormatInt(*opts.GracePeriodSeconds, 10))
	}
	access.AuditOf(ctx).Detail = strings.Join(d, ", ")
}

// replicasBefore reads the scale subresource before a scale, for its audit entry ("?" when unreadable).
func replicasBefore(ctx context.Context, res dynamic.ResourceInterface, name string) string {
	s, err := res.Get(ctx, name, metav1.GetOptions{}, "scale")
	if err != nil {
		return "?"
	}
	n, found, _ := unstructured.NestedInt64(s.Object, "spec", "replicas")
	if !found {
		return "0"
	}
	return strconv.FormatInt(n, 10)
}

func noteScale(ctx context.Context, from string, to int32) {
	access.AuditOf(ctx).Detail = fmt.Sprintf("replicas %s→%d", from, to)
}

// record writes one entry per document of an apply in place of the request's single one: the documents
// applied, found unchanged, dry-run or failed, each with its own outcome. Skipped documents (after a failure)
// and those a dry run could not reach (depends) never went to the cluster and are not recorded.
func (a *applier) record(ctx context.Context) {
	if a.f.audit == nil {
		return
	}
	access.AuditOf(ctx).Off = true
	for _, it := range a.items {
		e := store.AuditEntry{Cluster: a.c.Name, Verb: "apply", Resource: it.resource, Namespace: it.Namespace,
			Name: it.Name, Outcome: http.StatusOK, Detail: it.detail}
		if e.Resource == "" { // the kind did not resolve
			e.Resource = strings.ToLower(it.Kind)
		}
		switch it.Status {
		case StatusApplied, StatusUnchanged:
			if it.detail == "created" {
				e.Outcome = http.StatusCreated
			}
		case StatusDryRun:
			e.Detail = "dry-run"
		case StatusFailed:
			e.Outcome, e.Detail = it.Error.Status, "failed: "+it.Error.Code
			if a.phase != "" {
				e.Detail = a.phase + " " + e.Detail
			}
		default:
			continue
		}
		a.f.audit.Record(ctx, e)
	}
}

// changeSummary says what an apply did to an object, by field paths only (never values): "created",
// "unchanged", "configured: spec.replicas, spec.template.spec.containers". A Secret's data and stringData are
// only ever "data". missing is whether the read before the apply found no object.
func changeSummary(before, after *unstructured.Unstructured, unchanged, missing bool) string {
	switch {
	case unchanged:
		return "unchanged"
	case before == nil && missing:
		return "created"
	case before == nil:
		return "applied" // the object could not be read before: what changed is unknown
	}
	secret := after.GetKind() == "Secret" && after.GroupVersionKind().Group == ""
	var paths []string
	diffPaths(&paths, nil, before.Object, after.Object, secret)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	if len(paths) == 0 {
		return "configured" // only bookkeeping changed (managed fields, resourceVersion)
	}
	if n := len(paths); n > maxDiffPaths {
		paths = append(paths[:maxDiffPaths], fmt.Sprintf("and %d more", n-maxDiffPaths))
	}
	return "configured: " + strings.Join(paths, ", ")
}

// ignoredPaths change on every write, or are not the caller's to change: naming them would say nothing.
var ignoredPaths = map[string]bool{"status": true, "metadata.resourceVersion": true, "metadata.managedFields": true,
	"metadata.generation": true, "metadata.uid": true, "metadata.creationTimestamp": true}

// diffPaths appends the paths where b and a differ: into maps down to diffDepth, a list or a leaf as a whole.
func diffPaths(out *[]string, path []string, b, a any, secret bool) {
	p := strings.Join(path, ".")
	if ignoredPaths[p] {
		return
	}
	if secret && len(path) > 0 && (path[0] == "data" || path[0] == "stringData") {
		if !reflect.DeepEqual(b, a) {
			*out = append(*out, "data")
		}
		return
	}
	bm, bok := b.(map[string]any)
	am, aok := a.(map[string]any)
	if !bok || !aok || len(path) >= diffDepth {
		if !reflect.DeepEqual(b, a) {
			*out = append(*out, p)
		}
		return
	}
	for k, bv := range bm {
		diffPaths(out, append(path[:len(path):len(path)], k), bv, am[k], secret)
	}
	for k, av := range am {
		if _, ok := bm[k]; !ok {
			diffPaths(out, append(path[:len(path):len(path)], k), nil, av, secret)
		}
	}
}

// sessionSubresources are the pod connections the proxy records as sessions, once they end.
var sessionSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true}

// auditedProxy records what goes through /k8s/clusters/{cluster}/…: every write (POST, PUT, PATCH, DELETE)
// with the status the cluster (or kitefn) answered, and every exec, attach and port-forward session once it
// ends, with the upgrade's status. Reads are not recorded, nor requests without a caller (the proxy refuses
// them).
func (f *Function) auditedProxy(h http.HandlerFunc) http.HandlerFunc {
	if f.audit == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		path, _ := clusterPath(r.URL)
		req := parseK8sRequest(r.Method, path, r.URL.Query())
		session := req.Kind == "pods" && sessionSubresources[req.Subresource]
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if _, ok := access.CallerFrom(r.Context()); !ok || (read && !session) {
			h(w, r)
			return
		}
		e := store.AuditEntry{Cluster: r.PathValue("cluster"), Verb: req.Verb, Namespace: req.Namespace, Name: req.Name}
		if cl, err := f.clients.Client(r.Context(), e.Cluster); err == nil {
			e.Cluster = cl.Name // the proxy takes an ID too
		}
		if req.Resource {
			e.Resource = resourceName(schema.GroupVersionResource{Group: req.Group, Resource: req.Kind})
		}
		if !session {
			e.Detail = "proxy " + r.Method
			switch {
			case !req.Resource:
				e.Detail += " " + path
			case req.Subresource != "":
				e.Detail += " " + req.Subresource
			}
			if req.Verb == "create" && req.Name == "" {
				h = namedByBody(r, h)
			}
			access.Audited(f.audit, e, h)(w, r)
			return
		}
		start := time.Now()
		sw := &sessionWriter{ResponseWriter: w}
		h(sw, r)
		e.Outcome = sw.outcome()
		e.Detail = sessionDetail(r.URL.Query(), time.Since(start))
		f.audit.Record(r.Context(), e)
	}
}

// maxNameBody bounds how much of a create's body is kept to find the new object's name.
const maxNameBody = 64 << 10

// namedByBody names a create's object in its audit entry from the request body (metadata.name of a JSON body,
// read as the proxy forwards it), once the answer's status is known.
func namedByBody(r *http.Request, h http.HandlerFunc) http.HandlerFunc {
	var seen bytes.Buffer
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(r.Body, &limitedWriter{&seen, maxNameBody}), r.Body}
	return func(w http.ResponseWriter, r *http.Request) {
		h(&beforeStatus{ResponseWriter: w, hook: func() {
			access.AuditOf(r.Context()).Name = bodyName(seen.Bytes())
		}}, r)
	}
}

// bodyName is the metadata.name of an object body: JSON, or protobuf for the built-in kinds (client-go's
// default for them).
func bodyName(body []byte) string {
	if obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil); err == nil {
		if m, err := meta.Accessor(obj); err == nil {
			return m.GetName()
		}
	}
	var obj struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(body, &obj)
	return obj.Metadata.Name
}

// limitedWriter keeps at most n bytes and drops the rest (a body too large is left unnamed).
type limitedWriter struct {
	b *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// beforeStatus runs hook once, before the first status or body byte is written.
type beforeStatus struct {
	http.ResponseWriter
	hook func()
	done bool
}

func (w *beforeStatus) run() {
	if !w.done {
		w.done = true
		w.hook()
	}
}

func (w *beforeStatus) WriteHeader(status int) {
	w.run()
	w.ResponseWriter.WriteHeader(status)
}

func (w *beforeStatus) Write(b []byte) (int, error) {
	w.run()
	return w.ResponseWriter.Write(b)
}

func (w *beforeStatus) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxCommandDetail bounds the command an exec entry repeats.
const maxCommandDetail = 256

// sessionDetail names a session's container, command or ports, and how long it lasted.
func sessionDetail(q url.Values, d time.Duration) string {
	var parts []string
	if c := q.Get("container"); c != "" {
		parts = append(parts, "container "+c)
	}
	if cmd := strings.Join(q["command"], " "); cmd != "" {
		if len(cmd) > maxCommandDetail {
			cmd = cmd[:maxCommandDetail] + "…"
		}
		parts = append(parts, "command "+strconv.Quote(cmd))
	}
	if ports := q["ports"]; len(ports) > 0 {
		parts = append(parts, "ports "+strings.Join(ports, ","))
	}
	return strings.Join(append(parts, "duration "+d.Round(time.Millisecond).String()), ", ")
}

// sessionWriter notes the status of a session: the one written through it (a refusal, an unreachable
// cluster), or the one the upgrade handler writes raw onto the hijacked connection (101, or the cluster's
// refusal). Hijack keeps working: it hands out the real connection, wrapped only to read that status line.
type sessionWriter struct {
	http.ResponseWriter
	status int
	conn   *statusConn
}

func (w *sessionWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *sessionWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, rw, err
	}
	w.conn = &statusConn{Conn: c}
	return w.conn, rw, nil
}

func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *sessionWriter) outcome() int {
	if w.conn != nil {
		if s := w.conn.code(); s != 0 {
			return s
		}
	}
	if w.status != 0 {
		return w.status
	}
	return http.StatusOK
}

// statusConn reads the status code from the first line written to a hijacked connection ("HTTP/1.1 101 …").
type statusConn struct {
	net.Conn
	mu     sync.Mutex
	head   []byte
	status int
	done   bool
}

func (c *statusConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.done {
		c.head = append(c.head, b[:min(len(b), 16-len(c.head))]...)
		if len(c.head) >= 12 || len(b) == 0 {
			c.done = true
			if len(c.head) >= 12 && strings.HasPrefix(string(c.head), "HTTP/") {
				c.status, _ = strconv.Atoi(string(c.head[9:12]))
			}
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *statusConn) code() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

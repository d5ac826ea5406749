package resources

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// allNamespaces is Kite's spelling of "every namespace".
const allNamespaces = "_all"

// request is a parsed /api/v1/resources/... path.
type request struct {
	target
	namespace   string // "" = all namespaces (lists) or cluster-scoped
	name        string
	subresource string     // events, scale, restart
	scope       itemFilter // the items of a list the caller's namespace scope admits (nil: all)
}

// parse resolves the resource and reads namespace, name and subresource from what follows it:
// namespaced kinds: [] | [ns] | [ns, name] | [ns, name, sub]; cluster-scoped: [] | [name] | [name, sub].
// A namespace given to a cluster-scoped kind (in the path or ?namespace=) is ignored.
func (f *Function) parse(r *http.Request) (request, error) {
	segs := strings.Split(strings.Trim(r.PathValue("path"), "/"), "/")
	if len(segs) == 0 || segs[0] == "" {
		return request{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"name a resource: /api/v1/resources/{resource}[/{namespace}[/{name}]]")
	}
	c := client(r)
	var t target
	var ref string
	var rest []string
	var firstErr error
	for _, s := range splitRef(segs) {
		found, err := f.resolve(r.Context(), c, s.ref)
		if err == nil {
			t, ref, rest, firstErr = found, s.ref, s.rest, nil
			break
		}
		if firstErr == nil {
			firstErr = err
		}
		if !isStatus(err, http.StatusNotFound) {
			break // only "no such resource" lets another reading of the path be tried
		}
	}
	if firstErr != nil {
		return request{}, firstErr
	}
	req := request{target: t}
	ns := r.URL.Query().Get("namespace")
	if t.namespaced {
		switch len(rest) {
		case 0:
		case 1:
			ns = rest[0]
		case 2, 3:
			ns, req.name = rest[0], rest[1]
			if len(rest) == 3 {
				req.subresource = rest[2]
			}
		default:
			return request{}, tooLong(r)
		}
		if ns != allNamespaces {
			req.namespace = ns
		}
	} else {
		switch len(rest) {
		case 0:
		case 1, 2:
			req.name = rest[0]
			if len(rest) == 2 {
				req.subresource = rest[1]
			}
		default:
			return request{}, tooLong(r)
		}
	}
	if req.name != "" && req.namespaced && req.namespace == "" {
		return request{}, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"%s are namespaced: name the namespace, /api/v1/resources/%s/{namespace}/%s", t.gvr.Resource, ref, req.name)
	}
	return req, nil
}

func tooLong(r *http.Request) error {
	return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path)
}

func (f *Function) get(w http.ResponseWriter, r *http.Request) {
	req, err := f.parse(r)
	if err == nil {
		err = scopeRead(r.Context(), &req)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch {
	case req.name == "":
		f.list(w, r, req)
	case req.subresource == "":
		f.getObject(w, r, req)
	case req.subresource == "events":
		f.events(w, r, req)
	default:
		writeError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"unknown view %q: GET supports events", req.subresource))
	}
}

// list passes the apiserver's list through (see listjson.go), newest first. Query parameters: labelSelector,
// fieldSelector, limit, continue, resourceVersion, managedFields=true to keep them.
func (f *Function) list(w http.ResponseWriter, r *http.Request, req request) {
	c := client(r)
	q := r.URL.Query()
	params := url.Values{}
	if s := q.Get("labelSelector"); s != "" {
		if _, err := labels.Parse(s); err != nil {
			writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"labelSelector %q is not valid: %v", s, err).WithField("labelSelector"))
			return
		}
		params.Set("labelSelector", s)
	}
	if s := q.Get("fieldSelector"); s != "" {
		if _, err := fields.ParseSelector(s); err != nil {
			writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"fieldSelector %q is not valid: %v", s, err).WithField("fieldSelector"))
			return
		}
		params.Set("fieldSelector", s)
	}
	if s := q.Get("limit"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err != nil || n < 1 {
			writeError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"limit must be a positive number, got %q", s).WithField("limit"))
			return
		}
		params.Set("limit", s)
	}
	for _, p := range []string{"continue", "resourceVersion", "resourceVersionMatch"} {
		if s := q.Get(p); s != "" {
			params.Set(p, s)
		}
	}
	keep, err := httpapi.BoolParam(r, "managedFields")
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The discovery client's REST client has no API prefix of its own, so one client serves every group.
	call := c.Kubernetes.Discovery().RESTClient().Get().AbsPath(req.path(req.namespace))
	for k, v := range params {
		call = call.Param(k, v[0])
	}
	body, err := call.Do(r.Context()).Raw()
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, statusFromBody(body, err)))
		return
	}
	envelope, items, err := scanList(body)
	if err == nil {
		envelope, items, err = req.scope.filter(body, envelope, items)
	}
	if err != nil {
		writeError(w, r, httpapi.Errorf(http.StatusBadGateway, "cluster_error",
			"cluster %q answered the list of %s with malformed JSON", c.Name, req.gvr.Resource))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := writeList(w, body, envelope, items, keep); err != nil {
		f.log.Debugw("list not fully written", "error", err)
	}
}

func (f *Function) getObject(w http.ResponseWriter, r *http.Request, req request) {
	c := client(r)
	obj, err := c.Dynamic.Resource(req.gvr).Namespace(req.namespace).Get(r.Context(), req.name, metav1.GetOptions{})
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	keep, err := httpapi.BoolParam(r, "managedFields")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !keep {
		obj.SetManagedFields(nil)
	}
	httpapi.WriteJSON(w, http.StatusOK, obj.Object)
}

// events lists the Events about one object, newest first, matched by kind, namespace, name and (when the
// object still exists) UID, so a deleted and re-created namesake's events are told apart.
func (f *Function) events(w http.ResponseWriter, r *http.Request, req request) {
	c := client(r)
	ctx := r.Context()
	sel := fields.Set{"involvedObject.kind": req.kind, "involvedObject.name": req.name}
	if obj, err := c.Metadata.Resource(req.gvr).Namespace(req.namespace).Get(ctx, req.name, metav1.GetOptions{}); err == nil {
		sel["involvedObject.uid"] = string(obj.GetUID())
	}
	ns := req.namespace
	list, err := c.Kubernetes.CoreV1().Events(ns).List(ctx, listOptions(sel.AsSelector().String()))
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	items := scopeEvents(ctx, list.Items)
	sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).After(eventTime(items[j])) })
	for i := range items {
		items[i].ManagedFields = nil
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"kind": "EventList", "apiVersion": "v1", "items": items})
}

// statusFromBody recovers the apiserver's Status from an error answer's body: the discovery REST client has no
// codec for it and reports "unknown reason", which would lose the apiserver's message.
func statusFromBody(body []byte, err error) error {
	var st metav1.Status
	if len(body) > 0 && json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Code != 0 {
		return &apierrors.StatusError{ErrStatus: st}
	}
	return err
}

func listOptions(fieldSelector string) metav1.ListOptions {
	return metav1.ListOptions{FieldSelector: fieldSelector}
}

// eventTime is when an event last happened, whichever of its time fields is set.
func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

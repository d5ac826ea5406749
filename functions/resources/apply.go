package resources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kitefn/kitefn/shared/crd"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// FieldManager owns the fields kitefn applies, as kubectl's is "kubectl".
const FieldManager = "kitefn"

// The status of one document of an apply.
const (
	StatusApplied   = "applied"   // the apiserver stored a change (or created the object)
	StatusUnchanged = "unchanged" // the apply changed nothing: resourceVersion before = after
	StatusFailed    = "failed"    // refused; error says why
	StatusSkipped   = "skipped"   // not attempted: an earlier document failed
	StatusDryRun    = "dry-run"   // passed a server-side dry run (?dryRun=true, or ?atomic=true refused)
	StatusDepends   = "depends"   // not dry-run: its namespace or kind comes from an earlier document
)

// Error codes of apply.
const (
	CodeApplyTimeout = "apply_timeout"
	CodeCRDNotReady  = "crd_not_ready"
)

// crdPoll is how often a just-applied CRD is checked for Established.
const crdPoll = 100 * time.Millisecond

// docResult is the outcome for one document.
type docResult struct {
	Index      int            `json:"index"` // 1-based position, after a `kind: List` is flattened
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Namespace  string         `json:"namespace,omitempty"`
	Name       string         `json:"name"`
	Status     string         `json:"status"`
	Message    string         `json:"message,omitempty"`
	Error      *httpapi.Error `json:"error,omitempty"`
	Object     map[string]any `json:"object,omitempty"`
	// resource and detail are for the audit entry: the resolved resource, what the apply changed.
	resource, detail string
}

// applyAnswer is the apply response: per-document results and counts; on a non-2xx answer also the stable
// error shape (the first failure's error, naming its document).
type applyAnswer struct {
	Error     *httpapi.Error `json:"error,omitempty"`
	RequestID string         `json:"requestId,omitempty"`
	Items     []docResult    `json:"items"`
	Applied   int            `json:"applied"`
	Unchanged int            `json:"unchanged"`
	Failed    int            `json:"failed"`
	Skipped   int            `json:"skipped"`
	DryRun    int            `json:"dryRun,omitempty"`
	Depends   int            `json:"depends,omitempty"`
}

// provider is an earlier document of the same request that a document needs: the Namespace it goes to, or the
// CustomResourceDefinition of its kind.
type provider struct {
	index int // 1-based
	what  string
	crd   string // the CRD's name, for a kind provider
}

// applier applies the documents of one request, in order, on one cluster.
type applier struct {
	f         *Function
	c         *kube.Client
	st        *clusterState
	force     bool
	defaultNS string
	docs      []*unstructured.Unstructured
	items     []docResult
	timeout   time.Duration
	phase     string // "dry-run" while the items are a dry run's
}

// apply server-side-applies one or many YAML or JSON documents (field manager kitefn) in document order, as
// kubectl does, so a Namespace or a CRD may come before the objects that need it. ?force=true takes over
// conflicting fields; ?namespace= is the default namespace; ?dryRun=true only dry-runs every document;
// ?atomic=true dry-runs every document first and applies only when none fails. See README "Apply".
func (f *Function) apply(w http.ResponseWriter, r *http.Request) {
	var force, dry, atomic bool
	var err error
	for _, p := range []struct {
		name string
		into *bool
	}{{"force", &force}, {"dryRun", &dry}, {"atomic", &atomic}} {
		if *p.into, err = httpapi.BoolParam(r, p.name); err != nil {
			writeError(w, r, err)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.cfg.MaxApplyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = httpapi.Errorf(http.StatusRequestEntityTooLarge, httpapi.CodePayloadTooLarge,
				"apply body is larger than %d bytes", f.cfg.MaxApplyBytes)
		} else {
			err = httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "reading body: %v", err)
		}
		writeError(w, r, err)
		return
	}
	docs, err := parseDocuments(body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c := client(r)
	st, err := f.state(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	a := &applier{f: f, c: c, st: st, force: force, defaultNS: r.URL.Query().Get("namespace"), docs: docs,
		timeout: f.cfg.ApplyTimeout}
	if a.defaultNS == "" {
		a.defaultNS = "default"
	}
	// One deadline for the whole request, CRD waits included, below the service's own request timeout.
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.ApplyTimeout)
	defer cancel()
	switch {
	case dry:
		a.dryRun(ctx)
	case atomic:
		if a.dryRun(ctx) {
			a.applyAll(ctx)
		}
	default:
		a.applyAll(ctx)
	}
	a.record(r.Context())
	a.write(w, r)
}

// result starts the result of document i (0-based) from what the document says.
func (a *applier) result(i int) docResult {
	obj := a.docs[i]
	return docResult{Index: i + 1, APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(),
		Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// applyAll applies every document in order and stops at the first failure: the rest are skipped.
func (a *applier) applyAll(ctx context.Context) {
	notes := make([]string, len(a.docs)) // why a document was not dry-run first (atomic mode)
	for _, it := range a.items {
		if it.Status == StatusDepends {
			notes[it.Index-1] = it.Message + ": it was applied without a dry run first"
		}
	}
	a.items, a.phase = a.items[:0], ""
	failed := 0 // the 1-based index of the failed document
	for i := range a.docs {
		res := a.result(i)
		res.Message = notes[i]
		if failed != 0 {
			res.Status = StatusSkipped
			res.Message = fmt.Sprintf("not attempted: document %d failed", failed)
		} else if res = a.applyOne(ctx, i, res); res.Status == StatusFailed {
			failed = res.Index
		}
		a.items = append(a.items, res)
	}
}

// applyOne applies document i. Whether it changed anything is told by the object read just before the apply
// and the apply's answer: see sameContent.
func (a *applier) applyOne(ctx context.Context, i int, res docResult) docResult {
	obj := a.docs[i]
	if ctx.Err() != nil {
		return a.fail(ctx, i, res, ctx.Err())
	}
	t, err := a.target(ctx, i, true)
	if err != nil {
		return a.fail(ctx, i, res, err)
	}
	res.Namespace, res.resource = obj.GetNamespace(), resourceName(t.gvr)
	ri := a.c.Dynamic.Resource(t.gvr).Namespace(obj.GetNamespace())
	before, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	missing := apierrors.IsNotFound(err)
	if err != nil {
		before = nil // missing, or not readable: the apply tells
	}
	out, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: a.force})
	if err != nil {
		return a.fail(ctx, i, res, kube.APIError(a.c.Name, err))
	}
	if isCRD(obj) {
		// A cached "not installed" would otherwise outlive the install by the cache TTL.
		a.st.crds.Forget(obj.GetName())
		a.st.mapper.Reset()
	}
	res.Status = StatusApplied
	if sameContent(before, out) {
		res.Status = StatusUnchanged
	}
	res.detail = changeSummary(before, out, res.Status == StatusUnchanged, missing)
	out.SetManagedFields(nil)
	res.APIVersion, res.Kind, res.Object = out.GetAPIVersion(), out.GetKind(), out.Object
	return res
}

// dryRun dry-runs every document in order and reports each (failures do not stop it). A document whose
// namespace or kind an earlier document provides, and that cannot be dry-run because that earlier document is
// not applied yet, is reported as depends. It reports whether nothing failed.
func (a *applier) dryRun(ctx context.Context) bool {
	ok := true
	a.phase = StatusDryRun
	for i := range a.docs {
		res := a.result(i)
		res = a.dryRunOne(ctx, i, res)
		ok = ok && res.Status != StatusFailed
		a.items = append(a.items, res)
	}
	return ok
}

func (a *applier) dryRunOne(ctx context.Context, i int, res docResult) docResult {
	obj := a.docs[i]
	if ctx.Err() != nil {
		return a.fail(ctx, i, res, ctx.Err())
	}
	t, err := a.target(ctx, i, false)
	if err != nil {
		if p, ok := a.kindProvider(i); ok && isStatus(err, http.StatusNotFound, http.StatusServiceUnavailable) {
			return depends(res, p)
		}
		return a.fail(ctx, i, res, err)
	}
	res.Namespace, res.resource = obj.GetNamespace(), resourceName(t.gvr)
	out, err := a.c.Dynamic.Resource(t.gvr).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj,
		metav1.ApplyOptions{FieldManager: FieldManager, Force: a.force, DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		if p, ok := a.namespaceProvider(i); ok && missingNamespace(err, obj.GetNamespace()) {
			return depends(res, p)
		}
		return a.fail(ctx, i, res, kube.APIError(a.c.Name, err))
	}
	out.SetManagedFields(nil)
	res.Status = StatusDryRun
	res.APIVersion, res.Kind, res.Object = out.GetAPIVersion(), out.GetKind(), out.Object
	return res
}

// sameContent reports whether an apply left the object as it was read just before. The same resourceVersion
// means the apiserver wrote nothing. A different one may only record moved field ownership (a re-apply that no
// longer names a label admission added to a Namespace): the objects are then compared without managedFields
// and resourceVersion. A concurrent writer between the read and the apply makes the answer "applied", never a
// false "unchanged".
func sameContent(before, after *unstructured.Unstructured) bool {
	if before == nil {
		return false
	}
	if before.GetResourceVersion() == after.GetResourceVersion() {
		return true
	}
	b, a := before.DeepCopy(), after.DeepCopy()
	for _, o := range []*unstructured.Unstructured{b, a} {
		o.SetManagedFields(nil)
		o.SetResourceVersion("")
	}
	return equality.Semantic.DeepEqual(b.Object, a.Object)
}

func depends(res docResult, p provider) docResult {
	res.Status = StatusDepends
	res.Message = fmt.Sprintf("depends on document %d (%s), which this request applies before it", p.index, p.what)
	return res
}

// fail records err for document i; when the request's deadline is the cause, the error says so and what was
// done.
func (a *applier) fail(ctx context.Context, i int, res docResult, err error) docResult {
	apiErr := httpapi.AsError(err)
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		apiErr = httpapi.Errorf(http.StatusGatewayTimeout, CodeApplyTimeout,
			"the apply did not finish within %s (KITEFN_APPLY_TIMEOUT): documents before %d are done, document "+
				"%d was interrupted (it may have been applied), the rest were not attempted; cause: %v",
			a.timeout, i+1, i+1, err)
	} else if apiErr.Status == http.StatusInternalServerError && apiErr.Code == httpapi.CodeInternal {
		apiErr = httpapi.Errorf(http.StatusBadGateway, "cluster_error", "cluster %q: %v", a.c.Name, err)
	}
	res.Status, res.Error = StatusFailed, apiErr
	return res
}

// target resolves document i and sets its namespace: the default one for a namespaced kind that names none,
// none for a cluster-scoped kind. A kind an earlier CRD document defines resolves through that CRD; when wait
// is set, once the CRD is Established.
func (a *applier) target(ctx context.Context, i int, wait bool) (target, error) {
	obj := a.docs[i]
	gvk := obj.GroupVersionKind()
	var t target
	var err error
	if p, ok := a.kindProvider(i); ok {
		if wait {
			if err := a.waitEstablished(ctx, p.crd); err != nil {
				return target{}, err
			}
			a.st.crds.Forget(p.crd)
		}
		t, err = a.f.fromCRD(ctx, a.st, p.crd, gvk.Version)
	} else {
		t, err = a.f.resolveKind(ctx, a.c, gvk.Group, gvk.Version, gvk.Kind)
	}
	if err != nil {
		return target{}, err
	}
	if t.namespaced {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(a.defaultNS)
		}
	} else {
		obj.SetNamespace("")
	}
	return t, scopeDoc(ctx, t, obj)
}

// waitEstablished polls a CRD until the apiserver serves it (Established), within ctx's deadline. A CRD whose
// names were refused (they conflict with another CRD's) never will: that is a 409 at once. Credentials that
// may not read CRDs cannot wait: the apply of the object then says whether its kind is served.
func (a *applier) waitEstablished(ctx context.Context, name string) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, crdPoll, true, func(ctx context.Context) (bool, error) {
		u, err := a.c.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsForbidden(err):
			return true, nil
		case err != nil && ctx.Err() == nil:
			return false, kube.APIError(a.c.Name, err)
		case err != nil:
			return false, nil
		}
		ok, refused, why := establishedCondition(u)
		if refused {
			return false, httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict,
				"CustomResourceDefinition %s will not be served: %s", name, why)
		}
		last = why
		return ok, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("waiting for CustomResourceDefinition %s to be Established (%s): %w", name, last, err)
	}
	return err
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// establishedCondition reads a CRD's conditions: Established, or refused (NamesAccepted False), and why not.
func establishedCondition(u *unstructured.Unstructured) (ok, refused bool, why string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	why = "no Established condition yet"
	for _, c := range conds {
		m, _ := c.(map[string]any)
		switch {
		case m["type"] == "Established" && m["status"] == "True":
			return true, false, ""
		case m["type"] == "NamesAccepted" && m["status"] == "False":
			return false, true, fmt.Sprintf("NamesAccepted is False: %v", m["message"])
		case m["type"] == "Established":
			why = fmt.Sprintf("Established is %v: %v", m["status"], m["message"])
		}
	}
	return false, false, why
}

// kindProvider finds the earliest document before i that is the CRD of document i's kind.
func (a *applier) kindProvider(i int) (provider, bool) {
	gk := a.docs[i].GroupVersionKind().GroupKind()
	for j := 0; j < i; j++ {
		d := a.docs[j]
		if !isCRD(d) {
			continue
		}
		group, _, _ := unstructured.NestedString(d.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(d.Object, "spec", "names", "kind")
		if group == gk.Group && kind == gk.Kind {
			return provider{index: j + 1, what: "CustomResourceDefinition " + d.GetName(), crd: d.GetName()}, true
		}
	}
	return provider{}, false
}

// namespaceProvider finds the earliest document before i that is the Namespace document i goes to.
func (a *applier) namespaceProvider(i int) (provider, bool) {
	ns := a.docs[i].GetNamespace()
	for j := 0; j < i && ns != ""; j++ {
		d := a.docs[j]
		if d.GetKind() == "Namespace" && d.GroupVersionKind().Group == "" && d.GetName() == ns {
			return provider{index: j + 1, what: "Namespace " + ns}, true
		}
	}
	return provider{}, false
}

func isCRD(obj *unstructured.Unstructured) bool {
	return obj.GetKind() == "CustomResourceDefinition" && obj.GroupVersionKind().Group == "apiextensions.k8s.io"
}

// missingNamespace reports whether err is the apiserver's "namespaces NS not found".
func missingNamespace(err error, ns string) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || !apierrors.IsNotFound(err) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Kind == "namespaces" && d.Name == ns
}

func isStatus(err error, statuses ...int) bool {
	apiErr := httpapi.AsError(err)
	for _, s := range statuses {
		if apiErr.Status == s {
			return true
		}
	}
	return false
}

// write answers: 200 when nothing failed; when a document failed, 207 if an earlier one changed the cluster
// (applied), else the failure's own status with the error shape — so a non-2xx answer means this request
// changed nothing.
func (a *applier) write(w http.ResponseWriter, r *http.Request) {
	ans := applyAnswer{Items: a.items}
	var first *docResult
	for i := range a.items {
		it := &a.items[i]
		switch it.Status {
		case StatusApplied:
			ans.Applied++
		case StatusUnchanged:
			ans.Unchanged++
		case StatusFailed:
			ans.Failed++
			if first == nil {
				first = it
			}
		case StatusSkipped:
			ans.Skipped++
		case StatusDryRun:
			ans.DryRun++
		case StatusDepends:
			ans.Depends++
		}
	}
	status := http.StatusOK
	switch {
	case first == nil:
	case ans.Applied > 0:
		status = http.StatusMultiStatus
	default:
		status = first.Error.Status
		e := *first.Error
		e.Message = fmt.Sprintf("document %d (%s): %s", first.Index, docRef(first), e.Message)
		ans.Error, ans.RequestID = &e, httpapi.RequestIDFrom(r.Context())
		if status >= 500 {
			a.f.log.Warnw("apply failed", "cluster", a.c.Name, "status", status, "error", first.Error.Message)
		}
	}
	if first != nil && first.Error.Code == CodeCRDNotReady {
		w.Header().Set("Retry-After", strconv.Itoa(crdRetryAfter))
	}
	httpapi.WriteJSON(w, status, ans)
}

func docRef(it *docResult) string {
	if it.Namespace != "" {
		return it.Kind + " " + it.Namespace + "/" + it.Name
	}
	return it.Kind + " " + it.Name
}

// resolveKind finds the resource of a document's apiVersion and kind: a family kind through its CRD (so a
// missing CRD gets the install hint), anything else as its lower-cased kind — the singular resource name, which
// discovery maps as kubectl does.
func (f *Function) resolveKind(ctx context.Context, c *kube.Client, group, version, kind string) (target, error) {
	ref := strings.ToLower(kind)
	if k, ok := familyKind(group, kind); ok {
		ref = k.Plural + "." + k.Group
	} else if group != "" {
		ref += "." + group
	}
	t, err := f.resolve(ctx, c, ref)
	if err != nil || version == "" || t.gvr.Version == version {
		return t, err
	}
	if t.crd != "" {
		st, err := f.state(c)
		if err != nil {
			return target{}, err
		}
		return f.fromCRD(ctx, st, t.crd, version)
	}
	t.gvr.Version = version // a version discovery did not prefer: the apiserver says if it serves it
	return t, nil
}

// familyKind finds a family kind by API group and kind.
func familyKind(group, kind string) (crd.Kind, bool) {
	for _, fam := range crd.Families() {
		for _, k := range fam.Kinds {
			if k.Group == group && strings.EqualFold(k.Kind, kind) {
				return k, true
			}
		}
	}
	return crd.Kind{}, false
}

// parseDocuments reads YAML or JSON documents (a `kind: List` is flattened into its items) and checks each
// names apiVersion, kind and name, so nothing is applied when any document is malformed. Documents are decoded
// as JSON into unstructured objects with apimachinery's scheme, so integers stay int64 (3 is not 3.0, and
// 9007199254740993 is not rounded).
func parseDocuments(body []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(body), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"document %d is not valid YAML or JSON: %v", i, err)
		}
		var fields map[string]json.RawMessage
		if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue // an empty document between separators
		}
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"document %d is not an object", i)
		}
		if len(fields) == 0 {
			continue
		}
		if _, ok := fields["kind"]; !ok {
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "document %d has no kind", i)
		}
		obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, raw)
		if err != nil {
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "document %d: %v", i, err)
		}
		switch o := obj.(type) {
		case *unstructured.UnstructuredList:
			for j := range o.Items {
				out = append(out, &o.Items[j])
			}
		case *unstructured.Unstructured:
			out = append(out, o)
		default:
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "document %d is not an object", i)
		}
	}
	if len(out) == 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "no document to apply")
	}
	for i, obj := range out {
		var missing []string
		if obj.GetAPIVersion() == "" {
			missing = append(missing, "apiVersion")
		}
		if obj.GetKind() == "" {
			missing = append(missing, "kind")
		}
		if obj.GetName() == "" {
			missing = append(missing, "metadata.name")
		}
		if len(missing) > 0 {
			return nil, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"document %d has no %s", i+1, strings.Join(missing, ", "))
		}
	}
	return out, nil
}

package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kitefn/kitefn/functions/search/index"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/store"
)

const (
	defaultLimit = 50
	maxLimit     = 500
	allClusters  = "_all"
)

// request is a parsed search.
type request struct {
	q     index.Query
	kinds []kindRef // nil: the default kinds and installed families
	limit int
	key   string // the result cache's key, less the clusters
}

// parseRequest reads q, types, namespace and limit; a bad one is a 400 naming it.
func parseRequest(r *http.Request) (*request, error) {
	v := r.URL.Query()
	raw := strings.ReplaceAll(strings.TrimSpace(v.Get("q")), "\x00", "")
	if utf8.RuneCountInString(raw) < 2 {
		return nil, fieldError("q", "q must be at least 2 characters")
	}
	req := &request{limit: defaultLimit}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fieldError("limit", fmt.Sprintf("limit must be a positive integer, got %q", s))
		}
		req.limit = min(n, maxLimit)
	}
	req.q.Namespace = strings.TrimSpace(v.Get("namespace"))
	if req.q.Namespace == "_all" {
		req.q.Namespace = ""
	}
	for _, t := range strings.Split(v.Get("types"), ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		k, ok := parseKind(t)
		if !ok {
			return nil, fieldError("types", fmt.Sprintf("unknown kind %q: use a kubectl name (pods, deploy, svc, cm, …) "+
				"or a CRD as plural.group", t))
		}
		req.kinds = append(req.kinds, k)
	}
	term := raw
	// Kite's prefix: "po nginx" searches pods for nginx. The prefix names the kind; types= is then ignored.
	if first, rest, ok := strings.Cut(raw, " "); ok {
		if k, isKind := parseKind(first); isKind && strings.TrimSpace(rest) != "" {
			req.kinds, term = []kindRef{k}, strings.TrimSpace(rest)
		}
	}
	term = strings.ToLower(term)
	if i := strings.IndexAny(term, "=:"); i > 0 {
		req.q.IsLabel, req.q.LabelKey, req.q.LabelValue = true, strings.TrimSpace(term[:i]), strings.TrimSpace(term[i+1:])
	} else {
		req.q.Term = term
	}
	names := make([]string, 0, len(req.kinds))
	for _, k := range req.kinds {
		if k.builtin != nil {
			names = append(names, k.builtin.Key())
		} else {
			names = append(names, k.crd)
		}
	}
	slices.Sort(names)
	req.key = strings.Join([]string{term, strings.Join(names, ","), req.q.Namespace, strconv.Itoa(req.limit)}, "\x00")
	return req, nil
}

func fieldError(field, msg string) error {
	return &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeBadRequest, Message: msg, Field: field}
}

// The answer.
type (
	response struct {
		Items    []item          `json:"items"`
		Total    int             `json:"total"`
		Partial  bool            `json:"partial"`
		Errors   []searchError   `json:"errors"`
		Clusters []clusterReport `json:"clusters"`
	}
	item struct {
		Cluster    string            `json:"cluster"`
		Resource   string            `json:"resource"`
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Namespace  string            `json:"namespace,omitempty"`
		Name       string            `json:"name"`
		UID        string            `json:"uid"`
		Labels     map[string]string `json:"labels"`
		CreatedAt  string            `json:"createdAt"`
		Match      string            `json:"match"`
		Score      int               `json:"score"`
	}
	searchError struct {
		Cluster  string `json:"cluster"`
		Resource string `json:"resource,omitempty"`
		Status   int    `json:"status"`
		Code     string `json:"code"`
		Message  string `json:"message"`
	}
	clusterReport struct {
		Name      string  `json:"name"`
		Status    string  `json:"status"` // ok, partial (some kinds failed), error (nothing searched)
		Objects   int     `json:"objects"`
		Source    string  `json:"source"` // index: answered from memory; list: waited for a list
		ElapsedMs float64 `json:"elapsedMs"`
	}
)

// clusterResult is one cluster's part of a search.
type clusterResult struct {
	report   clusterReport
	top      *index.Top
	errors   []searchError
	notFound bool
	// outOfScope refuses the whole search: it named a cluster outside the caller's cluster scope.
	outOfScope error
}

// search serves GET /api/v1/search.
func (f *Function) search(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	caller, ok := access.CallerFrom(r.Context())
	if !ok {
		httpapi.WriteError(w, r, noCaller())
		return
	}
	req, err := parseRequest(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if req.q.Namespace != "" && !caller.AllowsNamespace(req.q.Namespace) {
		httpapi.WriteError(w, r, namespaceOutOfScope(caller, "", req.q.Namespace))
		return
	}
	refs, single, err := f.clusterRefs(r, caller)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	cacheKey := ""
	if f.results != nil {
		cacheKey = strings.Join(sorted(refs), ",") + "\x00" + callerKey(r.Header.Get("Authorization"), caller) +
			"\x00" + req.key
		if body, ok := f.results.Get(cacheKey); ok {
			w.Header().Set("X-Search-Cache", "hit")
			writeBody(w, began, body)
			return
		}
	}

	results := make([]clusterResult, len(refs))
	budget := newReviewBudget()
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f.searchCluster(r.Context(), ref, req, caller, budget)
		}()
	}
	wg.Wait()
	f.index.Enforce()
	for _, res := range results {
		if res.outOfScope != nil { // as the runtime's table refuses it: the whole request, naming the cluster
			httpapi.WriteError(w, r, res.outOfScope)
			return
		}
	}
	if single && results[0].notFound {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q not found", refs[0]))
		return
	}

	top := index.NewTop(req.limit)
	resp := response{Items: []item{}, Errors: []searchError{}, Clusters: make([]clusterReport, 0, len(results))}
	for _, res := range results {
		if res.top != nil {
			top.Merge(res.top)
		}
		resp.Errors = append(resp.Errors, res.errors...)
		resp.Clusters = append(resp.Clusters, res.report)
	}
	resp.Total, resp.Partial = top.Total, len(resp.Errors) > 0
	for _, h := range top.Sorted() {
		resp.Items = append(resp.Items, item{Cluster: h.Cluster, Resource: h.Resource.Key(), Kind: h.Resource.Kind,
			APIVersion: h.Resource.APIVersion(), Namespace: h.Namespace, Name: h.Name(), UID: h.UID(),
			Labels: h.Labels(), CreatedAt: h.Created().Format(time.RFC3339), Match: h.Match, Score: h.Score})
	}
	body, err := json.Marshal(resp)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("encoding the search answer: %w", err))
		return
	}
	if f.results != nil && !resp.Partial {
		f.results.Add(cacheKey, body)
	}
	writeBody(w, began, body)
}

func writeBody(w http.ResponseWriter, began time.Time, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Server-Timing", fmt.Sprintf("search;dur=%.3f", ms(time.Since(began))))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// clusterRefs reads which clusters to search: clusters=a,b, clusters=_all (every registered one), or the usual
// single selection. single says the usual selection was used (an unknown cluster is then a 404). _all is every
// registered cluster the caller's cluster scope admits; clusters named otherwise are checked once resolved.
func (f *Function) clusterRefs(r *http.Request, caller *access.Caller) ([]string, bool, error) {
	list := strings.TrimSpace(r.URL.Query().Get("clusters"))
	if list == allClusters {
		recs, err := f.registry.List(r.Context())
		if err != nil {
			return nil, false, err
		}
		ids := make(map[uint64]bool, len(recs))
		refs := make([]string, 0, len(recs))
		for _, rec := range recs {
			ids[rec.ID] = true
			if caller.AllowsCluster(rec.Name) {
				refs = append(refs, strconv.FormatUint(rec.ID, 10))
			}
		}
		f.index.Retain(ids) // deleted clusters' indexes go with them
		return refs, false, nil
	}
	if list != "" {
		var refs []string
		for _, ref := range strings.Split(list, ",") {
			if ref = strings.TrimSpace(ref); ref != "" && !slices.Contains(refs, ref) {
				refs = append(refs, ref)
			}
		}
		if len(refs) > 0 {
			return refs, false, nil
		}
	}
	if ref := clusterhttp.ClusterRef(r); ref != "" {
		return []string{ref}, true, nil
	}
	return nil, false, fieldError("clusters", "no cluster selected: send the X-Cluster-Name header, ?cluster=, "+
		"or ?clusters=a,b (or _all)")
}

// searchCluster searches one cluster within its own deadline; whatever fails is reported, never returned. On a
// cluster that impersonates the caller (ActAs), the shared index is filtered by what the caller may list there.
func (f *Function) searchCluster(ctx context.Context, ref string, req *request, caller *access.Caller,
	budget *reviewBudget) (out clusterResult) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, f.cfg.ClusterTimeout)
	defer cancel()
	out = clusterResult{report: clusterReport{Name: ref, Status: "error", Source: "index"}}
	defer func() { out.report.ElapsedMs = ms(time.Since(began)) }()
	fail := func(resource string, err error) {
		e := httpapi.AsError(err)
		out.errors = append(out.errors, searchError{Cluster: out.report.Name, Resource: resource, Status: e.Status,
			Code: e.Code, Message: e.Message})
	}

	c, err := f.clients.Client(ctx, ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			f.index.DropName(ref, "the cluster was deleted")
			out.notFound = true
			err = httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q not found", ref)
		}
		fail("", err)
		return out
	}
	if !caller.AllowsCluster(c.Name) {
		out.outOfScope = clusterOutOfScope(caller, c.Name)
		return out
	}
	out.report.Name = c.Name
	var chk *accessCheck
	if f.actAs != nil {
		as, identity, err := f.actAs(ctx, c, caller)
		if err != nil {
			fail("", kube.APIError(c.Name, fmt.Errorf("acting as %s %q: %w", caller.Kind, caller.Name, err)))
			return out
		}
		if as != nil {
			chk = &accessCheck{cluster: c, cs: as.Kubernetes, identity: identity, cache: f.access, budget: budget}
		}
	}
	cl := f.index.For(c)
	kinds, kindErrs := f.kindsFor(ctx, c, cl, req)
	for _, ke := range kindErrs {
		fail(ke.resource, ke.err)
	}
	if namespaceScoped(caller) {
		// Cluster-scoped kinds are hidden: silently by default, with a 403 when asked for by name.
		kept := kinds[:0]
		for _, use := range kinds {
			if use.kind.Resource.Namespaced {
				kept = append(kept, use)
			} else if req.kinds != nil {
				fail(use.kind.Resource.Key(), namespaceOutOfScope(caller, use.kind.Resource.Key(), ""))
			}
		}
		kinds = kept
	}

	top := index.NewTop(req.limit)
	failed := 0
	ready := make([]*index.Kind, 0, len(kinds))
	for _, use := range kinds {
		k := use.kind
		waited, err := k.Wait(ctx)
		if waited || !use.wasSynced {
			out.report.Source = "list"
		}
		if err != nil {
			failed++
			fail(k.Resource.Key(), kube.APIError(c.Name, err))
			continue
		}
		ready = append(ready, k)
	}
	queries, denied := decide(ctx, chk, caller, c.Name, ready, &req.q)
	for i, k := range ready {
		if denied[i] != nil {
			failed++
			fail(k.Resource.Key(), denied[i])
			continue
		}
		out.report.Objects += k.Scan(c.Name, &queries[i], top)
	}
	out.top = top
	switch {
	case failed == len(kinds) && len(kinds) > 0:
		out.errors = collapse(out.errors)
	case len(out.errors) > 0:
		out.report.Status = "partial"
	default:
		out.report.Status = "ok"
	}
	return out
}

// decide makes each kind's query: the caller's namespace scope always, and on an impersonating cluster (chk
// set) what the cluster lets the caller list, decided for every kind at once. denied[i] says why kind i is
// not searched at all.
func decide(ctx context.Context, chk *accessCheck, caller *access.Caller, cluster string, kinds []*index.Kind,
	base *index.Query) (queries []index.Query, denied []error) {
	queries, denied = make([]index.Query, len(kinds)), make([]error, len(kinds))
	inScope := func(_, ns string) bool { return caller.AllowsNamespace(ns) }
	var wg sync.WaitGroup
	for i, k := range kinds {
		queries[i] = *base
		queries[i].Allow = inScope
		if chk == nil || (base.Namespace != "" && !k.Resource.Namespaced) { // the latter: nothing is scanned
			continue
		}
		wg.Go(func() {
			asked := namespacesToAsk(k, base, caller)
			all, allowed, err := chk.listable(ctx, k.Resource, asked)
			switch {
			case err != nil:
				denied[i] = reviewError(cluster, err)
			case !all && len(allowed) == 0:
				denied[i] = forbiddenKind(cluster, chk.identity, k.Resource, asked)
			default:
				queries[i].Allow = func(_, ns string) bool { return caller.AllowsNamespace(ns) && (all || allowed[ns]) }
			}
		})
	}
	wg.Wait()
	return queries, denied
}

// collapse reports a cluster where every kind failed alike (unreachable, too slow) once, not once per kind.
func collapse(errs []searchError) []searchError {
	for _, e := range errs[1:] {
		if e.Status != errs[0].Status || e.Message != errs[0].Message {
			return errs
		}
	}
	e := errs[0]
	e.Resource = ""
	return []searchError{e}
}

type kindError struct {
	resource string
	err      error
}

// kindUse is a kind to search and whether it was already fresh when the search took it: a kind that was not
// is answered from a list made for this search ("source": "list"), even if the list landed before the wait.
type kindUse struct {
	kind      *index.Kind
	wasSynced bool
}

func use(k *index.Kind) kindUse { return kindUse{kind: k, wasSynced: k.Synced()} }

// kindsFor starts (on first use) and returns the kinds to search in one cluster: those asked for, or the
// default ones plus every kind of the CRD families the cluster has.
func (f *Function) kindsFor(ctx context.Context, c *kube.Client, cl *index.Cluster, req *request) ([]kindUse, []kindError) {
	var kinds []kindUse
	var errs []kindError
	st := f.state(c)
	if req.kinds != nil {
		for _, ref := range req.kinds {
			if ref.builtin != nil {
				kinds = append(kinds, use(cl.Kind(*ref.builtin)))
				continue
			}
			res, err := st.resolveCRD(ctx, c.Name, ref.crd, "")
			if err != nil {
				errs = append(errs, kindError{ref.crd, err})
				continue
			}
			kinds = append(kinds, use(cl.Kind(res)))
		}
		return kinds, errs
	}
	crds := cl.Kind(crdsResource)
	for _, b := range builtins {
		if b.byDefault {
			kinds = append(kinds, use(cl.Kind(b.res)))
		}
	}
	// Which families are installed: the CRDs' names, from the index. Credentials that may not read CRDs
	// search the built-in kinds only.
	if _, err := crds.Wait(ctx); err != nil {
		return kinds, errs
	}
	present := crds.Names()
	for _, fam := range f.families {
		for _, k := range fam.Kinds {
			uid, ok := present[k.CRD()]
			if !ok {
				continue
			}
			res, err := st.resolveCRD(ctx, c.Name, k.CRD(), uid)
			if err != nil {
				errs = append(errs, kindError{k.CRD(), err})
				continue
			}
			kinds = append(kinds, use(cl.Kind(res)))
		}
	}
	return kinds, errs
}

// status serves GET /api/v1/search/status: for a caller with a cluster scope, only the clusters it admits, and
// the objects and bytes those hold (the budget and evictions are the instance's).
func (f *Function) status(w http.ResponseWriter, r *http.Request) {
	caller, ok := access.CallerFrom(r.Context())
	if !ok {
		httpapi.WriteError(w, r, noCaller())
		return
	}
	// The index's counts are per kind across every namespace: cluster-wide data, like CRDs and Prometheus
	// elsewhere, so a caller with a namespace scope may not see them.
	if err := caller.CheckNamespace("get search/status", ""); err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error()))
		return
	}
	st := f.index.Status()
	if len(caller.Clusters) > 0 {
		shown := st.Clusters[:0]
		st.Objects, st.Bytes = 0, 0
		for _, cs := range st.Clusters {
			if caller.AllowsCluster(cs.Name) {
				shown = append(shown, cs)
				st.Objects += cs.Objects
				st.Bytes += cs.Bytes
			}
		}
		st.Clusters = shown
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

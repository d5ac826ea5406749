package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

var kube *harness.Cluster

// limitedUser may list pods and configmaps in every namespace, and nothing else.
const limitedUser = "search-limited"

func TestMain(m *testing.M) { harness.Main(m, &kube, harness.WithUser(limitedUser)) }

type env struct {
	api *apitest.Server
	cs  kubernetes.Interface
}

func setup(t *testing.T, vars map[string]string) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	if vars == nil {
		vars = map[string]string{}
	}
	if _, ok := vars["KITEFN_SEARCH_CACHE_TTL"]; !ok {
		vars["KITEFN_SEARCH_CACHE_TTL"] = "0"
	}
	api := apitest.Start(t, vars, apitest.Function("search"))
	api.AddCluster("test", kube.AdminKubeconfig())
	return &env{api: api, cs: kubernetes.NewForConfigOrDie(kube.RESTConfig())}
}

func (e *env) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (e *env) configMap(t *testing.T, ns, name string, labels, annotations map[string]string) {
	t.Helper()
	_, err := e.cs.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Data:       map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) pod(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	_, err := e.cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// answer is the decoded search answer.
type answer struct {
	Items []struct {
		Cluster, Resource, Kind, APIVersion, Namespace, Name, UID, CreatedAt, Match string
		Labels                                                                      map[string]string
		Score                                                                       int
	}
	Total   int
	Partial bool
	Errors  []struct {
		Cluster, Resource, Code, Message string
		Status                           int
	}
	Clusters []struct {
		Name, Status, Source string
		Objects              int
		ElapsedMs            float64
	}
}

func (e *env) search(t *testing.T, params string, hdr ...string) (answer, apitest.Response) {
	t.Helper()
	if !strings.Contains(params, "clusters=") {
		hdr = append([]string{"X-Cluster-Name", "test"}, hdr...)
	}
	r := e.api.Do(http.MethodGet, "/api/v1/search?"+params, nil, hdr...)
	var a answer
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &a); err != nil {
			t.Fatal(err)
		}
	}
	return a, r
}

func (a answer) names() []string {
	var out []string
	for _, it := range a.Items {
		out = append(out, it.Kind+":"+it.Namespace+"/"+it.Name)
	}
	return out
}

func q(term string, extra ...string) string {
	return strings.Join(append([]string{"q=" + url.QueryEscape(term)}, extra...), "&")
}

func TestSearchRankingAndSyntax(t *testing.T) {
	e := setup(t, nil)
	e.namespace(t, "rank")
	e.configMap(t, "rank", "web", map[string]string{"app": "shop"}, nil)
	e.configMap(t, "rank", "web-settings", map[string]string{"app": "web"}, nil)
	e.configMap(t, "rank", "my-web-cache", nil, nil)
	e.configMap(t, "rank", "unrelated", map[string]string{"tier": "Web"}, nil)
	e.configMap(t, "rank", "noted", nil, map[string]string{"owner": "the web team"})
	e.configMap(t, "rank", "web.1", nil, nil)
	e.configMap(t, "rank", "webx1", nil, nil)
	e.pod(t, "rank", "web", map[string]string{"app": "web"})
	_, err := e.cs.CoreV1().Secrets("rank").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "web-token", Labels: map[string]string{"app": "web"}},
		StringData: map[string]string{"password": "hunter2-secret-value"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	a, r := e.search(t, q("WEB", "namespace=rank"))
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// web-settings, web.1, web-token and webx1 are all prefixes: kind order, then name.
	want := []string{"Pod:rank/web", "ConfigMap:rank/web", "ConfigMap:rank/web-settings", "ConfigMap:rank/web.1",
		"ConfigMap:rank/webx1", "Secret:rank/web-token", "ConfigMap:rank/my-web-cache", "ConfigMap:rank/unrelated",
		"ConfigMap:rank/noted"}
	if got := a.names(); !slices.Equal(got, want) {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
	if a.Total != len(want) || a.Partial || len(a.Errors) != 0 {
		t.Fatalf("total %d partial %v errors %v", a.Total, a.Partial, a.Errors)
	}
	scores := []int{100, 100, 80, 80, 80, 80, 60, 40, 20}
	matches := []string{"name", "name", "name", "name", "name", "name", "name", "label", "annotation"}
	for i, it := range a.Items {
		if it.Score != scores[i] || it.Match != matches[i] {
			t.Fatalf("%s: score %d match %s, want %d %s", it.Name, it.Score, it.Match, scores[i], matches[i])
		}
	}
	first := a.Items[0]
	if first.Cluster != "test" || first.Resource != "pods" || first.APIVersion != "v1" || first.UID == "" ||
		first.Labels["app"] != "web" {
		t.Fatalf("item: %+v", first)
	}
	if _, err := time.Parse(time.RFC3339, first.CreatedAt); err != nil {
		t.Fatalf("createdAt %q: %v", first.CreatedAt, err)
	}
	if a.Clusters[0].Name != "test" || a.Clusters[0].Status != "ok" || a.Clusters[0].Source != "list" ||
		a.Clusters[0].Objects < len(want) || a.Clusters[0].ElapsedMs <= 0 {
		t.Fatalf("clusters: %+v", a.Clusters)
	}
	if !strings.HasPrefix(r.Header.Get("Server-Timing"), "search;dur=") {
		t.Fatalf("Server-Timing %q", r.Header.Get("Server-Timing"))
	}
	// A Secret's data is never part of an answer.
	if strings.Contains(string(r.Body), "hunter2") || strings.Contains(string(r.Body), "password") {
		t.Fatalf("secret data in the answer: %s", r.Body)
	}

	// The second search answers from memory.
	a, _ = e.search(t, q("web", "namespace=rank"))
	if a.Clusters[0].Source != "index" || len(a.Items) != len(want) {
		t.Fatalf("second search: %+v", a.Clusters)
	}
	// Limit keeps the best, total counts all.
	a, _ = e.search(t, q("web", "namespace=rank", "limit=2"))
	if got := a.names(); !slices.Equal(got, want[:2]) || a.Total != len(want) {
		t.Fatalf("limit 2: %v total %d", got, a.Total)
	}

	for _, tc := range []struct {
		params string
		want   []string
	}{
		{q("po web", "namespace=rank"), []string{"Pod:rank/web"}},
		{q("cm web-s", "namespace=rank"), []string{"ConfigMap:rank/web-settings"}},
		{q("secret web", "namespace=rank"), []string{"Secret:rank/web-token"}},
		{q("web", "namespace=rank", "types=po,secrets"), []string{"Pod:rank/web", "Secret:rank/web-token"}},
		// Labels: key=value and key:value.
		{q("app=web", "namespace=rank"), []string{"Pod:rank/web", "ConfigMap:rank/web-settings", "Secret:rank/web-token"}},
		{q("app:shop", "namespace=rank"), []string{"ConfigMap:rank/web"}},
		{q("po app=web", "namespace=rank"), []string{"Pod:rank/web"}},
		// Regex characters are literals.
		{q("web.1", "namespace=rank"), []string{"ConfigMap:rank/web.1"}},
		{q("w.b", "namespace=rank"), nil},
		{q(".*", "namespace=rank"), nil},
		// A first word that is no kind is part of the term.
		{q("the web", "namespace=rank"), []string{"ConfigMap:rank/noted"}},
	} {
		a, r := e.search(t, tc.params)
		if r.Status != 200 || !slices.Equal(a.names(), tc.want) {
			t.Errorf("%s: %d %v, want %v", tc.params, r.Status, a.names(), tc.want)
		}
	}

	for _, tc := range []struct{ params, field string }{
		{"q=w", "q"},
		{"q=", "q"},
		{q("web", "limit=0"), "limit"},
		{q("web", "types=frobnicators"), "types"},
	} {
		_, r := e.search(t, tc.params)
		r.Expect(t, 400, "bad_request")
		if f := r.JSON["error"].(map[string]any)["field"]; f != tc.field {
			t.Errorf("%s: field %v, want %s", tc.params, f, tc.field)
		}
	}
	e.api.Do(http.MethodGet, "/api/v1/search?"+q("web"), nil).Expect(t, 400, "bad_request")
	e.api.Do(http.MethodGet, "/api/v1/search?"+q("web"), nil, "X-Cluster-Name", "nope").Expect(t, 404, "not_found")
}

// poll searches until cond holds, within a deadline.
func (e *env) poll(t *testing.T, params string, what string, cond func(answer) bool) {
	t.Helper()
	var last answer
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) {
			last, _ = e.search(t, params)
			return cond(last), nil
		})
	if err != nil {
		t.Fatalf("%s: last answer %v", what, last.names())
	}
}

func TestSearchIndexFollowsChanges(t *testing.T) {
	e := setup(t, nil)
	e.namespace(t, "fresh")
	e.configMap(t, "fresh", "early-bird", nil, nil)
	a, _ := e.search(t, q("bird", "namespace=fresh"))
	if !slices.Equal(a.names(), []string{"ConfigMap:fresh/early-bird"}) {
		t.Fatalf("first: %v", a.names())
	}
	e.configMap(t, "fresh", "late-bird", nil, nil)
	e.poll(t, q("bird", "namespace=fresh"), "created", func(a answer) bool {
		return slices.Equal(a.names(), []string{"ConfigMap:fresh/early-bird", "ConfigMap:fresh/late-bird"}) &&
			a.Clusters[0].Source == "index"
	})
	if err := e.cs.CoreV1().ConfigMaps("fresh").Delete(context.Background(), "early-bird", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.poll(t, q("bird", "namespace=fresh"), "deleted", func(a answer) bool {
		return slices.Equal(a.names(), []string{"ConfigMap:fresh/late-bird"})
	})
	// A label change is seen too.
	cm, err := e.cs.CoreV1().ConfigMaps("fresh").Get(context.Background(), "late-bird", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels = map[string]string{"flock": "geese"}
	if _, err := e.cs.CoreV1().ConfigMaps("fresh").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.poll(t, q("flock=geese", "namespace=fresh"), "relabelled", func(a answer) bool {
		return slices.Equal(a.names(), []string{"ConfigMap:fresh/late-bird"})
	})
}

// hangingKubeconfig points at a listener that accepts connections and never answers.
func hangingKubeconfig(t *testing.T) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; _ = c.Close() }()
		}
	}()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hang"] = &clientcmdapi.Cluster{Server: "https://" + ln.Addr().String(), InsecureSkipTLSVerify: true}
	cfg.AuthInfos["hang"] = &clientcmdapi.AuthInfo{Token: "nothing-to-see"}
	cfg.Contexts["hang"] = &clientcmdapi.Context{Cluster: "hang", AuthInfo: "hang"}
	cfg.CurrentContext = "hang"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSearchManyClustersOneUnreachable(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_SEARCH_CLUSTER_TIMEOUT": "2s", "KITEFN_SEARCH_CACHE_TTL": "1m"})
	e.api.AddCluster("second", kube.AdminKubeconfig())
	e.api.AddCluster("stuck", hangingKubeconfig(t))
	e.namespace(t, "multi")
	e.configMap(t, "multi", "everywhere", nil, nil)

	for _, params := range []string{q("everywhere", "clusters=test,stuck,second"), q("everywhere", "clusters=_all")} {
		began := time.Now()
		a, r := e.search(t, params)
		took := time.Since(began)
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", params, r.Status, r.Body)
		}
		if took > 5*time.Second {
			t.Fatalf("%s took %s: the stuck cluster held the search past its deadline", params, took)
		}
		if !slices.Equal(a.names(), []string{"ConfigMap:multi/everywhere", "ConfigMap:multi/everywhere"}) ||
			a.Items[0].Cluster != "second" || a.Items[1].Cluster != "test" || a.Total != 2 {
			t.Fatalf("%s: items %+v", params, a.Items)
		}
		if !a.Partial || len(a.Errors) != 1 || a.Errors[0].Cluster != "stuck" || a.Errors[0].Status != 504 ||
			a.Errors[0].Code != "cluster_timeout" || !strings.Contains(a.Errors[0].Message, `"stuck"`) {
			t.Fatalf("%s: errors %+v", params, a.Errors)
		}
		statuses := map[string]string{}
		for _, c := range a.Clusters {
			statuses[c.Name] = c.Status
		}
		if statuses["stuck"] != "error" || statuses["test"] != "ok" || statuses["second"] != "ok" {
			t.Fatalf("%s: clusters %+v", params, a.Clusters)
		}
		// A partial answer is never cached (the TTL is a minute here).
		if r.Header.Get("X-Search-Cache") != "" {
			t.Fatalf("%s: a partial answer came from the cache", params)
		}
		_, r = e.search(t, params)
		if r.Header.Get("X-Search-Cache") != "" {
			t.Fatalf("%s: the partial answer was cached", params)
		}
	}
	// An unknown cluster among several is an error beside the others' results.
	a, _ := e.search(t, q("everywhere", "clusters=test,gone"))
	if len(a.Items) != 1 || len(a.Errors) != 1 || a.Errors[0].Status != 404 || a.Errors[0].Cluster != "gone" {
		t.Fatalf("unknown cluster: %+v %+v", a.Items, a.Errors)
	}
}

func TestSearchForbiddenKinds(t *testing.T) {
	e := setup(t, nil)
	e.namespace(t, "limited")
	e.configMap(t, "limited", "shared-thing", nil, nil)
	e.pod(t, "limited", "shared-thing", nil)
	ctx := context.Background()
	if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "search-limited"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"},
			Verbs: []string{"list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "search-limited"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "search-limited"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: limitedUser}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.api.AddCluster("limited", kube.Kubeconfig(limitedUser))
	params := q("shared-thing", "namespace=limited", "clusters=limited")
	// The authorizer sees the binding shortly after it is created; until then the pods are forbidden too.
	// Each attempt uses a fresh types= set, so kinds that failed earlier are retried by their own backoff only.
	var a answer
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		a, _ = e.search(t, params)
		return len(a.Items) == 2, nil
	})
	if err != nil {
		t.Fatalf("the limited user never found its pods and configmaps: %+v %+v", a.Items, a.Errors)
	}
	if !slices.Equal(a.names(), []string{"Pod:limited/shared-thing", "ConfigMap:limited/shared-thing"}) || !a.Partial {
		t.Fatalf("items %v partial %v", a.names(), a.Partial)
	}
	forbidden := map[string]bool{}
	for _, er := range a.Errors {
		if er.Status != 403 || er.Code != "forbidden" || er.Cluster != "limited" ||
			!strings.Contains(er.Message, `User "search-limited" cannot list resource`) {
			t.Fatalf("error %+v", er)
		}
		forbidden[er.Resource] = true
	}
	for _, res := range []string{"secrets", "deployments.apps", "nodes", "horizontalpodautoscalers.autoscaling"} {
		if !forbidden[res] {
			t.Errorf("%s not reported forbidden: %+v", res, a.Errors)
		}
	}
	if forbidden["pods"] || forbidden["configmaps"] || forbidden["customresourcedefinitions.apiextensions.k8s.io"] {
		t.Errorf("allowed kinds (or the CRDs, which are not searched by default) reported: %+v", a.Errors)
	}
	if a.Clusters[0].Status != "partial" {
		t.Errorf("cluster status %q", a.Clusters[0].Status)
	}
}

// status reads GET /api/v1/search/status: cluster name → its watch state, objects and per-kind watch states.
type indexStatus struct {
	Bytes, BudgetBytes int64
	Evictions          int64
	Objects            int
	Clusters           []struct {
		Name    string
		Indexed bool
		Objects int
		Bytes   int64
		Watch   string
		Kinds   []struct {
			Resource, Watch string
			Objects         int
			Synced          bool
		}
	}
}

func (e *env) status(t *testing.T) indexStatus {
	t.Helper()
	r := e.api.Do(http.MethodGet, "/api/v1/search/status", nil).Expect(t, 200, "")
	var st indexStatus
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (st indexStatus) names() []string {
	var out []string
	for _, c := range st.Clusters {
		out = append(out, c.Name)
	}
	return out
}

func TestSearchStatus(t *testing.T) {
	e := setup(t, nil)
	e.namespace(t, "status")
	e.configMap(t, "status", "counted", nil, nil)
	e.search(t, q("counted", "namespace=status"))
	st := e.status(t)
	if len(st.Clusters) != 1 || st.Clusters[0].Name != "test" || !st.Clusters[0].Indexed ||
		st.Clusters[0].Watch != "watching" || st.Clusters[0].Objects == 0 || st.Bytes <= 0 ||
		st.BudgetBytes != 256<<20 {
		t.Fatalf("status %+v", st)
	}
	// Honest bytes: well under the 1 KB per object goal for small objects, and more than nothing.
	if per := st.Clusters[0].Bytes / int64(st.Clusters[0].Objects); per < 100 || per > 1024 {
		t.Fatalf("%d bytes per object", per)
	}
	kinds := map[string]bool{}
	for _, k := range st.Clusters[0].Kinds {
		kinds[k.Resource] = k.Synced && k.Watch == "watching"
	}
	for _, res := range []string{"pods", "configmaps", "secrets", "namespaces", "nodes", "horizontalpodautoscalers.autoscaling",
		"customresourcedefinitions.apiextensions.k8s.io"} {
		if !kinds[res] {
			t.Errorf("%s not watching: %+v", res, st.Clusters[0].Kinds)
		}
	}
}

func TestSearchBudgetEvictsLeastRecentlySearched(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_SEARCH_INDEX_BUDGET": "1"})
	e.api.AddCluster("other", kube.AdminKubeconfig())
	e.namespace(t, "budget")
	e.configMap(t, "budget", "small", nil, nil)
	params := q("small", "namespace=budget", "types=cm")
	a, _ := e.search(t, params)
	if len(a.Items) != 1 || a.Clusters[0].Source != "list" {
		t.Fatalf("test: %+v", a)
	}
	if st := e.status(t); !slices.Equal(st.names(), []string{"test"}) {
		t.Fatalf("the only cluster is kept whatever it costs: %v", st.names())
	}
	a, _ = e.search(t, params+"&clusters=other")
	if len(a.Items) != 1 || a.Clusters[0].Name != "other" {
		t.Fatalf("other: %+v", a)
	}
	st := e.status(t)
	if !slices.Equal(st.names(), []string{"other"}) || st.Evictions < 1 {
		t.Fatalf("after searching other: %v, %d evictions", st.names(), st.Evictions)
	}
	// test's watches stopped with its index: searching it again lists anew.
	a, _ = e.search(t, params)
	if len(a.Items) != 1 || a.Clusters[0].Source != "list" {
		t.Fatalf("test again: %+v", a.Clusters)
	}
	if st := e.status(t); !slices.Equal(st.names(), []string{"test"}) {
		t.Fatalf("after searching test again: %v", st.names())
	}
}

func TestSearchNewKubeconfigRebuildsIndex(t *testing.T) {
	e := setup(t, nil)
	e.namespace(t, "rekey")
	_, err := e.cs.CoreV1().Secrets("rekey").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "rekey-secret"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	params := q("rekey-secret", "namespace=rekey", "types=secrets")
	a, _ := e.search(t, params)
	if len(a.Items) != 1 {
		t.Fatalf("admin: %+v", a)
	}
	if a, _ = e.search(t, params); a.Clusters[0].Source != "index" {
		t.Fatalf("second: %+v", a.Clusters)
	}
	// A new kubeconfig (another user, who may not list secrets): the index is dropped and rebuilt with it.
	p := e.api.Platform
	rec, err := p.Store.GetByName(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Kubeconfig, err = p.Sealer.Seal(kube.Kubeconfig(harness.ViewerUser)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Store.Update(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	p.Clients.Invalidate(rec.ID)
	a, _ = e.search(t, params)
	if len(a.Items) != 0 || len(a.Errors) != 1 || a.Errors[0].Status != 403 || a.Clusters[0].Source != "list" {
		t.Fatalf("after the new kubeconfig: %+v %+v %+v", a.Items, a.Errors, a.Clusters)
	}
}

func TestSearchResultCacheIsPerCaller(t *testing.T) {
	e := setup(t, map[string]string{"KITEFN_SEARCH_CACHE_TTL": "1m"})
	// The runtime accepts one test token; the function itself is called directly to be two callers.
	fn := e.direct(t)
	as := func(token string) (answer, http.Header) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/search?"+q("cached", "namespace=cache", "types=cm"), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Cluster-Name", "test")
		// The runtime would put the caller there; one caller behind many tokens keeps the key per credential.
		req = req.WithContext(access.WithCaller(req.Context(), &access.Caller{Name: "tester", Kind: access.KindToken,
			Roles: []access.Role{access.Viewer}}))
		rec := httptest.NewRecorder()
		fn.Handle(rec, req)
		var a answer
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return a, rec.Header()
	}
	e.namespace(t, "cache")
	e.configMap(t, "cache", "cached-one", nil, nil)
	if a, h := as("alice-token"); len(a.Items) != 1 || h.Get("X-Search-Cache") != "" {
		t.Fatalf("alice first: %v %v", a.names(), h)
	}
	e.configMap(t, "cache", "cached-two", nil, nil)
	// Wait until the index has it, asking as a new caller each time (each caller has its own cache entries).
	polls := 0
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		polls++
		a, _ := as(fmt.Sprintf("poller-%d", polls))
		return len(a.Items) == 2, nil
	})
	if err != nil {
		t.Fatal("the index never saw cached-two")
	}
	// bob is not served alice's answer.
	if a, h := as("bob-token"); len(a.Items) != 2 || h.Get("X-Search-Cache") != "" {
		t.Fatalf("bob: %v %v", a.names(), h)
	}
	// alice, within the TTL, gets her cached answer.
	if a, h := as("alice-token"); len(a.Items) != 1 || h.Get("X-Search-Cache") != "hit" ||
		!strings.HasPrefix(h.Get("Server-Timing"), "search;dur=") {
		t.Fatalf("alice again: %v %v", a.names(), h)
	}
}

func TestSearchDeletedClusterIndexGoes(t *testing.T) {
	e := setup(t, nil)
	rec := e.api.AddCluster("doomed", kube.AdminKubeconfig())
	a, _ := e.search(t, q("default", "types=ns", "clusters=doomed"))
	if len(a.Items) != 1 {
		t.Fatalf("before: %+v", a)
	}
	if st := e.status(t); !slices.Contains(st.names(), "doomed") {
		t.Fatalf("status: %v", st.names())
	}
	if err := e.api.Platform.Store.Delete(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	e.api.Platform.Clients.Invalidate(rec.ID)
	e.api.Do(http.MethodGet, "/api/v1/search?"+q("default", "types=ns"), nil, "X-Cluster-Name", "doomed").
		Expect(t, 404, "not_found")
	if st := e.status(t); slices.Contains(st.names(), "doomed") {
		t.Fatalf("the deleted cluster's index stayed: %v", st.names())
	}
	// clusters=_all drops indexes of clusters no longer registered.
	rec = e.api.AddCluster("doomed-too", kube.AdminKubeconfig())
	e.search(t, q("default", "types=ns", "clusters=doomed-too"))
	if err := e.api.Platform.Store.Delete(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	a, _ = e.search(t, q("default", "types=ns", "clusters=_all"))
	if len(a.Clusters) != 1 || a.Clusters[0].Name != "test" {
		t.Fatalf("_all: %+v", a.Clusters)
	}
	if st := e.status(t); !slices.Equal(st.names(), []string{"test"}) {
		t.Fatalf("after _all: %v", st.names())
	}
}

// TestSearchFamilyKinds: a CRD family's kinds are searched by default once the CRD is installed.
func TestSearchFamilyKinds(t *testing.T) {
	e := setup(t, nil)
	dyn := dynamic.NewForConfigOrDie(kube.RESTConfig())
	crdObj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "clonesets.apps.kruise.io"},
		"spec": map[string]any{
			"group": "apps.kruise.io", "scope": "Namespaced",
			"names": map[string]any{"plural": "clonesets", "singular": "cloneset", "kind": "CloneSet", "shortNames": []any{"clone"}},
			"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object",
					"x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crdGVR).Create(t.Context(), crdObj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.namespace(t, "family")
	e.configMap(t, "family", "cloned-config", nil, nil)
	cloneGVR := schema.GroupVersionResource{Group: "apps.kruise.io", Version: "v1alpha1", Resource: "clonesets"}
	clone := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
		"metadata": map[string]any{"name": "cloned", "namespace": "family", "labels": map[string]any{"app": "cloned"}}}}
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(cloneGVR).Namespace("family").Create(ctx, clone, metav1.CreateOptions{})
		return err == nil || apierrors.IsAlreadyExists(err), nil
	})
	if err != nil {
		t.Fatal("the CloneSet CRD was never served")
	}
	e.poll(t, q("cloned", "namespace=family"), "the CloneSet by default", func(a answer) bool {
		return slices.Equal(a.names(), []string{"CloneSet:family/cloned", "ConfigMap:family/cloned-config"}) &&
			a.Items[0].Resource == "clonesets.apps.kruise.io" && a.Items[0].APIVersion == "apps.kruise.io/v1alpha1"
	})
	for _, params := range []string{q("clone cloned", "namespace=family"), q("cloned", "namespace=family", "types=clonesets.apps.kruise.io")} {
		if a, _ := e.search(t, params); !slices.Equal(a.names(), []string{"CloneSet:family/cloned"}) {
			t.Fatalf("%s: %v %+v", params, a.names(), a.Errors)
		}
	}
}

package search

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kitefn/kitefn/functions/search/index"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/kube"
)

// reviews is a fake cluster's access reviews: allowed lists "resource/namespace" pairs ("pods/" is
// cluster-wide); every review asked is recorded.
type reviews struct {
	mu      sync.Mutex
	allowed map[string]bool
	fail    error
	asked   []string
}

func (rv *reviews) client() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ssar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		ra := ssar.Spec.ResourceAttributes
		key := ra.Resource + "/" + ra.Namespace
		rv.mu.Lock()
		defer rv.mu.Unlock()
		rv.asked = append(rv.asked, ra.Verb+" "+key)
		if rv.fail != nil {
			return true, nil, rv.fail
		}
		ssar.Status.Allowed = rv.allowed[key]
		return true, ssar, nil
	})
	return cs
}

func (rv *reviews) sent() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	out := slices.Clone(rv.asked)
	slices.Sort(out)
	return out
}

var (
	podsRes  = index.Resource{GVR: gvr("", "v1", "pods"), Kind: "Pod", Namespaced: true}
	nodesRes = index.Resource{GVR: gvr("", "v1", "nodes"), Kind: "Node"}
)

func check(rv *reviews, cache *decisions) *accessCheck {
	return &accessCheck{cluster: &kube.Client{ID: 7, Name: "c"}, cs: rv.client(), identity: "alice", cache: cache,
		budget: newReviewBudget()}
}

func TestListableAsksClusterWideFirst(t *testing.T) {
	rv := &reviews{allowed: map[string]bool{"pods/": true}}
	all, allowed, err := check(rv, nil).listable(t.Context(), podsRes, []string{"a", "b"})
	if err != nil || !all || allowed != nil {
		t.Fatalf("cluster-wide allow: %v %v %v", all, allowed, err)
	}
	if got := rv.sent(); !slices.Equal(got, []string{"list pods/"}) {
		t.Fatalf("asked %v: a cluster-wide allow covers every namespace", got)
	}
	// No cache (KITEFN_SEARCH_ACCESS_TTL=0): every search asks again.
	if _, _, err := check(rv, nil).listable(t.Context(), podsRes, nil); err != nil || len(rv.sent()) != 2 {
		t.Fatalf("uncached: %v, asked %v", err, rv.sent())
	}
}

func TestListablePerNamespace(t *testing.T) {
	rv := &reviews{allowed: map[string]bool{"pods/a": true}}
	cache := expirable.NewLRU[accessKey, bool](16, nil, time.Minute)
	c := check(rv, cache)
	all, allowed, err := c.listable(t.Context(), podsRes, []string{"a", "b"})
	if err != nil || all || !allowed["a"] || allowed["b"] || len(allowed) != 1 {
		t.Fatalf("per namespace: %v %v %v", all, allowed, err)
	}
	if got := rv.sent(); !slices.Equal(got, []string{"list pods/", "list pods/a", "list pods/b"}) {
		t.Fatalf("asked %v", got)
	}
	// Within the TTL nothing is asked again; another identity is asked afresh.
	if _, allowed, _ = c.listable(t.Context(), podsRes, []string{"a", "b"}); !allowed["a"] || len(rv.sent()) != 3 {
		t.Fatalf("cached: %v, asked %v", allowed, rv.sent())
	}
	c.identity = "bob"
	if _, allowed, _ = c.listable(t.Context(), podsRes, []string{"a"}); !allowed["a"] || len(rv.sent()) != 5 {
		t.Fatalf("bob: %v, asked %v", allowed, rv.sent())
	}
	// A cluster-scoped kind: only the cluster-wide question.
	rv.asked = nil
	if all, allowed, err := c.listable(t.Context(), nodesRes, []string{"a"}); all || len(allowed) != 0 || err != nil {
		t.Fatalf("nodes: %v %v %v", all, allowed, err)
	}
	if got := rv.sent(); !slices.Equal(got, []string{"list nodes/"}) {
		t.Fatalf("nodes asked %v", got)
	}
}

func TestListableFailsClosed(t *testing.T) {
	rv := &reviews{fail: errors.New("connection refused")}
	cache := expirable.NewLRU[accessKey, bool](16, nil, time.Minute)
	all, allowed, err := check(rv, cache).listable(t.Context(), podsRes, []string{"a"})
	if err == nil || all || len(allowed) != 0 {
		t.Fatalf("a failed review: %v %v %v", all, allowed, err)
	}
	if cache.Len() != 0 {
		t.Fatal("a failed review was cached")
	}
	if e := reviewError("c", err); e == nil || strings.Contains(e.Error(), "pods") {
		t.Fatalf("the cluster's error names no kind, so a cluster down is reported once: %v", e)
	}
}

func TestListableReviewLimit(t *testing.T) {
	rv := &reviews{allowed: map[string]bool{}}
	c := check(rv, nil)
	c.budget.left.Store(2)
	_, _, err := c.listable(t.Context(), podsRes, []string{"a", "b", "c"})
	var limit errReviewLimit
	if !errors.As(err, &limit) || len(rv.sent()) > 2 {
		t.Fatalf("limit: %v, asked %v", err, rv.sent())
	}
	if e := reviewError("c", err); !strings.Contains(e.Error(), "limit") {
		t.Fatalf("reported as %v", e)
	}
}

func TestCallerKeySeparatesScopes(t *testing.T) {
	base := &access.Caller{Name: "a", Kind: access.KindToken}
	keys := map[string]bool{}
	for _, c := range []*access.Caller{base,
		{Name: "a", Kind: access.KindOIDC},
		{Name: "a", Kind: access.KindToken, Namespaces: []string{"x"}},
		{Name: "a", Kind: access.KindToken, Clusters: []string{"x"}},
		{Name: "a", Kind: access.KindToken, Groups: []string{"x"}},
		{Name: "a", Kind: access.KindToken, Namespaces: []string{"x", "y"}},
	} {
		keys[callerKey("Bearer t", c)] = true
	}
	if len(keys) != 6 {
		t.Fatalf("%d distinct keys for 6 callers", len(keys))
	}
	if callerKey("Bearer t", &access.Caller{Name: "a", Namespaces: []string{"y", "x"}}) !=
		callerKey("Bearer t", &access.Caller{Name: "a", Namespaces: []string{"x", "y"}}) {
		t.Fatal("pattern order changed the key")
	}
	if callerKey("Bearer t", base) == callerKey("Bearer u", base) {
		t.Fatal("the credential is not in the key")
	}
}

func TestAccessTTLConfig(t *testing.T) {
	t.Setenv("KITEFN_SEARCH_ACCESS_TTL", "-1s")
	if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "KITEFN_SEARCH_ACCESS_TTL") {
		t.Fatalf("a negative TTL: %v", err)
	}
	t.Setenv("KITEFN_SEARCH_ACCESS_TTL", "0")
	cfg, err := LoadConfig()
	if err != nil || cfg.AccessTTL != 0 {
		t.Fatalf("0 turns the cache off: %v %v", cfg.AccessTTL, err)
	}
	if err := os.Unsetenv("KITEFN_SEARCH_ACCESS_TTL"); err != nil { // t.Setenv restores it afterwards
		t.Fatal(err)
	}
	if cfg, err = LoadConfig(); err != nil || cfg.AccessTTL != 30*time.Second {
		t.Fatalf("default: %v %v", cfg.AccessTTL, err)
	}
}

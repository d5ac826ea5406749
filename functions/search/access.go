package search

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/functions/search/index"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// ActAs returns the client acting as caller on c's cluster (its requests carry the caller's identity, so the
// cluster's RBAC decides) and a key naming that identity (user and groups: what the cluster decides on). A
// nil client and no error mean the cluster does not impersonate for this caller: kitefn's scopes alone apply.
// An error means it should and cannot: the cluster is reported, never searched as the stored identity.
type ActAs func(ctx context.Context, c *kube.Client, caller *access.Caller) (as *kube.Client, identity string, err error)

const (
	// accessCacheSize bounds the access decisions kept (one per cluster, identity, resource and namespace).
	accessCacheSize = 16384
	// reviewsInFlight bounds the SelfSubjectAccessReviews one search has in flight at once, over all clusters.
	reviewsInFlight = 8
	// reviewsPerSearch bounds how many one search may send; beyond it, what is still undecided is not shown
	// (and reported), so a cluster of thousands of namespaces cannot turn one search into a flood.
	reviewsPerSearch = 2000
	// CodeAccessReviewLimit reports kinds left undecided because the search reached reviewsPerSearch.
	CodeAccessReviewLimit = "access_review_limit"
)

// accessKey names one decision: may identity list resource in namespace ("" = cluster-wide) of a cluster.
type accessKey struct {
	cluster   uint64
	identity  string
	resource  string
	namespace string
}

// decisions caches access decisions for KITEFN_SEARCH_ACCESS_TTL; nil when that is 0.
type decisions = expirable.LRU[accessKey, bool]

// reviewBudget is one search's bound on the reviews it sends.
type reviewBudget struct {
	inFlight *semaphore.Weighted
	left     atomic.Int64
}

func newReviewBudget() *reviewBudget {
	b := &reviewBudget{inFlight: semaphore.NewWeighted(reviewsInFlight)}
	b.left.Store(reviewsPerSearch)
	return b
}

// accessCheck is one cluster's access decisions for one search, as the identity the cluster impersonates.
type accessCheck struct {
	cluster  *kube.Client
	cs       kubernetes.Interface // the impersonating clientset: the reviews are the caller's own
	identity string
	cache    *decisions
	budget   *reviewBudget
}

// errReviewLimit is a decision not asked because the search sent all the reviews it may.
type errReviewLimit struct{}

func (errReviewLimit) Error() string {
	return fmt.Sprintf("this search reached its limit of %d access reviews: narrow it with namespace= or types=",
		reviewsPerSearch)
}

// listable decides where the identity may list res: everywhere (a cluster-wide allow covers every namespace),
// or in which of namespaces (asked only when the cluster-wide answer is no, and only for a namespaced kind).
// Any failed review fails the whole decision: a kind is never shown on a decision not made.
func (a *accessCheck) listable(ctx context.Context, res index.Resource, namespaces []string) (all bool,
	allowed map[string]bool, err error) {
	all, err = a.may(ctx, res, "")
	if err != nil || all || !res.Namespaced {
		return all, nil, err
	}
	allowed = make(map[string]bool, len(namespaces))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reviewsInFlight) // no more goroutines than reviews that may be in flight
	for _, ns := range namespaces {
		g.Go(func() error {
			ok, err := a.may(gctx, res, ns)
			if ok {
				mu.Lock()
				allowed[ns] = true
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return false, nil, err
	}
	return false, allowed, nil
}

// may answers one question, from the cache when it was asked within the TTL.
func (a *accessCheck) may(ctx context.Context, res index.Resource, ns string) (bool, error) {
	key := accessKey{cluster: a.cluster.ID, identity: a.identity, resource: res.Key(), namespace: ns}
	if a.cache != nil {
		if ok, hit := a.cache.Get(key); hit {
			return ok, nil
		}
	}
	if a.budget.left.Add(-1) < 0 {
		return false, errReviewLimit{}
	}
	if err := a.budget.inFlight.Acquire(ctx, 1); err != nil {
		return false, fmt.Errorf("reviewing access to %s: %w", res.Key(), err)
	}
	defer a.budget.inFlight.Release(1)
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Group: res.GVR.Group,
			Resource: res.GVR.Resource, Namespace: ns}}}
	got, err := a.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("reviewing access: %w", err) // no kind named: a cluster down reads as one error
	}
	ok := got.Status.Allowed && !got.Status.Denied
	if a.cache != nil {
		a.cache.Add(key, ok)
	}
	return ok, nil
}

// reviewError is how a failed decision is reported: the review limit as itself, anything else as the
// cluster's error (unreachable, timeout, its own status).
func reviewError(cluster string, err error) error {
	var limit errReviewLimit
	if errors.As(err, &limit) {
		return httpapi.Errorf(http.StatusServiceUnavailable, CodeAccessReviewLimit, "%s", err.Error())
	}
	return kube.APIError(cluster, err)
}

// forbiddenKind reports a kind the identity may list nowhere the index holds it.
func forbiddenKind(cluster, identity string, res index.Resource, asked []string) error {
	where := "cluster-wide"
	if res.Namespaced && len(asked) == 1 {
		where = fmt.Sprintf("cluster-wide nor in namespace %q", asked[0])
	} else if res.Namespaced {
		where = "cluster-wide nor in any namespace holding some"
	}
	return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
		"cluster %q: %s may not list %s %s", cluster, identity, res.Key(), where)
}

// namespacesToAsk are the namespaces a namespaced kind's access is asked for: the one searched (whether or
// not it holds any: its answer decides the report), or every namespace holding objects; in both cases only
// those the caller's kitefn scope admits.
func namespacesToAsk(k *index.Kind, q *index.Query, caller *access.Caller) []string {
	if !k.Resource.Namespaced {
		return nil
	}
	var from []string
	if q.Namespace != "" {
		from = []string{q.Namespace}
	} else {
		from = k.Namespaces()
	}
	out := make([]string, 0, len(from))
	for _, ns := range from {
		if ns != "" && caller.AllowsNamespace(ns) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

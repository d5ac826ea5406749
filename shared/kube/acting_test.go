package kube

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// whoAmI is who the cluster takes a clientset's requests for.
func whoAmI(t *testing.T, cs kubernetes.Interface) authnv1.UserInfo {
	t.Helper()
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authnv1.SelfSubjectReview{},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.UserInfo
}

// impersonatingCluster registers the admin kubeconfig with impersonate on and returns its base client.
func impersonatingCluster(t *testing.T, c *Cache, reg store.Store, sealer interface {
	Seal([]byte) ([]byte, error)
}, name string) *Client {
	t.Helper()
	sealed, err := sealer.Seal(kube.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := reg.Create(context.Background(), &store.Cluster{Name: name, Server: kube.URL, Kubeconfig: sealed,
		Impersonate: true})
	if err != nil {
		t.Fatal(err)
	}
	base, err := c.Client(context.Background(), rec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !base.Impersonate || base.As != nil {
		t.Fatalf("base client: impersonate %v as %v", base.Impersonate, base.As)
	}
	return base
}

func TestActingAsTheCaller(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	base := impersonatingCluster(t, c, reg, sealer, "imp")
	alice := &Principal{Kind: PrincipalToken, Name: "alice", Groups: []string{"team-b", "team-a"}}

	cl, err := c.ActingAs(base, alice)
	if err != nil {
		t.Fatal(err)
	}
	if cl.As == nil || cl.As.User != "token:alice" || !slices.Equal(cl.As.Groups, []string{"team-b", "team-a"}) {
		t.Fatalf("As = %+v, want token:alice in team-b, team-a", cl.As)
	}
	// The cluster itself says who the request and the streaming clients are; the base stays the kubeconfig's.
	for name, cs := range map[string]kubernetes.Interface{"request": cl.Kubernetes, "stream": cl.Stream.Kubernetes} {
		u := whoAmI(t, cs)
		if u.Username != "token:alice" || !slices.Contains(u.Groups, "team-a") || !slices.Contains(u.Groups, "team-b") ||
			slices.Contains(u.Groups, "system:masters") {
			t.Fatalf("%s client acts as %+v, want token:alice in team-a and team-b only", name, u)
		}
	}
	if u := whoAmI(t, base.Kubernetes); u.Username != "admin" {
		t.Fatalf("the base client acts as %q, want the kubeconfig's admin", u.Username)
	}

	// One pool and one limiter per cluster: the impersonating clients wrap the base's transport.
	for name, pair := range map[string][2]API{"request": {cl.API, base.API}, "stream": {cl.Stream, base.Stream}} {
		w, ok := pair[0].HTTP.Transport.(utilnet.RoundTripperWrapper)
		if !ok || w.WrappedRoundTripper() != pair[1].HTTP.Transport {
			t.Fatalf("%s client does not wrap the base transport: %T", name, pair[0].HTTP.Transport)
		}
		if pair[0].REST.RateLimiter != pair[1].REST.RateLimiter || pair[0].REST.RateLimiter == nil {
			t.Fatalf("%s client has its own rate limiter", name)
		}
		if pair[0].REST.Impersonate.UserName != "token:alice" {
			t.Fatalf("%s REST config does not carry the impersonation (upgrades build from it)", name)
		}
		if pair[0].HTTP.Timeout != pair[1].HTTP.Timeout {
			t.Fatalf("%s client timeout %s, base %s", name, pair[0].HTTP.Timeout, pair[1].HTTP.Timeout)
		}
	}

	// The same identity is the same client, whatever the order of its groups; another identity is another.
	again, err := c.ActingAs(base, &Principal{Kind: PrincipalToken, Name: "alice", Groups: []string{"team-a", "team-b"}})
	if err != nil || again != cl {
		t.Fatalf("the same identity gave another client (%v)", err)
	}
	fewer, err := c.ActingAs(base, &Principal{Kind: PrincipalToken, Name: "alice", Groups: []string{"team-a"}})
	if err != nil || fewer == cl || fewer.As.User != "token:alice" {
		t.Fatalf("other groups shared the client (%v)", err)
	}
	// What hangs on an impersonating connection is its own, never the base's nor another caller's.
	built := 0
	for _, x := range []*Client{base, cl, again, fewer} {
		if _, err := x.Attached("k", func(*Client) (any, error) { built++; return built, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if built != 3 {
		t.Fatalf("Attached built %d values for base, alice and alice with fewer groups, want 3", built)
	}

	// OIDC callers get their own prefix.
	bob, err := c.ActingAs(base, &Principal{Kind: PrincipalOIDC, Name: "bob@example.com", Groups: []string{"devs"}})
	if err != nil {
		t.Fatal(err)
	}
	if u := whoAmI(t, bob.Kubernetes); u.Username != "oidc:bob@example.com" || !slices.Contains(u.Groups, "devs") {
		t.Fatalf("OIDC caller acts as %+v", u)
	}
}

func TestActingAsOnlyWhereAndForWhomItApplies(t *testing.T) {
	c, reg, sealer, _ := setup(t)
	mustCreate(t, reg, sealer, "plain", kube.AdminKubeconfig())
	plain, err := c.Client(context.Background(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	alice := &Principal{Kind: PrincipalToken, Name: "alice"}
	if cl, err := c.ActingAs(plain, alice); err != nil || cl != plain {
		t.Fatalf("a cluster without impersonate: %v, %v, want its base client", cl, err)
	}
	imp := impersonatingCluster(t, c, reg, sealer, "imp")
	if cl, err := c.ActingAs(imp, nil); err != nil || cl != imp {
		t.Fatalf("no principal (bootstrap): %v, %v, want the base client", cl, err)
	}
	// A caller that cannot be named on the cluster is refused, never let act as the kubeconfig.
	for _, p := range []*Principal{{Kind: "bootstrap", Name: "x"}, {Kind: PrincipalToken}, {Kind: PrincipalOIDC}} {
		cl, err := c.ActingAs(imp, p)
		var apiErr *httpapi.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || cl != nil {
			t.Fatalf("ActingAs(%+v) = %v, %v, want a 403", p, cl, err)
		}
	}
	if _, err := c.As(imp, &Identity{Groups: []string{"g"}}); err == nil {
		t.Fatal("an identity without a user was accepted (client-go would send no Impersonate-User)")
	}
	if c.ActingLen() != 0 {
		t.Fatalf("%d impersonating clients cached, want none", c.ActingLen())
	}
	// ClientAs is Client then ActingAs.
	cl, err := c.ClientAs(context.Background(), "imp", alice)
	if err != nil || cl.As == nil || cl.As.User != "token:alice" {
		t.Fatalf("ClientAs: %v, %v", cl, err)
	}
}

func TestActingPrefixesAreConfigurable(t *testing.T) {
	cfg := testConfig()
	cfg.ImpersonateTokenPrefix, cfg.ImpersonateOIDCPrefix = "", "sso-"
	c, reg, sealer, _ := setupWith(t, cfg)
	base := impersonatingCluster(t, c, reg, sealer, "imp")
	for _, tc := range []struct {
		p    Principal
		want string
	}{{Principal{Kind: PrincipalToken, Name: "alice"}, "alice"}, {Principal{Kind: PrincipalOIDC, Name: "bob"}, "sso-bob"}} {
		p, want := tc.p, tc.want
		id, err := c.Identity(base, &p)
		if err != nil || id == nil || id.User != want {
			t.Fatalf("Identity(%+v) = %+v, %v, want user %q", p, id, err, want)
		}
	}
}

func TestActingCacheIsBoundedAndDroppedOnChange(t *testing.T) {
	cfg := testConfig()
	cfg.ImpersonationCacheSize = 2
	c, reg, sealer, clock := setupWith(t, cfg)
	base := impersonatingCluster(t, c, reg, sealer, "imp")
	as := func(b *Client, name string) *Client {
		t.Helper()
		cl, err := c.ActingAs(b, &Principal{Kind: PrincipalToken, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	a1 := as(base, "a")
	as(base, "b")
	as(base, "c") // evicts a, the least recently used
	if n := c.ActingLen(); n != 2 {
		t.Fatalf("%d impersonating clients cached, want the bound of 2", n)
	}
	if as(base, "a") == a1 {
		t.Fatal("an evicted identity's client was still cached")
	}

	// Invalidate (the record changed on this replica) drops the cluster's impersonating clients.
	a2 := as(base, "a")
	c.Invalidate(base.ID)
	if n := c.ActingLen(); n != 0 {
		t.Fatalf("%d impersonating clients after Invalidate, want 0", n)
	}
	base, err := c.Client(context.Background(), "imp")
	if err != nil {
		t.Fatal(err)
	}
	if as(base, "a") == a2 {
		t.Fatal("Invalidate kept the impersonating client")
	}

	// A change made through another replica reaches here on revalidation: the new record's clients replace the
	// old record's.
	old := as(base, "a")
	update(t, reg, base.ID, func(r *store.Cluster) { r.Labels = map[string]string{"x": "y"} })
	clock.Add(cfg.Revalidate + 1)
	newer, err := c.Client(context.Background(), "imp")
	if err != nil || newer.Version == base.Version {
		t.Fatalf("revalidation: %v, version %d", err, newer.Version)
	}
	if cl := as(newer, "a"); cl == old || cl.Version != newer.Version {
		t.Fatal("the old record's impersonating client served the new record")
	}
	if n := c.ActingLen(); n != 1 {
		t.Fatalf("%d impersonating clients, want only the new record's", n)
	}

	// Turning impersonate off: the base client answers for everyone.
	update(t, reg, base.ID, func(r *store.Cluster) { r.Impersonate = false })
	c.Invalidate(base.ID)
	off, err := c.Client(context.Background(), "imp")
	if err != nil {
		t.Fatal(err)
	}
	if cl := as(off, "a"); cl != off {
		t.Fatal("a cluster with impersonate turned off still impersonates")
	}
}

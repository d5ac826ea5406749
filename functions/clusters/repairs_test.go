package clusters_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/functions/clusters"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/emulators"
	"github.com/kitefn/kitefn/tests/harness"
)

// hangingServer accepts connections and never answers: a cluster that takes every verify to its timeout.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "https://" + ln.Addr().String()
}

func withServer(t *testing.T, kc []byte, server, proxy string) []byte {
	t.Helper()
	return mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, cl := range c.Clusters {
			cl.Server, cl.ProxyURL = server, proxy
		}
	})
}

func TestVerifyCredentialsAndIdentity(t *testing.T) {
	needKube(t)
	a := startAPI(t, map[string]string{"KITEFN_VERIFY_TIMEOUT": "1s"})
	kc := kube.AdminKubeconfig()
	a.Do(http.MethodPost, "/api/v1/clusters", register("live", kc)).Expect(t, http.StatusCreated, "")
	r := a.Do(http.MethodPost, "/api/v1/clusters/live/verify", nil).Expect(t, http.StatusOK, "")
	id, _ := r.JSON["identity"].(map[string]any)
	groups, _ := id["groups"].([]any)
	if id["username"] != harness.AdminUser || !slices.Contains(groups, any("system:masters")) {
		t.Fatalf("identity %v, want admin in system:masters: %s", id, r.Body)
	}
	assertNoSecrets(t, r.Body)

	badToken := mutate(t, kc, func(c *clientcmdapi.Config) {
		for _, u := range c.AuthInfos {
			u.Token = "not-a-valid-token-000000"
		}
	})
	// ?verify=true: 422 (nothing stored), and it says the credentials, not the network, are the problem.
	r = a.Do(http.MethodPost, "/api/v1/clusters?verify=true", register("bad", badToken)).
		Expect(t, http.StatusUnprocessableEntity, "cluster_unauthorized")
	if !strings.Contains(r.Message(), "refused the kubeconfig's credentials") || !strings.Contains(r.Message(), "401") {
		t.Fatalf("message %q", r.Message())
	}
	assertNoSecrets(t, r.Body)
	if strings.Contains(string(r.Body), "not-a-valid-token") {
		t.Fatalf("the token is echoed: %s", r.Body)
	}
	if n := count(t, a); n != 1 {
		t.Fatalf("%d clusters, want 1", n)
	}
	// Stored without verify, the verify route says the stored credentials were refused.
	a.Do(http.MethodPost, "/api/v1/clusters", register("bad", badToken)).Expect(t, http.StatusCreated, "")
	r = a.Do(http.MethodPost, "/api/v1/clusters/bad/verify", nil).Expect(t, http.StatusBadGateway, "cluster_unauthorized")
	if !strings.Contains(r.Message(), "refused the stored credentials") || !strings.Contains(r.Message(), "rotate") {
		t.Fatalf("message %q", r.Message())
	}

	// A server that accepts and never answers: 504 cluster_timeout, and 422 cluster_timeout before storing.
	hung := withServer(t, kc, hangingServer(t), "")
	a.Do(http.MethodPost, "/api/v1/clusters", register("hung", hung)).Expect(t, http.StatusCreated, "")
	start := time.Now()
	r = a.Do(http.MethodPost, "/api/v1/clusters/hung/verify", nil).Expect(t, http.StatusGatewayTimeout, "cluster_timeout")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("verify took %s with a 1s timeout", d)
	}
	if !strings.Contains(r.Message(), "1s") {
		t.Fatalf("message %q does not give the limit", r.Message())
	}
	a.Do(http.MethodPost, "/api/v1/clusters?verify=true", register("hung2", hung)).
		Expect(t, http.StatusUnprocessableEntity, "cluster_timeout")
}

// racingRegistry writes a concurrent change (as discovery would) between the function's read and its first
// write, and counts the writes.
type racingRegistry struct {
	clusters.Registry
	race    func(ctx context.Context, r clusters.Registry, c *store.Cluster)
	updates atomic.Int32
	raced   atomic.Bool
}

func (r *racingRegistry) Update(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	r.updates.Add(1)
	if r.race != nil && r.raced.CompareAndSwap(false, true) {
		r.race(ctx, r.Registry, c)
	}
	return r.Registry.Update(ctx, c)
}

func TestPatchRetriesAfterConcurrentWrite(t *testing.T) {
	needKube(t)
	reg := &racingRegistry{}
	a := apitest.Start(t, nil, clusters.NewWrapped(
		func(r clusters.Registry) clusters.Registry { reg.Registry = r; return reg }))
	kc := kube.AdminKubeconfig()
	r := a.Do(http.MethodPost, "/api/v1/clusters", register("one", kc)).Expect(t, http.StatusCreated, "")
	if r.Header.Get("ETag") != `"1"` {
		t.Fatalf("POST ETag %q, want \"1\"", r.Header.Get("ETag"))
	}
	a.Do(http.MethodPost, "/api/v1/clusters", register("two", kc)).Expect(t, http.StatusCreated, "")
	discoveryWrites := func(ctx context.Context, r clusters.Registry, c *store.Cluster) {
		cur, err := r.Get(ctx, c.ID)
		if err != nil {
			t.Error(err)
			return
		}
		cur.Prometheus = store.Prometheus{Status: store.PrometheusNotFound, Message: "raced"}
		if _, err := r.Update(ctx, cur); err != nil {
			t.Error(err)
		}
	}

	// Unconditional: re-read and re-applied, both changes kept.
	reg.race = discoveryWrites
	r = a.Do(http.MethodPatch, "/api/v1/clusters/one", map[string]any{"labels": map[string]string{"a": "b"}}).
		Expect(t, http.StatusOK, "")
	if r.JSON["version"] != float64(3) || r.JSON["labels"].(map[string]any)["a"] != "b" ||
		r.JSON["prometheus"].(map[string]any)["message"] != "raced" {
		t.Fatalf("the PATCH did not re-apply over the concurrent write: %s", r.Body)
	}
	if r.Header.Get("ETag") != `"3"` || reg.updates.Load() != 2 {
		t.Fatalf("ETag %q, %d updates (want \"3\", 2: the lost write and its retry)", r.Header.Get("ETag"),
			reg.updates.Load())
	}

	// Conditional, with the ETag of a GET: the race makes it a 409, nothing retried.
	g := a.Do(http.MethodGet, "/api/v1/clusters/one", nil).Expect(t, http.StatusOK, "")
	if g.Header.Get("ETag") != `"3"` {
		t.Fatalf("GET ETag %q", g.Header.Get("ETag"))
	}
	reg.raced.Store(false)
	reg.updates.Store(0)
	a.Do(http.MethodPatch, "/api/v1/clusters/one", map[string]any{"labels": map[string]string{"c": "d"}},
		"If-Match", g.Header.Get("ETag")).Expect(t, http.StatusConflict, "conflict")
	if n := reg.updates.Load(); n != 1 {
		t.Fatalf("%d updates for a conditional PATCH that lost, want 1 (no retry)", n)
	}
	// Without a race the same ETag flow succeeds.
	reg.race = nil
	g = a.Do(http.MethodGet, "/api/v1/clusters/one", nil).Expect(t, http.StatusOK, "")
	a.Do(http.MethodPatch, "/api/v1/clusters/one", map[string]any{"labels": map[string]string{"c": "d"}},
		"If-Match", g.Header.Get("ETag")).Expect(t, http.StatusOK, "")

	// A taken name is a conflict, but no race: one write, a 409 naming it.
	reg.updates.Store(0)
	r = a.Do(http.MethodPatch, "/api/v1/clusters/one", map[string]any{"name": "two"}).
		Expect(t, http.StatusConflict, "conflict")
	if !strings.Contains(r.Message(), "already exists") || reg.updates.Load() != 1 {
		t.Fatalf("name taken: %q after %d updates, want one", r.Message(), reg.updates.Load())
	}
}

func TestImportVerifiesConcurrently(t *testing.T) {
	needKube(t)
	const timeout = time.Second
	a := startAPI(t, map[string]string{"KITEFN_VERIFY_TIMEOUT": timeout.String(), "KITEFN_IMPORT_PARALLELISM": "8"})
	hung := hangingServer(t)
	kc := mutate(t, kube.AdminKubeconfig(), func(c *clientcmdapi.Config) {
		var base *clientcmdapi.Context
		for _, x := range c.Contexts {
			base = x
		}
		c.Clusters["hung"] = &clientcmdapi.Cluster{Server: hung, InsecureSkipTLSVerify: true}
		for i := range 20 {
			c.Contexts[fmt.Sprintf("hung-%02d", i)] = &clientcmdapi.Context{Cluster: "hung", AuthInfo: base.AuthInfo}
		}
		for i := range 3 {
			c.Contexts[fmt.Sprintf("live-%d", i)] = base.DeepCopy()
		}
	})
	start := time.Now()
	r := a.Do(http.MethodPost, "/api/v1/clusters/import?verify=true", map[string]any{"kubeconfig": string(kc)}).
		Expect(t, http.StatusOK, "")
	// Sequentially the 20 hung contexts alone take 20 × 1s.
	if d := time.Since(start); d >= 20*timeout {
		t.Fatalf("import took %s: the verifies ran one after another", d)
	}
	results := r.JSON["results"].([]any)
	var contexts []string
	for _, x := range results {
		res := x.(map[string]any)
		c := res["context"].(string)
		contexts = append(contexts, c)
		switch {
		case strings.HasPrefix(c, "hung-"):
			if res["status"] != float64(422) || res["error"].(map[string]any)["code"] != "cluster_timeout" {
				t.Fatalf("%s: %v", c, res)
			}
		case strings.HasPrefix(c, "live-"):
			if res["status"] != float64(201) || res["cluster"].(map[string]any)["name"] != c {
				t.Fatalf("%s: %v", c, res)
			}
		}
	}
	if len(contexts) != 24 || !slices.IsSorted(contexts) || r.JSON["created"] != float64(4) || r.JSON["failed"] != float64(20) {
		t.Fatalf("want 24 results in context order, 4 created (live-0..2 and the original), 20 failed: %v %s",
			contexts, r.Body)
	}
	// Stored in input order: IDs follow the sorted contexts.
	items := a.Do(http.MethodGet, "/api/v1/clusters", nil).Expect(t, http.StatusOK, "").Items()
	var names []string
	for _, it := range items {
		names = append(names, it["name"].(string))
	}
	var want []string
	for _, c := range contexts {
		if !strings.HasPrefix(c, "hung-") {
			want = append(want, clusters.NameFromContext(c))
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("stored %v, want %v in that (ID) order", names, want)
	}
}

func TestPrivateServersRefused(t *testing.T) {
	needKube(t)
	kc := kube.AdminKubeconfig()
	refused := []struct{ name, server, proxy, says string }{
		{"loopback", kube.URL, "", "is a loopback address"},
		{"localhost", "https://localhost:6443", "", "resolves to"},
		{"metadata", "http://169.254.169.254", "", "cloud metadata"},
		{"metadata-v6", "https://[fd00:ec2::254]", "", "cloud metadata"},
		{"link-local", "https://169.254.10.1:6443", "", "link-local"},
		{"link-local-v6", "https://[fe80::1]:6443", "", "link-local"},
		{"gce-metadata", "http://metadata.google.internal", "", "cloud metadata"},
		{"proxy", "https://k8s.example.com", "http://127.0.0.1:3128", "proxy-url http://127.0.0.1:3128 is a loopback"},
	}
	t.Run("deployed", func(t *testing.T) {
		a := startAPI(t, map[string]string{"FUNCTION_TARGET": "clusters"})
		for _, tc := range refused {
			r := a.Do(http.MethodPost, "/api/v1/clusters", register(tc.name, withServer(t, kc, tc.server, tc.proxy))).
				Expect(t, http.StatusBadRequest, "server_not_allowed")
			if !strings.Contains(r.Message(), tc.says) || !strings.Contains(r.Message(), "KITEFN_ALLOWED_SERVER_CIDRS") {
				t.Fatalf("%s: message %q does not say %q", tc.name, r.Message(), tc.says)
			}
			if tc.proxy == "" && !strings.Contains(r.Message(), tc.server) {
				t.Fatalf("%s: message %q does not name the server", tc.name, r.Message())
			}
		}
		r := a.Do(http.MethodPost, "/api/v1/clusters/import", map[string]any{"kubeconfig": string(kc)}).
			Expect(t, http.StatusOK, "")
		res := r.JSON["results"].([]any)[0].(map[string]any)
		if res["status"] != float64(400) || res["error"].(map[string]any)["code"] != "server_not_allowed" {
			t.Fatalf("import: %s", r.Body)
		}
		if n := count(t, a); n != 0 {
			t.Fatalf("%d clusters stored, want none", n)
		}
		// PATCH: a public server is fine, then rotating to a metadata address is refused.
		a.Do(http.MethodPost, "/api/v1/clusters", register("public", withServer(t, kc, "https://203.0.113.7", ""))).
			Expect(t, http.StatusCreated, "")
		a.Do(http.MethodPatch, "/api/v1/clusters/public",
			map[string]any{"kubeconfig": string(withServer(t, kc, "http://169.254.169.254", ""))}).
			Expect(t, http.StatusBadRequest, "server_not_allowed")
	})
	t.Run("deployed with an allow-list", func(t *testing.T) {
		a := startAPI(t, map[string]string{"FUNCTION_TARGET": "clusters", "KITEFN_ALLOWED_SERVER_CIDRS": "10.0.0.0/8, 127.0.0.0/8"})
		a.Do(http.MethodPost, "/api/v1/clusters?verify=true", register("local", kc)).Expect(t, http.StatusCreated, "")
		a.Do(http.MethodPost, "/api/v1/clusters", register("md", withServer(t, kc, "http://169.254.169.254", ""))).
			Expect(t, http.StatusBadRequest, "server_not_allowed")
	})
	t.Run("deployed, all allowed", func(t *testing.T) {
		a := startAPI(t, map[string]string{"FUNCTION_TARGET": "clusters", "KITEFN_ALLOW_PRIVATE_SERVERS": "true"})
		a.Do(http.MethodPost, "/api/v1/clusters", register("md", withServer(t, kc, "http://169.254.169.254", ""))).
			Expect(t, http.StatusCreated, "")
	})
	t.Run("one process", func(t *testing.T) {
		a := startAPI(t, nil)
		a.Do(http.MethodPost, "/api/v1/clusters", register("local", kc)).Expect(t, http.StatusCreated, "")
		a.Do(http.MethodPost, "/api/v1/clusters", register("localhost", withServer(t, kc, "https://localhost:6443", ""))).
			Expect(t, http.StatusCreated, "")
		for _, tc := range refused[2:7] {
			a.Do(http.MethodPost, "/api/v1/clusters", register(tc.name, withServer(t, kc, tc.server, tc.proxy))).
				Expect(t, http.StatusBadRequest, "server_not_allowed")
		}
	})
	t.Run("bad allow-list", func(t *testing.T) {
		t.Setenv("KITEFN_ALLOWED_SERVER_CIDRS", "10.0.0.0/33")
		if err := clusters.CheckConfig(); err == nil ||
			!strings.Contains(err.Error(), "KITEFN_ALLOWED_SERVER_CIDRS") {
			t.Fatalf("CheckConfig: %v", err)
		}
	})
}

// invalidRegistry refuses every Create as a backend refuses input it cannot store.
type invalidRegistry struct{ clusters.Registry }

func (invalidRegistry) Create(context.Context, *store.Cluster) (*store.Cluster, error) {
	return nil, fmt.Errorf("dynamodb create: %w: %w", store.ErrInvalid, errors.New("Item size has exceeded the maximum allowed size"))
}

func TestOversizedKubeconfig(t *testing.T) {
	needKube(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ddb, err := emulators.StartDynamoDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ddb.Stop() })
	a := startAPI(t, map[string]string{
		"KITEFN_STORE": "dynamodb", "KITEFN_DYNAMODB_ENDPOINT": ddb.Endpoint, "KITEFN_DYNAMODB_CREATE_TABLE": "true",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
	})
	kc := kube.AdminKubeconfig()
	// Valid YAML over DynamoDB's 400 KB item limit, under the API's 1 MiB body limit.
	huge := string(kc) + "\n# " + strings.Repeat("x", 450<<10) + "\n"
	r := a.Do(http.MethodPost, "/api/v1/clusters", map[string]any{"name": "huge", "kubeconfig": huge}).
		Expect(t, http.StatusRequestEntityTooLarge, "payload_too_large")
	if !strings.Contains(r.Message(), "256 KiB") || !strings.Contains(r.Message(), "400 KB") {
		t.Fatalf("message %q", r.Message())
	}
	if n := count(t, a); n != 0 {
		t.Fatalf("%d clusters stored, want none", n)
	}
	a.Do(http.MethodPost, "/api/v1/clusters", register("ok", kc)).Expect(t, http.StatusCreated, "")
	a.Do(http.MethodPatch, "/api/v1/clusters/ok", map[string]any{"kubeconfig": huge}).
		Expect(t, http.StatusRequestEntityTooLarge, "payload_too_large")

	// A refusal by the store itself (store.ErrInvalid) is a 400, not a 500.
	b := apitest.Start(t, nil, clusters.NewWrapped(
		func(r clusters.Registry) clusters.Registry { return invalidRegistry{r} }))
	r = b.Do(http.MethodPost, "/api/v1/clusters", register("x", kc)).Expect(t, http.StatusBadRequest, "bad_request")
	if !strings.Contains(r.Message(), "store refused") {
		t.Fatalf("message %q", r.Message())
	}
}

// pingEvent posts a PingSource's CloudEvent (binary mode, no token) to the server's root.
func pingEvent(t *testing.T, a *apitest.Server, eventType string) apitest.Response {
	t.Helper()
	return a.Do(http.MethodPost, "/", `{"reason":"reconcile"}`, "Authorization", "", "Ce-Specversion", "1.0",
		"Ce-Id", "ping-1", "Ce-Source", "/apis/v1/namespaces/kitefn/pingsources/clusters-reconcile",
		"Ce-Type", eventType)
}

func TestReconcileResendsLostEvents(t *testing.T) {
	needKube(t)
	s := apitest.StartSink(t)
	s.Failures.Store(1)
	a := startAPI(t, map[string]string{"FUNCTION_TARGET": "clusters", "K_SINK": s.URL, "KITEFN_EVENT_ATTEMPTS": "1",
		"KITEFN_ALLOWED_SERVER_CIDRS": "127.0.0.0/8", "KITEFN_RECONCILE_PENDING_AGE": "0s",
		"KITEFN_RECONCILE_FAILED_AGE": "0s", "KITEFN_RECONCILE_INTERVAL": "1h", "KITEFN_RECONCILE_ON_PING": "true"})
	r := a.Do(http.MethodPost, "/api/v1/clusters", register("lost", kube.AdminKubeconfig())).
		Expect(t, http.StatusCreated, "")
	if r.JSON["warnings"] == nil || len(s.Events()) != 0 {
		t.Fatalf("the created event should have been lost: %s", r.Body)
	}
	window := time.Now().Truncate(time.Hour).Unix()
	wantID := fmt.Sprintf("cluster-1-v1-cluster.created-reconcile-%d", window)

	first := a.Do(http.MethodPost, "/api/v1/clusters/reconcile", nil).Expect(t, http.StatusOK, "")
	resent := first.JSON["resent"].([]any)
	if len(resent) != 1 || len(first.JSON["failed"].([]any)) != 0 {
		t.Fatalf("reconcile: %s", first.Body)
	}
	if it := resent[0].(map[string]any); it["id"] != float64(1) || it["eventId"] != wantID ||
		it["event"] != events.TypeClusterCreated || it["status"] != "pending" {
		t.Fatalf("reconcile item %v, want event id %s", it, wantID)
	}
	got := s.Events()
	if len(got) != 1 || got[0].ID() != wantID || got[0].Type() != events.TypeClusterCreated || got[0].Subject() != "1" {
		t.Fatalf("sink got %v", got)
	}
	// Again within the window: the same ID, which receivers drop as a duplicate.
	a.Do(http.MethodPost, "/api/v1/clusters/reconcile", nil).Expect(t, http.StatusOK, "")
	if got = s.Events(); len(got) != 2 || got[1].ID() != wantID {
		t.Fatalf("second reconcile sent %v, want the same id %s", got, wantID)
	}

	// A failed discovery: reset to pending, and the updated event discovery takes (changed: prometheus).
	ctx := t.Context()
	rec, err := a.Platform.Store.Get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	rec.Prometheus = store.Prometheus{Status: store.PrometheusFailed, Message: "timeout", CheckedAt: &old}
	if _, err := a.Platform.Store.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// The PingSource path: a CloudEvent at POST / without a token.
	p := pingEvent(t, a, clusters.TypePing).Expect(t, http.StatusOK, "")
	resent = p.JSON["resent"].([]any)
	if len(resent) != 1 || resent[0].(map[string]any)["eventId"] != "cluster-1-v3-cluster.updated" {
		t.Fatalf("ping reconcile: %s", p.Body)
	}
	got = s.Events()
	var data events.ClusterData
	if len(got) != 3 || got[2].Type() != events.TypeClusterUpdated || got[2].DataAs(&data) != nil ||
		!slices.Equal(data.Changed, []string{"prometheus"}) || data.Cluster.Prometheus.Status != string(store.PrometheusPending) {
		t.Fatalf("sink got %v", got)
	}
	if g := a.Do(http.MethodGet, "/api/v1/clusters/1", nil).Expect(t, http.StatusOK, ""); g.JSON["prometheus"].(map[string]any)["status"] != "pending" {
		t.Fatalf("record after reset: %s", g.Body)
	}
	pingEvent(t, a, "dev.example.other").Expect(t, http.StatusBadRequest, "bad_request")
	// The reset changed the record: audited, by the reconcile itself (a PingSource has no caller).
	entries, _, err := a.Platform.Store.ListAudit(ctx, store.AuditFilter{Verb: "reconcile"})
	if err != nil || len(entries) != 1 || entries[0].Who != "system:reconcile" || entries[0].Name != "lost" ||
		entries[0].Outcome != http.StatusOK || !strings.Contains(entries[0].Detail, "failed → pending") {
		t.Fatalf("audit of the reconcile: %+v %v", entries, err)
	}
}

func TestReconcileGraceAndAuth(t *testing.T) {
	needKube(t)
	s := apitest.StartSink(t)
	a := startAPI(t, map[string]string{"FUNCTION_TARGET": "clusters", "K_SINK": s.URL,
		"KITEFN_ALLOWED_SERVER_CIDRS": "127.0.0.0/8"})
	a.Do(http.MethodPost, "/api/v1/clusters", register("fresh", kube.AdminKubeconfig())).Expect(t, http.StatusCreated, "")
	// Pending for less than the default 2m grace: its event may be in flight, nothing is re-sent.
	r := a.Do(http.MethodPost, "/api/v1/clusters/reconcile", nil).Expect(t, http.StatusOK, "")
	if len(r.JSON["resent"].([]any)) != 0 || len(s.Events()) != 1 {
		t.Fatalf("reconcile within the grace: %s", r.Body)
	}
	a.Do(http.MethodPost, "/api/v1/clusters/reconcile", nil, "Authorization", "").
		Expect(t, http.StatusUnauthorized, "unauthorized")
	// Without KITEFN_RECONCILE_ON_PING the public service takes no token-less CloudEvent.
	pingEvent(t, a, clusters.TypePing).Expect(t, http.StatusUnauthorized, "unauthorized")
	if n := len(s.Events()); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
}

func TestReconcileTimerInOneProcessMode(t *testing.T) {
	needKube(t)
	s := apitest.StartSink(t)
	s.Failures.Store(1)
	a := startAPI(t, map[string]string{"K_SINK": s.URL, "KITEFN_EVENT_ATTEMPTS": "1",
		"KITEFN_RECONCILE_PENDING_AGE": "0s", "KITEFN_RECONCILE_INTERVAL": "100ms"})
	a.Do(http.MethodPost, "/api/v1/clusters", register("timer", kube.AdminKubeconfig())).Expect(t, http.StatusCreated, "")
	var got []cloudevents.Event
	eventually(t, 10*time.Second, func() bool {
		got = s.Events()
		return len(got) > 0
	})
	if !strings.HasPrefix(got[0].ID(), "cluster-1-v1-cluster.created-reconcile-") {
		t.Fatalf("timer sent %s", got[0].ID())
	}
}

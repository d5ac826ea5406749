package clusters_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/tests/apitest"
)

func TestEventsToKSink(t *testing.T) {
	needKube(t)
	s := apitest.StartSink(t)
	a := startAPI(t, map[string]string{"K_SINK": s.URL,
		"K_CE_OVERRIDES": `{"extensions":{"kitefnenv":"test"}}`})
	kc := kube.AdminKubeconfig()

	a.Do(http.MethodPost, "/api/v1/clusters", register("evt", kc)).Expect(t, http.StatusCreated, "")
	a.Do(http.MethodPatch, "/api/v1/clusters/evt", map[string]any{"labels": map[string]string{"a": "b"}}).
		Expect(t, http.StatusOK, "")
	a.Do(http.MethodDelete, "/api/v1/clusters/evt", nil).Expect(t, http.StatusNoContent, "")

	got := s.Events()
	wantTypes := []string{events.TypeClusterCreated, events.TypeClusterUpdated, events.TypeClusterDeleted}
	if len(got) != len(wantTypes) {
		t.Fatalf("sink received %d events, want %d", len(got), len(wantTypes))
	}
	ids := map[string]bool{}
	for i, e := range got {
		if e.Type() != wantTypes[i] || e.Source() != events.SourceClusters || e.Subject() != "1" {
			t.Fatalf("event %d: type %s source %s subject %s", i, e.Type(), e.Source(), e.Subject())
		}
		if v, _ := e.Extensions()["kitefnenv"].(string); v != "test" {
			t.Fatalf("K_CE_OVERRIDES not applied: %v", e.Extensions())
		}
		var data events.ClusterData
		if err := e.DataAs(&data); err != nil {
			t.Fatal(err)
		}
		if data.Cluster == nil || data.Cluster.Name != "evt" || data.Cluster.ID != 1 {
			t.Fatalf("event data: %s", e.Data())
		}
		assertNoSecrets(t, e.Data())
		if ids[e.ID()] {
			t.Fatalf("duplicate event id %s", e.ID())
		}
		ids[e.ID()] = true
	}
	var upd events.ClusterData
	_ = got[1].DataAs(&upd)
	if strings.Join(upd.Changed, ",") != "labels" {
		t.Fatalf("updated event says changed %v, want [labels]", upd.Changed)
	}
}

func TestEventRetriedThenDelivered(t *testing.T) {
	needKube(t)
	s := apitest.StartSink(t)
	s.Failures.Store(2)
	a := startAPI(t, map[string]string{"K_SINK": s.URL})
	r := a.Do(http.MethodPost, "/api/v1/clusters", register("retry", kube.AdminKubeconfig())).
		Expect(t, http.StatusCreated, "")
	if r.JSON["warnings"] != nil {
		t.Fatalf("warnings after a delivery that succeeded on retry: %s", r.Body)
	}
	if n := s.Attempts.Load(); n != 3 {
		t.Fatalf("%d delivery attempts, want 3 (two 503s, then success)", n)
	}
	if n := len(s.Events()); n != 1 {
		t.Fatalf("%d events received, want 1", n)
	}
}

func TestSinkDownKeepsRegistration(t *testing.T) {
	needKube(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	a := startAPI(t, map[string]string{"K_SINK": dead, "KITEFN_EVENT_ATTEMPTS": "2"})
	r := a.Do(http.MethodPost, "/api/v1/clusters", register("lonely", kube.AdminKubeconfig())).
		Expect(t, http.StatusCreated, "")
	w, _ := r.JSON["warnings"].([]any)
	if len(w) != 1 || !strings.Contains(w[0].(string), events.TypeClusterCreated) {
		t.Fatalf("want one warning naming the undelivered event: %s", r.Body)
	}
	if n := count(t, a); n != 1 {
		t.Fatalf("registration lost after a failed event (%d clusters)", n)
	}
}

// consumer is a test function that takes cluster events at "/" like the discovery function does.
type consumer struct {
	mu  sync.Mutex
	got []cloudevents.Event
}

func (c *consumer) ConsumesEvents() []string {
	return []string{events.TypeClusterCreated, events.TypeClusterUpdated, events.TypeClusterDeleted}
}
func (c *consumer) Routes() []string { return []string{"/test/consumer"} }
func (c *consumer) Handle(w http.ResponseWriter, r *http.Request) {
	if !runtime.IsCloudEvent(r) {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "not an event"))
		return
	}
	e, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.got = append(c.got, *e)
	c.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func TestEventsInProcessInAllMode(t *testing.T) {
	needKube(t)
	c := &consumer{}
	a := startAPI(t, nil, apitest.Fn{Name: "consumer", New: func(*platform.Platform) runtime.Handler { return c }})
	a.Do(http.MethodPost, "/api/v1/clusters", register("local", kube.AdminKubeconfig())).
		Expect(t, http.StatusCreated, "")
	eventually(t, 5*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.got) == 1
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) != 1 || c.got[0].Type() != events.TypeClusterCreated {
		t.Fatalf("in-process consumer got %d events", len(c.got))
	}
	var data map[string]any
	if err := json.Unmarshal(c.got[0].Data(), &data); err != nil {
		t.Fatal(err)
	}
	if data["cluster"].(map[string]any)["name"] != "local" {
		t.Fatalf("data %s", c.got[0].Data())
	}
}

package clusterapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kitefn/kitefn/events"
	"github.com/kitefn/kitefn/shared/clusterapi"
	"github.com/kitefn/kitefn/shared/store"
)

// The API and the events each own their format: both must keep the wire format clients and receivers know, and
// neither may ever carry the kubeconfig.
func TestWireFormatsStay(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 123000000, time.UTC)
	rec := &store.Cluster{ID: 2, Name: "prod", Server: "https://127.0.0.1:6443", Kubeconfig: []byte("sealed-secret"),
		Labels: map[string]string{"env": "prod"}, Prometheus: store.Prometheus{URL: "http://p", Status: store.PrometheusFound,
			Message: "ok", CheckedAt: &at}, Impersonate: true, CreatedAt: at, UpdatedAt: at, Version: 3}
	want := `{"id":2,"name":"prod","server":"https://127.0.0.1:6443","labels":{"env":"prod"},` +
		`"prometheus":{"url":"http://p","status":"found","message":"ok","checkedAt":"2026-11-28T10:00:00.123Z"},` +
		`"impersonate":true,"createdAt":"2026-11-28T10:00:00.123Z","updatedAt":"2026-11-28T10:00:00.123Z","version":3}`
	for name, v := range map[string]any{"api": clusterapi.FromRecord(rec), "event": events.ClusterFromRecord(rec)} {
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s format changed:\n got %s\nwant %s", name, got, want)
		}
	}
	if got, _ := json.Marshal(clusterapi.List(nil)); string(got) != "[]" {
		t.Errorf("empty list is %s, want []", got)
	}
	// The views are copies: changing one does not reach the record.
	v := clusterapi.FromRecord(rec)
	v.Labels["env"] = "changed"
	if rec.Labels["env"] != "prod" {
		t.Error("the API view shares the record's labels map")
	}
}

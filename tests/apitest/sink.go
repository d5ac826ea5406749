package apitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Sink is a real CloudEvents HTTP receiver (the SDK's own) on loopback, standing in for a Broker.
type Sink struct {
	URL string
	// Failures makes the next n deliveries answer 503, to exercise the sender's retries.
	Failures atomic.Int32
	// Attempts counts deliveries, refused ones included.
	Attempts atomic.Int32

	mu       sync.Mutex
	received []cloudevents.Event
}

// StartSink starts a sink, closed when the test ends.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	s := &Sink{}
	p, err := cehttp.New()
	if err != nil {
		t.Fatal(err)
	}
	recv, err := cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(e cloudevents.Event) {
		s.mu.Lock()
		s.received = append(s.received, e)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Attempts.Add(1)
		if s.Failures.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		recv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Events returns the events received so far.
func (s *Sink) Events() []cloudevents.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cloudevents.Event(nil), s.received...)
}

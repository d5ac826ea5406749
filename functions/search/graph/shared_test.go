package graph

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// countingLister answers every list with one object and counts the reads; fail makes the next read fail.
type countingLister struct {
	reads atomic.Int32
	fail  atomic.Bool
}

func (c *countingLister) List(context.Context, Query) ([]*unstructured.Unstructured, error) {
	c.reads.Add(1)
	if c.fail.Swap(false) {
		return nil, errors.New("boom")
	}
	return []*unstructured.Unstructured{{}}, nil
}

func (c *countingLister) Get(ctx context.Context, _ schema.GroupVersionResource, _, _ string) (*unstructured.Unstructured, error) {
	objs, err := c.List(ctx, Query{})
	if err != nil {
		return nil, err
	}
	return objs[0], nil
}

func TestSharedListerKeepsAnswersForTTL(t *testing.T) {
	inner := &countingLister{}
	now := time.Unix(1000, 0)
	s := &SharedLister{Lister: inner, TTL: time.Second, Now: func() time.Time { return now }}
	q := Query{GVR: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "a"}
	read := func(want int32) {
		t.Helper()
		if _, err := s.List(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		if got := inner.reads.Load(); got != want {
			t.Fatalf("%d reads, want %d", got, want)
		}
	}
	read(1)
	read(1) // shared
	now = now.Add(999 * time.Millisecond)
	read(1)
	now = now.Add(time.Millisecond) // expired
	read(2)
	if _, err := s.List(t.Context(), Query{GVR: q.GVR, Namespace: "b"}); err != nil || inner.reads.Load() != 3 {
		t.Fatalf("another query: err %v, %d reads", err, inner.reads.Load())
	}

	inner.fail.Store(true)
	now = now.Add(time.Second)
	if _, err := s.List(t.Context(), q); err == nil {
		t.Fatal("the failure was not returned")
	}
	read(5) // a failure is not kept
	if len(s.entries) != 1 {
		t.Errorf("%d entries kept, want 1 (the expired ones swept)", len(s.entries))
	}
}

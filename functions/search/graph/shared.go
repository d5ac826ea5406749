package graph

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SharedLister keeps what its Lister answered for TTL and shares it between requests, so repeated graphs of
// one cluster (a dashboard refreshing, many users on one object) cost the cluster one read per TTL instead of
// ~20 lists each, well within the client's rate limit. An answer may be up to TTL old. Concurrent callers of
// one read wait for the same answer; failures are not kept. Callers must not change the objects.
type SharedLister struct {
	Lister Lister
	TTL    time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	entries map[readKey]*shared
}

type shared struct {
	done chan struct{}
	at   time.Time
	objs []*unstructured.Unstructured
	err  error
}

var _ Lister = (*SharedLister)(nil)

// List answers q from a fresh enough earlier answer, or reads it.
func (s *SharedLister) List(ctx context.Context, q Query) ([]*unstructured.Unstructured, error) {
	return s.read(ctx, readKey{q: q}, func(ctx context.Context) ([]*unstructured.Unstructured, error) {
		return s.Lister.List(ctx, q)
	})
}

// Get answers from a fresh enough earlier answer, or reads the object.
func (s *SharedLister) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace,
	name string) (*unstructured.Unstructured, error) {
	objs, err := s.read(ctx, readKey{q: Query{GVR: gvr, Namespace: namespace}, name: name},
		func(ctx context.Context) ([]*unstructured.Unstructured, error) {
			x, err := s.Lister.Get(ctx, gvr, namespace, name)
			if err != nil {
				return nil, err
			}
			return []*unstructured.Unstructured{x}, nil
		})
	if err != nil {
		return nil, err
	}
	return objs[0], nil
}

func (s *SharedLister) read(ctx context.Context, key readKey,
	fetch func(context.Context) ([]*unstructured.Unstructured, error)) ([]*unstructured.Unstructured, error) {
	now := s.Now()
	s.mu.Lock()
	if s.entries == nil {
		s.entries = map[readKey]*shared{}
	}
	e, ok := s.entries[key]
	if !ok || (e.isDone() && now.Sub(e.at) >= s.TTL) {
		s.sweep(now)
		e = &shared{done: make(chan struct{}), at: now}
		s.entries[key] = e
		s.mu.Unlock()
		// Not the caller's cancellation: others may be waiting for this answer. The client's request timeout
		// still bounds it.
		e.objs, e.err = fetch(context.WithoutCancel(ctx))
		if e.err != nil {
			s.mu.Lock()
			if s.entries[key] == e {
				delete(s.entries, key)
			}
			s.mu.Unlock()
		}
		close(e.done)
		return e.objs, e.err
	}
	s.mu.Unlock()
	select {
	case <-e.done:
		return e.objs, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *shared) isDone() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// sweep drops the expired answers (mu held), so the cache holds at most what was read within one TTL.
func (s *SharedLister) sweep(now time.Time) {
	for k, e := range s.entries {
		if e.isDone() && now.Sub(e.at) >= s.TTL {
			delete(s.entries, k)
		}
	}
}

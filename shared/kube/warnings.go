package kube

import (
	"context"
	"slices"
	"sync"

	"k8s.io/client-go/rest"
)

// Warnings collects the apiserver's warnings (deprecated APIs, unknown fields under fieldValidation=Warn) for
// one request, so they can be passed on to the caller. Safe for concurrent use.
type Warnings struct {
	mu   sync.Mutex
	list []string
}

type warningsKey struct{}

// WithWarnings returns a context whose cluster calls add their warnings to the returned collector.
func WithWarnings(ctx context.Context) (context.Context, *Warnings) {
	w := &Warnings{}
	return context.WithValue(ctx, warningsKey{}, w), w
}

// WarningsFrom returns the collector installed in ctx, if any.
func WarningsFrom(ctx context.Context) (*Warnings, bool) {
	w, ok := ctx.Value(warningsKey{}).(*Warnings)
	return w, ok
}

// Add records a warning once.
func (w *Warnings) Add(text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Contains(w.list, text) {
		w.list = append(w.list, text)
	}
}

// List returns the warnings in the order they first came.
func (w *Warnings) List() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// warningHandler sends a 299 warning to the request's collector; without one it is logged as client-go does.
type warningHandler struct{}

func (warningHandler) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, text string) {
	if w, ok := WarningsFrom(ctx); ok {
		if code == 299 && text != "" {
			w.Add(text)
		}
		return
	}
	rest.WarningLogger{}.HandleWarningHeaderWithContext(ctx, code, agent, text)
}

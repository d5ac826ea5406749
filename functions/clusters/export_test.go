package clusters

import "github.com/kitefn/kitefn/shared/runtime"

// NewWrapped is New with the platform's store wrapped by wrap, so tests can interpose on the registry.
func NewWrapped(wrap func(Registry) Registry) runtime.Handler {
	f := New().(*Function)
	f.wrapRegistry = wrap
	return f
}

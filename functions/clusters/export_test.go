package clusters

import (
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
)

// NewWrapped is the function wired as functions/catalog wires it, with the store wrapped by wrap, so tests can
// interpose on the registry.
func NewWrapped(wrap func(Registry) Registry) runtime.Spec[*platform.Platform] {
	return runtime.Spec[*platform.Platform]{Name: "clusters", New: func(p *platform.Platform) runtime.Handler {
		var ev Sender
		if p.Events != nil {
			ev = p.Events
		}
		return New(Deps{Registry: wrap(p.Store), Sealer: p.Sealer, Clients: p.Clients, Events: ev,
			Kube: p.Config.Kube, AllMode: p.AllMode()})
	}}
}

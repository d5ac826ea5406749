// Package catalog lists kitefn's functions and wires each to what the process shares: the one place where a
// function's dependencies are taken from the platform. main.go runs them; tests start them the same way.
package catalog

import (
	"context"
	"slices"
	"strings"

	"github.com/kitefn/kitefn/functions/clusters"
	"github.com/kitefn/kitefn/functions/discovery"
	"github.com/kitefn/kitefn/functions/resources"
	"github.com/kitefn/kitefn/functions/search"
	"github.com/kitefn/kitefn/functions/terminal"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
)

// Spec is a function built over the platform.
type Spec = runtime.Spec[*platform.Platform]

// All lists every function, by FUNCTION_TARGET name.
func All() []Spec {
	return []Spec{
		{Name: "clusters", Check: clusters.CheckConfig, New: func(p *platform.Platform) runtime.Handler {
			return clusters.New(clusters.Deps{Registry: p.Store, Sealer: p.Sealer, Clients: p.Clients,
				Events: sender(p), Kube: p.Config.Kube, AllMode: p.AllMode(), Tokens: p.Store,
				TokenCache: p.TokenAuth, Audit: p.Audit, AuditLog: p.Store})
		}},
		{Name: "discovery", Check: discovery.CheckConfig, New: func(p *platform.Platform) runtime.Handler {
			return discovery.New(discovery.Deps{Registry: p.Store, Clients: p.Clients, Events: sender(p),
				AllMode: p.AllMode()})
		}},
		{Name: "resources", Check: resources.CheckConfig, New: func(p *platform.Platform) runtime.Handler {
			return resources.New(resources.Deps{Clients: p.Clients, Registry: p.Store, Audit: p.Audit})
		}},
		{Name: "terminal", Check: terminal.CheckConfig, New: func(p *platform.Platform) runtime.Handler {
			return terminal.New(terminal.Deps{Clients: p.Clients, Registry: p.Store, Audit: p.Audit,
				TicketKey: p.TicketKey})
		}},
		{Name: "search", Check: search.CheckConfig, New: func(p *platform.Platform) runtime.Handler {
			return search.New(search.Deps{Clients: p.Clients, Registry: p.Store, ActAs: actAs(p)})
		}},
	}
}

// Options are runtime.Main's options for every function over the platform.
func Options() runtime.Options[*platform.Platform] {
	return runtime.Options[*platform.Platform]{
		Functions: All(),
		Setup:     platform.Setup,
		Bind:      func(p *platform.Platform, fns []runtime.Function) { p.Bind(fns) },
		Check:     platform.Check,
		Access:    accessConfig,
	}
}

// accessConfig is the platform's access configuration with the terminal's tickets accepted in place of a bearer
// token on the socket routes (the runtime asks only there): any instance over the same encryption key.
func accessConfig(p *platform.Platform) (runtime.AccessConfig, error) {
	acc, err := platform.Access(p)
	if err != nil {
		return acc, err
	}
	tickets, err := terminal.NewTickets(p.TicketKey)
	if err != nil {
		return acc, err
	}
	acc.Ticket = tickets.Authenticate
	return acc, nil
}

// actAs is search's view of the client cache's impersonation: the client acting as the caller where the
// cluster impersonates (nil where it does not), and an identity naming the user and the sorted groups, which
// keys search's access decisions.
func actAs(p *platform.Platform) search.ActAs {
	return func(_ context.Context, c *kube.Client, caller *access.Caller) (*kube.Client, string, error) {
		cl, err := p.Clients.ActingAs(c, clusterhttp.PrincipalOf(caller))
		if err != nil || cl.As == nil {
			return nil, "", err
		}
		groups := slices.Sorted(slices.Values(cl.As.Groups))
		return cl, strings.Join(append([]string{cl.As.User}, groups...), "\x00"), nil
	}
}

// sender is the platform's event sender as an interface that is nil when events are off (a nil *Sender inside
// a non-nil interface would hide that).
func sender(p *platform.Platform) interface {
	clusters.Sender
	discovery.Sender
} {
	if p.Events == nil {
		return nil
	}
	return p.Events
}

// Package runtime implements the Knative Functions Go contract (the func-go module is not used): a function is a
// value made by New() with Handle and optional Start, Stop, Ready and Alive, detected by interface. It serves
// one function (FUNCTION_TARGET) or all of them in one process, with health endpoints, auth, request logging
// and a graceful SIGTERM.
package runtime

import (
	"context"
	"net/http"
)

// Handler is the required method of every function: an instanced HTTP function.
type Handler interface {
	Handle(w http.ResponseWriter, r *http.Request)
}

// Starter is called once before the function receives requests; cfg is the process environment. An error
// stops the process with that message.
type Starter interface {
	Start(ctx context.Context, cfg map[string]string) error
}

// Stopper is called once after the server stopped taking requests and in-flight ones finished.
type Stopper interface {
	Stop(ctx context.Context) error
}

// ReadinessReporter lets a function hold back traffic (readiness 503) while it is not ready.
type ReadinessReporter interface {
	Ready(ctx context.Context) (bool, error)
}

// LivenessReporter lets a function ask to be restarted (liveness 503).
type LivenessReporter interface {
	Alive(ctx context.Context) (bool, error)
}

// Router lists the ServeMux patterns ("POST /api/v1/clusters", "/api/v1/clusters/") a function serves. Only
// one-process mode uses it, to route among functions; a function deployed alone receives every request.
type Router interface {
	Routes() []string
}

// PublicRouter is a function serving some GET routes without authentication: the static files of a browser
// page, which a browser loads by navigation and so without a bearer token. Patterns are "GET /name/..." outside
// /api, /k8s and /health (NewServer refuses others); only GET and HEAD reach them unauthenticated, and the API
// calls the page makes carry the token as any other.
type PublicRouter interface {
	PublicRoutes() []string
}

// EventConsumer is a function that takes CloudEvents at "/" (as from a Knative Trigger). In one-process mode
// the event sender delivers to every consumer of an event's type, in-process.
type EventConsumer interface {
	ConsumesEvents() []string
}

// ShutdownNotifier is told when SIGTERM arrives, before in-flight requests are drained, so long-lived
// connections (WebSockets) can be closed with 1001 instead of being cut.
type ShutdownNotifier interface {
	ShuttingDown()
}

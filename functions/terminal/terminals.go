package terminal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/functions/terminal/wire"
	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/store"
)

// Pod terminals (GET /api/v1/terminal/pods/{namespace}/{pod}) and tickets (POST /api/v1/terminal/tickets) over
// the session layer of terminal_session.go.

// TerminalConfig configures the pod terminals, tickets and the WebSocket session layer.
type TerminalConfig struct {
	WSConfig
	// ReconnectGrace is how long a session whose socket dropped keeps its process for a re-attach.
	ReconnectGrace time.Duration `envconfig:"TERMINAL_RECONNECT_GRACE" default:"60s"`
	// MaxSessions caps the sessions (attached or within their grace) of one instance; beyond it, 503.
	MaxSessions int `envconfig:"TERMINAL_MAX_SESSIONS" default:"1000"`
	// TicketTTL is how long a ticket may wait before its socket opens.
	TicketTTL time.Duration `envconfig:"TERMINAL_TICKET_TTL" default:"30s"`
}

func (c *TerminalConfig) check() error {
	if err := c.WSConfig.check(); err != nil {
		return err
	}
	switch {
	case c.ReconnectGrace < 0:
		return fmt.Errorf("KITEFN_TERMINAL_RECONNECT_GRACE (%s) must not be negative", c.ReconnectGrace)
	case c.MaxSessions < 1:
		return fmt.Errorf("KITEFN_TERMINAL_MAX_SESSIONS (%d) must be at least 1", c.MaxSessions)
	case c.TicketTTL <= 0 || c.TicketTTL > 10*time.Minute:
		return fmt.Errorf("KITEFN_TERMINAL_TICKET_TTL (%s) must be positive and at most 10m", c.TicketTTL)
	}
	return nil
}

func (f *Function) routeTerminals() {
	f.mux.Handle(http.MethodGet, "/api/v1/terminal/pods/{namespace}/{pod}",
		clusterhttp.Select(f.clients, http.HandlerFunc(f.podTerminal)).ServeHTTP)
	f.mux.Handle(http.MethodPost, "/api/v1/terminal/tickets", f.issueTicket)
}

func (f *Function) startTerminals(ctx context.Context) error {
	key := f.ticketKey
	if len(key) == 0 { // built without the platform (a test): tickets work on this instance only
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("ticket key: %w", err)
		}
	}
	t, err := NewTickets(key)
	if err != nil {
		return err
	}
	f.tickets = t
	f.terminals = newTerminals(f.cfg.TerminalConfig, f.audit)
	return nil
}

func (f *Function) shutdownTerminals() {
	if f.terminals != nil {
		f.terminals.shutdown("the terminal service is shutting down (a rollout or a scale-down): reconnect for a new session")
	}
}

func (f *Function) stopTerminals(ctx context.Context) error {
	if f.terminals == nil {
		return nil
	}
	f.terminals.shutdown("the terminal service stopped")
	return f.terminals.wait(ctx)
}

// defaultShell starts bash where there is one, else sh, in one exec: a missing bash costs nothing.
var defaultShell = []string{"sh", "-c", "command -v bash >/dev/null 2>&1 && exec bash || exec sh"}

// podTerminal serves GET /api/v1/terminal/pods/{namespace}/{pod}?container=&command=&session=.
func (f *Function) podTerminal(w http.ResponseWriter, r *http.Request) {
	cl, _ := clusterhttp.ClientFrom(r.Context())
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	if caller, ok := access.CallerFrom(r.Context()); ok {
		if err := caller.CheckNamespace("exec pods", ns); err != nil {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error()))
			return
		}
	}
	q := r.URL.Query()
	container := q.Get("container")
	// command= is one program or a space-separated argv ("ls -la /"), never parsed like a shell.
	command := strings.Fields(q.Get("command"))
	shown := strings.Join(command, " ")
	if len(command) == 0 {
		command, shown = defaultShell, "bash or sh"
	}
	target := Target{Cluster: cl.Name, Resource: "pods", Namespace: ns, Name: name, Container: container,
		Command: shown}
	if q.Get("session") == "" && websocket.IsWebSocketUpgrade(r) {
		// The pod first, so an unknown pod or container is a clear error frame instead of an exec failure.
		c, err := podContainer(r.Context(), cl, ns, name, container)
		if err != nil {
			f.terminals.refuse(w, r, err)
			return
		}
		target.Container = c
	}
	ex := Exec{Namespace: ns, Pod: name, Container: target.Container, Command: command}
	f.terminals.open(w, r, target, func(ctx context.Context, p Pipes) (int, error) {
		return ex.Run(ctx, cl, p)
	}, nil)
}

// podContainer checks that the pod exists and runs the container, and names the container the exec enters
// (the one asked for, else the pod's default-container annotation, else its first).
func podContainer(ctx context.Context, cl *kube.Client, ns, name, container string) (string, error) {
	pod, err := cl.Kubernetes.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "pod %s/%s not found in cluster %q",
			ns, name, cl.Name)
	}
	if err != nil {
		return "", kube.APIError(cl.Name, err)
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	switch {
	case container == "" && pod.Annotations["kubectl.kubernetes.io/default-container"] != "" &&
		slices.Contains(names, pod.Annotations["kubectl.kubernetes.io/default-container"]):
		container = pod.Annotations["kubectl.kubernetes.io/default-container"]
	case container == "" && len(names) > 0:
		container = names[0]
	case !slices.Contains(names, container):
		return "", httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound,
			"container %q not found in pod %s/%s; it has: %s", container, ns, name, strings.Join(names, ", "))
	}
	if pod.Status.Phase != corev1.PodRunning {
		return "", httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict,
			"pod %s/%s is %s: a terminal needs a running container", ns, name, pod.Status.Phase)
	}
	return container, nil
}

// refuse answers a socket whose target is wrong: upgraded (a browser sees no HTTP status), an error frame
// saying why, close 1000.
func (t *terminals) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if !websocket.IsWebSocketUpgrade(r) {
		httpapi.WriteError(w, r, err)
		return
	}
	sock := t.cfg.upgrade(w, r)
	if sock == nil {
		return
	}
	_ = sock.Send(wire.Frame{Type: wire.Error, Data: httpapi.AsError(err).Message})
	sock.Close(websocket.CloseNormalClosure, "")
}

// ticketRoles is the role each kind of ticket target needs (the socket's route asks again).
var ticketRoles = map[string]access.Role{"pod": access.Operator, "node": access.Admin, "logs": access.Viewer}

// ticketAnswer is the answer of POST /api/v1/terminal/tickets.
type ticketAnswer struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// issueTicket serves POST /api/v1/terminal/tickets.
func (f *Function) issueTicket(w http.ResponseWriter, r *http.Request) {
	var tg TicketTarget
	if err := httpapi.DecodeJSON(w, r, 16<<10, &tg); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	caller, ok := access.CallerFrom(r.Context())
	if !ok {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeUnauthorized, "no caller"))
		return
	}
	if err := f.checkTicketTarget(r.Context(), caller, &tg); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ticket, exp, err := f.tickets.issue(caller, tg, f.cfg.TicketTTL)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, ticketAnswer{Ticket: ticket, ExpiresAt: exp.UTC()})
}

// checkTicketTarget validates a ticket's target and the caller's right to it: the role of its kind, the
// cluster (which must exist) and namespace scopes. The fields a kind does not use are cleared, so the socket's
// request matches the ticket exactly.
func (f *Function) checkTicketTarget(ctx context.Context, caller *access.Caller, tg *TicketTarget) error {
	bad := func(format string, args ...any) error {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, format, args...)
	}
	role, ok := ticketRoles[tg.Kind]
	if !ok {
		return bad(`kind must be "pod", "node" or "logs"`)
	}
	if tg.Cluster == "" {
		return bad("cluster is required (a name or an ID, as the socket's ?cluster= will say)")
	}
	switch tg.Kind {
	case "pod", "logs":
		if tg.Namespace == "" || tg.Pod == "" {
			return bad("a %s ticket needs namespace and pod", tg.Kind)
		}
		tg.Node = ""
		if tg.Kind == "pod" {
			tg.Resource = ""
		}
	case "node":
		if tg.Node == "" {
			return bad("a node ticket needs node")
		}
		tg.Namespace, tg.Pod, tg.Container, tg.Resource = "", "", "", ""
	}
	if !caller.Has(role) {
		return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "a %s ticket needs the %s role; %s %q has not",
			tg.Kind, role, caller.Kind, caller.Name)
	}
	rec, err := clusterhttp.Lookup(ctx, f.registry, tg.Cluster)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "cluster %q not found", tg.Cluster)
		}
		return err
	}
	if err := caller.CheckCluster(rec.Name); err != nil {
		return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error())
	}
	ns, what := tg.Namespace, "exec "+tg.Kind+"s"
	if tg.Kind == "node" {
		ns, what = "", "a node shell"
	}
	if err := caller.CheckNamespace(what, ns); err != nil {
		return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error())
	}
	return nil
}

func logger(ctx context.Context) interface {
	Infow(msg string, kv ...any)
} {
	return logging.FromContext(ctx)
}

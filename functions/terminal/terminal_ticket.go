package terminal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
)

// Tickets are how a browser authenticates a WebSocket (it cannot set an Authorization header): POST
// /api/v1/terminal/tickets, with a bearer token, names a target and gets a ticket, which the socket's URL then
// carries as ?ticket=. A ticket is the caller and the target sealed with AES-256-GCM under a key derived from
// the platform's encryption key (TicketKey), so every instance sharing KITEFN_ENCRYPTION_KEY accepts the
// tickets any of them issued, and nobody can read or forge one. It expires after KITEFN_TERMINAL_TICKET_TTL.
// Single use holds per instance: each instance remembers the ids it accepted until they expire (an LRU of
// maxUsedTickets); a ticket could be used once on each of two instances within its lifetime.

// TicketKey derives the ticket key from the platform's sealing key: one key per purpose.
func TicketKey(encryptionKey []byte) []byte {
	m := hmac.New(sha256.New, encryptionKey)
	m.Write([]byte("kitefn/terminal-ticket/v1"))
	return m.Sum(nil)
}

// TicketTarget is what a ticket opens: the body of POST /api/v1/terminal/tickets. Resource is set only for the
// logs of a workload (/api/v1/logs/{resource}/{namespace}/{name}: Pod holds the name).
type TicketTarget struct {
	Cluster   string `json:"cluster"`
	Kind      string `json:"kind"` // pod, node, logs
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
	Node      string `json:"node,omitempty"`
	Resource  string `json:"resource,omitempty"`
}

// ticketBody is what a ticket seals.
type ticketBody struct {
	ID      string        `json:"id"`
	Expires int64         `json:"exp"` // unix milliseconds
	Caller  access.Caller `json:"caller"`
	Target  TicketTarget  `json:"target"`
}

// maxUsedTickets bounds the memory of used ticket ids on one instance.
const maxUsedTickets = 100_000

// Tickets issues and checks tickets.
type Tickets struct {
	aead cipher.AEAD
	now  func() time.Time
	mu   sync.Mutex
	used *lru.Cache[string, int64] // id → expiry (unix ms)
}

// NewTickets makes tickets over a 32-byte key (TicketKey).
func NewTickets(key []byte) (*Tickets, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("ticket key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("ticket key: %w", err)
	}
	used, err := lru.New[string, int64](maxUsedTickets)
	if err != nil {
		return nil, err
	}
	return &Tickets{aead: aead, now: time.Now, used: used}, nil
}

var ticketAAD = []byte("kitefn/terminal-ticket/v1")

// issue seals a ticket for caller and target, valid for ttl.
func (t *Tickets) issue(caller *access.Caller, target TicketTarget, ttl time.Duration) (string, time.Time, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("ticket id: %w", err)
	}
	exp := t.now().Add(ttl)
	plain, err := json.Marshal(ticketBody{ID: hex.EncodeToString(id[:]), Expires: exp.UnixMilli(), Caller: *caller,
		Target: target})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("encoding a ticket: %w", err)
	}
	nonce := make([]byte, t.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", time.Time{}, fmt.Errorf("ticket nonce: %w", err)
	}
	sealed := t.aead.Seal(nonce, nonce, plain, ticketAAD)
	return base64.RawURLEncoding.EncodeToString(sealed), exp, nil
}

var (
	errBadTicket     = errors.New("the ticket is not valid (damaged, or issued with another encryption key)")
	errExpiredTicket = errors.New("the ticket expired: ask POST /api/v1/terminal/tickets for a new one just before connecting")
	errUsedTicket    = errors.New("the ticket was already used: a ticket opens one socket")
)

// open decrypts a ticket.
func (t *Tickets) open(ticket string) (*ticketBody, error) {
	raw, err := base64.RawURLEncoding.DecodeString(ticket)
	if err != nil || len(raw) < t.aead.NonceSize() {
		return nil, errBadTicket
	}
	n := t.aead.NonceSize()
	plain, err := t.aead.Open(nil, raw[:n], raw[n:], ticketAAD)
	if err != nil {
		return nil, errBadTicket
	}
	var b ticketBody
	if err := json.Unmarshal(plain, &b); err != nil || b.ID == "" {
		return nil, errBadTicket
	}
	return &b, nil
}

// Authenticate is the runtime's ticket hook (runtime.AccessConfig.Ticket): the caller who asked for the ticket,
// when it is genuine, unexpired, unused and for the target r opens. A ticket for another target is a
// *access.Refusal (403) and stays unused; anything else wrong is an error (401).
func (t *Tickets) Authenticate(r *http.Request, ticket string) (*access.Caller, error) {
	b, err := t.open(ticket)
	if err != nil {
		return nil, err
	}
	now := t.now().UnixMilli()
	if now >= b.Expires {
		return nil, errExpiredTicket
	}
	if got := targetOf(r); got != b.Target {
		return nil, &access.Refusal{Message: fmt.Sprintf("the ticket is for %s, not %s", b.Target, got)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.used.Get(b.ID); seen {
		return nil, errUsedTicket
	}
	// Expired ids may go: their tickets fail on expiry anyway. Oldest first, so this stays cheap.
	for {
		_, exp, ok := t.used.GetOldest()
		if !ok || exp > now {
			break
		}
		t.used.RemoveOldest()
	}
	t.used.Add(b.ID, b.Expires)
	c := b.Caller
	return &c, nil
}

// targetOf is the target a socket request opens, in a ticket's terms.
func targetOf(r *http.Request) TicketTarget {
	tg := TicketTarget{Cluster: clusterhttp.ClusterRef(r), Container: r.URL.Query().Get("container")}
	rest, isPod := strings.CutPrefix(r.URL.Path, "/api/v1/terminal/pods/")
	parts := strings.Split(rest, "/")
	switch {
	case isPod && len(parts) == 2:
		tg.Kind, tg.Namespace, tg.Pod = "pod", parts[0], parts[1]
	case strings.HasPrefix(r.URL.Path, "/api/v1/terminal/nodes/"):
		tg.Kind, tg.Node, tg.Container = "node", strings.TrimPrefix(r.URL.Path, "/api/v1/terminal/nodes/"), ""
	case strings.HasPrefix(r.URL.Path, "/api/v1/logs/"):
		parts = strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/logs/"), "/")
		tg.Kind = "logs"
		switch len(parts) {
		case 2:
			tg.Namespace, tg.Pod = parts[0], parts[1]
		case 3:
			tg.Resource, tg.Namespace, tg.Pod = parts[0], parts[1], parts[2]
		}
	default:
		tg.Kind = "?"
	}
	return tg
}

// String names a target in refusals.
func (tg TicketTarget) String() string {
	var what string
	switch tg.Kind {
	case "node":
		what = "node " + tg.Node
	case "logs":
		what = "logs of "
		if tg.Resource != "" {
			what += tg.Resource + " "
		}
		what += tg.Namespace + "/" + tg.Pod
	default:
		what = tg.Kind + " " + tg.Namespace + "/" + tg.Pod
	}
	if tg.Container != "" {
		what += " container " + tg.Container
	}
	return fmt.Sprintf("%s in cluster %q", what, tg.Cluster)
}

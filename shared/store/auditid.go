package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// Audit IDs are the entry's time in Unix nanoseconds. Entry times keep microseconds (Now's precision), which
// leaves the last three decimal digits free: they tell entries of the same microsecond apart. So an ID sorts
// by time, a time range is a key range in every backend, and a collision (two appends in one microsecond) is
// resolved by trying the next stamp, which keeps the time.

// auditIDWidth zero-pads IDs so their string order is their numeric order (20 digits hold any uint64).
const auditIDWidth = 20

// DefaultAuditLimit and MaxAuditLimit bound one ListAudit page.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditStamps returns the 1000 candidate stamps for an entry at t (microsecond precision, after 1970), starting
// at a random one so replicas appending in the same microsecond seldom collide; try them in order.
func AuditStamps(t time.Time) ([]uint64, error) {
	if t.Before(time.Unix(0, 0)) {
		return nil, fmt.Errorf("%w: audit time %s is before 1970", errInvalidAudit, t)
	}
	base := uint64(t.UnixNano())
	var b [2]byte
	_, _ = rand.Read(b[:])
	start := uint64(binary.BigEndian.Uint16(b[:])) % 1000
	out := make([]uint64, 1000)
	for i := range out {
		out[i] = base + (start+uint64(i))%1000
	}
	return out, nil
}

// AuditID is the ID of stamp n.
func AuditID(n uint64) string { return fmt.Sprintf("%0*d", auditIDWidth, n) }

// AuditStamp parses an ID back to its stamp.
func AuditStamp(id string) (uint64, error) {
	if len(id) != auditIDWidth {
		return 0, fmt.Errorf("%w: audit id %q", errInvalidAudit, id)
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: audit id %q", errInvalidAudit, id)
	}
	return n, nil
}

// PrepareAudit fills what AppendAudit sets before the ID: the time (now when zero, else brought to Now's
// precision). It returns the copy to store.
func PrepareAudit(e *AuditEntry) (*AuditEntry, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil audit entry", errInvalidAudit)
	}
	rec := *e
	if rec.Time.IsZero() {
		rec.Time = Now()
	} else {
		rec.Time = rec.Time.UTC().Truncate(time.Microsecond)
	}
	return &rec, nil
}

// AuditRange is the stamp range a filter selects, [Lo, Hi): Since, Until and the continue token are all
// bounds on the ID. Empty reports a range nothing can be in.
type AuditRange struct {
	Lo, Hi uint64
	Limit  int
}

// Empty reports whether no stamp is in the range.
func (r AuditRange) Empty() bool { return r.Lo >= r.Hi }

// Range turns f into stamp bounds and a page size. Since is inclusive and Until exclusive; a malformed
// continue token is errInvalidAudit.
func (f AuditFilter) Range() (AuditRange, error) {
	r := AuditRange{Lo: 0, Hi: ^uint64(0), Limit: f.Limit}
	if r.Limit <= 0 {
		r.Limit = DefaultAuditLimit
	}
	r.Limit = min(r.Limit, MaxAuditLimit)
	// Entry times are whole microseconds: Time >= Since ⇔ stamp >= Since rounded up to a microsecond; the same
	// rounding makes Time < Until ⇔ stamp < Until rounded up.
	if !f.Since.IsZero() {
		r.Lo = stampCeil(f.Since)
	}
	if !f.Until.IsZero() {
		r.Hi = stampCeil(f.Until)
	}
	if f.Continue != "" {
		n, err := DecodeAuditContinue(f.Continue)
		if err != nil {
			return r, err
		}
		r.Hi = min(r.Hi, n)
	}
	return r, nil
}

func stampCeil(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	c := t.Truncate(time.Microsecond)
	if c.Before(t) {
		c = c.Add(time.Microsecond)
	}
	return uint64(c.UnixNano())
}

// Matches reports whether e passes f's Who, Cluster and Verb (the backends check the time range by key).
func (f AuditFilter) Matches(e *AuditEntry) bool {
	return (f.Who == "" || e.Who == f.Who) && (f.Cluster == "" || e.Cluster == f.Cluster) &&
		(f.Verb == "" || e.Verb == f.Verb)
}

// EncodeAuditContinue is the continue token after an entry with ID id: opaque to callers.
func EncodeAuditContinue(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// DecodeAuditContinue gives the stamp a continue token stops below.
func DecodeAuditContinue(token string) (uint64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, fmt.Errorf("%w: malformed continue token", errInvalidAudit)
	}
	n, err := AuditStamp(string(raw))
	if err != nil {
		return 0, fmt.Errorf("%w: malformed continue token", errInvalidAudit)
	}
	return n, nil
}

// AuditPage cuts the entries a backend collected (newest first, at most Limit+1) into the page and its
// continue token.
func AuditPage(entries []*AuditEntry, limit int) ([]*AuditEntry, string) {
	if len(entries) <= limit {
		return entries, ""
	}
	page := entries[:limit]
	return page, EncodeAuditContinue(page[limit-1].ID)
}

// CheckToken refuses tokens no backend can store.
func CheckToken(backend string, t *Token) error {
	switch {
	case t == nil:
		return fmt.Errorf("%s: %w: nil token", backend, errInvalidToken)
	case t.Name == "":
		return fmt.Errorf("%s: %w: the token name is empty", backend, errInvalidToken)
	case len(t.Hash) == 0:
		return fmt.Errorf("%s: %w: the token hash is empty", backend, errInvalidToken)
	}
	return nil
}

// NewToken is what CreateToken stores: a copy of t with CreatedAt now and ExpiresAt at Now's precision.
func NewToken(t *Token) *Token {
	rec := t.Clone()
	rec.CreatedAt = Now()
	rec.ExpiresAt = NormTimePtr(rec.ExpiresAt)
	return rec
}

// Clone returns a deep copy.
func (t *Token) Clone() *Token {
	if t == nil {
		return nil
	}
	out := *t
	out.Hash = append([]byte(nil), t.Hash...)
	out.Roles = append([]string(nil), t.Roles...)
	out.Clusters = append([]string(nil), t.Clusters...)
	out.Namespaces = append([]string(nil), t.Namespaces...)
	if t.ExpiresAt != nil {
		e := *t.ExpiresAt
		out.ExpiresAt = &e
	}
	return &out
}

// TokenTaken is the conflict for a duplicate token name.
func TokenTaken(name string) error {
	return &ConflictError{Reason: fmt.Sprintf("a token named %q already exists", name)}
}

// ErrTokenNotFound is ErrNotFound for tokens: the same class (errors.Is matches it), its own message.
var ErrTokenNotFound error = &notFound{classError{msg: "token not found", status: 404, code: "not_found"}}

type notFound struct{ classError }

// errInvalidAudit and errInvalidToken are ErrInvalid (errors.Is matches them) with messages of their own, not
// "invalid cluster".
var (
	errInvalidAudit error = &invalid{classError{msg: "invalid audit request", status: 400, code: "invalid"}}
	errInvalidToken error = &invalid{classError{msg: "invalid token", status: 400, code: "invalid"}}
)

type invalid struct{ classError }

func (e *invalid) Is(target error) bool { return target == ErrInvalid }

func (e *notFound) Is(target error) bool { return target == ErrNotFound }

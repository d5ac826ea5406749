package dynamo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/shared/store/dynamo"
)

// TestInterleavedCreates makes two replicas' creates interleave at the request level, so that both read the
// same counter and the second one's TransactWriteItems really loses its condition:
//
//	A: GetItem(counter)=n ............ TransactWriteItems(id n+1) → ok
//	B: ........ GetItem(counter)=n ............................... TransactWriteItems(id n+1) → cancelled
//	B: GetItem(counter)=n+1, TransactWriteItems(id n+2) → ok            (a different name)
//	B: → 409 name taken, nothing written                              (the same name)
//
// Each replica talks to the DynamoDB server through its own proxy, which holds A's transaction until B has read
// the counter, and B's transaction until A's has been answered. minidyn reports only the first failing item of a
// cancelled transaction; DynamoDB reports every item whose condition failed (here the counter and the record
// that A wrote), so every case runs with both answers.
func TestInterleavedCreates(t *testing.T) {
	for _, reasons := range []string{"minidyn", "every"} {
		for _, tc := range []struct {
			name         string
			seed         int // records created before the race: 0 takes the counter's attribute_not_exists path
			nameB        string
			wantConflict bool
		}{
			{"new-counter", 0, "beta", false},
			{"counter-moves", 1, "beta", false},
			{"same-name", 1, "alpha", true},
		} {
			t.Run(reasons+"/"+tc.name, func(t *testing.T) {
				ctx := t.Context()
				table := fmt.Sprintf("interleave-%s-%s", reasons, tc.name)
				seeder := open(t, table)
				for i := range tc.seed {
					if _, err := seeder.Create(ctx, &store.Cluster{Name: fmt.Sprintf("seed-%d", i)}); err != nil {
						t.Fatalf("seed: %v", err)
					}
				}
				race := newRace(t)
				pa := newProxy(t, endpoint, reasons == "every", race.replicaA)
				pb := newProxy(t, endpoint, reasons == "every", race.replicaB)
				a := openAt(t, table, pa.url)
				b := openAt(t, table, pb.url)

				type result struct {
					c   *store.Cluster
					err error
				}
				resA, resB := make(chan result, 1), make(chan result, 1)
				go func() { c, err := a.Create(ctx, &store.Cluster{Name: "alpha"}); resA <- result{c, err} }()
				go func() { c, err := b.Create(ctx, &store.Cluster{Name: tc.nameB}); resB <- result{c, err} }()
				ra, rb := <-resA, <-resB

				if ra.err != nil || ra.c.ID != uint64(tc.seed+1) {
					t.Fatalf("replica A: %v, %v; want ID %d", ra.c, ra.err, tc.seed+1)
				}
				if got := pb.transactions(); len(got) < 1 || got[0] != http.StatusBadRequest {
					t.Fatalf("replica B's transactions answered %v: the race did not happen (want the first one cancelled)", got)
				}
				want := []uint64{}
				for i := range tc.seed + 1 {
					want = append(want, uint64(i+1))
				}
				if tc.wantConflict {
					if !errors.Is(rb.err, store.ErrConflict) {
						t.Fatalf("replica B creating the name A just took: %v, %v; want a conflict", rb.c, rb.err)
					}
					if got := pb.transactions(); len(got) != 1 {
						t.Errorf("replica B sent %d transactions for a taken name, want 1 (no retry)", len(got))
					}
				} else {
					if rb.err != nil || rb.c.ID != uint64(tc.seed+2) {
						t.Fatalf("replica B: %v, %v; want ID %d after one lost transaction", rb.c, rb.err, tc.seed+2)
					}
					if got := pb.transactions(); len(got) != 2 || got[1] != http.StatusOK {
						t.Errorf("replica B's transactions answered %v, want [400 200]: one lost race, one retry", got)
					}
					want = append(want, uint64(tc.seed+2))
				}

				// IDs sequential, no gap and no duplicate, every name resolving to its record; the next create
				// continues the sequence.
				next := mustCreate(t, seeder, "after")
				want = append(want, next.ID)
				if next.ID != uint64(len(want)) {
					t.Errorf("the create after the race got ID %d, want %d", next.ID, len(want))
				}
				list, err := seeder.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var ids []uint64
				for _, c := range list {
					ids = append(ids, c.ID)
					got, err := seeder.GetByName(ctx, c.Name)
					if err != nil || got.ID != c.ID {
						t.Errorf("GetByName(%s) = %v, %v; want ID %d", c.Name, got, err, c.ID)
					}
				}
				if fmt.Sprint(ids) != fmt.Sprint(want) {
					t.Errorf("IDs after the race: %v, want %v", ids, want)
				}
			})
		}
	}
}

func openAt(t *testing.T, table, url string) *dynamo.Store {
	t.Helper()
	cfg := config(table, url)
	cfg.CreateTable = false
	s, err := dynamo.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, s store.Store, name string) *store.Cluster {
	t.Helper()
	c, err := s.Create(t.Context(), &store.Cluster{Name: name})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return c
}

// race orders the requests of two replicas' creates: A's transaction waits for B's counter read, B's
// transaction for A's answer. A wait that does not end within the deadline fails the test and lets the
// request through, so a changed Create shows as a failure, not a hang.
type race struct {
	t                    *testing.T
	bReadCounter, aWrote chan struct{}
	onceB, onceA         sync.Once
	aHeld, bHeld         bool
	mu                   sync.Mutex
}

func newRace(t *testing.T) *race {
	return &race{t: t, bReadCounter: make(chan struct{}), aWrote: make(chan struct{})}
}

// first reports whether this is the first time flag is set.
func (r *race) first(flag *bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	was := *flag
	*flag = true
	return !was
}

func (r *race) wait(ch chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		r.t.Errorf("%s did not happen within 10 s", what)
	}
}

func (r *race) replicaA(op string, answered bool) {
	if op != "TransactWriteItems" {
		return
	}
	if !answered && r.first(&r.aHeld) {
		r.wait(r.bReadCounter, "replica B's counter read")
	}
	if answered {
		r.onceA.Do(func() { close(r.aWrote) })
	}
}

func (r *race) replicaB(op string, answered bool) {
	switch {
	case op == "GetItem" && answered:
		r.onceB.Do(func() { close(r.bReadCounter) })
	case op == "TransactWriteItems" && !answered && r.first(&r.bHeld):
		r.wait(r.aWrote, "replica A's transaction")
	}
}

// proxy forwards DynamoDB requests to target, calling hook(operation, false) before and hook(operation, true)
// after each, and records the status of every TransactWriteItems. With everyReason, a cancelled transaction's
// reasons are completed the way DynamoDB reports them: each item's condition is checked alone.
type proxy struct {
	url, target string
	everyReason bool
	hook        func(op string, answered bool)
	mu          sync.Mutex
	txStatus    []int
}

func newProxy(t *testing.T, target string, everyReason bool, hook func(op string, answered bool)) *proxy {
	p := &proxy{target: target, everyReason: everyReason, hook: hook}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *proxy) transactions() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.txStatus...)
}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target")
	op = op[strings.LastIndex(op, ".")+1:]
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.hook(op, false)
	status, hdr, out, err := p.forward(r.Header, op, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if op == "TransactWriteItems" {
		if p.everyReason && status == http.StatusBadRequest && bytes.Contains(out, []byte("TransactionCanceledException")) {
			if out, err = p.everyFailedCondition(r.Header, body); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		p.mu.Lock()
		p.txStatus = append(p.txStatus, status)
		p.mu.Unlock()
	}
	for k, v := range hdr {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
	p.hook(op, true)
}

func (p *proxy) forward(h http.Header, op string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, p.target+"/", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", h.Get("Content-Type"))
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810."+op)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, out, err
}

// everyFailedCondition answers a cancelled transaction as DynamoDB does: a reason per item, ConditionalCheckFailed
// for every item whose condition fails, None for the others. The cancelled transaction changed nothing and the
// server runs one request at a time, so checking each condition alone afterwards sees the same items.
func (p *proxy) everyFailedCondition(h http.Header, body []byte) ([]byte, error) {
	var in struct {
		TransactItems []map[string]struct {
			TableName                 string
			Item, Key                 map[string]json.RawMessage `json:",omitempty"`
			ConditionExpression       string
			ExpressionAttributeNames  map[string]string          `json:",omitempty"`
			ExpressionAttributeValues map[string]json.RawMessage `json:",omitempty"`
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	type reason struct{ Code, Message string }
	var reasons []reason
	var codes []string
	for _, ti := range in.TransactItems {
		code := "None"
		for _, it := range ti { // one of Put, Update, Delete, ConditionCheck
			if it.ConditionExpression == "" {
				continue
			}
			if it.Key == nil {
				it.Key = map[string]json.RawMessage{"pk": it.Item["pk"], "sk": it.Item["sk"]}
			}
			it.Item = nil
			check, err := json.Marshal(map[string]any{"TransactItems": []any{map[string]any{"ConditionCheck": it}}})
			if err != nil {
				return nil, err
			}
			status, _, out, err := p.forward(h, "TransactWriteItems", check)
			switch {
			case err != nil:
				return nil, err
			case status == http.StatusBadRequest && bytes.Contains(out, []byte("ConditionalCheckFailed")):
				code = "ConditionalCheckFailed"
			case status != http.StatusOK:
				return nil, fmt.Errorf("condition check answered %d: %s", status, out)
			}
		}
		r := reason{Code: code}
		if code != "None" {
			r.Message = "The conditional request failed"
		}
		reasons = append(reasons, r)
		codes = append(codes, code)
	}
	return json.Marshal(map[string]any{
		"__type":              "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
		"message":             "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]",
		"CancellationReasons": reasons,
	})
}

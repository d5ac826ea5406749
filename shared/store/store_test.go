package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// TestErrorsKnowTheirHTTPAnswer: every store error reaches the API with its meaning, none as a 500.
func TestErrorsKnowTheirHTTPAnswer(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		not    string // must not appear in the message
	}{
		{fmt.Errorf("dynamodb get: %w", store.ErrNotFound), 404, "not_found", ""},
		{fmt.Errorf("dynamodb create: %w: item too big", store.ErrInvalid), 400, "invalid", ""},
		{fmt.Errorf("dynamodb create: %w: Item size has exceeded the maximum allowed size", store.ErrTooLarge), 413,
			"payload_too_large", ""},
		{fmt.Errorf("update: %w", store.NameTaken("prod")), 409, "conflict", "conflict:"},
		{&store.UnavailableError{Backend: "firestore", Err: errors.New("dial tcp 10.0.0.1: secret-host")}, 503,
			"store_unavailable", "secret-host"},
	}
	for _, c := range cases {
		got := httpapi.AsError(c.err)
		if got.Status != c.status || got.Code != c.code || got.Message == "" {
			t.Errorf("%v: got %d %s %q, want %d %s", c.err, got.Status, got.Code, got.Message, c.status, c.code)
		}
		if c.not != "" && strings.Contains(got.Message, c.not) {
			t.Errorf("%v: message %q leaks %q", c.err, got.Message, c.not)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", store.ErrTooLarge), store.ErrInvalid) {
		t.Error("ErrTooLarge must match ErrInvalid")
	}
	if errors.Is(store.ErrInvalid, store.ErrTooLarge) {
		t.Error("ErrInvalid must not match ErrTooLarge")
	}
}

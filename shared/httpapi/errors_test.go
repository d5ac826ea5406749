package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

type coded struct {
	status int
	code   string
}

func (c coded) Error() string   { return "cause with internals" }
func (c coded) HTTPStatus() int { return c.status }
func (c coded) Code() string    { return c.code }

type public struct{ coded }

func (p public) PublicMessage() string { return "safe words" }

func TestAsErrorHonoursStatusErrors(t *testing.T) {
	cases := []struct {
		err           error
		status        int
		code, message string
	}{
		{fmt.Errorf("bbolt get: %w", coded{404, "not_found"}), 404, "not_found", "bbolt get: cause with internals"},
		{fmt.Errorf("create: %w: %w", coded{413, "payload_too_large"}, errors.New("sdk")), 413, "payload_too_large",
			"create: cause with internals: sdk"},
		{fmt.Errorf("op: %w", public{coded{503, "store_unavailable"}}), 503, "store_unavailable", "safe words"},
		{coded{502, "cluster_error"}, 502, "cluster_error", http.StatusText(502)},
		{coded{200, "odd"}, 500, CodeInternal, "internal error"},
		{errors.New("plain"), 500, CodeInternal, "internal error"},
		{fmt.Errorf("wrapped: %w", Errorf(409, CodeConflict, "taken")), 409, CodeConflict, "taken"},
	}
	for _, c := range cases {
		got := AsError(c.err)
		if got.Status != c.status || got.Code != c.code || got.Message != c.message {
			t.Errorf("AsError(%v) = %d %s %q, want %d %s %q", c.err, got.Status, got.Code, got.Message,
				c.status, c.code, c.message)
		}
	}
}

// Package httpapi holds what every function's HTTP API shares: the JSON error shape, body decoding with limits,
// and the middleware (request id, logging, panic recovery).
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"knative.dev/pkg/logging"
)

// Error codes are part of the API: clients switch on them, so they never change meaning.
const (
	CodeBadRequest         = "bad_request"
	CodeInvalidKubeconfig  = "invalid_kubeconfig"
	CodeInvalidName        = "invalid_name"
	CodeUnauthorized       = "unauthorized"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeConflict           = "conflict"
	CodePayloadTooLarge    = "payload_too_large"
	CodeUnsupportedMedia   = "unsupported_media_type"
	CodeClusterUnreachable = "cluster_unreachable"
	CodeStoreUnavailable   = "store_unavailable"
	CodeInternal           = "internal"
)

// Error is an API error: its Status is the HTTP status, Code a stable machine-readable name, Message says what
// is wrong in words a user can act on. Field names the input at fault when there is one.
type Error struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithField returns a copy of e naming the input field at fault.
func (e *Error) WithField(field string) *Error {
	out := *e
	out.Field = field
	return &out
}

// errorBody is the stable JSON error shape: {"error": {...}, "requestId": "..."}.
type errorBody struct {
	Error     *Error `json:"error"`
	RequestID string `json:"requestId,omitempty"`
}

// StatusError is an error that knows its HTTP answer. Lower layers (the store, the client cache) implement it
// so this package needs to know none of them.
type StatusError interface {
	error
	HTTPStatus() int
	Code() string
}

// publicMessager is optional beside StatusError: the message a caller may see when Error() holds internals.
type publicMessager interface {
	PublicMessage() string
}

// AsError maps any error to an *Error: API errors pass through, errors that know their status (StatusError)
// keep it, anything else is a 500 whose message does not leak internals (the details go to the log).
func AsError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var se StatusError
	if errors.As(err, &se) && se.HTTPStatus() >= 400 && se.HTTPStatus() <= 599 {
		out := &Error{Status: se.HTTPStatus(), Code: se.Code(), Message: err.Error()}
		var pm publicMessager
		switch {
		case errors.As(err, &pm):
			out.Message = pm.PublicMessage()
		case out.Status >= 500:
			out.Message = http.StatusText(out.Status)
		}
		return out
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// WriteError writes err in the stable JSON shape and logs server-side failures with their full cause.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	apiErr := AsError(err)
	if apiErr.Status >= 500 {
		logging.FromContext(r.Context()).Errorw("request failed", "status", apiErr.Status, "error", err)
	}
	WriteJSON(w, apiErr.Status, errorBody{Error: apiErr, RequestID: RequestIDFrom(r.Context())})
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the status is out; a failed write means the client went away
}

// NotFoundHandler answers unknown routes in the JSON error shape.
func NotFoundHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, Errorf(http.StatusNotFound, CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
}

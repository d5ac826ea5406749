package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// MaxBodyBytes bounds request bodies: a kubeconfig with inline certificates is a few KiB, so 1 MiB is generous.
const MaxBodyBytes = 1 << 20

// DecodeJSON reads one JSON object from the body into v, refusing bodies over limit (413), other media types
// (415), unknown fields and trailing data (400).
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"request body must be application/json, got %q", ct)
		}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeError(err, limit)
		}
		return Errorf(http.StatusBadRequest, CodeBadRequest, "request body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
			"request body is larger than the limit of %d bytes", limit)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "request body is empty, expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "request body is truncated JSON")
	case errors.As(err, &syntax):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "request body is not valid JSON at byte %d: %v",
			syntax.Offset, err)
	case errors.As(err, &typeErr):
		return Errorf(http.StatusBadRequest, CodeBadRequest, "field %q must be a %s, got %s",
			typeErr.Field, typeErr.Type, typeErr.Value).WithField(typeErr.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Errorf(http.StatusBadRequest, CodeBadRequest, "unknown field %q", field).WithField(field)
	}
	return Errorf(http.StatusBadRequest, CodeBadRequest, "request body is not valid: %v", fmt.Sprint(err))
}

// BoolParam reads an optional true/false query parameter; anything else is a 400 naming it.
func BoolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, Errorf(http.StatusBadRequest, CodeBadRequest,
			"query parameter %s must be true or false, got %q", name, v).WithField(name)
	}
	return b, nil
}

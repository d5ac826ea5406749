package kube

import (
	"context"
	"errors"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// APIError turns an error from a cluster into the API's error: the apiserver's status code and message come
// back as they are (a 422 stays a 422 with its field message), except that the cluster refusing kitefn's stored
// credentials (401) is a 502 — a 401 would tell the caller their kitefn token is wrong.
func APIError(cluster string, err error) *httpapi.Error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		st := status.Status()
		code := int(st.Code)
		if code == 0 {
			code = http.StatusInternalServerError
		}
		msg := st.Message
		if msg == "" {
			msg = string(st.Reason)
		}
		if code == http.StatusUnauthorized {
			return httpapi.Errorf(http.StatusBadGateway, "cluster_credentials_rejected",
				"cluster %q rejected kitefn's credentials: %s (rotate its kubeconfig)", cluster, msg)
		}
		apiErr := &httpapi.Error{Status: code, Code: reasonCode(st.Reason, code), Message: msg}
		if st.Details != nil && len(st.Details.Causes) > 0 && st.Details.Causes[0].Field != "" {
			apiErr.Field = st.Details.Causes[0].Field
		}
		return apiErr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return httpapi.Errorf(http.StatusGatewayTimeout, "cluster_timeout", "cluster %q did not answer in time", cluster)
	}
	return httpapi.Errorf(http.StatusBadGateway, httpapi.CodeClusterUnreachable, "cluster %q: %v", cluster, err)
}

// reasonCode maps a StatusReason (PascalCase) to the API's snake_case codes.
func reasonCode(reason metav1.StatusReason, code int) string {
	switch reason {
	case metav1.StatusReasonNotFound:
		return httpapi.CodeNotFound
	case metav1.StatusReasonConflict:
		return httpapi.CodeConflict
	case metav1.StatusReasonInvalid:
		return "invalid"
	case metav1.StatusReasonBadRequest:
		return httpapi.CodeBadRequest
	case metav1.StatusReasonForbidden:
		return httpapi.CodeForbidden
	case metav1.StatusReasonMethodNotAllowed:
		return httpapi.CodeMethodNotAllowed
	case "":
		if code == http.StatusNotFound {
			return httpapi.CodeNotFound
		}
		return "cluster_error"
	}
	var b strings.Builder
	for i, r := range string(reason) {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

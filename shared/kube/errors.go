package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// Error codes APIError adds to httpapi's.
const (
	// CodeClusterUnauthorized: the cluster refused kitefn's stored credentials (its 401).
	CodeClusterUnauthorized = "cluster_unauthorized"
	// CodeClusterTimeout: the cluster did not answer in time.
	CodeClusterTimeout = "cluster_timeout"
	// CodeClusterError: talking to the cluster failed in a way that is neither an answer nor the network.
	CodeClusterError = "cluster_error"
)

// NotFoundError is returned for a cluster reference that matches no registered cluster.
type NotFoundError struct {
	Ref string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("cluster %q not found", e.Ref) }

// Is lets callers treat it like store.ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == store.ErrNotFound }

// HTTPStatus is the API status of an unknown cluster.
func (e *NotFoundError) HTTPStatus() int { return http.StatusNotFound }

// Code is the API code of an unknown cluster.
func (e *NotFoundError) Code() string { return httpapi.CodeNotFound }

// APIError turns an error from a cluster into the API's error. The apiserver's status code and message come
// back as they are (a 403 stays a 403 with its RBAC message, a 422 a 422 with its field), except that the
// cluster refusing kitefn's stored credentials (401) is a 502 cluster_unauthorized — a 401 would tell the
// caller their kitefn token is wrong. A cluster that cannot be reached (refused, DNS, TLS, dropped) is a 502
// cluster_unreachable, a deadline a 504 cluster_timeout, and anything else client-go reports (an exec
// credential plugin failing, an undecodable answer) a 502 cluster_error: none of them is kitefn's own fault.
func APIError(cluster string, err error) *httpapi.Error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		st := status.Status()
		code := int(st.Code)
		if code == 0 {
			code = http.StatusBadGateway
		}
		msg := st.Message
		if msg == "" {
			msg = string(st.Reason)
		}
		if code == http.StatusUnauthorized {
			return httpapi.Errorf(http.StatusBadGateway, CodeClusterUnauthorized,
				"cluster %q rejected kitefn's credentials: %s (rotate its kubeconfig)", cluster, msg)
		}
		apiErr := &httpapi.Error{Status: code, Code: reasonCode(st.Reason, code), Message: msg}
		if st.Details != nil && len(st.Details.Causes) > 0 && st.Details.Causes[0].Field != "" {
			apiErr.Field = st.Details.Causes[0].Field
		}
		return apiErr
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || utilnet.IsTimeout(err):
		return httpapi.Errorf(http.StatusGatewayTimeout, CodeClusterTimeout, "cluster %q did not answer in time",
			cluster)
	case unreachable(err):
		return httpapi.Errorf(http.StatusBadGateway, httpapi.CodeClusterUnreachable, "cluster %q: %v", cluster, err)
	}
	return httpapi.Errorf(http.StatusBadGateway, CodeClusterError, "cluster %q: %v", cluster, err)
}

// unreachable says err is the network or TLS failing between kitefn and the cluster.
func unreachable(err error) bool {
	var (
		opErr     *net.OpError
		dnsErr    *net.DNSError
		addrErr   *net.AddrError
		verifyErr *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &addrErr) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) || errors.As(err, &alertErr) ||
		errors.As(err, &authority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) ||
		utilnet.IsHTTP2ConnectionLost(err) || utilnet.IsNoRoutesError(err)
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
		return CodeClusterError
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

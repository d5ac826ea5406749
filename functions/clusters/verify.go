package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kitefn/kitefn/shared/clusterapi"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// Error codes of this function, beside httpapi's.
const (
	// codeClusterUnauthorized: the cluster answered, but refused the credentials (401 or 403).
	codeClusterUnauthorized = "cluster_unauthorized"
	// codeClusterTimeout: the cluster did not answer within KITEFN_VERIFY_TIMEOUT.
	codeClusterTimeout = "cluster_timeout"
	// codeServerNotAllowed: the kubeconfig names a server (or proxy) kitefn must not connect to.
	codeServerNotAllowed = "server_not_allowed"
)

// Identity is who the cluster says the stored credentials are (a SelfSubjectReview).
type Identity struct {
	Username string   `json:"username"`
	UID      string   `json:"uid,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// verifyResponse reports what the cluster said about itself and about kitefn's credentials.
type verifyResponse struct {
	Cluster  *clusterapi.Cluster `json:"cluster"`
	Version  any                 `json:"version"`
	Identity *Identity           `json:"identity,omitempty"`
}

// verifyFailure is how a verification went wrong; each kind maps to its own code.
type verifyFailure struct {
	kind   string // codeClusterUnauthorized, codeClusterTimeout or httpapi.CodeClusterUnreachable
	status int    // the cluster's HTTP status, for a refusal
	err    error
}

func (e *verifyFailure) Error() string { return e.err.Error() }
func (e *verifyFailure) Unwrap() error { return e.err }

// checkCluster asks the cluster for /version (anonymous on many clusters) and then for a SelfSubjectReview,
// which only answers to valid credentials, all within timeout. A cluster without the SelfSubjectReview API
// (before 1.28) gets GET /api instead, which needs an authenticated user too; it reports no identity.
func checkCluster(ctx context.Context, c *kube.Client, timeout time.Duration) (map[string]any, *Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	version, id, err := probe(ctx, c)
	var vf *verifyFailure
	if errors.As(err, &vf) && vf.kind == codeClusterTimeout {
		vf.err = fmt.Errorf("%w (limit %s)", vf.err, timeout)
	}
	return version, id, err
}

// verifyError is the API error of a failed verification of a stored cluster: 502, or 504 for a timeout.
func verifyError(name string, err error) error {
	var vf *verifyFailure
	if !errors.As(err, &vf) {
		return err
	}
	switch vf.kind {
	case codeClusterUnauthorized:
		return httpapi.Errorf(http.StatusBadGateway, vf.kind, "cluster %q refused the stored credentials (%v): "+
			"they are expired, revoked or wrong; rotate the kubeconfig with PATCH /api/v1/clusters/%s", name, vf, name)
	case codeClusterTimeout:
		return httpapi.Errorf(http.StatusGatewayTimeout, vf.kind, "cluster %q did not answer: %v", name, vf)
	}
	return httpapi.Errorf(http.StatusBadGateway, vf.kind, "cluster %q did not answer: %v", name, vf)
}

// kubeconfigVerifyError is the API error of ?verify=true: 422 whatever went wrong (nothing was stored, and the
// request, not kitefn, is what failed), with the code saying what.
func kubeconfigVerifyError(server string, err error) error {
	var vf *verifyFailure
	if !errors.As(err, &vf) {
		return err
	}
	if vf.kind == codeClusterUnauthorized {
		return httpapi.Errorf(http.StatusUnprocessableEntity, vf.kind, "verify: the cluster at %s refused the "+
			"kubeconfig's credentials (%v); nothing was stored", server, vf).WithField("kubeconfig")
	}
	return httpapi.Errorf(http.StatusUnprocessableEntity, vf.kind, "verify: the cluster at %s did not answer: %v; "+
		"nothing was stored", server, vf)
}

// probe runs the two calls of a verification; the caller bounds ctx.
func probe(ctx context.Context, c *kube.Client) (map[string]any, *Identity, error) {
	body, err := c.Kubernetes.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, nil, classify(ctx, "/version", err)
	}
	var version map[string]any
	if err := json.Unmarshal(body, &version); err != nil {
		return nil, nil, &verifyFailure{kind: httpapi.CodeClusterUnreachable,
			err: fmt.Errorf("/version is not JSON: %w", err)}
	}
	review, err := c.Kubernetes.AuthenticationV1().SelfSubjectReviews().Create(ctx,
		&authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := c.Kubernetes.Discovery().RESTClient().Get().AbsPath("/api").Do(ctx).Raw(); err != nil {
			return nil, nil, classify(ctx, "/api", err)
		}
		return version, nil, nil
	}
	if err != nil {
		return nil, nil, classify(ctx, "a SelfSubjectReview", err)
	}
	u := review.Status.UserInfo
	return version, &Identity{Username: u.Username, UID: u.UID, Groups: u.Groups}, nil
}

// classify sorts a failed call into refused credentials, a timeout or an unreachable cluster.
func classify(ctx context.Context, what string, err error) error {
	if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
		status := http.StatusUnauthorized
		if apierrors.IsForbidden(err) {
			status = http.StatusForbidden
		}
		return &verifyFailure{kind: codeClusterUnauthorized, status: status,
			err: fmt.Errorf("%s answered %d: %w", what, status, err)}
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &verifyFailure{kind: codeClusterTimeout, err: fmt.Errorf("%s: no answer in time", what)}
	}
	return &verifyFailure{kind: httpapi.CodeClusterUnreachable, err: fmt.Errorf("%s: %w", what, err)}
}

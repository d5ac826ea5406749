package clusters

import (
	"errors"
	"net/http"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// registryError gives store.ErrInvalid (input the backend refuses, such as an item over DynamoDB's size limit)
// its 400, which httpapi.AsError would turn into a 500; every other error passes through unchanged.
func registryError(err error) error {
	if err == nil || !errors.Is(err, store.ErrInvalid) {
		return err
	}
	var apiErr *httpapi.Error
	if errors.As(err, &apiErr) {
		return err
	}
	return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
		"the store refused the cluster record: %v", err)
}

package search

import (
	"net/http"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// relations serves GET /api/v1/relations/... (being built on branch wt-relations).
func (f *Function) relations(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "relations are not built yet"))
}

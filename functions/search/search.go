package search

import (
	"net/http"

	"github.com/kitefn/kitefn/shared/httpapi"
)

// search serves GET /api/v1/search (being built on branch wt-search).
func (f *Function) search(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "search is not built yet"))
}

// status serves GET /api/v1/search/status (being built on branch wt-search).
func (f *Function) status(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "search is not built yet"))
}

package resources

import (
	"net/http"

	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kube"
)

// listCRDs answers GET /api/v1/crds: every CustomResourceDefinition of the cluster, with its family if kitefn
// knows it.
func (f *Function) listCRDs(w http.ResponseWriter, r *http.Request) {
	if err := scopeClusterWide(r.Context(), "list customresourcedefinitions.apiextensions.k8s.io"); err != nil {
		writeError(w, r, err)
		return
	}
	c := client(r)
	st, err := f.state(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items, err := st.crds.List(r.Context())
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

// families answers GET /api/v1/crds/families: per family, whether it is installed, its kinds, their served
// versions and object counts (cached up to KITEFN_CRD_FAMILIES_CACHE_TTL), for menus that show what exists.
func (f *Function) families(w http.ResponseWriter, r *http.Request) {
	if err := scopeClusterWide(r.Context(), "list customresourcedefinitions.apiextensions.k8s.io"); err != nil {
		writeError(w, r, err)
		return
	}
	c := client(r)
	st, err := f.state(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items, err := st.crds.FamiliesStatus(r.Context(), c.Metadata)
	if err != nil {
		writeError(w, r, kube.APIError(c.Name, err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

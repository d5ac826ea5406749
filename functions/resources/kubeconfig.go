package resources

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kitefn/kitefn/shared/access"
	"github.com/kitefn/kitefn/shared/clusterhttp"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/store"
)

// allClusters as the cluster of a kubeconfig handout asks for every cluster the caller's scope admits.
const allClusters = "_all"

// TokenPlaceholder stands in a handed-out kubeconfig for the caller's kitefn token unless they ask for it to
// be embedded (?embedToken=true).
const TokenPlaceholder = "<KITEFN_TOKEN>"

// kubeconfigUser is the one user entry of a handout: the caller, by their kitefn token.
const kubeconfigUser = "kitefn"

// kubeconfig hands the caller a kubeconfig whose clusters are this service's /k8s/clusters/{name} proxy: one
// cluster, or every one their scope admits (_all), current-context the one asked for (the first for _all, or
// ?current=). No exec plugin: the credential is the caller's kitefn token, embedded only when asked.
func (f *Function) kubeconfig(w http.ResponseWriter, r *http.Request) {
	caller, _ := access.CallerFrom(r.Context())
	if caller == nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"no authenticated caller on the request"))
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "yaml" && format != "json" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"format must be yaml or json, got %q", format).WithField("format"))
		return
	}
	recs, err := f.handoutClusters(r, caller)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	base, err := f.publicURL(r)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	token, embedded := TokenPlaceholder, isTrue(q.Get("embedToken"))
	if embedded {
		scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"embedToken=true embeds the request's bearer token, and the request has none").WithField("embedToken"))
			return
		}
		token = strings.TrimSpace(t)
	}
	current := recs[0].Name
	if c := q.Get("current"); c != "" {
		if !slices.ContainsFunc(recs, func(rec *store.Cluster) bool { return rec.Name == c }) {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"current=%q is not one of the clusters handed out", c).WithField("current"))
			return
		}
		current = c
	}
	cfg := handout(base, recs, current, token, caller)
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("encoding kubeconfig: %w", err))
		return
	}
	contentType := "application/yaml"
	if format == "json" {
		if data, err = yaml.YAMLToJSON(data); err != nil {
			httpapi.WriteError(w, r, fmt.Errorf("encoding kubeconfig: %w", err))
			return
		}
		contentType = "application/json"
	} else if !embedded {
		data = append([]byte("# kitefn kubeconfig: replace "+TokenPlaceholder+" with your kitefn API token\n"+
			"# (or download it with ?embedToken=true to have the token of this request written in).\n"), data...)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="kitefn-kubeconfig"`)
	if embedded {
		w.Header().Set("Cache-Control", "no-store") // it holds a credential
	}
	_, _ = w.Write(data)
}

// handoutClusters are the clusters a handout lists: the one asked for (403 outside the caller's scope), or for
// _all every registered one the scope admits, by name (404 when there is none).
func (f *Function) handoutClusters(r *http.Request, caller *access.Caller) ([]*store.Cluster, error) {
	ref := r.PathValue("ref")
	if ref != allClusters {
		rec, err := clusterhttp.Lookup(r.Context(), f.registry, ref)
		if err != nil {
			return nil, err
		}
		if !caller.AllowsCluster(rec.Name) {
			return nil, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
				"cluster %q is outside your cluster scope", rec.Name)
		}
		return []*store.Cluster{rec}, nil
	}
	all, err := f.registry.List(r.Context())
	if err != nil {
		return nil, err
	}
	var out []*store.Cluster
	for _, rec := range all {
		if caller.AllowsCluster(rec.Name) {
			out = append(out, rec)
		}
	}
	if len(out) == 0 {
		return nil, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no registered cluster is in your scope")
	}
	slices.SortFunc(out, func(a, b *store.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// handout builds the kubeconfig: a cluster and a context per record (named kitefn-<name>, so it merges into an
// existing kubeconfig without clashes), one user with the token. A caller scoped to one exact namespace gets
// it as the contexts' namespace, as that is the only one they may use.
func handout(base string, recs []*store.Cluster, current, token string, caller *access.Caller) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos[kubeconfigUser] = &clientcmdapi.AuthInfo{Token: token}
	ns := ""
	if len(caller.Namespaces) == 1 && !strings.ContainsAny(caller.Namespaces[0], "*!") {
		ns = caller.Namespaces[0]
	}
	for _, rec := range recs {
		name := "kitefn-" + rec.Name
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: base + proxyPrefix + url.PathEscape(rec.Name)}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: kubeconfigUser, Namespace: ns}
	}
	cfg.CurrentContext = "kitefn-" + current
	return cfg
}

// publicURL is this service's external base URL: KITEFN_PUBLIC_URL, else what the request's X-Forwarded-Proto
// and X-Forwarded-Host (set by the gateway in front) or Host say.
func (f *Function) publicURL(r *http.Request) (string, error) {
	if f.cfg.PublicURL != "" {
		return strings.TrimSuffix(f.cfg.PublicURL, "/"), nil
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		proto = p
	}
	host := r.Host
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
		host = h
	}
	if u, err := url.Parse(proto + "://" + host); err != nil || host == "" || u.Host != host || u.User != nil ||
		u.Path != "" {
		return "", httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"cannot tell this service's external URL from the request's host %q: set KITEFN_PUBLIC_URL", host)
	}
	return proto + "://" + host, nil
}

// firstValue is the first of a comma-separated header's values (the client-most hop).
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

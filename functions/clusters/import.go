package clusters

import (
	"context"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kitefn/kitefn/shared/clusterapi"
	"github.com/kitefn/kitefn/shared/httpapi"
	"github.com/kitefn/kitefn/shared/kubeconfig"
	"github.com/kitefn/kitefn/shared/store"
)

// importRequest registers one cluster per context of a kubeconfig. Contexts limits it to some of them; Names
// maps a context to the cluster name to use (default: the context name made DNS-1123 safe).
type importRequest struct {
	Kubeconfig    string            `json:"kubeconfig"`
	Contexts      []string          `json:"contexts,omitempty"`
	Names         map[string]string `json:"names,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	PrometheusURL string            `json:"prometheusURL,omitempty"`
	// Impersonate applies to every imported context, as Labels and PrometheusURL do.
	Impersonate bool `json:"impersonate,omitempty"`
}

// importResult is the outcome for one context: Status is the HTTP status a single registration would have had.
type importResult struct {
	Context  string              `json:"context"`
	Name     string              `json:"name"`
	Status   int                 `json:"status"`
	Cluster  *clusterapi.Cluster `json:"cluster,omitempty"`
	Error    *httpapi.Error      `json:"error,omitempty"`
	Warnings []string            `json:"warnings,omitempty"`
}

type importResponse struct {
	Results []importResult `json:"results"`
	Created int            `json:"created"`
	Failed  int            `json:"failed"`
}

// importKubeconfig answers 200 with a result per context when the kubeconfig itself is valid: contexts succeed
// or fail on their own (a taken name fails only that context).
func (f *Function) importKubeconfig(w http.ResponseWriter, r *http.Request) {
	var req importRequest
	verify, err := decodeRequest(w, r, &req)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if strings.TrimSpace(req.Kubeconfig) == "" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidKubeconfig,
			"kubeconfig is required: the kubeconfig YAML as a string").WithField("kubeconfig"))
		return
	}
	// Contexts are judged one by one: one with an exec plugin fails alone, the others are registered.
	cfg, err := kubeconfig.Load([]byte(req.Kubeconfig), kubeconfig.Options{})
	if err != nil {
		httpapi.WriteError(w, r, invalidKubeconfig(err))
		return
	}
	contexts := req.Contexts
	if len(contexts) == 0 {
		for name := range cfg.Contexts {
			contexts = append(contexts, name)
		}
	}
	for _, c := range contexts {
		if _, ok := cfg.Contexts[c]; !ok {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidKubeconfig,
				"the kubeconfig has no context %q", c).WithField("contexts"))
			return
		}
	}
	for c := range req.Names {
		if _, ok := cfg.Contexts[c]; !ok {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"names maps context %q, which the kubeconfig does not have", c).WithField("names"))
			return
		}
	}
	resp := f.importContexts(r.Context(), cfg, req, slices.Sorted(slices.Values(contexts)), verify)
	f.recordImport(r.Context(), resp, "")
	httpapi.WriteJSON(w, http.StatusOK, resp)
}

// importContexts checks and verifies the contexts concurrently (at most KITEFN_IMPORT_PARALLELISM at a time:
// verifying is what takes long), then stores them one by one in input order, so IDs follow that order too.
func (f *Function) importContexts(ctx context.Context, cfg *clientcmdapi.Config, req importRequest, contexts []string,
	verify bool) importResponse {
	results := make([]importResult, len(contexts))
	prepared := make([]*store.Cluster, len(contexts))
	var g errgroup.Group
	g.SetLimit(max(f.cfg.ImportParallelism, 1))
	for i, c := range contexts {
		name := req.Names[c]
		if name == "" {
			name = NameFromContext(c)
		}
		results[i] = importResult{Context: c, Name: name}
		g.Go(func() error {
			one, err := kubeconfig.Extract(cfg, c)
			if err == nil {
				prepared[i], err = f.prepare(ctx, createRequest{Name: name, Kubeconfig: string(one.Config),
					Labels: req.Labels, PrometheusURL: req.PrometheusURL, Impersonate: req.Impersonate}, verify)
			}
			if err != nil {
				results[i].Error = httpapi.AsError(invalidKubeconfig(err))
			}
			return nil // one context failing fails only its result
		})
	}
	_ = g.Wait()
	resp := importResponse{Results: results}
	for i := range results {
		res := &results[i]
		if res.Error == nil {
			rec, warnings, err := f.save(ctx, prepared[i])
			if err != nil {
				res.Error = httpapi.AsError(err)
			} else {
				res.Status, res.Cluster, res.Warnings = http.StatusCreated, clusterapi.FromRecord(rec), warnings
				resp.Created++
				continue
			}
		}
		res.Status = res.Error.Status
		resp.Failed++
	}
	return resp
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// NameFromContext turns a context name (kind-dev, gke_proj_zone_name, arn:aws:eks:…/name) into a DNS-1123 label.
func NameFromContext(context string) string {
	n := notDNS.ReplaceAllString(strings.ToLower(context), "-")
	n = strings.Trim(regexp.MustCompile(`-{2,}`).ReplaceAllString(n, "-"), "-")
	if len(n) > 63 {
		n = strings.TrimRight(n[len(n)-63:], "-")
		n = strings.TrimLeft(n, "-")
	}
	if n == "" || digitsOnly.MatchString(n) {
		n = "cluster-" + n
	}
	return strings.TrimRight(n, "-")
}

// importLocal registers the contexts of the operator's own kubeconfig on the first start of one-process mode,
// so `make run` shows their clusters at once. It never prompts and never fails the start.
func (f *Function) importLocal(ctx context.Context) {
	existing, err := f.reg.List(ctx)
	if err != nil {
		f.log.Warnw("not importing the local kubeconfig: listing the registry failed", "error", err)
		return
	}
	if len(existing) > 0 {
		return
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	paths := rules.GetLoadingPrecedence()
	found := false
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			found = true
		}
	}
	if !found {
		f.log.Infow("no local kubeconfig to import", "looked at", paths)
		return
	}
	raw, err := rules.Load()
	if err != nil {
		f.log.Warnw("not importing the local kubeconfig: it does not load", "error", err)
		return
	}
	data, err := clientcmd.Write(*raw)
	if err != nil {
		f.log.Warnw("not importing the local kubeconfig", "error", err)
		return
	}
	// Files are fine here: it is the operator's own kubeconfig on this machine. Load inlines them, and each
	// context is then judged like an API registration.
	cfg, err := kubeconfig.Load(data, kubeconfig.Options{AllowFiles: true})
	if err != nil {
		f.log.Warnw("not importing the local kubeconfig", "reason", err)
		return
	}
	resp := f.importContexts(ctx, cfg, importRequest{}, slices.Sorted(maps.Keys(cfg.Contexts)), false)
	f.recordImport(ctx, resp, whoLocalImport)
	f.logImport(resp)
}

func (f *Function) logImport(resp importResponse) {
	for _, r := range resp.Results {
		if r.Error != nil {
			f.log.Warnw("local context not imported", "context", r.Context, "reason", r.Error.Message)
			continue
		}
		f.log.Infow("imported local context", "context", r.Context, "id", r.Cluster.ID, "name", r.Name)
	}
}

// Package kubeconfig validates the kubeconfigs users register, splits them into one standalone kubeconfig per
// context, and seals them (AES-256-GCM) before they reach the registry.
package kubeconfig

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// InvalidError says what is wrong with a kubeconfig, in words safe to show the user: it never quotes
// credentials, only names of contexts, clusters and users.
type InvalidError struct {
	Reason string
}

func (e *InvalidError) Error() string { return "invalid kubeconfig: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// Options say what a kubeconfig may contain.
type Options struct {
	// AllowExecPlugins admits users with `exec` or `auth-provider`: they run programs or fetch tokens on this
	// server, so an operator must opt in (KITEFN_ALLOW_EXEC_PLUGINS).
	AllowExecPlugins bool
	// AllowFiles admits paths to certificate, key and token files and inlines them. Only for kubeconfigs read
	// from this machine by an operator (the local import): through the API a path would read the server's files.
	AllowFiles bool
}

// Context is one context of a kubeconfig, cut out as a standalone kubeconfig.
type Context struct {
	Name   string // context name
	Server string // the cluster's API server URL
	Config []byte // standalone kubeconfig YAML: one cluster, one user, one context, current-context set
}

// Load reads a kubeconfig without judging its contexts: it must parse and have at least one context. With
// AllowFiles the files it names are inlined. Use it when contexts are judged one by one (import).
func Load(data []byte, opts Options) (*clientcmdapi.Config, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, invalid("it is empty")
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, invalid("it is not a valid kubeconfig document: %s", loadError(err))
	}
	if len(cfg.Contexts) == 0 {
		return nil, invalid("it has no contexts")
	}
	if opts.AllowFiles {
		if err := clientcmdapi.FlattenConfig(cfg); err != nil {
			return nil, invalid("reading a file it names: %v", err)
		}
	}
	if cfg.CurrentContext != "" {
		if _, ok := cfg.Contexts[cfg.CurrentContext]; !ok {
			return nil, invalid("current-context %q names no context", cfg.CurrentContext)
		}
	}
	return cfg, nil
}

// Parse loads and validates a kubeconfig. It checks every context, so a bad one is reported even when the
// caller wants another.
func Parse(data []byte, opts Options) (*clientcmdapi.Config, error) {
	cfg, err := Load(data, opts)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Contexts)) {
		if err := checkContext(cfg, name, opts); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// loadError keeps the YAML decoder's message but never the document: it can hold credentials.
func loadError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i > 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

func checkContext(cfg *clientcmdapi.Config, name string, opts Options) error {
	ctx := cfg.Contexts[name]
	if ctx == nil {
		return invalid("context %q is empty", name)
	}
	cluster, ok := cfg.Clusters[ctx.Cluster]
	if ctx.Cluster == "" || !ok || cluster == nil {
		return invalid("context %q names cluster %q, which is not in the kubeconfig", name, ctx.Cluster)
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if ctx.AuthInfo == "" || !ok || user == nil {
		return invalid("context %q names user %q, which is not in the kubeconfig", name, ctx.AuthInfo)
	}
	if err := checkServer(ctx.Cluster, cluster.Server); err != nil {
		return err
	}
	if !opts.AllowExecPlugins {
		if user.Exec != nil {
			return invalid("user %q runs an exec plugin (%s), which this server does not allow; use a token or "+
				"client certificate, or have an operator set KITEFN_ALLOW_EXEC_PLUGINS=true", ctx.AuthInfo,
				user.Exec.Command)
		}
		if user.AuthProvider != nil {
			return invalid("user %q uses the auth-provider %q, which this server does not allow; use a token "+
				"or client certificate, or have an operator set KITEFN_ALLOW_EXEC_PLUGINS=true", ctx.AuthInfo,
				user.AuthProvider.Name)
		}
	}
	if !opts.AllowFiles {
		for field, path := range map[string]string{
			"cluster " + ctx.Cluster + " certificate-authority": cluster.CertificateAuthority,
			"user " + ctx.AuthInfo + " client-certificate":      user.ClientCertificate,
			"user " + ctx.AuthInfo + " client-key":              user.ClientKey,
			"user " + ctx.AuthInfo + " tokenFile":               user.TokenFile,
		} {
			if path != "" {
				return invalid("%s refers to a file; inline it (kubectl config view --flatten --minify) — "+
					"files on this server cannot be read", field)
			}
		}
	}
	if user.Token == "" && user.TokenFile == "" && len(user.ClientCertificateData) == 0 &&
		user.ClientCertificate == "" && user.Username == "" && user.Exec == nil && user.AuthProvider == nil {
		return invalid("user %q has no credentials (token, client certificate, or basic auth)", ctx.AuthInfo)
	}
	if (len(user.ClientCertificateData) == 0) != (len(user.ClientKeyData) == 0) && user.ClientCertificate == "" &&
		user.ClientKey == "" {
		return invalid("user %q needs both client-certificate-data and client-key-data", ctx.AuthInfo)
	}
	return nil
}

func checkServer(cluster, server string) error {
	if server == "" {
		return invalid("cluster %q has no server URL", cluster)
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid("cluster %q has server %q, which is not an http(s) URL", cluster, server)
	}
	return nil
}

// Extract cuts context name out of cfg. An empty name means the current context.
func Extract(cfg *clientcmdapi.Config, name string) (Context, error) {
	if name == "" {
		name = cfg.CurrentContext
		if name == "" {
			if len(cfg.Contexts) != 1 {
				return Context{}, invalid("it has %d contexts and no current-context; name the context to use",
					len(cfg.Contexts))
			}
			name = slices.Sorted(maps.Keys(cfg.Contexts))[0]
		}
	}
	src, ok := cfg.Contexts[name]
	if !ok || src == nil {
		return Context{}, invalid("it has no context %q", name)
	}
	if c := cfg.Clusters[src.Cluster]; c == nil {
		return Context{}, invalid("context %q names cluster %q, which is not in the kubeconfig", name, src.Cluster)
	}
	if u := cfg.AuthInfos[src.AuthInfo]; u == nil {
		return Context{}, invalid("context %q names user %q, which is not in the kubeconfig", name, src.AuthInfo)
	}
	out := clientcmdapi.NewConfig()
	out.Clusters[src.Cluster] = cfg.Clusters[src.Cluster].DeepCopy()
	out.AuthInfos[src.AuthInfo] = cfg.AuthInfos[src.AuthInfo].DeepCopy()
	ctx := src.DeepCopy()
	ctx.LocationOfOrigin = ""
	out.Contexts[name] = ctx
	out.CurrentContext = name
	out.Clusters[src.Cluster].LocationOfOrigin = ""
	out.AuthInfos[src.AuthInfo].LocationOfOrigin = ""
	data, err := clientcmd.Write(*out)
	if err != nil {
		return Context{}, fmt.Errorf("writing kubeconfig for context %q: %w", name, err)
	}
	return Context{Name: name, Server: out.Clusters[src.Cluster].Server, Config: data}, nil
}

// IsInvalid reports whether err is an *InvalidError.
func IsInvalid(err error) bool {
	var inv *InvalidError
	return errors.As(err, &inv)
}

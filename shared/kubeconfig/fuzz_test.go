package kubeconfig

import (
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const fuzzGood = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: "Y2E="}
users:
- name: u
  user: {token: abc}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

// FuzzParse: Parse and Extract never panic, and what Parse accepts through the API (no files allowed) never
// names a file or runs a program, in the config or in any context cut out of it.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		fuzzGood,
		"",
		"{}",
		"apiVersion: v1\nkind: Config\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
		`{"apiVersion":"v1","kind":"Config","clusters":[{"name":"c","cluster":{"server":"https://h","certificate-authority":"/etc/ca"}}],` +
			`"users":[{"name":"u","user":{"token":"t","tokenFile":"/etc/tok"}}],"contexts":[{"name":"x","context":{"cluster":"c","user":"u"}}]}`,
		"apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}\n",
		"contexts:\n- name: x\n  context: null\n",
		"clusters: [{name: c, cluster: null}]\nusers: [{name: u, user: null}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
		"current-context: nope\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
		"- [\n",
	} {
		f.Add([]byte(seed), "")
	}
	f.Add([]byte(fuzzGood), "x")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		cfg, err := Parse(data, Options{})
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("Parse error is not an InvalidError: %v", err)
			}
			return
		}
		for ctxName, ctx := range cfg.Contexts {
			noFiles(t, ctxName, cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo])
		}
		out, err := Extract(cfg, name)
		if err != nil {
			return
		}
		again, err := Parse(out.Config, Options{})
		if err != nil {
			t.Fatalf("a context cut from an accepted kubeconfig is refused: %v\n%s", err, out.Config)
		}
		for ctxName, ctx := range again.Contexts {
			noFiles(t, ctxName, again.Clusters[ctx.Cluster], again.AuthInfos[ctx.AuthInfo])
		}
	})
}

func noFiles(t *testing.T, ctx string, c *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
	t.Helper()
	if c == nil || u == nil {
		t.Fatalf("accepted context %q lacks its cluster or user", ctx)
	}
	if c.CertificateAuthority != "" || u.ClientCertificate != "" || u.ClientKey != "" || u.TokenFile != "" {
		t.Fatalf("accepted context %q names a file: ca=%q cert=%q key=%q tokenFile=%q", ctx,
			c.CertificateAuthority, u.ClientCertificate, u.ClientKey, u.TokenFile)
	}
	if u.Exec != nil || u.AuthProvider != nil {
		t.Fatalf("accepted context %q runs a plugin", ctx)
	}
}

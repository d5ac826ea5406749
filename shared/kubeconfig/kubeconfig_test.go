package kubeconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const twoContexts = `apiVersion: v1
kind: Config
current-context: b
clusters:
- name: ca
  cluster: {server: "https://a.example:6443", certificate-authority-data: Zm9v}
- name: cb
  cluster: {server: "https://b.example:6443"}
users:
- name: ua
  user: {token: secret-a}
- name: ub
  user: {token: secret-b}
contexts:
- name: a
  context: {cluster: ca, user: ua, namespace: team-a}
- name: b
  context: {cluster: cb, user: ub}
`

func TestExtractMakesStandaloneConfigs(t *testing.T) {
	cfg, err := Parse([]byte(twoContexts), Options{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := contexts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Name != "a" || all[1].Server != "https://b.example:6443" {
		t.Fatalf("contexts: %+v", all)
	}
	a, err := clientcmd.Load(all[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Clusters) != 1 || len(a.AuthInfos) != 1 || a.CurrentContext != "a" || a.AuthInfos["ua"].Token != "secret-a" ||
		a.Contexts["a"].Namespace != "team-a" {
		t.Fatalf("context a is not standalone: %+v", a)
	}
	if bytes.Contains(all[0].Config, []byte("secret-b")) {
		t.Fatal("context a carries context b's credentials")
	}
	cur, err := Extract(cfg, "")
	if err != nil || cur.Name != "b" {
		t.Fatalf("current context: %v %v", cur.Name, err)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		opts Options
		want string
	}{
		"exec":           {strings.Replace(twoContexts, "{token: secret-b}", "{exec: {command: gke-gcloud-auth-plugin, apiVersion: client.authentication.k8s.io/v1}}", 1), Options{}, "exec plugin"},
		"no server":      {strings.Replace(twoContexts, `server: "https://b.example:6443"`, `server: ""`, 1), Options{}, "no server"},
		"bad scheme":     {strings.Replace(twoContexts, `https://b.example:6443`, `unix:///sock`, 1), Options{}, "not an http(s) URL"},
		"no credentials": {strings.Replace(twoContexts, "{token: secret-b}", "{}", 1), Options{}, "no credentials"},
		"half a cert":    {strings.Replace(twoContexts, "{token: secret-b}", "{client-certificate-data: Zm9v}", 1), Options{}, "both"},
		"bad current":    {strings.Replace(twoContexts, "current-context: b", "current-context: z", 1), Options{}, "current-context"},
		"token file":     {strings.Replace(twoContexts, "{token: secret-b}", "{tokenFile: /var/run/token}", 1), Options{}, "refers to a file"},
		"empty context":  {twoContexts + "- name: c\n", Options{}, `context "c"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), tc.opts)
			if err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an InvalidError saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-") {
				t.Fatalf("error quotes a credential: %v", err)
			}
		})
	}
	exec := strings.Replace(twoContexts, "{token: secret-b}", "{exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}", 1)
	if _, err := Parse([]byte(exec), Options{AllowExecPlugins: true}); err != nil {
		t.Fatalf("exec allowed by the operator: %v", err)
	}
}

func TestAllowFilesInlinesThem(t *testing.T) {
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(tokenPath, []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(twoContexts, `server: "https://b.example:6443"`,
		`server: "https://b.example:6443", certificate-authority: `+tokenPath, 1)
	if _, err := Parse([]byte(y), Options{}); err == nil {
		t.Fatal("file reference accepted through the API path")
	}
	cfg, err := Parse([]byte(y), Options{AllowFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Clusters["cb"].CertificateAuthorityData) != "PEM" || cfg.Clusters["cb"].CertificateAuthority != "" {
		t.Fatal("file not inlined")
	}
}

func TestSealRoundTripAndRotation(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, err := NewSealer(k1)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(twoContexts)
	sealed, err := old.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-a")) {
		t.Fatal("sealed bytes hold the plaintext")
	}
	again, _ := old.Seal(plain)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one plaintext are equal: nonce reused")
	}
	rotated, err := NewSealer(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("old blob with rotated keys: %v", err)
	}
	newBlob, _ := rotated.Seal(plain)
	if _, err := old.Open(newBlob); err == nil || !strings.Contains(err.Error(), "KITEFN_ENCRYPTION_KEY") {
		t.Fatalf("blob sealed with an unknown key: %v", err)
	}
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	if _, err := old.Open(tampered); err == nil {
		t.Fatal("tampered blob opened")
	}
	if _, err := old.Open([]byte{9, 9}); err == nil {
		t.Fatal("garbage opened")
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Fatal("16-byte key accepted")
	}
}

func TestParseKeyAndKeyFile(t *testing.T) {
	k := bytes.Repeat([]byte{7}, 32)
	for _, s := range []string{base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k),
		hex.EncodeToString(k), " " + base64.StdEncoding.EncodeToString(k) + "\n"} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Fatalf("ParseKey(%q): %v", s, err)
		}
	}
	if _, err := ParseKey("too-short"); err == nil {
		t.Fatal("short key accepted")
	}
	path := filepath.Join(t.TempDir(), "sub", "encryption.key")
	first, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("key file not reused: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
}

// contexts returns every context of cfg as a standalone kubeconfig, sorted by name.
func contexts(cfg *clientcmdapi.Config) ([]Context, error) {
	names := slices.Sorted(maps.Keys(cfg.Contexts))
	out := make([]Context, 0, len(names))
	for _, name := range names {
		c, err := Extract(cfg, name)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

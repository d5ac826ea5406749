// Package deploy_test proves, without a cluster, that deploy/ is what users can apply: every overlay renders
// with kustomize; every object decodes strictly into its real Knative or Kubernetes type and passes the
// Knative webhooks' own SetDefaults and Validate; every name one object gives another resolves; every
// function service's environment is accepted by `kitefn -check-config` of the image built for that overlay;
// the binary is static; the Knative and kustomize packages used here stay out of it; and func.yaml loads
// with the func CLI's own code.
package deploy_test

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// installSpec is one overlay users apply.
type installSpec struct {
	dir   string // under deploy/
	store string // the image it names: make image STORE=…
	// cluster is the Knative configuration the README (Deploy to Knative) asks for; the zero value is a stock install.
	cluster cluster
}

var installs = []installSpec{
	{dir: "overlays/firestore", store: "firestore"},
	{dir: "overlays/dynamodb", store: "dynamodb"},
	{dir: "overlays/single", store: "bbolt", cluster: cluster{features: map[string]string{
		"kubernetes.podspec-persistent-volume-claim": "enabled",
		"kubernetes.podspec-persistent-volume-write": "enabled",
		"kubernetes.podspec-securitycontext":         "enabled",
	}}},
}

// testOnly are the module paths that may be imported by tests only (they cost cold-start time).
var testOnly = regexp.MustCompile(`^(knative\.dev/(serving|eventing)|sigs\.k8s\.io/kustomize)(/|$)`)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kitefn-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil ||
		!bytes.HasPrefix(data, []byte("module github.com/kitefn/kitefn\n")) {
		t.Fatalf("%s is not the kitefn module root", root)
	}
	return root
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // store → *build

// kitefnBinary builds the image's binary for one store exactly as the images do (make build STORE=…), once
// per test process.
func kitefnBinary(t testing.TB, store string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(store, &build{})
	b := v.(*build)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, "kitefn-"+store)
		cmd := exec.Command("make", "-s", "build", "STORE="+store, "BIN="+b.path)
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("make build STORE=%s: %v\n%s", store, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// audit renders one install from a deploy/ tree and runs every check on it. Errors name the object at fault.
func audit(t testing.TB, deployDir string, spec installSpec) (*install, []error) {
	t.Helper()
	in, err := render(filepath.Join(deployDir, spec.dir))
	if err != nil {
		return in, []error{err}
	}
	c := spec.cluster
	for _, f := range functions(in) {
		if f.target == "terminal" { // README, "Deploy to Knative": the terminal needs this change
			c = c.with("max-revision-timeout-seconds", "3600")
		}
	}
	ctx, err := c.context()
	if err != nil {
		t.Fatal(err)
	}
	errs := validateKnative(ctx, in)
	errs = append(errs, checkReferences(in)...)
	errs = append(errs, checkEventDestinations(in)...)
	errs = append(errs, checkDesign(in)...)
	return in, append(errs, checkFunctions(in, spec.store, kitefnBinary(t, spec.store))...)
}

func TestInstalls(t *testing.T) {
	deployDir := copyDeploy(t)
	for _, spec := range installs {
		t.Run(spec.dir, func(t *testing.T) {
			in, errs := audit(t, deployDir, spec)
			for _, err := range errs {
				t.Error(err)
			}
			if in == nil {
				return
			}
			var names []string
			for _, f := range functions(in) {
				names = append(names, f.svc.Name+"="+f.target)
			}
			if len(names) == 0 {
				t.Error("the install runs no kitefn function")
			}
			t.Logf("%d objects; functions: %s", len(in.Objects), strings.Join(names, ", "))
		})
	}
}

// TestStockKnativeRefusesTheTerminal: the documented config-defaults change is really needed — a stock Knative
// (max-revision-timeout-seconds 600) refuses the terminal's timeoutSeconds 3600, which the installs are
// validated with raised (audit).
func TestStockKnativeRefusesTheTerminal(t *testing.T) {
	deployDir := copyDeploy(t)
	for _, spec := range installs {
		if spec.dir == "overlays/single" {
			continue // one service for every function, with the default timeout
		}
		t.Run(spec.dir, func(t *testing.T) {
			in, err := render(filepath.Join(deployDir, spec.dir))
			if err != nil {
				t.Fatal(err)
			}
			ctx, err := spec.cluster.context()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, f := range functions(in) {
				if f.target != "terminal" {
					continue
				}
				found = true
				errs := validateKnative(ctx, &install{Objects: []object{*in.find("serving.knative.dev/v1", "Service", f.svc.Namespace, f.svc.Name)}})
				if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), "timeoutSeconds") {
					t.Errorf("a stock Knative should refuse the terminal's timeoutSeconds 3600; got %v", errs)
				}
			}
			if !found {
				t.Error("the install has no terminal service")
			}
		})
	}
}

// TestBrokenManifestsAreCaught breaks a correct overlay in one way at a time and expects the checks to name
// the problem: the checks above can fail.
func TestBrokenManifestsAreCaught(t *testing.T) {
	svcPatch := func(svc, ops string) string {
		return fmt.Sprintf("  - target: {group: serving.knative.dev, kind: Service, name: %s}\n    patch: |-\n%s", svc,
			indent(ops, "      "))
	}
	// The env paths follow services/*.yaml: FUNCTION_TARGET, KITEFN_API_TOKENS, KITEFN_ENCRYPTION_KEY, ….
	cases := []struct {
		name    string
		patches string            // entries of the broken overlay's patches:
		extra   string            // more kustomization fields
		files   map[string]string // more files in the broken overlay
		want    string
	}{
		{name: "unknown function", want: `FUNCTION_TARGET "nope" is not a function`,
			patches: svcPatch("clusters", "- {op: replace, path: /spec/template/spec/containers/0/env/0/value, value: nope}")},
		{name: "encryption key missing", want: "no encryption key",
			patches: svcPatch("clusters", "- {op: remove, path: /spec/template/spec/containers/0/env/2}")},
		{name: "invalid store setting", want: "KITEFN_DYNAMODB_REGION",
			extra: "configMapGenerator:\n  - name: kitefn-store\n    behavior: merge\n    literals: [KITEFN_DYNAMODB_REGION=US_EAST_1]\n"},
		{name: "misspelt field", want: `unknown field "containerConcurency"`,
			patches: svcPatch("resources", "- {op: add, path: /spec/template/spec/containerConcurency, value: 5}")},
		// With the terminal enabled the install raises max-revision-timeout-seconds to 3600 (the README's step).
		{name: "timeout above Knative's maximum", want: "timeoutSeconds",
			patches: svcPatch("resources", "- {op: replace, path: /spec/template/spec/timeoutSeconds, value: 7200}")},
		{name: "min-scale above max-scale", want: "min-scale",
			patches: svcPatch("clusters", `- {op: replace, path: "/spec/template/metadata/annotations/autoscaling.knative.dev~1min-scale", value: "9"}`)},
		{name: "HTTP function kept warm", want: "want min-scale 0",
			patches: svcPatch("resources", `- {op: replace, path: "/spec/template/metadata/annotations/autoscaling.knative.dev~1min-scale", value: "1"}`)},
		{name: "no readiness probe", want: "readinessProbe",
			patches: svcPatch("clusters", "- {op: remove, path: /spec/template/spec/containers/0/readinessProbe}")},
		{name: "secret key misspelt", want: `has no key "token"`,
			patches: svcPatch("clusters", "- {op: replace, path: /spec/template/spec/containers/0/env/1/valueFrom/secretKeyRef/key, value: token}")},
		{name: "public event consumer", want: "not labelled networking.knative.dev/visibility: cluster-local",
			patches: svcPatch("discovery", `- {op: remove, path: "/metadata/labels/networking.knative.dev~1visibility"}`)},
		{name: "public reconcile service", want: "KITEFN_RECONCILE_ON_PING=true but is not labelled",
			patches: svcPatch("clusters-reconcile", `- {op: remove, path: "/metadata/labels/networking.knative.dev~1visibility"}`)},
		{name: "ping source to a missing service", want: "names Service kitefn/clusters-reconcil",
			patches: "  - target: {kind: PingSource}\n    patch: |-\n      - {op: replace, path: /spec/sink/ref/name, value: clusters-reconcil}\n"},
		{name: "trigger to a missing service", want: "names Service kitefn/discover",
			patches: "  - target: {kind: Trigger}\n    patch: |-\n      - {op: replace, path: /spec/subscriber/ref/name, value: discover}\n"},
		{name: "bad backoff policy", want: "backoffPolicy",
			patches: "  - target: {kind: Broker}\n    patch: |-\n      - {op: replace, path: /spec/delivery/backoffPolicy, value: exponentail}\n"},
		{name: "sink binding subject missing", want: "matches nothing",
			patches: "  - target: {kind: SinkBinding}\n    patch: |-\n      - {op: replace, path: /spec/subject/name, value: cluster}\n"},
		{name: "RBAC added", want: "kind rbac.authorization.k8s.io/v1 Role is not expected",
			extra: "resources: [../dynamodb, role.yaml]\n",
			files: map[string]string{"role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n" +
				"metadata: {name: extra}\nrules: [{apiGroups: [\"\"], resources: [pods], verbs: [get]}]\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			deployDir := copyDeploy(t)
			dir := filepath.Join(deployDir, "overlays", "broken")
			k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
			if !strings.Contains(tc.extra, "resources:") {
				k += "resources: [../dynamodb]\n"
			}
			k += tc.extra
			if tc.patches != "" {
				k += "patches:\n" + tc.patches + "\n"
			}
			files := map[string]string{"kustomization.yaml": k}
			for n, s := range tc.files {
				files[n] = s
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for n, s := range files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, errs := audit(t, deployDir, installSpec{dir: "overlays/broken", store: "dynamodb"})
			all := errors.Join(errs...)
			if all == nil || !strings.Contains(all.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got:\n%v\n--- kustomization.yaml:\n%s", tc.want, all, k)
			}
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.want) {
					t.Log(err)
				}
			}
		})
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestBinaryIsStatic: the image's binary, per store, is a static ELF executable (no interpreter, no shared
// libraries: it runs on distroless/static), links its store's SDK and not the other cloud's, and none of the
// packages only these tests need.
func TestBinaryIsStatic(t *testing.T) {
	sdks := map[string]string{
		"firestore": "cloud.google.com/go/firestore",
		"dynamodb":  "github.com/aws/aws-sdk-go-v2/service/dynamodb",
	}
	for _, store := range []string{"bbolt", "firestore", "dynamodb"} {
		t.Run(store, func(t *testing.T) {
			bin := kitefnBinary(t, store)
			if err := staticELF(bin); err != nil {
				t.Error(err)
			}
			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range info.Settings {
				if s.Key == "CGO_ENABLED" && s.Value != "0" {
					t.Errorf("built with CGO_ENABLED=%s", s.Value)
				}
			}
			linked := map[string]bool{}
			for _, d := range info.Deps {
				linked[d.Path] = true
				if testOnly.MatchString(d.Path) {
					t.Errorf("links %s, which only tests may use", d.Path)
				}
			}
			for s, sdk := range sdks {
				if want := s == store; linked[sdk] != want {
					t.Errorf("links %s = %v, want %v for STORE=%s", sdk, linked[sdk], want, store)
				}
			}
		})
	}
}

// staticELF reports why an executable is not statically linked, if it is not.
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			errs = append(errs, fmt.Errorf("%s has a PT_INTERP segment: dynamically linked", path))
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		errs = append(errs, fmt.Errorf("%s needs shared libraries %v", path, libs))
	}
	return errors.Join(errs...)
}

// TestStaticCheckCatchesDynamic: the check above does flag a dynamically linked executable.
func TestStaticCheckCatchesDynamic(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err == nil {
		sh, err = filepath.EvalSymlinks(sh)
	}
	if err != nil {
		t.Skip("no sh to check against")
	}
	f, err := elf.Open(sh)
	if err != nil {
		t.Skipf("%s is not an ELF file", sh)
	}
	dynamic := f.Section(".interp") != nil // independent of the segment table the check reads
	_ = f.Close()
	if !dynamic {
		t.Skipf("%s is itself static: nothing dynamic to check against", sh)
	}
	if err := staticELF(sh); err == nil {
		t.Errorf("%s is dynamically linked, but the static check passes it", sh)
	} else {
		t.Log(err)
	}
}

// TestTestOnlyDepsStayOut: nothing the production binary imports depends on the Knative serving/eventing
// types or kustomize (go list -deps, all stores linked).
func TestTestOnlyDepsStayOut(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps .: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if testOnly.MatchString(pkg) {
			t.Errorf("the kitefn binary imports %s", pkg)
		}
	}
}

// funcSummary is what tests/deploy/funcyaml prints.
type funcSummary struct {
	SpecVersion, LastSpecVersion, Name, Runtime, Builder, Namespace, ServiceAccountName string
	Envs, Volumes, Annotations                                                          map[string]string
	Liveness, Readiness                                                                 string
}

var funcRef = regexp.MustCompile(`^\{\{\s*(secret|configMap):([\w.-]+):([\w.-]+)\s*\}\}$`)

// TestFuncYAML: func.yaml loads with the func CLI's own code, and describes the same service as
// deploy/overlays/single: same environment (accepted by kitefn -check-config), scale, health endpoints,
// volume, namespace and ServiceAccount.
func TestFuncYAML(t *testing.T) {
	root := repoRoot(t)
	cmd := exec.Command("go", "run", ".", filepath.Join(root, "func.yaml"))
	cmd.Dir = filepath.Join(root, "tests", "deploy", "funcyaml")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("func.yaml does not load with knative.dev/func: %v\n%s", err, stderr.String())
	}
	var fy funcSummary
	if err := json.Unmarshal(out, &fy); err != nil {
		t.Fatal(err)
	}
	if fy.SpecVersion != "0.36.0" || fy.SpecVersion != fy.LastSpecVersion {
		t.Errorf("specVersion %s, want 0.36.0 (the func CLI's latest: %s)", fy.SpecVersion, fy.LastSpecVersion)
	}
	if fy.Runtime != "go" {
		t.Errorf("runtime %q, want go", fy.Runtime)
	}

	var spec installSpec
	for _, s := range installs {
		if s.dir == "overlays/single" {
			spec = s
		}
	}
	in, err := render(filepath.Join(copyDeploy(t), spec.dir))
	if err != nil {
		t.Fatal(err)
	}
	fns := functions(in)
	if len(fns) != 1 {
		t.Fatalf("%s has %d functions, want 1", spec.dir, len(fns))
	}
	svc := fns[0].svc
	want, err := containerEnv(in, svc.Namespace, svc.Spec.Template.Spec.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PORT": "8080", "K_SERVICE": fy.Name, "K_CONFIGURATION": fy.Name,
		"K_REVISION": fy.Name + "-00001"}
	for k, v := range fy.Envs {
		if m := funcRef.FindStringSubmatch(v); m != nil {
			kind := map[string]string{"secret": "Secret", "configMap": "ConfigMap"}[m[1]]
			o := in.find("v1", kind, svc.Namespace, m[2])
			if o == nil {
				t.Errorf("func.yaml env %s: no %s %s in %s", k, kind, m[2], spec.dir)
				continue
			}
			var data map[string]string
			if s, ok := o.Value.(*corev1.Secret); ok {
				data = secretData(s)
			} else {
				data = o.Value.(*corev1.ConfigMap).Data
			}
			resolved, ok := data[m[3]]
			if !ok {
				t.Errorf("func.yaml env %s: %s %s has no key %s", k, kind, m[2], m[3])
			}
			v = resolved
		}
		env[k] = v
		if w, ok := want[k]; ok && w != v {
			t.Errorf("func.yaml sets %s=%q, %s sets %q", k, v, spec.dir, w)
		}
	}
	for _, k := range []string{"FUNCTION_TARGET", "KITEFN_STORE", "KITEFN_API_TOKENS", "KITEFN_ENCRYPTION_KEY"} {
		if _, ok := fy.Envs[k]; !ok {
			t.Errorf("func.yaml does not set %s", k)
		}
	}
	if out, err := checkConfig(kitefnBinary(t, spec.store), env); err != nil {
		t.Errorf("kitefn -check-config refuses func.yaml's environment: %v: %s", err, out)
	}

	ann := svc.Spec.Template.Annotations
	for _, k := range []string{minScale, maxScale} {
		if fy.Annotations[k] != ann[k] {
			t.Errorf("func.yaml %s=%q, %s has %q", k, fy.Annotations[k], spec.dir, ann[k])
		}
	}
	c := svc.Spec.Template.Spec.Containers[0]
	if fy.Readiness != c.ReadinessProbe.HTTPGet.Path || fy.Liveness != c.LivenessProbe.HTTPGet.Path {
		t.Errorf("func.yaml health endpoints %s, %s differ from the probes", fy.Readiness, fy.Liveness)
	}
	if fy.Namespace != svc.Namespace || fy.ServiceAccountName != svc.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("func.yaml deploys to %s as %s; %s uses %s as %s", fy.Namespace, fy.ServiceAccountName, spec.dir,
			svc.Namespace, svc.Spec.Template.Spec.ServiceAccountName)
	}
	for _, m := range c.VolumeMounts {
		if got, want := fy.Volumes[m.MountPath], volumeSource(svc, m.Name); got != want {
			t.Errorf("func.yaml mounts %q at %s, %s mounts %q", got, m.MountPath, spec.dir, want)
		}
	}
}

func volumeSource(svc *servingv1.Service, volume string) string {
	for _, v := range svc.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.PersistentVolumeClaim != nil {
			return "pvc:" + v.PersistentVolumeClaim.ClaimName
		}
	}
	return "?"
}

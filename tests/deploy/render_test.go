package deploy_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// object is one rendered manifest, decoded into its real type.
type object struct {
	APIVersion, Kind, Namespace, Name string
	Labels                            map[string]string
	Value                             any
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name) }

// install is everything one kustomization renders.
type install struct {
	Dir     string
	Objects []object
}

// decoders are the only kinds deploy/ may contain. Anything else fails the test, so a new kind (RBAC above
// all: every function's least privilege is currently none) is added here deliberately.
var decoders = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/PersistentVolumeClaim":           func() any { return &corev1.PersistentVolumeClaim{} },
	"serving.knative.dev/v1/Service":     func() any { return &servingv1.Service{} },
	"eventing.knative.dev/v1/Broker":     func() any { return &eventingv1.Broker{} },
	"eventing.knative.dev/v1/Trigger":    func() any { return &eventingv1.Trigger{} },
	"sources.knative.dev/v1/SinkBinding": func() any { return &sourcesv1.SinkBinding{} },
	"sources.knative.dev/v1/PingSource":  func() any { return &sourcesv1.PingSource{} },
}

// copyDeploy copies deploy/ into a temporary directory and writes freshly generated secret values where the
// secretGenerator expects them (they are never committed). It returns the copy's deploy directory.
func copyDeploy(t testing.TB) string {
	t.Helper()
	src := filepath.Join(repoRoot(t), "deploy")
	dst := filepath.Join(t.TempDir(), "deploy")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if filepath.Dir(rel) == filepath.Join("core", "secrets") {
			return nil // an operator's real secrets stay where they are
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying deploy/: %v", err)
	}
	writeSecrets(t, filepath.Join(dst, "core", "secrets"))
	return dst
}

// writeSecrets makes the two secret files the way the README tells operators to.
func writeSecrets(t testing.TB, dir string) {
	t.Helper()
	token, key := make([]byte, 24), make([]byte, 32)
	_, _ = rand.Read(token)
	_, _ = rand.Read(key)
	files := map[string]string{
		"api-tokens":     hex.EncodeToString(token),
		"encryption-key": base64.StdEncoding.EncodeToString(key),
	}
	for name, value := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// render builds one kustomization the way `kubectl apply -k` does (root-only load restrictions, no plugins)
// and decodes every object strictly: an unknown or misspelt field is an error, as the API server's strict
// field validation would make it.
func render(dir string) (*install, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	in := &install{Dir: dir}
	var errs []string
	for _, r := range rm.Resources() {
		o := object{APIVersion: r.GetApiVersion(), Kind: r.GetKind(), Namespace: r.GetNamespace(),
			Name: r.GetName(), Labels: r.GetLabels()}
		newValue, ok := decoders[o.APIVersion+"/"+o.Kind]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: kind %s %s is not expected in deploy/ (add it to the tests "+
				"deliberately)", o, o.APIVersion, o.Kind))
			continue
		}
		data, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		o.Value = newValue()
		if err := yaml.UnmarshalStrict(data, o.Value); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", o, err))
			continue
		}
		in.Objects = append(in.Objects, o)
	}
	if len(errs) > 0 {
		return in, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return in, nil
}

// find returns the object of that kind (and apiVersion group, when given) in ns, or nil.
func (in *install) find(apiVersion, kind, ns, name string) *object {
	for i, o := range in.Objects {
		if o.Kind == kind && o.Name == name && o.Namespace == ns &&
			(apiVersion == "" || group(o.APIVersion) == group(apiVersion)) {
			return &in.Objects[i]
		}
	}
	return nil
}

func group(apiVersion string) string {
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

func ofType[T any](in *install) []T {
	var out []T
	for _, o := range in.Objects {
		if v, ok := o.Value.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Command funcyaml loads a func.yaml with the func CLI's own code (knative.dev/func): a strict decode into
// its Function type (func itself ignores unknown keys), its migrations and its Validate. It prints what the
// deploy tests cross-check against deploy/overlays/single as JSON. It is a separate module so that func's
// dependency graph stays out of kitefn's go.mod.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v2"
	"knative.dev/func/pkg/builders"
	fn "knative.dev/func/pkg/functions"
)

// Summary is what the deploy tests compare with the single overlay.
type Summary struct {
	SpecVersion        string            `json:"specVersion"`
	LastSpecVersion    string            `json:"lastSpecVersion"`
	Name               string            `json:"name"`
	Runtime            string            `json:"runtime"`
	Builder            string            `json:"builder"`
	Namespace          string            `json:"namespace"`
	ServiceAccountName string            `json:"serviceAccountName"`
	Envs               map[string]string `json:"envs"`
	Volumes            map[string]string `json:"volumes"` // mount path → "pvc:NAME", "secret:NAME", …
	Annotations        map[string]string `json:"annotations"`
	Liveness           string            `json:"liveness"`
	Readiness          string            `json:"readiness"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: funcyaml PATH/func.yaml")
		os.Exit(2)
	}
	s, err := load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(s)
}

func load(path string) (*Summary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var strict fn.Function
	if err := yaml.UnmarshalStrict(data, &strict); err != nil {
		return nil, fmt.Errorf("func.yaml: %w", err)
	}
	// NewFunction writes .func/ and a .gitignore entry into the function's root: load a copy.
	root, err := os.MkdirTemp("", "funcyaml")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	if err := os.WriteFile(filepath.Join(root, fn.FunctionFile), data, 0o644); err != nil {
		return nil, err
	}
	f, err := fn.NewFunction(root)
	if err != nil {
		return nil, fmt.Errorf("func.yaml does not load: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if f.Build.Builder != "" && !slices.Contains(builders.All(), f.Build.Builder) {
		return nil, fmt.Errorf("func.yaml: build.builder %q is not one of %s", f.Build.Builder, builders.All())
	}
	s := &Summary{
		SpecVersion: strict.SpecVersion, LastSpecVersion: fn.LastSpecVersion(), Name: f.Name, Runtime: f.Runtime,
		Builder: f.Build.Builder, Namespace: f.Deploy.Namespace, ServiceAccountName: f.Deploy.ServiceAccountName,
		Envs: map[string]string{}, Volumes: map[string]string{}, Annotations: f.Deploy.Annotations,
		Liveness: f.Deploy.HealthEndpoints.Liveness, Readiness: f.Deploy.HealthEndpoints.Readiness,
	}
	for _, e := range f.Run.Envs {
		if e.Name == nil || e.Value == nil {
			return nil, fmt.Errorf("func.yaml: env %v needs a name and a value", e)
		}
		s.Envs[*e.Name] = *e.Value
	}
	for _, v := range f.Run.Volumes {
		if v.Path == nil {
			return nil, fmt.Errorf("func.yaml: volume %s has no path", v)
		}
		switch {
		case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != nil:
			s.Volumes[*v.Path] = "pvc:" + *v.PersistentVolumeClaim.ClaimName
		case v.Secret != nil:
			s.Volumes[*v.Path] = "secret:" + *v.Secret
		case v.ConfigMap != nil:
			s.Volumes[*v.Path] = "configMap:" + *v.ConfigMap
		default:
			s.Volumes[*v.Path] = "other"
		}
	}
	return s, nil
}

package crd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/kitefn/kitefn/tests/harness"
)

// kube is the package's apiserver; nil under -short. The CRDs of testdata/ are installed once, in TestMain.
var kube *harness.Cluster

func TestMain(m *testing.M) {
	harness.MainWith(m, &kube, func(c *harness.Cluster) error {
		return installTestdata(context.Background(), c.RESTConfig())
	})
}

func installTestdata(ctx context.Context, rc *rest.Config) error {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no testdata/*.yaml (%v)", err)
	}
	var names []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if u.Object == nil {
				continue
			}
			if _, err := dyn.Resource(crdResource()).Create(ctx, &u, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("%s: creating %s: %w", f, u.GetName(), err)
			}
			names = append(names, u.GetName())
		}
	}
	for _, n := range names {
		if err := waitEstablished(ctx, dyn, n); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	var last crdDoc
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 15*time.Second, true,
		func(ctx context.Context) (bool, error) {
			u, err := dyn.Resource(crdResource()).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = parseCRD(u)
			return last.established, nil
		})
	if err != nil {
		return fmt.Errorf("CRD %s not established (%s): %w", name, last.notEstablished, err)
	}
	return nil
}

// env is one test's view of the cluster: clients whose CRD GETs are counted, and a Resolver on a fake clock.
type env struct {
	t        *testing.T
	admin    dynamic.Interface // uncounted, for setting up
	dyn      dynamic.Interface
	md       metadata.Interface
	clock    *fakeClock
	crdGets  *atomic.Int32 // GET customresourcedefinitions/<name> sent
	resolver *Resolver
}

func newEnv(t *testing.T, opts ...Option) *env {
	t.Helper()
	if kube == nil {
		t.Skip("needs the real kube-apiserver (not in -short mode)")
	}
	gets := &atomic.Int32{}
	rc := kube.RESTConfig()
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet &&
				strings.Contains(req.URL.Path, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/") {
				gets.Add(1)
			}
			return rt.RoundTrip(req)
		})
	})
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := dynamic.NewForConfig(kube.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	opts = append([]Option{withClock(clock.Now)}, opts...)
	return &env{t: t, admin: admin, dyn: dyn, md: md, clock: clock, crdGets: gets,
		resolver: NewResolver(dyn, 10*time.Second, opts...)}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type ver struct {
	name            string
	served, storage bool
}

// testCRD builds a CRD with a permissive structural schema and a status subresource.
func testCRD(group, kind, plural, scope string, versions ...ver) *unstructured.Unstructured {
	var vs []any
	for _, v := range versions {
		vs = append(vs, map[string]any{
			"name": v.name, "served": v.served, "storage": v.storage,
			"subresources": map[string]any{"status": map[string]any{}},
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"spec":   map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
					"status": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
				},
			}},
		})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group":    group,
			"names":    map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind)},
			"scope":    scope,
			"versions": vs,
		},
	}}
}

// createCRD creates a CRD, waits until it is Established unless told not to, and deletes it after the test.
func (e *env) createCRD(u *unstructured.Unstructured, established bool) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.admin.Resource(crdResource()).Create(ctx, u, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating CRD %s: %v", u.GetName(), err)
	}
	e.t.Cleanup(func() {
		err := e.admin.Resource(crdResource()).Delete(context.Background(), u.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			e.t.Errorf("deleting CRD %s: %v", u.GetName(), err)
		}
	})
	if established {
		if err := waitEstablished(ctx, e.admin, u.GetName()); err != nil {
			e.t.Fatal(err)
		}
	}
}

// object is a custom object with a spec.
func object(apiVersion, kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name}, "spec": spec}}
	if namespace != "" {
		u.SetNamespace(namespace)
	}
	return u
}

// namespace creates a namespace for the test (the apiserver refuses objects in missing ones).
func (e *env) namespace(name string) string {
	e.t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name}}}
	gvr := nsResource()
	if _, err := e.admin.Resource(gvr).Create(e.t.Context(), ns, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("creating namespace %s: %v", name, err)
	}
	e.t.Cleanup(func() {
		_ = e.admin.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// withClock replaces time.Now.
func withClock(now func() time.Time) Option { return func(r *Resolver) { r.now = now } }

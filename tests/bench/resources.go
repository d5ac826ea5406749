package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/logging"

	"github.com/kitefn/kitefn/shared/platform"
	"github.com/kitefn/kitefn/shared/runtime"
	"github.com/kitefn/kitefn/shared/store"
	"github.com/kitefn/kitefn/tests/apitest"
	"github.com/kitefn/kitefn/tests/harness"
)

const benchPods = 5000

// benchResources lists 5,000 Pods across all namespaces through the resources function and, in the same run,
// straight from the apiserver (the baseline) and with kubectl when it is on the PATH.
func benchResources(ctx context.Context, tmp string, w *tabwriter.Writer) error {
	fmt.Println("starting kube-apiserver and seeding", benchPods, "pods…")
	kube, err := harness.Start(ctx)
	if err != nil {
		return err
	}
	defer kube.Stop()
	rc := kube.RESTConfig()
	rc.QPS, rc.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if err := seedPods(ctx, cs); err != nil {
		return err
	}

	os.Setenv("KITEFN_STORE", "bbolt")
	os.Setenv("KITEFN_BBOLT_PATH", filepath.Join(tmp, "resources.db"))
	os.Setenv("KITEFN_DATA_DIR", tmp)
	os.Setenv("FUNCTION_TARGET", "all")
	var rcfg runtime.Config
	if err := envconfig.Process("kitefn", &rcfg); err != nil {
		return err
	}
	rcfg.RateLimit = 0 // the benchmark measures kitefn, not the per-caller limit
	cfg, err := platform.Load()
	if err != nil {
		return err
	}
	log := zap.NewNop().Sugar()
	p, err := platform.New(ctx, cfg, rcfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	sealed, err := p.Sealer.Seal(kube.AdminKubeconfig())
	if err != nil {
		return err
	}
	if _, err := p.Store.Create(ctx, &store.Cluster{Name: "bench", Server: kube.URL, Kubeconfig: sealed,
		Prometheus: store.Prometheus{Status: store.PrometheusPending}}); err != nil {
		return err
	}
	fns := []runtime.Function{{Name: "resources", Value: apitest.Function("resources").New(p)}}
	srv, err := runtime.NewServer(rcfg, log, fns, []string{token})
	if err != nil {
		return err
	}
	if err := srv.Start(logging.WithLogger(ctx, log)); err != nil {
		return err
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	apiHC, err := rest.HTTPClientFor(rc)
	if err != nil {
		return err
	}
	direct := func() (int64, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, kube.URL+"/api/v1/pods", nil)
		req.Header.Set("Accept", "application/json")
		return fetch(apiHC, req)
	}
	ours := func() (int64, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/v1/resources/pods?namespace=_all", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Cluster-Name", "bench")
		return fetch(http.DefaultClient, req)
	}
	variants := []struct {
		name string
		run  func() (int64, error)
	}{{"apiserver LIST /api/v1/pods (baseline)", direct}, {"kitefn GET /api/v1/resources/pods?namespace=_all", ours}}
	if path, err := exec.LookPath("kubectl"); err == nil {
		kc := filepath.Join(tmp, "kubeconfig")
		if err := os.WriteFile(kc, kube.AdminKubeconfig(), 0o600); err != nil {
			return err
		}
		variants = append(variants, struct {
			name string
			run  func() (int64, error)
		}{"kubectl get pods -A -o json", func() (int64, error) {
			out, err := exec.CommandContext(ctx, path, "--kubeconfig", kc, "get", "pods", "-A", "-o", "json").Output()
			return int64(len(out)), err
		}})
	} else {
		fmt.Println("kubectl is not on the PATH: its row is left out")
	}
	samples := make([][]time.Duration, len(variants))
	sizes := make([]int64, len(variants))
	for i := 0; i < 11; i++ {
		for v, variant := range variants {
			start := time.Now()
			n, err := variant.run()
			if err != nil {
				return fmt.Errorf("%s: %w", variant.name, err)
			}
			if i > 0 { // the first round warms connections and caches
				samples[v] = append(samples[v], time.Since(start))
			}
			sizes[v] = n
		}
	}
	fmt.Println()
	fmt.Fprintf(w, "list %d pods, all namespaces\tp50\tmin\tbytes\tvs apiserver (goal <= 1.30x)\t\n", benchPods)
	base := median(samples[0])
	for v, variant := range variants {
		m := median(samples[v])
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%.2fx\t\n", variant.name, m.Round(time.Millisecond),
			minOf(samples[v]).Round(time.Millisecond), sizes[v], float64(m)/float64(base))
	}
	return w.Flush()
}

func fetch(hc *http.Client, req *http.Request) (int64, error) {
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	n, err := io.Copy(io.Discard, res.Body)
	if err != nil {
		return n, err
	}
	if res.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %d", res.StatusCode)
	}
	return n, nil
}

// seedPods creates benchPods Pods over 50 namespaces with 64 workers.
func seedPods(ctx context.Context, cs kubernetes.Interface) error {
	for i := 0; i < 50; i++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%02d", i)}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	work := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%20), "tier": "bench"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.0",
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, Env: []corev1.EnvVar{{Name: "MODE", Value: "bench"}}}}},
				}
				if _, err := cs.CoreV1().Pods(fmt.Sprintf("bench-%02d", i%50)).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < benchPods; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kitefn/kitefn/shared/kube"
	"github.com/kitefn/kitefn/shared/prometheus"
	"github.com/kitefn/kitefn/shared/store"
)

const (
	// maxProbes bounds the candidates probed per search phase: the best ones by score.
	maxProbes = 12
	// probeParallelism bounds concurrent probes of one search.
	probeParallelism = 4
	// listPageSize pages Service lists of large clusters.
	listPageSize = 500
	// maxMessage bounds the message kept in the registry.
	maxMessage = 600
)

// result is what one search concluded.
type result struct {
	Prometheus store.Prometheus
	Candidates []*Candidate
}

// searcher runs the strategy against one cluster.
type searcher struct {
	cfg    Config
	cl     *kube.Client
	direct *http.Client
	now    time.Time
}

// search finds the cluster's Prometheus: the preferred namespaces first, then every namespace; probes the
// best candidates through the apiserver's service proxy; picks by reachability, exposure, then score.
func (s *searcher) search(ctx context.Context) result {
	checked := s.now
	status := func(st store.PrometheusStatus, msg string, cands []*Candidate) result {
		return result{Prometheus: store.Prometheus{Status: st, Message: clip(msg), CheckedAt: &checked},
			Candidates: cands}
	}

	var all []*Candidate
	var listErrs []error
	listed := 0
	// Phase 1: the namespaces Prometheus is usually installed in.
	svcs, errs := s.listPreferred(ctx)
	listed += len(s.cfg.Namespaces) - len(errs)
	listErrs = append(listErrs, errs...)
	phase := candidatesIn(svcs, s.cfg.Namespaces)
	all = append(all, phase...)
	if best := s.probe(ctx, phase); best != nil {
		return s.found(ctx, best, all)
	}
	// Phase 2: every other namespace.
	if s.cfg.AllNamespaces && ctx.Err() == nil {
		svcs, err := listServices(ctx, s.cl, metav1.NamespaceAll)
		if err != nil {
			listErrs = append(listErrs, fmt.Errorf("all namespaces: %w", err))
		} else {
			listed++
			svcs = slices.DeleteFunc(svcs, func(svc corev1.Service) bool {
				return slices.Contains(s.cfg.Namespaces, svc.Namespace)
			})
			phase = candidatesIn(svcs, s.cfg.Namespaces)
			all = append(all, phase...)
			if best := s.probe(ctx, phase); best != nil {
				return s.found(ctx, best, all)
			}
		}
	}
	slices.SortStableFunc(all, better)

	where := strings.Join(s.cfg.Namespaces, ", ")
	if s.cfg.AllNamespaces {
		where += " or any other namespace"
	}
	switch {
	case ctx.Err() != nil:
		return status(store.PrometheusFailed, fmt.Sprintf("discovery did not finish within %s%s",
			s.cfg.Timeout, unanswered(all)), all)
	case listed == 0:
		return status(store.PrometheusFailed, "could not list Services: "+summarize(listErrs), all)
	case len(all) > 0 && allForbidden(all):
		return status(store.PrometheusFailed, "Prometheus candidates exist but the cluster's credentials may "+
			"not reach them through the apiserver (grant get on services/proxy)"+unanswered(all), all)
	}
	msg := "no Prometheus-compatible Service answered in " + where + unanswered(all)
	if len(listErrs) > 0 {
		msg += "; not searched: " + summarize(listErrs)
	}
	return status(store.PrometheusNotFound, msg, all)
}

// found saves the best candidate: its external address when kitefn reaches Prometheus there directly, else
// the service-proxy path (always usable from outside the cluster, with the cluster's credentials).
func (s *searcher) found(ctx context.Context, best *Candidate, all []*Candidate) result {
	slices.SortStableFunc(all, better)
	how := "through the apiserver service proxy"
	if best.Exposure != ExposureClusterIP && s.cfg.ExternalURLs {
		ext, ok := s.externalURL(ctx, best)
		switch {
		case !ok:
			how += fmt.Sprintf(" (its %s address is not known)", best.Exposure)
		default:
			pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
			client, err := prometheus.New(nil, ext, prometheus.WithHTTPClient(s.direct))
			if err == nil {
				_, err = client.Probe(pctx)
			}
			cancel()
			if err == nil {
				best.URL = ext
				how = "at its " + string(best.Exposure) + " address"
			} else {
				how += fmt.Sprintf(" (its %s address %s did not answer from here: %v)", best.Exposure, ext, err)
			}
		}
	}
	what := "Prometheus-compatible API"
	if best.Version != "" {
		what = "Prometheus " + best.Version
	}
	msg := fmt.Sprintf("%s found at Service %s/%s port %d (%s), reached %s", what, best.Namespace, best.Service,
		best.Port, best.Exposure, how)
	checked := s.now
	return result{Prometheus: store.Prometheus{Status: store.PrometheusFound, URL: best.URL, Message: clip(msg),
		CheckedAt: &checked}, Candidates: all}
}

// externalURL is the best candidate's address outside the cluster, by its exposure.
func (s *searcher) externalURL(ctx context.Context, c *Candidate) (string, bool) {
	switch c.Exposure {
	case ExposureLoadBalancer:
		return loadBalancerURL(c.svc, c.port)
	case ExposureIngress:
		ings, _ := s.ingresses(ctx, c.Namespace)
		return ingressURL(c.svc, c.port, ings)
	case ExposureNodePort:
		return nodePortURL(c.port, s.nodeExternalIP(ctx))
	}
	return "", false
}

// probe asks the best candidates of a phase whether they answer like Prometheus, through the service proxy,
// classifies how the reachable ones are exposed and returns the best, or nil.
func (s *searcher) probe(ctx context.Context, cands []*Candidate) *Candidate {
	slices.SortStableFunc(cands, byScore)
	todo := cands[:min(len(cands), maxProbes)]
	var g errgroup.Group
	g.SetLimit(probeParallelism)
	for _, c := range todo {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				c.Error = "not probed: " + err.Error()
				return nil
			}
			s.probeOne(ctx, c)
			return nil
		})
	}
	_ = g.Wait() // probes record their own errors on the candidate
	var reachable []*Candidate
	for _, c := range todo {
		if c.Reachable {
			reachable = append(reachable, c)
		}
	}
	if len(reachable) == 0 {
		return nil
	}
	ingresses := map[string][]networkingv1.Ingress{}
	for _, c := range reachable {
		if _, ok := ingresses[c.Namespace]; !ok {
			ingresses[c.Namespace], _ = s.ingresses(ctx, c.Namespace)
		}
		c.Exposure = exposureOf(c.svc, c.port, ingresses[c.Namespace])
	}
	slices.SortStableFunc(reachable, better)
	return reachable[0]
}

func (s *searcher) probeOne(ctx context.Context, c *Candidate) {
	c.Probed = true
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	client, err := prometheus.New(s.cl, c.ref.Path())
	if err != nil {
		c.Error = err.Error()
		return
	}
	info, err := client.Probe(ctx)
	if err != nil {
		var pe *prometheus.ProxyError
		if errors.As(err, &pe) && pe.Forbidden() {
			c.forbidden = true
		}
		c.Error = err.Error()
		return
	}
	c.Reachable, c.Version = true, info.Version
}

// ingresses lists a namespace's Ingresses; none when the credentials may not (the exposure is then unknown).
func (s *searcher) ingresses(ctx context.Context, ns string) ([]networkingv1.Ingress, error) {
	list, err := s.cl.Kubernetes.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{Limit: listPageSize})
	if err != nil {
		return nil, fmt.Errorf("listing Ingresses in %s: %w", ns, err)
	}
	return list.Items, nil
}

// nodeExternalIP is the external IP of the first ready node (by name), or "" (none, or nodes may not be listed).
func (s *searcher) nodeExternalIP(ctx context.Context) string {
	list, err := s.cl.Kubernetes.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: listPageSize})
	if err != nil {
		return ""
	}
	nodes := list.Items
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		for _, a := range n.Status.Addresses {
			if ready && a.Type == corev1.NodeExternalIP && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

// listPreferred lists the Services of the preferred namespaces concurrently. A namespace that does not exist
// has none; errors are per namespace.
func (s *searcher) listPreferred(ctx context.Context) ([]corev1.Service, []error) {
	type part struct {
		svcs []corev1.Service
		err  error
	}
	parts := make([]part, len(s.cfg.Namespaces))
	var wg sync.WaitGroup
	for i, ns := range s.cfg.Namespaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svcs, err := listServices(ctx, s.cl, ns)
			if err != nil {
				err = fmt.Errorf("%s: %w", ns, err)
			}
			parts[i] = part{svcs, err}
		}()
	}
	wg.Wait()
	var svcs []corev1.Service
	var errs []error
	for _, p := range parts {
		svcs = append(svcs, p.svcs...)
		if p.err != nil {
			errs = append(errs, p.err)
		}
	}
	return svcs, errs
}

// listServices pages through the Services of a namespace (or all).
func listServices(ctx context.Context, cl *kube.Client, ns string) ([]corev1.Service, error) {
	var out []corev1.Service
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		list, err := cl.Kubernetes.CoreV1().Services(ns).List(ctx, opts)
		if err != nil {
			return nil, shortKubeError(err)
		}
		out = append(out, list.Items...)
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// shortKubeError keeps the apiserver's reason ("forbidden: …") without client-go's long wrappers.
func shortKubeError(err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return fmt.Errorf("%s", st.Status().Message)
	}
	return err
}

// candidatesIn scores every Service, ranking namespaces by their place in the preferred order (others after).
func candidatesIn(svcs []corev1.Service, preferred []string) []*Candidate {
	var out []*Candidate
	for i := range svcs {
		order := slices.Index(preferred, svcs[i].Namespace)
		if order < 0 {
			order = len(preferred)
		}
		out = append(out, candidatesOf(&svcs[i], order)...)
	}
	return out
}

func allForbidden(cands []*Candidate) bool {
	probed := 0
	for _, c := range cands {
		if c.Probed {
			probed++
			if !c.forbidden {
				return false
			}
		}
	}
	return probed > 0
}

// unanswered summarises why the probed candidates were not taken.
func unanswered(cands []*Candidate) string {
	var parts []string
	for _, c := range cands {
		if c.Probed && !c.Reachable {
			parts = append(parts, fmt.Sprintf("%s/%s:%d: %s", c.Namespace, c.Service, c.Port, c.Error))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d candidate(s) did not answer: %s", len(parts), strings.Join(parts, "; "))
}

// summarize keeps the first error whole and counts the others (they are usually the same refusal, namespace
// after namespace).
func summarize(errs []error) string {
	switch len(errs) {
	case 0:
		return ""
	case 1:
		return errs[0].Error()
	}
	return fmt.Sprintf("%v (and %d more)", errs[0], len(errs)-1)
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// directClient probes addresses a cluster reports (LoadBalancer, Ingress, node) from this process. Those
// addresses come from the cluster's owner, so it refuses this host and link-local networks (cloud metadata
// services), and ignores proxy variables so the check applies to the real destination.
func directClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("refusing to dial %q: not an IP address", host)
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() ||
			ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
			return fmt.Errorf("refusing to dial %s: an address a cluster reports may not point at this host or "+
				"a link-local network", ip)
		}
		return nil
	}}
	return &http.Client{Transport: &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          8,
		IdleConnTimeout:       30 * time.Second,
	}}
}

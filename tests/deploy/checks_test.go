package deploy_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

const (
	minScale         = "autoscaling.knative.dev/min-scale"
	maxScale         = "autoscaling.knative.dev/max-scale"
	burstCapacity    = "autoscaling.knative.dev/target-burst-capacity"
	visibility       = "networking.knative.dev/visibility"
	brokerIngressFmt = "http://broker-ingress.knative-eventing.svc.cluster.local/%s/%s"
)

// auxiliary are the Knative Services that do not run the kitefn image (no FUNCTION_TARGET).
var auxiliary = []string{"dead-letter"}

// function is a Knative Service that runs kitefn.
type function struct {
	svc    *servingv1.Service
	target string
}

func functions(in *install) []function {
	var out []function
	for _, svc := range ofType[*servingv1.Service](in) {
		for _, c := range svc.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.Name == "FUNCTION_TARGET" {
					out = append(out, function{svc: svc, target: e.Value})
				}
			}
		}
	}
	return out
}

func name(m metav1.ObjectMeta) string { return m.Namespace + "/" + m.Name }

// checkReferences: every name one object gives another resolves to an object of the same install.
func checkReferences(in *install) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ref := func(owner, field, ns string, r *duckv1.KReference) {
		if r == nil {
			return
		}
		if r.Namespace != "" {
			ns = r.Namespace
		}
		if in.find(r.APIVersion, r.Kind, ns, r.Name) == nil {
			bad("%s: %s names %s %s/%s (%s), which this install does not contain", owner, field, r.Kind, ns,
				r.Name, r.APIVersion)
		}
	}
	dest := func(owner, field, ns string, d *duckv1.Destination) {
		if d != nil && d.Ref == nil && d.URI == nil {
			bad("%s: %s has neither ref nor uri", owner, field)
		}
		if d != nil {
			ref(owner, field, ns, d.Ref)
		}
	}
	delivery := func(owner, ns string, d *eventingduckv1.DeliverySpec) {
		if d != nil {
			dest(owner, "delivery.deadLetterSink", ns, d.DeadLetterSink)
		}
	}

	for _, svc := range ofType[*servingv1.Service](in) {
		owner, ns, spec := "Service "+name(svc.ObjectMeta), svc.Namespace, svc.Spec.Template.Spec
		if sa := spec.ServiceAccountName; sa != "" && in.find("v1", "ServiceAccount", ns, sa) == nil {
			bad("%s: serviceAccountName %q: no such ServiceAccount in the install", owner, sa)
		}
		for _, c := range spec.Containers {
			if _, err := containerEnv(in, ns, c); err != nil {
				errs = append(errs, fmt.Errorf("%s: container %s: %w", owner, c.Name, err))
			}
		}
		for _, v := range spec.Volumes {
			switch {
			case v.PersistentVolumeClaim != nil:
				if in.find("v1", "PersistentVolumeClaim", ns, v.PersistentVolumeClaim.ClaimName) == nil {
					bad("%s: volume %s: no PersistentVolumeClaim %s", owner, v.Name, v.PersistentVolumeClaim.ClaimName)
				}
			case v.Secret != nil:
				if in.find("v1", "Secret", ns, v.Secret.SecretName) == nil && !isTrue(v.Secret.Optional) {
					bad("%s: volume %s: no Secret %s", owner, v.Name, v.Secret.SecretName)
				}
			case v.ConfigMap != nil:
				if in.find("v1", "ConfigMap", ns, v.ConfigMap.Name) == nil && !isTrue(v.ConfigMap.Optional) {
					bad("%s: volume %s: no ConfigMap %s", owner, v.Name, v.ConfigMap.Name)
				}
			}
		}
	}
	for _, b := range ofType[*eventingv1.Broker](in) {
		delivery("Broker "+name(b.ObjectMeta), b.Namespace, b.Spec.Delivery)
	}
	for _, tr := range ofType[*eventingv1.Trigger](in) {
		owner := "Trigger " + name(tr.ObjectMeta)
		if in.find("eventing.knative.dev/v1", "Broker", tr.Namespace, tr.Spec.Broker) == nil {
			bad("%s: broker %q: no such Broker in the install", owner, tr.Spec.Broker)
		}
		dest(owner, "subscriber", tr.Namespace, &tr.Spec.Subscriber)
		delivery(owner, tr.Namespace, tr.Spec.Delivery)
	}
	for _, sb := range ofType[*sourcesv1.SinkBinding](in) {
		owner := "SinkBinding " + name(sb.ObjectMeta)
		if len(bindingSubjects(in, sb)) == 0 {
			s := sb.Spec.Subject
			bad("%s: subject %s %s (%s) matches nothing in the install", owner, s.Kind, s.Name, s.APIVersion)
		}
		dest(owner, "sink", sb.Namespace, &sb.Spec.Sink)
	}
	for _, ps := range ofType[*sourcesv1.PingSource](in) {
		dest("PingSource "+name(ps.ObjectMeta), "sink", ps.Namespace, &ps.Spec.Sink)
	}
	return errs
}

// checkEventDestinations: kitefn's event consumers take CloudEvents at POST / without a bearer token (Trigger
// deliveries carry none), so every Knative Service an event is delivered to must be cluster-local.
func checkEventDestinations(in *install) []error {
	var errs []error
	check := func(owner, field, ns string, d *duckv1.Destination) {
		if d == nil || d.Ref == nil || d.Ref.Kind != "Service" || group(d.Ref.APIVersion) != "serving.knative.dev" {
			return
		}
		o := in.find(d.Ref.APIVersion, "Service", ns, d.Ref.Name)
		if o != nil && o.Labels[visibility] != "cluster-local" {
			errs = append(errs, fmt.Errorf("%s: %s is Service %s, which is not labelled %s: cluster-local: "+
				"events arrive without a token, so it must not be reachable from outside", owner, field, d.Ref.Name,
				visibility))
		}
	}
	for _, tr := range ofType[*eventingv1.Trigger](in) {
		check("Trigger "+name(tr.ObjectMeta), "subscriber", tr.Namespace, &tr.Spec.Subscriber)
		if tr.Spec.Delivery != nil {
			check("Trigger "+name(tr.ObjectMeta), "deadLetterSink", tr.Namespace, tr.Spec.Delivery.DeadLetterSink)
		}
	}
	for _, b := range ofType[*eventingv1.Broker](in) {
		if b.Spec.Delivery != nil {
			check("Broker "+name(b.ObjectMeta), "deadLetterSink", b.Namespace, b.Spec.Delivery.DeadLetterSink)
		}
	}
	for _, ps := range ofType[*sourcesv1.PingSource](in) {
		check("PingSource "+name(ps.ObjectMeta), "sink", ps.Namespace, &ps.Spec.Sink)
	}
	// KITEFN_RECONCILE_ON_PING makes the clusters function run the reconcile for a token-less CloudEvent.
	for _, f := range functions(in) {
		env, err := containerEnv(in, f.svc.Namespace, f.svc.Spec.Template.Spec.Containers[0])
		if err == nil && env["KITEFN_RECONCILE_ON_PING"] == "true" && f.svc.Labels[visibility] != "cluster-local" {
			errs = append(errs, fmt.Errorf("Service %s sets KITEFN_RECONCILE_ON_PING=true but is not labelled %s: "+
				"cluster-local: anyone could trigger the reconcile without a token", name(f.svc.ObjectMeta), visibility))
		}
	}
	return errs
}

// bindingSubjects are the objects a SinkBinding's subject selects, by name or by label selector.
func bindingSubjects(in *install, sb *sourcesv1.SinkBinding) []object {
	s := sb.Spec.Subject
	ns := sb.Namespace
	if s.Namespace != "" {
		ns = s.Namespace
	}
	var out []object
	for _, o := range in.Objects {
		if o.Kind != s.Kind || group(o.APIVersion) != group(s.APIVersion) || o.Namespace != ns {
			continue
		}
		switch {
		case s.Name != "":
			if o.Name == s.Name {
				out = append(out, o)
			}
		case s.Selector != nil:
			sel, err := metav1.LabelSelectorAsSelector(s.Selector)
			if err == nil && sel.Matches(labels.Set(o.Labels)) {
				out = append(out, o)
			}
		}
	}
	return out
}

// checkDesign holds every Knative Service to the settings deploy/ promises: explicit scale bounds,
// concurrency, timeout and resources; a hardened, token-less pod under its own ServiceAccount; kitefn's health
// endpoints; the scale policy of each kind of function; one image per install.
func checkDesign(in *install) []error {
	var errs []error
	fns := functions(in)
	targets := map[*servingv1.Service]string{}
	for _, f := range fns {
		targets[f.svc] = f.target
	}
	for _, svc := range ofType[*servingv1.Service](in) {
		owner := "Service " + name(svc.ObjectMeta)
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{owner}, args...)...))
		}
		target, isFunction := targets[svc]
		if !isFunction && !slices.Contains(auxiliary, svc.Name) {
			bad("sets no FUNCTION_TARGET and is not a known auxiliary service %v", auxiliary)
		}
		tmpl := svc.Spec.Template
		ann := tmpl.Annotations
		lo, errLo := strconv.Atoi(ann[minScale])
		hi, errHi := strconv.Atoi(ann[maxScale])
		if errLo != nil || errHi != nil {
			bad("needs explicit %s and %s annotations on its template", minScale, maxScale)
		}
		spec := tmpl.Spec
		if spec.ContainerConcurrency == nil {
			bad("needs an explicit containerConcurrency")
		}
		if spec.TimeoutSeconds == nil {
			bad("needs an explicit timeoutSeconds")
		}
		if spec.ServiceAccountName == "" || spec.ServiceAccountName == "default" {
			bad("needs its own ServiceAccount")
		} else if o := in.find("v1", "ServiceAccount", svc.Namespace, spec.ServiceAccountName); o != nil {
			if sa := o.Value.(*corev1.ServiceAccount); !isFalse(sa.AutomountServiceAccountToken) {
				bad("ServiceAccount %s must set automountServiceAccountToken: false", sa.Name)
			}
		}
		if !isFalse(spec.AutomountServiceAccountToken) {
			bad("must set automountServiceAccountToken: false (kitefn calls no API of its own cluster)")
		}
		if len(spec.Containers) != 1 {
			bad("has %d containers, want 1", len(spec.Containers))
			continue
		}
		c := spec.Containers[0]
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
			c.Resources.Limits.Memory().IsZero() {
			bad("needs cpu and memory requests and a memory limit")
		}
		if sc := c.SecurityContext; sc == nil || !isTrue(sc.RunAsNonRoot) || !isFalse(sc.AllowPrivilegeEscalation) ||
			!isTrue(sc.ReadOnlyRootFilesystem) || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			bad("container securityContext must run as non-root, read-only, no privilege escalation, drop ALL")
		}
		if !isFunction {
			continue
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health/readiness" {
			bad("needs a readinessProbe on GET /health/readiness")
		}
		if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health/liveness" {
			bad("needs a livenessProbe on GET /health/liveness")
		}
		switch target {
		case "terminal":
			if lo != 1 || ann[burstCapacity] != "0" || spec.TimeoutSeconds == nil || *spec.TimeoutSeconds != 3600 ||
				!isZero(spec.ResponseStartTimeoutSeconds) || !isZero(spec.IdleTimeoutSeconds) {
				bad("the terminal needs min-scale 1, target-burst-capacity \"0\", timeoutSeconds 3600, " +
					"responseStartTimeoutSeconds 0 and idleTimeoutSeconds 0 (WebSockets)")
			}
		case "all", "":
			if lo != 1 || hi != 1 {
				bad("the all-in-one service needs min-scale = max-scale = 1 (one bbolt writer, in-process events)")
			}
		default:
			if lo != 0 {
				bad("HTTP functions scale to zero: want min-scale 0, got %d", lo)
			}
		}
	}
	images := map[string][]string{}
	for _, f := range fns {
		for _, c := range f.svc.Spec.Template.Spec.Containers {
			images[c.Image] = append(images[c.Image], f.svc.Name)
		}
	}
	if len(images) > 1 {
		errs = append(errs, fmt.Errorf("one image serves every function, but the services name several: %v", images))
	}
	for img, svcs := range images {
		if img == "kitefn" {
			errs = append(errs, fmt.Errorf("%v: image is still the placeholder %q: the overlay must set it "+
				"(images: in its kustomization)", svcs, img))
		}
	}
	return errs
}

// containerEnv is the environment Kubernetes gives the container: envFrom first, then env, with
// secretKeyRef and configMapKeyRef read from the install's own Secrets and ConfigMaps.
func containerEnv(in *install, ns string, c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	var errs []error
	secret := func(n string) *corev1.Secret {
		if o := in.find("v1", "Secret", ns, n); o != nil {
			return o.Value.(*corev1.Secret)
		}
		return nil
	}
	configMap := func(n string) *corev1.ConfigMap {
		if o := in.find("v1", "ConfigMap", ns, n); o != nil {
			return o.Value.(*corev1.ConfigMap)
		}
		return nil
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := configMap(ef.ConfigMapRef.Name)
			if cm == nil {
				if !isTrue(ef.ConfigMapRef.Optional) {
					errs = append(errs, fmt.Errorf("envFrom: no ConfigMap %s", ef.ConfigMapRef.Name))
				}
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			s := secret(ef.SecretRef.Name)
			if s == nil {
				if !isTrue(ef.SecretRef.Optional) {
					errs = append(errs, fmt.Errorf("envFrom: no Secret %s", ef.SecretRef.Name))
				}
				continue
			}
			for k, v := range secretData(s) {
				env[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.SecretKeyRef != nil:
			r := vf.SecretKeyRef
			s := secret(r.Name)
			v, ok := "", false
			if s != nil {
				v, ok = secretData(s)[r.Key]
			}
			switch {
			case ok:
				env[e.Name] = v
			case !isTrue(r.Optional) && s == nil:
				errs = append(errs, fmt.Errorf("env %s: secretKeyRef %s/%s: no Secret %s", e.Name, r.Name, r.Key, r.Name))
			case !isTrue(r.Optional):
				errs = append(errs, fmt.Errorf("env %s: secretKeyRef %s/%s: the Secret has no key %q", e.Name, r.Name,
					r.Key, r.Key))
			}
		case vf.ConfigMapKeyRef != nil:
			r := vf.ConfigMapKeyRef
			cm := configMap(r.Name)
			v, ok := "", false
			if cm != nil {
				v, ok = cm.Data[r.Key]
			}
			switch {
			case ok:
				env[e.Name] = v
			case !isTrue(r.Optional):
				errs = append(errs, fmt.Errorf("env %s: configMapKeyRef %s/%s does not resolve", e.Name, r.Name, r.Key))
			}
		default:
			errs = append(errs, fmt.Errorf("env %s: only value, secretKeyRef and configMapKeyRef are supported", e.Name))
		}
	}
	return env, errors.Join(errs...)
}

func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// notRegistered is a FUNCTION_TARGET that the binary does not know (yet).
type notRegistered struct {
	service, target, output string
}

func (e *notRegistered) Error() string {
	return fmt.Sprintf("Service %s: FUNCTION_TARGET=%s is not registered in main.go (yet): kitefn -check-config "+
		"says: %s", e.service, e.target, e.output)
}

// checkFunctions runs `kitefn -check-config` — the binary built for this install's store — with the exact
// environment each function's pod would get: its env and envFrom resolved from the install, what Knative
// sets (PORT, K_SERVICE, K_CONFIGURATION, K_REVISION), and K_SINK / K_CE_OVERRIDES where a SinkBinding
// injects them. It proves the target is a function of the binary and that every variable its configuration
// requires is set and valid.
func checkFunctions(in *install, store, bin string) []error {
	var errs []error
	for _, f := range functions(in) {
		owner := "Service " + name(f.svc.ObjectMeta)
		c := f.svc.Spec.Template.Spec.Containers[0]
		env, err := containerEnv(in, f.svc.Namespace, c)
		if err != nil {
			continue // reported by checkReferences
		}
		if got := cmp.Or(env["KITEFN_STORE"], "bbolt"); got != store {
			errs = append(errs, fmt.Errorf("%s: KITEFN_STORE is %q, but this install's image is built for %q",
				owner, got, store))
		}
		port := "8080"
		if len(c.Ports) > 0 {
			port = strconv.Itoa(int(c.Ports[0].ContainerPort))
		}
		env["PORT"], env["K_SERVICE"], env["K_CONFIGURATION"] = port, f.svc.Name, f.svc.Name
		env["K_REVISION"] = f.svc.Name + "-00001"
		for _, sb := range ofType[*sourcesv1.SinkBinding](in) {
			for _, o := range bindingSubjects(in, sb) {
				if o.Value == any(f.svc) {
					env["K_SINK"] = sinkURL(sb)
					if sb.Spec.CloudEventOverrides != nil {
						overrides, _ := json.Marshal(sb.Spec.CloudEventOverrides)
						env["K_CE_OVERRIDES"] = string(overrides)
					}
				}
			}
		}
		out, err := checkConfig(bin, env)
		switch {
		case err != nil && strings.Contains(out, "is not a function"):
			errs = append(errs, &notRegistered{service: name(f.svc.ObjectMeta), target: f.target, output: out})
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: kitefn -check-config refuses its environment: %v: %s", owner, err, out))
		}
	}
	return errs
}

// checkConfig runs the binary with exactly env (nothing inherited from the test's own environment).
func checkConfig(bin string, env map[string]string) (string, error) {
	cmd := exec.Command(bin, "-check-config")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	slices.Sort(cmd.Env)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// sinkURL is the address the SinkBinding resolves its sink to in a cluster.
func sinkURL(sb *sourcesv1.SinkBinding) string {
	d := sb.Spec.Sink
	switch {
	case d.URI != nil && d.Ref == nil:
		return d.URI.String()
	case d.Ref.Kind == "Broker":
		return fmt.Sprintf(brokerIngressFmt, cmp.Or(d.Ref.Namespace, sb.Namespace), d.Ref.Name)
	}
	return fmt.Sprintf("http://%s.%s.svc.cluster.local", d.Ref.Name, cmp.Or(d.Ref.Namespace, sb.Namespace))
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }
func isZero(i *int64) bool { return i != nil && *i == 0 }

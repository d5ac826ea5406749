package graph

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ref is one relation an object states itself: to an object by name, or to every object of a kind its label
// selector matches. inbound refs point at the object stating them (its owner owns it, a PV's claim is stored
// in it).
type ref struct {
	typ       string
	inbound   bool
	gk        schema.GroupKind
	version   string // the version the reference names, when it names one
	namespace string
	name      string
	uid       string // the UID the reference expects (ownerReferences, claimRef): another object of that name is not it
	optional  bool   // a missing target is fine (optional ConfigMap/Secret references)
	selector  labels.Selector
}

// reaches says whether r names or selects target (a cluster-scoped target ignores the namespace the reference
// was stated in).
func (r ref) reaches(target *unstructured.Unstructured) bool {
	ns := target.GetNamespace()
	if r.selector != nil {
		return r.namespace == ns && r.selector.Matches(labels.Set(target.GetLabels()))
	}
	return r.name == target.GetName() && (ns == "" || r.namespace == ns) &&
		(r.uid == "" || r.uid == string(target.GetUID()))
}

// Kinds the rules name.
var (
	podGK         = schema.GroupKind{Kind: "Pod"}
	serviceGK     = schema.GroupKind{Kind: "Service"}
	configMapGK   = schema.GroupKind{Kind: "ConfigMap"}
	secretGK      = schema.GroupKind{Kind: "Secret"}
	pvcGK         = schema.GroupKind{Kind: "PersistentVolumeClaim"}
	pvGK          = schema.GroupKind{Kind: "PersistentVolume"}
	saGK          = schema.GroupKind{Kind: "ServiceAccount"}
	nodeGK        = schema.GroupKind{Kind: "Node"}
	storageGK     = schema.GroupKind{Group: "storage.k8s.io", Kind: "StorageClass"}
	sliceGK       = schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}
	netpolGK      = schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"}
	ingressGK     = schema.GroupKind{Group: "networking.k8s.io", Kind: "Ingress"}
	pdbGK         = schema.GroupKind{Group: "policy", Kind: "PodDisruptionBudget"}
	hpaGK         = schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}
	roleGK        = schema.GroupKind{Group: rbacGroup, Kind: "Role"}
	clusterRoleGK = schema.GroupKind{Group: rbacGroup, Kind: "ClusterRole"}
	bindingGK     = schema.GroupKind{Group: rbacGroup, Kind: "RoleBinding"}
	clusterBindGK = schema.GroupKind{Group: rbacGroup, Kind: "ClusterRoleBinding"}
	mutatingGK    = schema.GroupKind{Group: admissionGroup, Kind: "MutatingWebhookConfiguration"}
	validatingGK  = schema.GroupKind{Group: admissionGroup, Kind: "ValidatingWebhookConfiguration"}
	httpRouteGK   = schema.GroupKind{Group: gatewayGroup, Kind: "HTTPRoute"}
	gatewayGK     = schema.GroupKind{Group: gatewayGroup, Kind: "Gateway"}
	cronJobGK     = schema.GroupKind{Group: "batch", Kind: "CronJob"}
)

const (
	rbacGroup      = "rbac.authorization.k8s.io"
	admissionGroup = "admissionregistration.k8s.io"
	gatewayGroup   = "gateway.networking.k8s.io"
	serviceNameKey = "kubernetes.io/service-name"
)

// traefikGroups serve IngressRoute and Middleware (traefik.containo.us is Traefik v2's older group).
var traefikGroups = []string{"traefik.io", "traefik.containo.us"}

// workloads are the kinds with a pod template searched for the objects that use a ConfigMap, Secret, PVC or
// ServiceAccount (the OpenKruise ones when installed). Any other kind with spec.template still states its uses.
var workloads = []schema.GroupKind{
	podGK,
	{Group: "apps", Kind: "Deployment"}, {Group: "apps", Kind: "StatefulSet"}, {Group: "apps", Kind: "DaemonSet"},
	{Group: "apps", Kind: "ReplicaSet"}, {Group: "batch", Kind: "Job"}, cronJobGK,
	{Group: "apps.kruise.io", Kind: "CloneSet"}, {Group: "apps.kruise.io", Kind: "StatefulSet"},
	{Group: "apps.kruise.io", Kind: "DaemonSet"},
}

// children are the kinds searched (in the owner's namespace) for what an object of a built-in kind owns: those
// its controller creates. A kind of a CRD is searched for every kind of ownable (a CloneSet owns Pods, a Plan
// Jobs). An owned object of another kind still shows its owner when it is reached another way.
var children = map[schema.GroupKind][]schema.GroupKind{
	{Group: "apps", Kind: "Deployment"}:  {{Group: "apps", Kind: "ReplicaSet"}},
	{Group: "apps", Kind: "ReplicaSet"}:  {podGK},
	{Group: "apps", Kind: "StatefulSet"}: {podGK, pvcGK},
	{Group: "apps", Kind: "DaemonSet"}:   {podGK},
	{Group: "batch", Kind: "Job"}:        {podGK},
	cronJobGK:                            {{Group: "batch", Kind: "Job"}},
	serviceGK:                            {sliceGK},
}

// ownable are the kinds searched for what an object of a CRD's kind owns: those controllers commonly create
// (ControllerRevisions and Events are left out as noise).
var ownable = []schema.GroupKind{
	podGK, {Group: "apps", Kind: "ReplicaSet"}, {Group: "apps", Kind: "Deployment"},
	{Group: "apps", Kind: "StatefulSet"}, {Group: "apps", Kind: "DaemonSet"}, {Group: "batch", Kind: "Job"},
	serviceGK, pvcGK, configMapGK, secretGK,
	{Group: "apps.kruise.io", Kind: "CloneSet"}, {Group: "apps.kruise.io", Kind: "StatefulSet"},
}

// childKinds are the kinds searched for what an object of kind gk owns.
func childKinds(gk schema.GroupKind) []schema.GroupKind {
	if builtin(gk.Group) {
		return children[gk]
	}
	return ownable
}

// builtin says a group is Kubernetes' own (no dot, or *.k8s.io), not a CRD's.
func builtin(group string) bool {
	return !strings.Contains(group, ".") || strings.HasSuffix(group, ".k8s.io")
}

// metadataOnly says which kinds are listed without their content: Secrets (their data is never read, nor
// shipped to kitefn), ConfigMaps (often large), and kinds whose spec no rule reads.
func metadataOnly(gvr schema.GroupVersionResource) bool {
	switch resourceName(gvr) {
	case "secrets", "configmaps", "serviceaccounts", "controllerrevisions.apps", "storageclasses.storage.k8s.io",
		"roles.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io":
		return true
	}
	return false
}

// source is a kind whose objects may reference a target, and where to list them.
type source struct {
	gk    schema.GroupKind
	scope func(q Query, target *unstructured.Unstructured) Query // nil: the target's namespace
}

func allNamespaces(q Query, _ *unstructured.Unstructured) Query { q.Namespace = ""; return q }

// sourcesOf lists the kinds whose objects may reference target.
func sourcesOf(target *unstructured.Unstructured) []source {
	gk := target.GroupVersionKind().GroupKind()
	var out []source
	add := func(gks ...schema.GroupKind) {
		for _, g := range gks {
			out = append(out, source{gk: g})
		}
	}
	switch gk {
	case podGK:
		add(serviceGK, netpolGK, pdbGK)
	case serviceGK:
		out = append(out, source{gk: sliceGK, scope: func(q Query, t *unstructured.Unstructured) Query {
			q.LabelSelector = serviceNameKey + "=" + t.GetName()
			return q
		}})
		add(ingressGK, httpRouteGK, mutatingGK, validatingGK)
		for _, g := range traefikGroups {
			add(schema.GroupKind{Group: g, Kind: "IngressRoute"})
		}
	case configMapGK, pvcGK:
		add(workloads...)
	case secretGK:
		add(workloads...)
		add(ingressGK)
		for _, g := range traefikGroups {
			add(schema.GroupKind{Group: g, Kind: "IngressRoute"})
		}
	case saGK:
		add(workloads...)
		add(bindingGK, clusterBindGK)
	case nodeGK:
		out = append(out, source{gk: podGK, scope: func(q Query, t *unstructured.Unstructured) Query {
			q.Namespace, q.FieldSelector = "", "spec.nodeName="+t.GetName()
			return q
		}})
	case storageGK:
		add(pvGK)
	case roleGK:
		add(bindingGK)
	case clusterRoleGK:
		add(clusterBindGK)
		out = append(out, source{gk: bindingGK, scope: allNamespaces})
	case gatewayGK:
		out = append(out, source{gk: httpRouteGK, scope: allNamespaces})
	}
	for _, g := range traefikGroups {
		if gk == (schema.GroupKind{Group: g, Kind: "Middleware"}) {
			add(schema.GroupKind{Group: g, Kind: "IngressRoute"})
		}
	}
	if _, ok := nested(target.Object, "spec", "template"); ok || gk == cronJobGK {
		add(hpaGK) // a workload: maybe scaled
	}
	return out
}

// refsOf lists the relations x states in its own content.
func refsOf(x *unstructured.Unstructured) []ref {
	ns := x.GetNamespace()
	var out []ref
	for _, or := range x.GetOwnerReferences() {
		gv, _ := schema.ParseGroupVersion(or.APIVersion)
		out = append(out, ref{typ: Owns, inbound: true, gk: schema.GroupKind{Group: gv.Group, Kind: or.Kind},
			version: gv.Version, namespace: ns, name: or.Name, uid: string(or.UID)})
	}
	gk := x.GroupVersionKind().GroupKind()
	obj := x.Object
	switch gk {
	case podGK:
		if spec, ok := nested(obj, "spec"); ok {
			out = append(out, podSpecRefs(spec, ns)...)
			if node := str(spec, "nodeName"); node != "" {
				out = append(out, ref{typ: RunsOn, gk: nodeGK, name: node})
			}
		}
	case serviceGK:
		if sel := selectorOf(strMap(obj, "spec", "selector")); sel != nil {
			out = append(out, ref{typ: Selects, gk: podGK, namespace: ns, selector: sel})
		}
	case sliceGK:
		if svc := x.GetLabels()[serviceNameKey]; svc != "" {
			out = append(out, ref{typ: Binds, gk: serviceGK, namespace: ns, name: svc})
		}
	case netpolGK:
		out = append(out, labelSelectorRef(obj, ns, true, "spec", "podSelector")...)
	case pdbGK:
		out = append(out, labelSelectorRef(obj, ns, false, "spec", "selector")...)
	case hpaGK:
		if t, ok := nested(obj, "spec", "scaleTargetRef"); ok {
			gv, _ := schema.ParseGroupVersion(str(t, "apiVersion"))
			out = append(out, ref{typ: Scales, gk: schema.GroupKind{Group: gv.Group, Kind: str(t, "kind")},
				version: gv.Version, namespace: ns, name: str(t, "name")})
		}
	case pvcGK:
		if v := str(obj, "spec", "volumeName"); v != "" {
			out = append(out, ref{typ: Stores, gk: pvGK, name: v})
		}
	case pvGK:
		if sc := str(obj, "spec", "storageClassName"); sc != "" {
			out = append(out, ref{typ: Stores, gk: storageGK, name: sc})
		}
		if c, ok := nested(obj, "spec", "claimRef"); ok && str(c, "name") != "" {
			out = append(out, ref{typ: Stores, inbound: true, gk: pvcGK, namespace: str(c, "namespace"),
				name: str(c, "name"), uid: str(c, "uid")})
		}
	case ingressGK:
		out = append(out, ingressRefs(obj, ns)...)
	case httpRouteGK:
		out = append(out, httpRouteRefs(obj, ns)...)
	case bindingGK, clusterBindGK:
		out = append(out, bindingRefs(obj, ns)...)
	case mutatingGK, validatingGK:
		for _, w := range slice(obj, "webhooks") {
			if s, ok := nested(w, "clientConfig", "service"); ok {
				out = append(out, ref{typ: Routes, gk: serviceGK, namespace: str(s, "namespace"), name: str(s, "name")})
			}
		}
	case cronJobGK:
		if spec, ok := nested(obj, "spec", "jobTemplate", "spec", "template", "spec"); ok {
			out = append(out, podSpecRefs(spec, ns)...)
		}
	default:
		if spec, ok := nested(obj, "spec", "template", "spec"); ok && isTemplate(spec) {
			out = append(out, podSpecRefs(spec, ns)...)
		}
		for _, g := range traefikGroups {
			if gk == (schema.GroupKind{Group: g, Kind: "IngressRoute"}) {
				out = append(out, ingressRouteRefs(obj, ns, g)...)
			}
		}
	}
	return out
}

// isTemplate says a spec.template.spec is a PodSpec (it has containers), not some CRD's other template.
func isTemplate(spec map[string]any) bool {
	_, ok := spec["containers"]
	return ok
}

func labelSelectorRef(obj map[string]any, ns string, emptyMatchesAll bool, path ...string) []ref {
	raw, ok := nested(obj, path...)
	if !ok {
		return nil
	}
	var ls metav1.LabelSelector
	if err := fromUnstructured(raw, &ls); err != nil {
		return nil
	}
	if len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0 && !emptyMatchesAll {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil
	}
	return []ref{{typ: Selects, gk: podGK, namespace: ns, selector: sel}}
}

func ingressRefs(obj map[string]any, ns string) []ref {
	var out []ref
	backend := func(b map[string]any) {
		if name := str(b, "service", "name"); name != "" {
			out = append(out, ref{typ: Routes, gk: serviceGK, namespace: ns, name: name})
		}
	}
	if b, ok := nested(obj, "spec", "defaultBackend"); ok {
		backend(b)
	}
	for _, rule := range slice(obj, "spec", "rules") {
		for _, p := range slice(rule, "http", "paths") {
			if b, ok := nested(p, "backend"); ok {
				backend(b)
			}
		}
	}
	for _, t := range slice(obj, "spec", "tls") {
		if s := str(t, "secretName"); s != "" {
			out = append(out, ref{typ: Uses, gk: secretGK, namespace: ns, name: s})
		}
	}
	return out
}

func httpRouteRefs(obj map[string]any, ns string) []ref {
	var out []ref
	for _, p := range slice(obj, "spec", "parentRefs") {
		if group, kind := or(str(p, "group"), gatewayGroup), or(str(p, "kind"), "Gateway"); group == gatewayGroup && kind == "Gateway" {
			out = append(out, ref{typ: Routes, gk: gatewayGK, namespace: or(str(p, "namespace"), ns), name: str(p, "name")})
		}
	}
	for _, rule := range slice(obj, "spec", "rules") {
		for _, b := range slice(rule, "backendRefs") {
			if str(b, "group") == "" && or(str(b, "kind"), "Service") == "Service" {
				out = append(out, ref{typ: Routes, gk: serviceGK, namespace: or(str(b, "namespace"), ns), name: str(b, "name")})
			}
		}
	}
	return out
}

func ingressRouteRefs(obj map[string]any, ns, group string) []ref {
	var out []ref
	for _, r := range slice(obj, "spec", "routes") {
		for _, s := range slice(r, "services") {
			if or(str(s, "kind"), "Service") == "Service" {
				out = append(out, ref{typ: Routes, gk: serviceGK, namespace: or(str(s, "namespace"), ns), name: str(s, "name")})
			}
		}
		for _, m := range slice(r, "middlewares") {
			out = append(out, ref{typ: Uses, gk: schema.GroupKind{Group: group, Kind: "Middleware"},
				namespace: or(str(m, "namespace"), ns), name: str(m, "name")})
		}
	}
	if s := str(obj, "spec", "tls", "secretName"); s != "" {
		out = append(out, ref{typ: Uses, gk: secretGK, namespace: ns, name: s})
	}
	return out
}

func bindingRefs(obj map[string]any, ns string) []ref {
	var out []ref
	if r, ok := nested(obj, "roleRef"); ok {
		gk := roleGK
		if str(r, "kind") == "ClusterRole" {
			gk = clusterRoleGK
		}
		out = append(out, ref{typ: Binds, gk: gk, namespace: ns, name: str(r, "name")})
	}
	for _, s := range slice(obj, "subjects") {
		if str(s, "kind") == "ServiceAccount" {
			out = append(out, ref{typ: Binds, gk: saGK, namespace: or(str(s, "namespace"), ns), name: str(s, "name")})
		}
	}
	return out
}

// podSpecRefs lists what a PodSpec uses: ConfigMaps and Secrets (volumes, projected volumes, env, envFrom,
// imagePullSecrets), PVCs and the ServiceAccount.
func podSpecRefs(spec map[string]any, ns string) []ref {
	var out []ref
	use := func(gk schema.GroupKind, name string, optional bool) {
		if name != "" {
			out = append(out, ref{typ: Uses, gk: gk, namespace: ns, name: name, optional: optional})
		}
	}
	for _, v := range slice(spec, "volumes") {
		if m, ok := nested(v, "configMap"); ok {
			use(configMapGK, str(m, "name"), boolean(m, "optional"))
		}
		if m, ok := nested(v, "secret"); ok {
			use(secretGK, str(m, "secretName"), boolean(m, "optional"))
		}
		if m, ok := nested(v, "persistentVolumeClaim"); ok {
			use(pvcGK, str(m, "claimName"), false)
		}
		for _, s := range slice(v, "projected", "sources") {
			if m, ok := nested(s, "configMap"); ok {
				use(configMapGK, str(m, "name"), boolean(m, "optional"))
			}
			if m, ok := nested(s, "secret"); ok {
				use(secretGK, str(m, "name"), boolean(m, "optional"))
			}
		}
	}
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		for _, c := range slice(spec, list) {
			for _, e := range slice(c, "env") {
				if m, ok := nested(e, "valueFrom", "configMapKeyRef"); ok {
					use(configMapGK, str(m, "name"), boolean(m, "optional"))
				}
				if m, ok := nested(e, "valueFrom", "secretKeyRef"); ok {
					use(secretGK, str(m, "name"), boolean(m, "optional"))
				}
			}
			for _, e := range slice(c, "envFrom") {
				if m, ok := nested(e, "configMapRef"); ok {
					use(configMapGK, str(m, "name"), boolean(m, "optional"))
				}
				if m, ok := nested(e, "secretRef"); ok {
					use(secretGK, str(m, "name"), boolean(m, "optional"))
				}
			}
		}
	}
	for _, s := range slice(spec, "imagePullSecrets") {
		use(secretGK, str(s, "name"), false)
	}
	use(saGK, or(str(spec, "serviceAccountName"), str(spec, "serviceAccount")), false)
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Helpers over unstructured content that never fail: a field of another type reads as absent.

// nested is the map at path, not copied (unstructured.NestedMap deep-copies): callers only read it.
func nested(obj map[string]any, path ...string) (map[string]any, bool) {
	raw, ok, err := unstructured.NestedFieldNoCopy(obj, path...)
	if err != nil || !ok {
		return nil, false
	}
	m, ok := raw.(map[string]any)
	return m, ok
}

func fromUnstructured(raw map[string]any, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(raw, into)
}

func str(obj map[string]any, path ...string) string {
	s, _, _ := unstructured.NestedString(obj, path...)
	return strings.TrimSpace(s)
}

func boolean(obj map[string]any, path ...string) bool {
	b, _, _ := unstructured.NestedBool(obj, path...)
	return b
}

func strMap(obj map[string]any, path ...string) map[string]string {
	m, _, _ := unstructured.NestedStringMap(obj, path...)
	return m
}

func slice(obj map[string]any, path ...string) []map[string]any {
	raw, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	items, _ := raw.([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// Package crd knows the CRD families kitefn has menus for (OpenKruise, Traefik, Tailscale, the K3s
// system-upgrade-controller) as plain data, and resolves any CustomResourceDefinition of a cluster — family or
// not — to the group, version, resource and scope to call it with. Everything is read from the CRD itself
// through the dynamic client (no apiextensions-apiserver import: it costs cold start); the family data only
// names kinds and says what to install when one is missing.
package crd

import (
	"slices"
	"strings"
	"unicode"
)

// Kind is one custom resource kind of a family, as upstream defines it. Resolution never trusts it for scope or
// version: a cluster's CRD may differ from upstream, and the CRD wins.
type Kind struct {
	Kind   string `json:"kind"`
	Title  string `json:"title"` // menu label, e.g. "Advanced StatefulSet"
	Plural string `json:"plural"`
	Group  string `json:"group"`
	// Versions the family knows, newest first (Kubernetes version priority).
	Versions   []string `json:"versions"`
	ShortNames []string `json:"shortNames,omitempty"`
	// ClusterScoped is upstream's scope, for menus before anything is installed.
	ClusterScoped bool `json:"clusterScoped"`
	// Scalable: upstream has a scale subresource (kubectl scale works).
	Scalable bool `json:"scalable"`
	// Restartable: a long-running workload whose spec.template is a PodTemplateSpec, so a rollout restart
	// (stamping spec.template.metadata.annotations) rolls its pods.
	Restartable bool `json:"restartable"`
}

// CRD is the CustomResourceDefinition name, plural.group.
func (k Kind) CRD() string { return k.Plural + "." + k.Group }

// Family is a set of kinds installed together.
type Family struct {
	Name  string `json:"name"` // stable identifier, e.g. "openkruise"
	Title string `json:"title"`
	// InstallHint completes "please install …", e.g. "OpenKruise (https://openkruise.io/docs/installation)".
	InstallHint string `json:"installHint"`
	Kinds       []Kind `json:"kinds"`
}

// Family names.
const (
	OpenKruise    = "openkruise"
	Traefik       = "traefik"
	TraefikLegacy = "traefik-legacy"
	Tailscale     = "tailscale"
	SystemUpgrade = "system-upgrade-controller"
)

const (
	kruiseApps     = "apps.kruise.io"
	kruisePolicy   = "policy.kruise.io"
	traefikIO      = "traefik.io"
	traefikContain = "traefik.containo.us"
	tailscaleCom   = "tailscale.com"
	upgradeCattle  = "upgrade.cattle.io"
)

// Families returns the known families, freshly built on each call so callers may keep or change the result.
// Earlier families win when a bare name (kind, plural, short name) is ambiguous: Traefik's traefik.io comes
// before the legacy traefik.containo.us group, which only its fully qualified names reach.
func Families() []Family {
	return []Family{openKruise(), traefik(), traefikLegacy(), tailscale(), systemUpgrade()}
}

// openKruise lists every kind of github.com/openkruise/kruise-api v1.8.0 (apps/v1alpha1, apps/v1beta1,
// policy/v1alpha1), with the plural, scope, short names and scale subresource of its kubebuilder markers.
func openKruise() Family {
	a1 := []string{"v1alpha1"}
	k := func(kind, title, plural, group string, versions []string, short ...string) Kind {
		return Kind{Kind: kind, Title: title, Plural: plural, Group: group, Versions: versions, ShortNames: short}
	}
	cloneSet := k("CloneSet", "CloneSet", "clonesets", kruiseApps, a1, "clone")
	cloneSet.Scalable, cloneSet.Restartable = true, true
	// Kind and plural are the built-in ones: only statefulsets.apps.kruise.io, "asts" or the title reach it.
	sts := k("StatefulSet", "Advanced StatefulSet", "statefulsets", kruiseApps, []string{"v1beta1", "v1alpha1"},
		"sts", "asts")
	sts.Scalable, sts.Restartable = true, true
	ds := k("DaemonSet", "Advanced DaemonSet", "daemonsets", kruiseApps, a1, "daemon", "ads")
	ds.Restartable = true
	ud := k("UnitedDeployment", "UnitedDeployment", "uniteddeployments", kruiseApps, a1, "ud")
	ud.Scalable = true // its spec.template holds sub-workload templates, not a PodTemplateSpec: no restart
	cluster := func(k Kind) Kind { k.ClusterScoped = true; return k }
	return Family{
		Name:        OpenKruise,
		Title:       "OpenKruise",
		InstallHint: "OpenKruise (https://openkruise.io/docs/installation)",
		Kinds: []Kind{
			cloneSet,
			sts,
			ds,
			k("BroadcastJob", "BroadcastJob", "broadcastjobs", kruiseApps, a1, "bcj"),
			k("AdvancedCronJob", "AdvancedCronJob", "advancedcronjobs", kruiseApps, a1, "acj"),
			cluster(k("SidecarSet", "SidecarSet", "sidecarsets", kruiseApps, a1)),
			ud,
			k("ImagePullJob", "ImagePullJob", "imagepulljobs", kruiseApps, a1),
			k("ImageListPullJob", "ImageListPullJob", "imagelistpulljobs", kruiseApps, a1),
			cluster(k("NodeImage", "NodeImage", "nodeimages", kruiseApps, a1)),
			k("ContainerRecreateRequest", "ContainerRecreateRequest", "containerrecreaterequests", kruiseApps, a1,
				"crr"),
			cluster(k("ResourceDistribution", "ResourceDistribution", "resourcedistributions", kruiseApps, a1,
				"distributor")),
			k("WorkloadSpread", "WorkloadSpread", "workloadspreads", kruiseApps, a1, "ws"),
			k("PodProbeMarker", "PodProbeMarker", "podprobemarkers", kruiseApps, a1),
			cluster(k("NodePodProbe", "NodePodProbe", "nodepodprobes", kruiseApps, a1)),
			k("PersistentPodState", "PersistentPodState", "persistentpodstates", kruiseApps, a1),
			k("EphemeralJob", "EphemeralJob", "ephemeraljobs", kruiseApps, a1, "ejob"),
			k("PodUnavailableBudget", "PodUnavailableBudget", "podunavailablebudgets", kruisePolicy, a1, "pub"),
		},
	}
}

// traefikKinds are Traefik's namespaced kinds in one group; Traefik defines no short names.
func traefikKinds(group string, kinds ...string) []Kind {
	out := make([]Kind, 0, len(kinds))
	for _, kind := range kinds {
		out = append(out, Kind{Kind: kind, Title: kind, Plural: strings.ToLower(kind) + "s", Group: group,
			Versions: []string{"v1alpha1"}})
	}
	return out
}

// traefik is Traefik v3 (traefik.io/v1alpha1, also served by v2.10+).
func traefik() Family {
	return Family{
		Name:        Traefik,
		Title:       "Traefik",
		InstallHint: "the Traefik CRDs (https://doc.traefik.io/traefik/providers/kubernetes-crd/)",
		Kinds: traefikKinds(traefikIO, "IngressRoute", "IngressRouteTCP", "IngressRouteUDP", "Middleware",
			"MiddlewareTCP", "TLSOption", "TLSStore", "TraefikService", "ServersTransport", "ServersTransportTCP"),
	}
}

// traefikLegacy is the traefik.containo.us group of Traefik v2 (removed in v3), a family of its own so a
// v3-only cluster shows Traefik as fully installed.
func traefikLegacy() Family {
	return Family{
		Name:        TraefikLegacy,
		Title:       "Traefik v2 (traefik.containo.us)",
		InstallHint: "the Traefik v2 CRDs (https://doc.traefik.io/traefik/v2.11/providers/kubernetes-crd/)",
		Kinds: traefikKinds(traefikContain, "IngressRoute", "IngressRouteTCP", "IngressRouteUDP", "Middleware",
			"MiddlewareTCP", "TLSOption", "TLSStore", "TraefikService", "ServersTransport"),
	}
}

// tailscale is the Tailscale Kubernetes operator's released, cluster-scoped kinds.
func tailscale() Family {
	k := func(kind, plural string, short ...string) Kind {
		return Kind{Kind: kind, Title: kind, Plural: plural, Group: tailscaleCom, Versions: []string{"v1alpha1"},
			ShortNames: short, ClusterScoped: true}
	}
	return Family{
		Name:        Tailscale,
		Title:       "Tailscale",
		InstallHint: "the Tailscale Kubernetes operator (https://tailscale.com/kb/1236/kubernetes-operator)",
		Kinds: []Kind{
			k("Connector", "connectors", "cn"),
			k("ProxyClass", "proxyclasses"),
			k("ProxyGroup", "proxygroups", "pg"),
			k("DNSConfig", "dnsconfigs", "dc"),
			k("Recorder", "recorders", "rec"),
		},
	}
}

func systemUpgrade() Family {
	return Family{
		Name:        SystemUpgrade,
		Title:       "K3s system-upgrade-controller",
		InstallHint: "the system-upgrade-controller (https://docs.k3s.io/upgrades/automated)",
		Kinds: []Kind{{Kind: "Plan", Title: "Plan", Plural: "plans", Group: upgradeCattle,
			Versions: []string{"v1"}}},
	}
}

// FindKind finds a family kind by its CRD name (plural.group; singular.group and shortname.group work too) or
// by a bare kind, plural, short name or title, all case-insensitive. A bare name that Kubernetes itself
// defines ("statefulsets", "StatefulSet", "sts", "daemonset"…) is never claimed: built-ins win, and the family
// kind needs its qualified name or a name of its own ("asts", "Advanced StatefulSet").
func FindKind(ref string) (Family, Kind, bool) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if ref == "" || builtinName(ref) {
		// Checked before the family data is built: the resources function asks for every request, and most
		// name a built-in kind.
		return Family{}, Kind{}, false
	}
	families := Families()
	if name, group, ok := strings.Cut(ref, "."); ok {
		for _, f := range families {
			for _, k := range f.Kinds {
				if group == k.Group && k.matches(name) {
					return f, k, true
				}
			}
		}
		return Family{}, Kind{}, false
	}
	squashed := squash(ref)
	for _, f := range families {
		for _, k := range f.Kinds {
			if k.matches(ref) || squash(k.Title) == squashed {
				return f, k, true
			}
		}
	}
	return Family{}, Kind{}, false
}

// matches says whether a lower-case bare name is this kind's plural, kind, or a short name.
func (k Kind) matches(name string) bool {
	return name == k.Plural || strings.EqualFold(name, k.Kind) || slices.Contains(k.ShortNames, name)
}

// squash lower-cases and drops spaces, dashes and underscores: "Advanced StatefulSet" → "advancedstatefulset".
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '_':
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// builtinName reports the resource names, singular names, lower-case kinds and short names the discovery of
// kube-apiserver v1.37 announces for its built-in groups (plus kubectl's "all").
func builtinName(name string) bool {
	switch name {
	case "all", "apiservice", "apiservices", "binding", "bindings", "certificatesigningrequest",
		"certificatesigningrequests", "cj", "clusterrole", "clusterrolebinding", "clusterrolebindings",
		"clusterroles", "clustertrustbundle", "clustertrustbundles", "cm", "componentstatus", "componentstatuses",
		"configmap", "configmaps", "controllerrevision", "controllerrevisions", "crd", "crds", "cronjob",
		"cronjobs", "cs", "csidriver", "csidrivers", "csinode", "csinodes", "csistoragecapacities",
		"csistoragecapacity", "csr", "customresourcedefinition", "customresourcedefinitions", "daemonset",
		"daemonsets", "deploy", "deployment", "deployments", "deviceclass", "deviceclasses", "devicetaintrule",
		"devicetaintrules", "ds", "endpoints", "endpointslice", "endpointslices", "ep", "ev", "event", "events",
		"flowschema", "flowschemas", "horizontalpodautoscaler", "horizontalpodautoscalers", "hpa", "ing",
		"ingress", "ingressclass", "ingressclasses", "ingresses", "ip", "ipaddress", "ipaddresses", "job", "jobs",
		"lease", "leases", "limitrange", "limitranges", "limits", "localsubjectaccessreview",
		"localsubjectaccessreviews", "mutatingadmissionpolicies", "mutatingadmissionpolicy",
		"mutatingadmissionpolicybinding", "mutatingadmissionpolicybindings", "mutatingwebhookconfiguration",
		"mutatingwebhookconfigurations", "namespace", "namespaces", "netpol", "networkpolicies", "networkpolicy",
		"no", "node", "nodes", "ns", "pc", "pdb", "persistentvolume", "persistentvolumeclaim",
		"persistentvolumeclaims", "persistentvolumes", "po", "pod", "podcertificaterequest",
		"podcertificaterequests", "poddisruptionbudget", "poddisruptionbudgets", "pods", "podtemplate",
		"podtemplates", "priorityclass", "priorityclasses", "prioritylevelconfiguration",
		"prioritylevelconfigurations", "pv", "pvc", "quota", "rc", "replicaset", "replicasets",
		"replicationcontroller", "replicationcontrollers", "resourceclaim", "resourceclaims",
		"resourceclaimtemplate", "resourceclaimtemplates", "resourcequota", "resourcequotas", "resourceslice",
		"resourceslices", "role", "rolebinding", "rolebindings", "roles", "rs", "runtimeclass", "runtimeclasses",
		"sa", "sc", "secret", "secrets", "selfsubjectaccessreview", "selfsubjectaccessreviews",
		"selfsubjectreview", "selfsubjectreviews", "selfsubjectrulesreview", "selfsubjectrulesreviews", "service",
		"serviceaccount", "serviceaccounts", "servicecidr", "servicecidrs", "services", "statefulset",
		"statefulsets", "storageclass", "storageclasses", "storageversionmigration", "storageversionmigrations",
		"sts", "subjectaccessreview", "subjectaccessreviews", "svc", "tokenreview", "tokenreviews", "vac",
		"validatingadmissionpolicies", "validatingadmissionpolicy", "validatingadmissionpolicybinding",
		"validatingadmissionpolicybindings", "validatingwebhookconfiguration", "validatingwebhookconfigurations",
		"volumeattachment", "volumeattachments", "volumeattributesclass", "volumeattributesclasses":
		return true
	}
	return false
}

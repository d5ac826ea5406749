package graph

import (
	"slices"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return &u
}

// describe is a ref as "type kind ns/name [optional]".
func describe(refs []ref) []string {
	var out []string
	for _, r := range refs {
		s := r.typ + " " + r.gk.Kind + " " + r.namespace + "/" + r.name
		if r.optional {
			s += " optional"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// A CronJob states what its job template's pods use: projected volumes, env, envFrom, imagePullSecrets, the
// ServiceAccount; optional references are marked so.
func TestCronJobTemplateRefs(t *testing.T) {
	x := decode(t, `
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ops}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: runner
          imagePullSecrets: [{name: registry}]
          initContainers:
          - name: init
            env: [{name: A, valueFrom: {configMapKeyRef: {name: init-config, key: a, optional: true}}}]
          containers:
          - name: c
            envFrom: [{secretRef: {name: creds}}]
          volumes:
          - name: p
            projected:
              sources:
              - configMap: {name: projected-config}
              - secret: {name: projected-secret, optional: true}
          - name: s
            secret: {secretName: volume-secret}
`)
	got := describe(refsOf(x))
	want := []string{
		"uses ConfigMap ops/init-config optional", "uses Secret ops/creds", "uses ConfigMap ops/projected-config",
		"uses Secret ops/projected-secret optional", "uses Secret ops/volume-secret", "uses Secret ops/registry",
		"uses ServiceAccount ops/runner",
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("refs:\n got  %q\n want %q", got, want)
	}
}

// A CRD whose spec.template is not a pod template states no uses; one whose is does.
func TestTemplateMustBePodSpec(t *testing.T) {
	notPods := decode(t, `
apiVersion: example.com/v1
kind: Report
metadata: {name: r, namespace: ns}
spec: {template: {spec: {volumes: [{name: v, configMap: {name: c}}]}}}
`)
	if refs := refsOf(notPods); len(refs) != 0 {
		t.Errorf("refs of a non-pod template: %v", describe(refs))
	}
	pods := decode(t, `
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata: {name: cs, namespace: ns}
spec: {template: {spec: {containers: [{name: c}], volumes: [{name: v, configMap: {name: c}}]}}}
`)
	if got := describe(refsOf(pods)); !slices.Equal(got, []string{"uses ConfigMap ns/c"}) {
		t.Errorf("refs of a CloneSet: %v", got)
	}
}

func TestStatus(t *testing.T) {
	for doc, want := range map[string]string{
		`{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Pending}}`:                                            "Pending",
		`{apiVersion: v1, kind: Pod, metadata: {name: p, deletionTimestamp: "2026-01-01T00:00:00Z"}, status: {phase: Running}}`: "Terminating",
		`{apiVersion: apps/v1, kind: Deployment, metadata: {name: d}, spec: {replicas: 3}, status: {readyReplicas: 2}}`:         "ready 2/3",
		`{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, status: {numberReady: 1, desiredNumberScheduled: 4}}`:      "ready 1/4",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {conditions: [{type: Complete, status: "True"}]}}`:      "Complete",
		`{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {active: 1}}`:                                           "Running",
		`{apiVersion: v1, kind: Node, metadata: {name: n}, status: {conditions: [{type: Ready, status: "False"}]}}`:             "NotReady",
		`{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}`:                                                                "",
	} {
		if got := Status(decode(t, doc)); got != want {
			t.Errorf("Status(%s) = %q, want %q", doc, got, want)
		}
	}
}

package index

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

func obj(ns, name string, labels, annotations map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("u-" + name),
		Labels: labels, Annotations: annotations,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply"}}}}
}

// TestKindStore: the Reflector's store keeps compact entries, counts their bytes exactly back to zero, drops
// managedFields and the last-applied annotation, and lower-cases once.
func TestKindStore(t *testing.T) {
	var total atomic.Int64
	k := newKind(Resource{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Kind: "ConfigMap",
		Namespaced: true}, &total, nil)
	big := strings.Repeat("x", 10000)
	if err := k.Replace([]any{
		obj("a", "Web-One", map[string]string{"App": "Shop"}, map[string]string{lastApplied: big, "note": big}),
		obj("b", "two", nil, nil),
	}, "1"); err != nil {
		t.Fatal(err)
	}
	if k.objects != 2 || !k.synced || k.state != StateWatching || total.Load() != k.bytes {
		t.Fatalf("after replace: %d objects, synced %v, state %s, %d/%d bytes", k.objects, k.synced, k.state,
			total.Load(), k.bytes)
	}
	e := k.buckets["a"].entries[0]
	if e.lname != "web-one" || e.llabels != "app=shop" || e.labels != "App=Shop" || strings.Contains(e.lannots, "last-applied") ||
		len(e.lannots) > annotationsMax {
		t.Fatalf("entry %+v", e)
	}
	if per := k.bytes / 2; per > 1024 {
		t.Fatalf("%d bytes per entry", per)
	}
	e2 := k.buckets["b"].entries[0]
	if !sameString(e2.lname, e2.name) {
		t.Fatal("an already lower-case name is stored twice")
	}
	_ = k.Add(obj("a", "three", nil, nil))
	_ = k.Update(obj("a", "Web-One", map[string]string{"app": "other"}, nil))
	_ = k.Delete(obj("a", "Web-One", nil, nil))
	if k.objects != 2 || k.buckets["a"].entries[0].name != "three" || k.buckets["a"].pos["three"] != 0 {
		t.Fatalf("after changes: %d objects %+v", k.objects, k.buckets["a"])
	}
	_ = k.Delete(obj("a", "three", nil, nil))
	_ = k.Delete(obj("b", "two", nil, nil))
	if k.objects != 0 || k.bytes != 0 || total.Load() != 0 || len(k.buckets) != 0 {
		t.Fatalf("emptied: %d objects %d bytes %d total %d buckets", k.objects, k.bytes, total.Load(), len(k.buckets))
	}
	// After release a stopping reflector's writes are ignored.
	_ = k.Add(obj("a", "late", nil, nil))
	k.release()
	_ = k.Add(obj("a", "later", nil, nil))
	if total.Load() != 0 || k.objects != 0 {
		t.Fatalf("after release: %d bytes %d objects", total.Load(), k.objects)
	}
}

func TestTopKeepsTheBest(t *testing.T) {
	res := &Resource{Order: 1}
	top := NewTop(3)
	for i, name := range []string{"e", "b", "d", "a", "c"} {
		e := entry{name: name}
		top.offer("c", res, "ns", 10+i%2, MatchName, &e)
	}
	var got []string
	for _, h := range top.Sorted() {
		got = append(got, h.Name())
	}
	// b (11) and a (11) score higher than e, d, c (10); then by name.
	if strings.Join(got, ",") != "a,b,c" || top.Total != 5 {
		t.Fatalf("%v total %d", got, top.Total)
	}
}

// BenchmarkScan: one kind of ~19k objects over 100 namespaces, a substring term, top 50.
func BenchmarkScan(b *testing.B) {
	var total atomic.Int64
	k := newKind(Resource{Kind: "Pod", Namespaced: true}, &total, nil)
	list := make([]any, 0, 19000)
	for i := range 19000 {
		list = append(list, obj("ns-"+strconv.Itoa(i%100), "web-"+strconv.Itoa(i)+"-abcdef",
			map[string]string{"app": "web-" + strconv.Itoa(i%50), "pod-template-hash": "7d4b9c"}, nil))
	}
	_ = k.Replace(list, "1")
	q := &Query{Term: "eb-18"}
	b.ResetTimer()
	for range b.N {
		top := NewTop(50)
		k.Scan("c", q, top)
		_ = top.Sorted()
	}
	b.ReportMetric(float64(k.bytes)/19000, "bytes/object") // after the loop: ResetTimer clears metrics
}

// TestKindNamespacesAndAllow: Namespaces lists the buckets a kind holds (what access is asked for), and Scan
// asks Allow once per bucket and offers nothing from a bucket it refuses.
func TestKindNamespacesAndAllow(t *testing.T) {
	var total atomic.Int64
	k := newKind(Resource{GVR: schema.GroupVersionResource{Version: "v1", Resource: "pods"}, Kind: "Pod",
		Namespaced: true}, &total, nil)
	if err := k.Replace([]any{obj("a", "web-1", nil, nil), obj("a", "web-2", nil, nil), obj("b", "web-3", nil, nil),
		obj("c", "web-4", nil, nil)}, "1"); err != nil {
		t.Fatal(err)
	}
	got := k.Namespaces()
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("namespaces %v", got)
	}
	asked := map[string]int{}
	q := &Query{Term: "web", Allow: func(resource, ns string) bool {
		if resource != "pods" {
			t.Errorf("asked for %q", resource)
		}
		asked[ns]++
		return ns == "a" || ns == "c"
	}}
	top := NewTop(10)
	if scanned := k.Scan("x", q, top); scanned != 3 {
		t.Fatalf("scanned %d objects, want the 3 of allowed buckets", scanned)
	}
	var hits []string
	for _, h := range top.Sorted() {
		hits = append(hits, h.Namespace+"/"+h.Name())
	}
	if !slices.Equal(hits, []string{"a/web-1", "a/web-2", "c/web-4"}) {
		t.Fatalf("hits %v", hits)
	}
	if len(asked) != 3 || asked["a"] != 1 || asked["b"] != 1 || asked["c"] != 1 {
		t.Fatalf("Allow asked %v, want once per bucket", asked)
	}
	if err := k.Delete(obj("b", "web-3", nil, nil)); err != nil {
		t.Fatal(err)
	}
	got = k.Namespaces()
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after the last of b went: %v", got)
	}
}

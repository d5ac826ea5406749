package resources

import (
	"bytes"
	"reflect"
	"testing"
)

// A filtered page keeps the envelope but not remainingItemCount, which counted items the caller does not see.
func TestScopeFilterKeepsAdmittedItemsAndDropsRemainingCount(t *testing.T) {
	in := []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"c1","remainingItemCount":12},"items":[
	 {"metadata":{"name":"a","namespace":"team-a","creationTimestamp":"2026-01-01T00:00:00Z"}},
	 {"metadata":{"namespace":"kube-system","name":"s","creationTimestamp":"2026-01-02T00:00:00Z"}},
	 {"metadata":{"name":"b","namespace":"team-b","creationTimestamp":"2026-01-03T00:00:00Z"}}
	]}`)
	env, items, err := scanList(in)
	if err != nil {
		t.Fatal(err)
	}
	keep := itemFilter(func(ns, _ []byte) bool { return string(ns) != "kube-system" })
	env, items, err = keep.filter(in, env, items)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writeList(&out, in, env, items, false); err != nil {
		t.Fatal(err)
	}
	v := decode(t, out.Bytes())
	md := v["metadata"].(map[string]any)
	if md["continue"] != "c1" || md["resourceVersion"] != "7" || md["remainingItemCount"] != nil || v["kind"] != "PodList" {
		t.Fatalf("envelope: %s", out.Bytes())
	}
	var got []string
	for _, it := range v["items"].([]any) {
		m := it.(map[string]any)["metadata"].(map[string]any)
		got = append(got, m["namespace"].(string)+"/"+m["name"].(string))
	}
	if want := []string{"team-b/b", "team-a/a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}

	// Namespaces are kept by name; no filter leaves the list as it was.
	ns := []byte(`{"kind":"NamespaceList","metadata":{},"items":[{"metadata":{"name":"team-a"}},{"metadata":{"name":"x"}}]}`)
	env, items, err = scanList(ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, all, _ := itemFilter(nil).filter(ns, env, items); len(all) != 2 {
		t.Fatalf("no filter kept %d items", len(all))
	}
	byName := itemFilter(func(_, name []byte) bool { return string(name) == "team-a" })
	if env, items, err = byName.filter(ns, env, items); err != nil || len(items) != 1 || string(items[0].name) != "team-a" {
		t.Fatalf("by name: %v %v", items, err)
	}
	out.Reset()
	if err := writeList(&out, ns, env, items, false); err != nil {
		t.Fatal(err)
	}
	if md := decode(t, out.Bytes())["metadata"]; !reflect.DeepEqual(md, map[string]any{}) {
		t.Fatalf("empty metadata rewritten as %v", md)
	}
}

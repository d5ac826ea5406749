package resources

import "testing"

// FuzzParseDocuments: splitting an apply body never panics, and every document it accepts names apiVersion,
// kind and name (nothing half-described reaches a cluster).
func FuzzParseDocuments(f *testing.F) {
	for _, s := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n",
		`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}`,
		"---\n---\n", "", "null", "[]", "kind: X\n", "apiVersion: v1\nkind: List\nitems: [null]\n",
		"apiVersion: v1\nkind: List\nitems: [{kind: Pod}]\n", "metadata: {name: 3}\nkind: Pod\napiVersion: v1\n",
		"a: &a [*a]\n", "{", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {n: 9007199254740993}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		docs, err := parseDocuments(body)
		if err != nil {
			return
		}
		if len(docs) == 0 {
			t.Fatal("accepted a body with no document")
		}
		for i, d := range docs {
			if d.GetAPIVersion() == "" || d.GetKind() == "" || d.GetName() == "" {
				t.Fatalf("document %d accepted without apiVersion/kind/name: %v", i+1, d.Object)
			}
		}
	})
}

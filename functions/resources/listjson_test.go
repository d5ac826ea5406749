package resources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	return v
}

func TestListRewriteOrdersNewestFirstAndDropsManagedFields(t *testing.T) {
	in := []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42","continue":"abc"},"items":[
	 {"metadata":{"name":"old","creationTimestamp":"2026-01-01T00:00:00Z","managedFields":[{"manager":"x","fieldsV1":{"f:a":{}}}],"labels":{"a":"b"}},"spec":{"s":"}{\"]["}},
	 {"metadata":{"name":"new","managedFields":[],"creationTimestamp":"2026-03-01T00:00:00Z"},"spec":{}},
	 {"metadata" : { "name" : "mid" , "creationTimestamp" : "2026-02-01T00:00:00Z" , "managedFields" : [ ] } },
	 {"metadata":{"name":"only","managedFields":[1]}},
	 {"metadata":{"name":"none","creationTimestamp":null}}
	]}`)
	env, items, err := scanList(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []bool{false, true} {
		var out bytes.Buffer
		if err := writeList(&out, in, env, append([]listItem(nil), items...), keep); err != nil {
			t.Fatal(err)
		}
		v := decode(t, out.Bytes())
		if v["kind"] != "PodList" || v["metadata"].(map[string]any)["continue"] != "abc" {
			t.Fatalf("envelope lost: %s", out.Bytes())
		}
		var names []string
		for _, it := range v["items"].([]any) {
			md := it.(map[string]any)["metadata"].(map[string]any)
			names = append(names, md["name"].(string))
			if _, has := md["managedFields"]; has != (keep && md["name"] != "none") {
				t.Fatalf("keep=%v but managedFields present=%v in %s", keep, has, md["name"])
			}
		}
		if want := []string{"new", "mid", "old", "only", "none"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("order %v, want %v", names, want)
		}
		if s := v["items"].([]any)[2].(map[string]any)["spec"].(map[string]any)["s"]; s != `}{"][` {
			t.Fatalf("string with brackets and escapes mangled: %q", s)
		}
	}
}

func TestListRewriteEmptyAndMalformed(t *testing.T) {
	for _, in := range []string{`{"kind":"List","items":[]}`, `{"kind":"List","items":null}`, `{"kind":"List"}`} {
		env, items, err := scanList([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var out bytes.Buffer
		if err := writeList(&out, []byte(in), env, items, false); err != nil {
			t.Fatal(err)
		}
		if v := decode(t, out.Bytes()); len(v["items"].([]any)) != 0 {
			t.Fatalf("%s: %s", in, out.Bytes())
		}
	}
	for _, in := range []string{`{"items":[{"metadata":{"name":"x"}`, `{"items":[{"metadata":"x"]}`, `[1]`, `{"a" 1}`, `{"items":["unterminated]}`} {
		if _, _, err := scanList([]byte(in)); err == nil {
			t.Fatalf("%s: no error", in)
		}
	}
}

func FuzzListRewrite(f *testing.F) {
	f.Add(`{"a":1,"items":[{"metadata":{"creationTimestamp":"2026","managedFields":[{"x":"\""}],"b":[1,{"c":null}]}}]}`)
	f.Add(`{"items":[{},{"metadata":{}},{"metadata":{"managedFields":true}}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return
		}
		env, items, err := scanList([]byte(in))
		if err != nil {
			return // not a list object; the handler answers 502 for such input
		}
		var out bytes.Buffer
		if err := writeList(&out, []byte(in), env, items, false); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("valid input %s became invalid output %s", in, out.Bytes())
		}
	})
}

func BenchmarkListRewrite(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[`)
	for i := 0; i < 5000; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"metadata":{"name":"p%d","namespace":"ns%d","creationTimestamp":"2026-01-01T00:%02d:%02dZ","managedFields":[{"manager":"kubectl","operation":"Update","fieldsV1":{"f:spec":{"f:containers":{}}}}]},"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"phase":"Pending"}}`, i, i%50, i/60%60, i%60)
	}
	buf.WriteString("]}")
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		env, items, err := scanList(in)
		if err != nil {
			b.Fatal(err)
		}
		if err := writeList(&bytes.Buffer{}, in, env, items, false); err != nil {
			b.Fatal(err)
		}
	}
}

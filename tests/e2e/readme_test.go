package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// example is one ```sh block of the README and, when a ```json block follows it with nothing but blank lines
// between, the output the README shows for it. Prose (or an HTML comment) between the two blocks means the
// output shown is an illustration the test cannot reproduce, e.g. a cluster with a Prometheus.
type example struct {
	line int // of the ```sh fence, 1-based
	code string
	want string // "" when the README shows no output for it
}

// readmeExamples returns the README's ```sh blocks: the examples a user copies. (Blocks fenced as ```bash are
// shown but not run here: they set up the shell or need things a test has not.)
func readmeExamples(t *testing.T) []example {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return parseExamples(string(data))
}

func parseExamples(readme string) []example {
	lines := strings.Split(readme, "\n")
	// block returns the lines after the fence at lines[i] up to the closing fence, and the closing fence's index.
	block := func(i int) (string, int) {
		var b strings.Builder
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			b.WriteString(lines[i] + "\n")
		}
		return b.String(), i
	}
	var out []example
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```sh" {
			continue
		}
		ex := example{line: i + 1}
		ex.code, i = block(i)
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j < len(lines) && lines[j] == "```json" {
			ex.want, i = block(j)
		}
		out = append(out, ex)
	}
	return out
}

// ignoredKeys are the fields whose values differ between runs and machines (times, the test cluster's random
// port, request IDs): the output must have them, their values are not compared.
var ignoredKeys = []string{"createdAt", "updatedAt", "checkedAt", "requestId", "server"}

// matchOutput compares what an example printed with what the README shows for it. Both are streams of JSON
// values (`jq -c` prints one per line). Values must be equal, objects must have the same keys, with two
// exceptions: the values of ignoredKeys, and a string the README ends with "…", which stands for any string
// starting with the text before it.
func matchOutput(got, want string) error {
	g, err := jsonStream(got)
	if err != nil {
		return fmt.Errorf("the example printed something that is not JSON: %w", err)
	}
	w, err := jsonStream(want)
	if err != nil {
		return fmt.Errorf("the README's output block is not JSON: %w", err)
	}
	if len(g) != len(w) {
		return fmt.Errorf("printed %d JSON values, the README shows %d", len(g), len(w))
	}
	for i := range w {
		if err := matchValue(fmt.Sprintf("value %d", i+1), g[i], w[i]); err != nil {
			return err
		}
	}
	return nil
}

func jsonStream(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func matchValue(path string, got, want any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: printed %v, the README shows an object", path, jsonText(got))
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Errorf("%s: printed a field %q the README does not show (%s)", path, k, jsonText(g[k]))
			}
		}
		for k, wv := range w {
			gv, ok := g[k]
			switch {
			case !ok:
				return fmt.Errorf("%s: the README shows a field %q that was not printed", path, k)
			case slices.Contains(ignoredKeys, k):
			default:
				if err := matchValue(path+"."+k, gv, wv); err != nil {
					return err
				}
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: printed %s, the README shows %d elements", path, jsonText(got), len(w))
		}
		for i := range w {
			if err := matchValue(fmt.Sprintf("%s[%d]", path, i), g[i], w[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		if prefix, ok := strings.CutSuffix(w, "…"); ok {
			if g, isString := got.(string); isString && strings.HasPrefix(g, prefix) {
				return nil
			}
		} else if got == want {
			return nil
		}
	default:
		if reflect.DeepEqual(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%s: printed %s, the README shows %s", path, jsonText(got), jsonText(want))
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestMatchOutput checks the comparison itself, so that a README which drifts from what the API prints fails
// TestMakeRunAndReadmeExamples.
func TestMatchOutput(t *testing.T) {
	const readme = `{
  "id": 2,
  "name": "prod",
  "labels": { "env": "prod" },
  "createdAt": "2026-11-28T10:00:00.123Z",
  "error": { "message": "name is not valid: …" }
}`
	for _, tc := range []struct {
		got, wrong string // wrong is "" when got must match
	}{
		{`{"id":2,"name":"prod","labels":{"env":"prod"},"createdAt":"2030-01-01T00:00:00Z","error":{"message":"name is not valid: because"}}`, ""},
		{`{"id":3,"name":"prod","labels":{"env":"prod"},"createdAt":"x","error":{"message":"name is not valid: x"}}`, "value 1.id: printed 3"},
		{`{"id":2,"name":"prod","labels":{"env":"dev"},"createdAt":"x","error":{"message":"name is not valid: x"}}`, "value 1.labels.env"},
		{`{"id":2,"name":"prod","labels":{"env":"prod"},"error":{"message":"name is not valid: x"}}`, `field "createdAt" that was not printed`},
		{`{"id":2,"name":"prod","labels":{"env":"prod"},"createdAt":"x","version":1,"error":{"message":"name is not valid: x"}}`, `field "version" the README does not show`},
		{`{"id":2,"name":"prod","labels":{"env":"prod"},"createdAt":"x","error":{"message":"name is bad"}}`, "value 1.error.message"},
		{`{"id":2,"name":"prod","labels":{"env":"prod"},"createdAt":"x","error":{"message":"name is not valid: x"}} {}`, "printed 2 JSON values"},
		{`prod`, "not JSON"},
	} {
		err := matchOutput(tc.got, readme)
		if tc.wrong == "" && err != nil {
			t.Errorf("%s: %v, want a match", tc.got, err)
		}
		if tc.wrong != "" && (err == nil || !strings.Contains(err.Error(), tc.wrong)) {
			t.Errorf("%s: %v, want an error containing %q", tc.got, err, tc.wrong)
		}
	}

	exs := parseExamples("```sh\necho 1\n```\n\n```json\n1\n```\n\n```sh\necho 2\n```\nProse.\n```json\n3\n```\n")
	if len(exs) != 2 || exs[0].code != "echo 1\n" || exs[0].want != "1\n" || exs[1].want != "" || exs[1].line != 9 {
		t.Fatalf("parseExamples: %+v", exs)
	}
}

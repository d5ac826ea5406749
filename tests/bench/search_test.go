package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseStatusReadsClustersListsAndMaps(t *testing.T) {
	for name, body := range map[string]string{
		"list": `{"budgetBytes":268435456,"bytes":900,"objects":30,"evictions":0,"clusters":[
			{"name":"a","id":1,"indexed":true,"objects":10,"bytes":300,"kinds":[{"resource":"pods","objects":7}]},
			{"name":"b","id":2,"indexed":true,"objects":20,"bytes":600}]}`,
		"map":    `{"clusters":{"a":{"objectCount":10,"memoryBytes":300},"b":{"index":{"objects":20,"bytes":600}}}}`,
		"toplvl": `[{"cluster":"a","objects":10,"indexBytes":300},{"cluster":"b","objects":20,"indexBytes":600}]`,
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := parseStatus([]byte(body))
			if !ok {
				t.Fatalf("not recognised: %s", body)
			}
			want := map[string]indexStat{"a": {10, 300}, "b": {20, 600}}
			for n, w := range want {
				if got[n] != w {
					t.Errorf("%s: got %+v, want %+v (all: %v)", n, got[n], w, got)
				}
			}
		})
	}
	if _, ok := parseStatus([]byte(`{"error":{"status":501}}`)); ok {
		t.Error("an error answer was read as a status")
	}
}

func TestServerTiming(t *testing.T) {
	h := http.Header{}
	h.Add("Server-Timing", `cache;desc="miss", search;dur=1.250`)
	if d, ok := serverTiming(h, "search"); !ok || d != 1250*time.Microsecond {
		t.Errorf("got %s %v, want 1.25ms", d, ok)
	}
	if _, ok := serverTiming(h, "relations"); ok {
		t.Error("found a metric that is not there")
	}
}

func TestTermsNeverRepeatAndMatchTheSeed(t *testing.T) {
	seed := scaledSeed(0.001) // 10 of each kind: the smallest seed
	gen := &terms{seed: seed, used: map[string]bool{coldTerm: true}}
	names := seedNames(seed)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		term, match := gen.next()
		if seen[term] || term == coldTerm {
			t.Fatalf("term %q came twice", term)
		}
		seen[term] = true
		found := false
		for _, n := range names {
			found = found || strings.Contains(n, term)
		}
		if found != match {
			t.Errorf("term %q: match %v, but a seeded name holds it: %v", term, match, found)
		}
	}
}

func seedNames(s searchSeed) []string {
	var out []string
	for _, k := range []struct {
		format string
		count  int
	}{{"pod-%05d", s.pods}, {"deploy-%04d", s.deployments}, {"svc-%04d", s.services}, {"cm-%04d", s.configmaps}} {
		for i := 0; i < k.count; i++ {
			out = append(out, fmt.Sprintf(k.format, i))
		}
	}
	return out
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 20; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 0.9); p != 18 {
		t.Errorf("p90 of 1..20 = %d, want 18", p)
	}
	if p := median(d); p != 11 {
		t.Errorf("median of 1..20 = %d, want 11", p)
	}
}

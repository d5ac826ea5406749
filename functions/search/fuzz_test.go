package search

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseRequest: parsing a search never panics, a q under 2 characters (after trimming and dropping NULs)
// is always refused, and an accepted search has a bounded limit and something to look for.
func FuzzParseRequest(f *testing.F) {
	for _, s := range [][4]string{
		{"nginx", "", "", ""}, {"po nginx", "", "default", "10"}, {"app=web", "deploy,svc", "_all", "500"},
		{"a", "", "", ""}, {" a\x00 ", "", "", ""}, {"x:", "", "", "0"}, {"=v", "pods", "", "-1"},
		{"widgets.example.com w", "", "", "99999999999999999999"}, {"é", "", "", ""}, {"\xff\xfe", "nope", "", ""},
		{"po ", "", "", ""}, {"k=", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, q, types, ns, limit string) {
		v := url.Values{"q": {q}, "types": {types}, "namespace": {ns}, "limit": {limit}}
		r := httptest.NewRequest("GET", "/api/v1/search?"+v.Encode(), nil)
		req, err := parseRequest(r)
		short := utf8.RuneCountInString(strings.ReplaceAll(strings.TrimSpace(r.URL.Query().Get("q")), "\x00", "")) < 2
		if err != nil {
			return
		}
		if short {
			t.Fatalf("q %q (under 2 characters) accepted", q)
		}
		if req.limit < 1 || req.limit > maxLimit {
			t.Fatalf("limit %d out of [1, %d]", req.limit, maxLimit)
		}
		if !req.q.IsLabel && req.q.Term == "" {
			t.Fatalf("q %q accepted with nothing to search for", q)
		}
	})
}

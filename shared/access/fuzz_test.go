package access

import (
	"strings"
	"testing"
)

// FuzzMatch: Match never panics, and a negated pattern "!x" (or "! x") refuses x whatever else the list holds.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"*", "prod"}, {"prod-*", "prod-eu"}, {"team-a", "team-a"}, {"!kube-system", "default"},
		{"", ""}, {"!*", "x"}, {"*,!prod-*", "prod-1"}, {" prod ", "prod"}, {"!", ""}, {"**", "*"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, patterns, value string) {
		list := strings.Split(patterns, ",")
		_ = Match(list, value)
		c := &Caller{Clusters: list, Namespaces: list}
		_, _ = c.AllowsCluster(value), c.AllowsNamespace(value)
		x := strings.TrimSpace(value) // scope values are Kubernetes names: never padded
		if x == "" {
			return
		}
		for _, neg := range []string{"!" + x, "! " + x, " !" + x + " "} {
			if Match(append(list, neg), x) {
				t.Fatalf("Match(%q, %q) admits what %q refuses", append(list, neg), x, neg)
			}
		}
		// As a pattern, a name matches itself (a name never starts with "!" nor holds "*": those are syntax).
		if !Match([]string{"*"}, x) || (!strings.HasPrefix(x, "!") && !strings.Contains(x, "*") && !Match([]string{x}, x)) {
			t.Fatalf("%q is not admitted by * or by itself", x)
		}
	})
}

// FuzzRoles: Roles never panics, returns only valid roles without repeats, or names the unknown one.
func FuzzRoles(f *testing.F) {
	for _, s := range []string{"viewer", "Admin, operator", "root", "", "viewer,viewer", " OPERATOR "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, names string) {
		in := strings.Split(names, ",")
		roles, bad := Roles(in)
		if bad != "" {
			if roles != nil || Role(strings.ToLower(strings.TrimSpace(bad))).Valid() {
				t.Fatalf("Roles(%q) = %v, %q", in, roles, bad)
			}
			return
		}
		seen := map[Role]bool{}
		for _, r := range roles {
			if !r.Valid() || seen[r] {
				t.Fatalf("Roles(%q) = %v: invalid or repeated role", in, roles)
			}
			seen[r] = true
		}
	})
}

// Found by FuzzMatch: "! prod" (a space after the bang) admitted prod, failing open.
func TestNegationIgnoresSpaceAfterBang(t *testing.T) {
	if Match([]string{"! prod"}, "prod") || Match([]string{"*", "!  prod-* "}, "prod-eu") {
		t.Fatal(`"! prod" must refuse prod`)
	}
	if !Match([]string{"! prod"}, "dev") {
		t.Fatal(`"! prod" must admit dev`)
	}
}

package access

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		patterns []string
		value    string
		want     bool
	}{
		{nil, "anything", true},
		{[]string{"*"}, "prod-eu", true},
		{[]string{"prod-*"}, "prod-eu", true},
		{[]string{"prod-*"}, "dev", false},
		{[]string{"team-a"}, "team-a", true},
		{[]string{"team-a"}, "team-ab", false},
		{[]string{"!kube-system"}, "default", true},
		{[]string{"!kube-system"}, "kube-system", false},
		{[]string{"*", "!prod-*"}, "prod-us", false},
		{[]string{"*", "!prod-*"}, "dev", true},
		{[]string{"team-*", "!team-x"}, "team-x", false},
	}
	for _, c := range cases {
		if got := Match(c.patterns, c.value); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.patterns, c.value, got, c.want)
		}
	}
}

func TestRolesInclude(t *testing.T) {
	op := &Caller{Roles: []Role{Operator}}
	if !op.Has(Viewer) || !op.Has(Operator) || op.Has(Admin) || op.Has("") {
		t.Errorf("operator: viewer %v operator %v admin %v", op.Has(Viewer), op.Has(Operator), op.Has(Admin))
	}
	if _, bad := Roles([]string{"viewer", "root"}); bad != "root" {
		t.Errorf("Roles accepted %q", bad)
	}
	scoped := &Caller{Namespaces: []string{"team-a"}}
	if scoped.AllowsNamespace("") || !scoped.AllowsNamespace("team-a") || scoped.AllowsNamespace("team-b") {
		t.Error("namespace scope")
	}
}

package access

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNamespace(t *testing.T) {
	teamA := &Caller{Name: "alice", Kind: KindToken, Namespaces: []string{"team-a"}}
	notSystem := &Caller{Name: "bob", Kind: KindToken, Namespaces: []string{"!kube-system"}}
	all := &Caller{Name: "root", Kind: KindToken}
	for _, tc := range []struct {
		c    *Caller
		ns   string
		deny string // "" admitted, else the whole message
	}{
		{teamA, "team-a", ""},
		{teamA, "team-b", `namespace "team-b" is outside your namespace scope (team-a)`},
		{teamA, "", "list nodes is cluster-wide (no namespace) and your scope is limited to namespaces team-a"},
		{notSystem, "default", ""},
		{notSystem, "kube-system", `namespace "kube-system" is outside your namespace scope (!kube-system)`},
		{notSystem, "", "list nodes is cluster-wide (no namespace) and your scope is limited to namespaces !kube-system"},
		{all, "", ""},
		{all, "kube-system", ""},
	} {
		err := tc.c.CheckNamespace("list nodes", tc.ns)
		var ref *Refusal
		switch {
		case tc.deny == "" && err != nil:
			t.Errorf("%s on %q: refused: %v", tc.c.Name, tc.ns, err)
		case tc.deny != "" && (!errors.As(err, &ref) || ref.Message != tc.deny):
			t.Errorf("%s on %q: %v, want %q", tc.c.Name, tc.ns, err, tc.deny)
		}
	}
}

func TestCheckClusterIsTheTablesRefusal(t *testing.T) {
	c := &Caller{Name: "ci", Kind: KindToken, Roles: []Role{Viewer}, Clusters: []string{"prod-*", "!prod-x"}}
	if err := c.CheckCluster("prod-eu"); err != nil {
		t.Fatalf("prod-eu refused: %v", err)
	}
	err := c.CheckCluster("prod-x")
	want := `cluster "prod-x" is outside the cluster scope of token "ci" (prod-*, !prod-x)`
	if err == nil || err.Error() != want {
		t.Fatalf("CheckCluster(prod-x) = %v, want %q", err, want)
	}
	table := Authorize(c, Rule{Verb: "get", Resource: "clusters", Role: Viewer}, []string{"prod-x"})
	if table == nil || table.Error() != err.Error() {
		t.Fatalf("the table says %v, the check %v", table, err)
	}
}

func TestScopeNamespace(t *testing.T) {
	if got := ScopeNamespace("", "namespaces", "", "team-a"); got != "team-a" {
		t.Errorf("a Namespace is judged by %q, want its name", got)
	}
	if got := ScopeNamespace("", "pods", "team-a", "web"); got != "team-a" {
		t.Errorf("a pod is judged by %q", got)
	}
	if got := ScopeNamespace("example.com", "namespaces", "", "x"); got != "" {
		t.Errorf("a CRD named namespaces is judged by %q, want cluster-scoped", got)
	}
}

func TestSingleNamespace(t *testing.T) {
	for _, tc := range []struct {
		scope []string
		want  string
	}{
		{nil, ""}, {[]string{"team-a"}, "team-a"}, {[]string{" team-a "}, "team-a"}, {[]string{"team-*"}, ""},
		{[]string{"!kube-system"}, ""}, {[]string{"a", "b"}, ""}, {[]string{"*"}, ""},
	} {
		if got := (&Caller{Namespaces: tc.scope}).SingleNamespace(); got != tc.want {
			t.Errorf("SingleNamespace(%s) = %q, want %q", strings.Join(tc.scope, ","), got, tc.want)
		}
	}
}

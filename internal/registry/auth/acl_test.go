package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"library/alpine", []string{"library/alpine"}, []string{"library/alpine2", "xlibrary/alpine", "library", "library/alpine/x"}},
		{"*", []string{"alpine", "a-b.c_d"}, []string{"library/alpine"}},
		{"library/*", []string{"library/alpine", "library/a.b"}, []string{"library", "library/a/b", "other/alpine"}},
		{"*/alpine", []string{"library/alpine", "x/alpine"}, []string{"alpine", "a/b/alpine"}},
		{"team-*/app", []string{"team-a/app", "team-/app"}, []string{"team-a/b/app", "teamx/app"}},
		{"**", []string{"a", "a/b", "a/b/c"}, nil},
		{"team/**", []string{"team/a", "team/a/b/c"}, []string{"team", "teamx/a", "other/team/a"}},
		{"**/cache", []string{"cache", "a/cache", "a/b/cache"}, []string{"cachex", "a/xcache", "a/cache/x"}},
		{"a/**/b", []string{"a/b", "a/x/b", "a/x/y/b"}, []string{"a/xb", "ab", "a/b/c"}},
		{"a**", []string{"a", "abc", "a/b/c"}, []string{"ba"}},
		// Dots and other expression metacharacters are literal.
		{"my.app", []string{"my.app"}, []string{"myxapp", "my/app"}},
		{"a+b(c)[d]", []string{"a+b(c)[d]"}, []string{"aab(c)[d]", "a+bc"}},
		{"v1.?", []string{"v1.?"}, []string{"v1.2"}},
	}
	for _, tt := range tests {
		re := compileGlob(tt.pattern)
		for _, s := range tt.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q", tt.pattern, s)
			}
		}
		for _, s := range tt.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q matches %q", tt.pattern, s)
			}
		}
	}
}

func TestACLActions(t *testing.T) {
	rules := []Rule{
		{Anonymous: true, Repos: []string{"public/**"}, Actions: []string{"pull"}},
		{Users: []string{"alice"}, Repos: []string{"alice/**", "shared/*"}, Actions: []string{"*"}},
		{Groups: []string{"devs"}, Repos: []string{"team/*"}, Actions: []string{"push", "pull"}},
		{Users: []string{"carol"}, Repos: []string{"team/*"}, Actions: []string{"delete"}},
		{Users: []string{"dave"}, Actions: []string{"pull"}}, // no repos: nothing
		{Users: []string{"erin"}, Repos: []string{"erin/*"}, Actions: []string{"push"}},
	}
	a, err := newACL(rules, map[string][]string{"devs": {"bob", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, repo string
		want       []string
	}{
		{"", "public/x", []string{"pull"}},
		{"", "public/a/b", []string{"pull"}},
		{"", "alice/x", nil},
		{"", "team/x", nil},
		{"alice", "alice/x/y", []string{"pull", "push", "delete"}},
		{"alice", "shared/x", []string{"pull", "push", "delete"}},
		{"alice", "shared/x/y", nil},
		{"alice", "public/x", []string{"pull"}}, // anonymous grants apply too
		{"alice", "team/x", nil},
		{"bob", "team/x", []string{"pull", "push"}},
		{"bob", "alice/x", nil},
		{"carol", "team/x", []string{"pull", "push", "delete"}}, // group and user rules add up
		{"dave", "dave/x", nil},
		{"dave", "public/x", []string{"pull"}},
		{"erin", "erin/x", []string{"push"}}, // push implies nothing else
		{"mallory", "team/x", nil},
	}
	for _, tt := range tests {
		if got := a.actions(tt.user, tt.repo); !slices.Equal(got, tt.want) {
			t.Errorf("actions(%q, %q) = %v, want %v", tt.user, tt.repo, got, tt.want)
		}
	}
}

func TestACLPermits(t *testing.T) {
	catalog := Access{Type: TypeRegistry, Name: CatalogName, Actions: []string{"*"}}
	pull := func(repo string) Access { return Access{Type: TypeRepository, Name: repo, Actions: []string{"pull"}} }
	push := func(repo string) Access { return Access{Type: TypeRepository, Name: repo, Actions: []string{"push"}} }

	noRules, err := newACL(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	anonPull, err := newACL([]Rule{{Anonymous: true, Repos: []string{"pub/*"}, Actions: []string{"pull"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An anonymous rule that grants nothing does not open the catalog.
	anonEmpty, err := newACL([]Rule{{Anonymous: true, Actions: []string{"pull"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		acl  *acl
		user string
		want []Access
		ok   bool
	}{
		{"no rules: user pulls", noRules, "u", []Access{pull("a/b")}, true},
		{"no rules: user pushes and deletes", noRules, "u", []Access{{Type: TypeRepository, Name: "x", Actions: []string{"push", "delete"}}}, true},
		{"no rules: user lists", noRules, "u", []Access{catalog}, true},
		{"no rules: user base", noRules, "u", nil, true},
		{"no rules: anonymous pulls", noRules, "", []Access{pull("a")}, false},
		{"no rules: anonymous lists", noRules, "", []Access{catalog}, false},
		{"no rules: anonymous base", noRules, "", nil, false},
		{"anonymous pull", anonPull, "", []Access{pull("pub/x")}, true},
		{"anonymous push", anonPull, "", []Access{push("pub/x")}, false},
		{"anonymous elsewhere", anonPull, "", []Access{pull("priv/x")}, false},
		{"anonymous lists", anonPull, "", []Access{catalog}, true},
		{"anonymous base", anonPull, "", nil, true},
		{"user gets anonymous grants", anonPull, "u", []Access{pull("pub/x")}, true},
		{"user without rule", anonPull, "u", []Access{pull("priv/x")}, false},
		{"user lists", anonPull, "u", []Access{catalog}, true},
		{"all of want", anonPull, "", []Access{pull("pub/x"), pull("priv/x")}, false},
		{"empty anonymous rule lists", anonEmpty, "", []Access{catalog}, false},
		{"no actions asked", noRules, "u", []Access{{Type: TypeRepository, Name: "x"}}, false},
		{"unknown action", noRules, "u", []Access{{Type: TypeRepository, Name: "x", Actions: []string{"*"}}}, false},
		{"unknown type", noRules, "u", []Access{{Type: "repository(plugin)", Name: "x", Actions: []string{"pull"}}}, false},
		{"registry other than catalog", noRules, "u", []Access{{Type: TypeRegistry, Name: "other", Actions: []string{"*"}}}, false},
		{"catalog with an action", noRules, "u", []Access{{Type: TypeRegistry, Name: CatalogName, Actions: []string{"pull"}}}, false},
	}
	for _, tt := range tests {
		if got := tt.acl.permits(tt.user, tt.want); got != tt.ok {
			t.Errorf("%s: permits = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestACLGrant(t *testing.T) {
	a, err := newACL([]Rule{
		{Users: []string{"u"}, Repos: []string{"rw/*"}, Actions: []string{"pull", "push"}},
		{Anonymous: true, Repos: []string{"ro/*"}, Actions: []string{"pull"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		{Type: TypeRepository, Name: "ro/a", Actions: []string{"pull", "push"}},
		{Type: TypeRepository, Name: "rw/a", Actions: []string{"push"}},
		{Type: TypeRepository, Name: "rw/a", Actions: []string{"pull", "delete"}},
		{Type: TypeRepository, Name: "none/a", Actions: []string{"pull"}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{"*"}},
		{Type: "repository(plugin)", Name: "rw/a", Actions: []string{"pull"}},
	}
	got := a.grant("u", want)
	exp := []Access{
		{Type: TypeRepository, Name: "ro/a", Actions: []string{"pull"}},
		{Type: TypeRepository, Name: "rw/a", Actions: []string{"pull", "push"}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{"*"}},
	}
	if !accessEqual(got, exp) {
		t.Errorf("grant(u) = %v, want %v", got, exp)
	}
	got = a.grant("", want)
	exp = []Access{
		{Type: TypeRepository, Name: "ro/a", Actions: []string{"pull"}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{"*"}},
	}
	if !accessEqual(got, exp) {
		t.Errorf("grant(anonymous) = %v, want %v", got, exp)
	}
	if got := a.grant("", nil); got == nil || len(got) != 0 {
		t.Errorf("grant of nothing = %#v, want an empty list", got)
	}
}

func accessEqual(a, b []Access) bool {
	return slices.EqualFunc(a, b, func(x, y Access) bool {
		return x.Type == y.Type && x.Name == y.Name && slices.Equal(x.Actions, y.Actions)
	})
}

func TestACLErrors(t *testing.T) {
	tests := []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{{Users: []string{"u"}, Repos: []string{"x"}, Actions: []string{"pull"}}, {Groups: []string{"nope"}}}, `rule 2: unknown group "nope"`},
		{[]Rule{{Users: []string{"u"}, Repos: []string{"x"}, Actions: []string{"write"}}}, `rule 1: unknown action "write"`},
		{[]Rule{{Users: []string{"u"}, Repos: []string{""}, Actions: []string{"pull"}}}, `rule 1: empty repository pattern`},
	}
	for _, tt := range tests {
		_, err := newACL(tt.rules, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("newACL(%v) = %v, want an error containing %q", tt.rules, err, tt.want)
		}
	}
}

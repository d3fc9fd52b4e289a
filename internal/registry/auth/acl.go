package auth

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The actions a repository Access may ask for, in the order Actions
// reports them.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
)

// Resource types and the one registry resource of a scope.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
	CatalogName    = "catalog"
)

// allActions is every repository action, in canonical order.
var allActions = []string{ActionPull, ActionPush, ActionDelete}

// acl answers what a user may do, from the compiled access rules.
type acl struct {
	rules []compiledRule
	// open means no rules were configured: authenticated users may do
	// everything, anonymous clients nothing.
	open bool
	// anonymous is set when some rule grants anonymous clients anything;
	// they may then list the catalog and reach the API's base endpoint.
	anonymous bool
}

type compiledRule struct {
	users     map[string]bool // named users and members of named groups
	anonymous bool
	repos     []*regexp.Regexp
	actions   []string // canonical order
}

// newACL compiles rules, resolving group names through groups.
func newACL(rules []Rule, groups map[string][]string) (*acl, error) {
	a := &acl{open: len(rules) == 0}
	for i, r := range rules {
		c := compiledRule{users: map[string]bool{}, anonymous: r.Anonymous}
		for _, u := range r.Users {
			c.users[u] = true
		}
		for _, g := range r.Groups {
			members, ok := groups[g]
			if !ok {
				return nil, fmt.Errorf("auth: access rule %d: unknown group %q", i+1, g)
			}
			for _, u := range members {
				c.users[u] = true
			}
		}
		for _, p := range r.Repos {
			if p == "" {
				return nil, fmt.Errorf("auth: access rule %d: empty repository pattern", i+1)
			}
			c.repos = append(c.repos, compileGlob(p))
		}
		for _, act := range r.Actions {
			switch act {
			case "*":
				c.actions = union(c.actions, allActions)
			case ActionPull, ActionPush, ActionDelete:
				c.actions = union(c.actions, []string{act})
			default:
				return nil, fmt.Errorf("auth: access rule %d: unknown action %q (want pull, push, delete or *)", i+1, act)
			}
		}
		a.anonymous = a.anonymous || (c.anonymous && len(c.repos) > 0 && len(c.actions) > 0)
		a.rules = append(a.rules, c)
	}
	return a, nil
}

// compileGlob turns a repository pattern into an anchored expression: "*"
// matches within one path segment, "**" across segments, and a "**/"
// segment also matches no segment at all, so "a/**/b" matches "a/b".
// Everything else is literal.
func compileGlob(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**/") && (i == 0 || pattern[i-1] == '/'):
			b.WriteString("(?:.*/)?")
			i += 3
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i += 2
		case pattern[i] == '*':
			b.WriteString("[^/]*")
			i++
		default:
			j := strings.IndexByte(pattern[i:], '*')
			if j < 0 {
				j = len(pattern) - i
			}
			b.WriteString(regexp.QuoteMeta(pattern[i : i+j]))
			i += j
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// actions lists what user ("" anonymous) may do on repo.
func (a *acl) actions(user, repo string) []string {
	if a.open {
		if user == "" {
			return nil
		}
		return slices.Clone(allActions)
	}
	var got []string
	for _, r := range a.rules {
		if !r.anonymous && (user == "" || !r.users[user]) {
			continue
		}
		if slices.ContainsFunc(r.repos, func(re *regexp.Regexp) bool { return re.MatchString(repo) }) {
			got = union(got, r.actions)
		}
	}
	return got
}

// allowed reports whether user may do everything acc asks for. An Access
// that asks for no action is never allowed.
func (a *acl) allowed(user string, acc Access) bool {
	if len(acc.Actions) == 0 {
		return false
	}
	switch acc.Type {
	case TypeRepository:
		have := a.actions(user, acc.Name)
		for _, act := range acc.Actions {
			if !slices.Contains(have, act) {
				return false
			}
		}
		return true
	case TypeRegistry:
		return acc.Name == CatalogName && a.mayList(user) &&
			!slices.ContainsFunc(acc.Actions, func(act string) bool { return act != "*" })
	}
	return false
}

// permits reports whether user may do all of want. Asking for nothing
// (the API's base endpoint) needs credentials unless some rule grants
// anonymous clients something.
func (a *acl) permits(user string, want []Access) bool {
	if len(want) == 0 {
		return a.mayList(user)
	}
	for _, acc := range want {
		if !a.allowed(user, acc) {
			return false
		}
	}
	return true
}

// mayList reports whether user may list the catalog (which the server
// filters by actions) and reach the base endpoint.
func (a *acl) mayList(user string) bool {
	return user != "" || a.anonymous
}

// grant returns the part of want that user may have: each repository's
// requested actions cut down to the allowed ones, the catalog when listing
// is allowed, and nothing for unknown resources. Entries left without
// actions are dropped; repeated resources are merged.
func (a *acl) grant(user string, want []Access) []Access {
	granted := []Access{}
	for _, w := range want {
		var acts []string
		switch w.Type {
		case TypeRepository:
			have := a.actions(user, w.Name)
			for _, act := range w.Actions {
				if slices.Contains(have, act) {
					acts = union(acts, []string{act})
				}
			}
		case TypeRegistry:
			if w.Name == CatalogName && slices.Contains(w.Actions, "*") && a.mayList(user) {
				acts = []string{"*"}
			}
		}
		if len(acts) == 0 {
			continue
		}
		i := slices.IndexFunc(granted, func(g Access) bool { return g.Type == w.Type && g.Name == w.Name })
		if i < 0 {
			granted = append(granted, Access{Type: w.Type, Name: w.Name, Actions: acts})
		} else {
			granted[i].Actions = union(granted[i].Actions, acts)
		}
	}
	return granted
}

// union adds to set the elements of add it lacks, keeping repository
// actions in canonical order.
func union(set, add []string) []string {
	for _, s := range add {
		if !slices.Contains(set, s) {
			set = append(set, s)
		}
	}
	slices.SortStableFunc(set, func(x, y string) int {
		return actionRank(x) - actionRank(y)
	})
	return set
}

// actionRank orders pull, push, delete first, anything else after them.
func actionRank(act string) int {
	if i := slices.Index(allActions, act); i >= 0 {
		return i
	}
	return len(allActions)
}

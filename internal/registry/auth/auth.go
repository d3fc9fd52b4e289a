// Package auth decides who may do what on a registry: htpasswd (bcrypt)
// basic auth, a built-in token issuer per the Docker token spec (JWT ES256),
// and per-repository permissions by glob patterns for users, groups and
// anonymous clients. It never trusts a token it did not sign, for an audience
// other than its own service, or with a scope wider than the ACL allows.
package auth

import (
	"log/slog"
	"net/http"
	"time"
)

// Access is one scope item: Type "repository" (Name a repository, Actions
// among pull, push, delete) or "registry" (Name "catalog", Actions ["*"]).
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Rule grants Actions on repositories matching any of Repos ("*" matches
// within one path segment, "**" across segments, a "**/" segment also
// matches none) to the listed users, the members of the listed groups, or
// (Anonymous) clients without credentials. Authenticated users also get
// what anonymous clients get. Actions are pull, push, delete or "*" for
// all three; push implies nothing else.
type Rule struct {
	Users     []string `yaml:"users"`
	Groups    []string `yaml:"groups"`
	Anonymous bool     `yaml:"anonymous"`
	Repos     []string `yaml:"repos"`
	Actions   []string `yaml:"actions"`
}

// Config is the auth section of the registry's YAML config.
type Config struct {
	// Mode is "none" (everyone may do everything; the default), "htpasswd"
	// (basic auth) or "token" (basic auth at the token endpoint, bearer
	// tokens everywhere else).
	Mode     string `yaml:"mode"`
	Htpasswd string `yaml:"htpasswd"`
	// Realm is the token endpoint's URL (token mode); empty means
	// "<scheme>://<request host>/token".
	Realm   string `yaml:"realm"`
	Service string `yaml:"service"` // token audience; default "berth-registry"
	Issuer  string `yaml:"issuer"`  // token issuer; default "berth-registry"
	// Key is a PEM file holding the ES256 (P-256) signing key; when empty a
	// key is generated and kept under the registry root.
	Key      string              `yaml:"key"`
	TokenTTL time.Duration       `yaml:"tokenTTL"` // default 5m
	Groups   map[string][]string `yaml:"groups"`
	// Access lists the rules. With no rules in htpasswd/token mode,
	// every authenticated user may pull, push and delete everything.
	Access []Rule `yaml:"access"`
	// Log receives what clients are not told: why the token endpoint
	// failed with a server error. Nil means slog.Default().
	Log *slog.Logger `yaml:"-"`
}

// Error is returned by Authorize when a request may not proceed. The server
// answers with Status, the spec's error Code (UNAUTHORIZED or DENIED) and,
// when Challenge is set, a WWW-Authenticate header with it.
type Error struct {
	Status    int
	Code      string
	Message   string
	Challenge string
}

func (e *Error) Error() string { return e.Message }

// Authorizer is what the registry's HTTP server asks.
type Authorizer interface {
	// Authorize checks r's credentials against want and returns the
	// user's name ("" for anonymous) or an *Error. Any other error means
	// credentials cannot be checked at all (the htpasswd file became
	// unreadable or invalid); the server logs it and answers 500.
	Authorize(r *http.Request, want []Access) (user string, err error)
	// Actions lists what user ("" anonymous) may do on repo, for
	// filtering the catalog.
	Actions(user, repo string) []string
	// TokenHandler serves the token endpoint (token mode; nil otherwise).
	TokenHandler() http.Handler
}

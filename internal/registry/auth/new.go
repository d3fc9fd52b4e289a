package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults for the Config fields left empty.
const (
	DefaultService  = "berth-registry"
	DefaultIssuer   = "berth-registry"
	DefaultTokenTTL = 5 * time.Minute
)

// minTokenTTL is the shortest lifetime docker honours: it treats any
// token as valid for at least a minute.
const minTokenTTL = time.Minute

// New builds the Authorizer cfg describes. root is the registry's data
// directory, where token mode keeps its generated signing key (KeyFile)
// unless cfg.Key names one.
func New(cfg Config, root string) (Authorizer, error) {
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	switch {
	case cfg.TokenTTL == 0:
		cfg.TokenTTL = DefaultTokenTTL
	case cfg.TokenTTL < minTokenTTL:
		return nil, fmt.Errorf("auth: tokenTTL %v is shorter than %v, which clients assume at least", cfg.TokenTTL, minTokenTTL)
	}

	switch cfg.Mode {
	case "", "none":
		if cfg.Htpasswd != "" || len(cfg.Access) > 0 {
			return nil, errors.New(`auth: htpasswd and access rules need mode "htpasswd" or "token" (mode "none" lets everyone do everything)`)
		}
		return openAuthorizer{}, nil
	case "htpasswd", "token":
	default:
		return nil, fmt.Errorf(`auth: unknown mode %q (want "none", "htpasswd" or "token")`, cfg.Mode)
	}

	rules, err := newACL(cfg.Access, cfg.Groups)
	if err != nil {
		return nil, err
	}
	var users *htpasswd
	if cfg.Htpasswd != "" {
		if users, err = openHtpasswd(cfg.Htpasswd); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	if cfg.Mode == "htpasswd" {
		if users == nil {
			return nil, errors.New(`auth: mode "htpasswd" needs an htpasswd file`)
		}
		return &basicAuthorizer{acl: rules, users: users, realm: cfg.Service}, nil
	}

	if cfg.Realm != "" {
		u, err := url.Parse(cfg.Realm)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("auth: realm %q is not an http(s) URL", cfg.Realm)
		}
	}
	key, err := loadKey(cfg.Key, root)
	if err != nil {
		return nil, err
	}
	return newTokenAuthorizer(cfg, rules, users, key)
}

// openAuthorizer lets everyone do everything.
type openAuthorizer struct{}

func (openAuthorizer) Authorize(*http.Request, []Access) (string, error) { return "", nil }
func (openAuthorizer) Actions(string, string) []string                   { return slices.Clone(allActions) }
func (openAuthorizer) TokenHandler() http.Handler                        { return nil }

// basicAuthorizer checks basic auth credentials against an htpasswd file
// with every request.
type basicAuthorizer struct {
	acl   *acl
	users *htpasswd
	realm string
}

// Authorize lets anonymous requests through when the rules grant
// anonymous clients want, asks for credentials otherwise, and refuses
// authenticated users what the rules do not grant them.
func (b *basicAuthorizer) Authorize(r *http.Request, want []Access) (string, error) {
	user, password, ok := r.BasicAuth()
	if !ok {
		if r.Header.Get("Authorization") == "" && b.acl.permits("", want) {
			return "", nil
		}
		return "", b.challenge("authentication required")
	}
	valid, err := b.users.verify(user, password)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if !valid {
		return "", b.challenge("invalid username or password")
	}
	if !b.acl.permits(user, want) {
		return "", &Error{Status: http.StatusForbidden, Code: "DENIED", Message: deniedMessage(user, want)}
	}
	return user, nil
}

func (b *basicAuthorizer) challenge(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: msg,
		Challenge: "Basic realm=" + quote(b.realm)}
}

// deniedMessage names what user asked for.
func deniedMessage(user string, want []Access) string {
	scopes := make([]string, len(want))
	for i, w := range want {
		scopes[i] = scopeString(w)
	}
	return fmt.Sprintf("user %q is not granted %s", user, strings.Join(scopes, " "))
}

func (b *basicAuthorizer) Actions(user, repo string) []string { return b.acl.actions(user, repo) }
func (b *basicAuthorizer) TokenHandler() http.Handler         { return nil }

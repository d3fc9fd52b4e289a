package auth

import (
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// leeway is the clock skew allowed when checking a token's times.
const leeway = 30 * time.Second

// claims is a registry token's payload per the Docker token spec.
type claims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
}

// tokenAuthorizer accepts bearer tokens it issued itself and issues them
// at its token endpoint.
type tokenAuthorizer struct {
	acl   *acl
	users *htpasswd // nil: only anonymous tokens are issued
	key   *ecdsa.PrivateKey
	kid   string
	// realm is the token endpoint's URL; empty means derived from the
	// request.
	realm   string
	service string
	issuer  string
	ttl     time.Duration
	now     func() time.Time
	parser  *jwt.Parser
	log     *slog.Logger
}

func newTokenAuthorizer(cfg Config, a *acl, users *htpasswd, key *ecdsa.PrivateKey) (*tokenAuthorizer, error) {
	kid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	t := &tokenAuthorizer{
		acl:     a,
		users:   users,
		key:     key,
		kid:     kid,
		realm:   cfg.Realm,
		service: cfg.Service,
		issuer:  cfg.Issuer,
		ttl:     cfg.TokenTTL,
		now:     time.Now,
		log:     cfg.Log,
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.service),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
	return t, nil
}

// Authorize accepts a request whose bearer token covers every item of
// want; with no want any valid token will do.
func (t *tokenAuthorizer) Authorize(r *http.Request, want []Access) (string, error) {
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return "", t.challenge(r, want, "", "bearer token required")
	}
	c, err := t.verify(strings.TrimSpace(raw))
	if err != nil {
		return "", t.challenge(r, want, "invalid_token", "invalid token: "+err.Error())
	}
	for _, w := range want {
		if !covers(c.Access, w) {
			return "", t.challenge(r, want, "insufficient_scope",
				fmt.Sprintf("token does not grant %s", scopeString(w)))
		}
	}
	return c.Subject, nil
}

// covers reports whether the granted accesses include every action of w.
// An Access asking for no action is never covered.
func covers(granted []Access, w Access) bool {
	if len(w.Actions) == 0 {
		return false
	}
	for _, act := range w.Actions {
		if !slices.ContainsFunc(granted, func(g Access) bool {
			return g.Type == w.Type && g.Name == w.Name && slices.Contains(g.Actions, act)
		}) {
			return false
		}
	}
	return true
}

// Actions lists what user may do on repo according to the rules.
func (t *tokenAuthorizer) Actions(user, repo string) []string { return t.acl.actions(user, repo) }

// challenge is a 401 asking the client to fetch a token for want from the
// token endpoint; errCode is the RFC 6750 error ("invalid_token",
// "insufficient_scope") or empty when no token was sent.
func (t *tokenAuthorizer) challenge(r *http.Request, want []Access, errCode, msg string) *Error {
	realm := t.realm
	if realm == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		realm = scheme + "://" + r.Host + "/token"
	}
	ch := "Bearer realm=" + quote(realm) + ",service=" + quote(t.service)
	if len(want) > 0 {
		scopes := make([]string, len(want))
		for i, w := range want {
			scopes[i] = scopeString(w)
		}
		ch += ",scope=" + quote(strings.Join(scopes, " "))
	}
	if errCode != "" {
		ch += ",error=" + quote(errCode)
	}
	return &Error{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: msg, Challenge: ch}
}

// scopeString formats a as a scope: type:name:action,action.
func scopeString(a Access) string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// quote makes s an HTTP quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// issue signs a token for user ("" anonymous) granting access.
func (t *tokenAuthorizer) issue(user string, access []Access) (token string, issued time.Time, err error) {
	issued = t.now().Truncate(time.Second)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{t.service},
			ExpiresAt: jwt.NewNumericDate(issued.Add(t.ttl)),
			NotBefore: jwt.NewNumericDate(issued),
			IssuedAt:  jwt.NewNumericDate(issued),
			ID:        rand.Text(),
		},
		Access: access,
	}
	if c.Access == nil {
		c.Access = []Access{}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = t.kid
	token, err = tok.SignedString(t.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign token for %q: %w", user, err)
	}
	return token, issued, nil
}

// verify checks raw's signature (ES256 by our key only), issuer, audience
// and times, and returns its claims.
func (t *tokenAuthorizer) verify(raw string) (*claims, error) {
	c := &claims{}
	_, err := t.parser.ParseWithClaims(raw, c, func(tok *jwt.Token) (any, error) {
		if kid, _ := tok.Header["kid"].(string); kid != t.kid {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return &t.key.PublicKey, nil
	})
	if err != nil {
		return nil, err
	}
	if c.Access == nil {
		return nil, errors.New("no access claim")
	}
	return c, nil
}

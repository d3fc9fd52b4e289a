package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// newTokenAuth is a token-mode authorizer where alice may pull and push
// her repositories, bob may pull them, and anyone may pull public ones.
func newTokenAuth(t *testing.T, cfg Config) *tokenAuthorizer {
	t.Helper()
	dir := t.TempDir()
	cfg.Mode = "token"
	cfg.Htpasswd = writeHtpasswd(t, dir, "alice", "apw", "bob", "bpw")
	cfg.Access = []Rule{
		{Anonymous: true, Repos: []string{"public/*"}, Actions: []string{"pull"}},
		{Users: []string{"alice"}, Repos: []string{"alice/**"}, Actions: []string{"pull", "push"}},
		{Users: []string{"bob"}, Repos: []string{"alice/**"}, Actions: []string{"pull"}},
	}
	a, err := New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	return a.(*tokenAuthorizer)
}

// bearer is a request carrying token.
func bearer(token string) *http.Request {
	r := httptest.NewRequest("GET", "http://registry.test/v2/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// fetchToken asks the token endpoint with a GET for scopes, with basic
// auth when user is set, and returns the status and decoded answer.
func fetchToken(t *testing.T, ta *tokenAuthorizer, user, pw string, scopes ...string) (int, tokenResponse, *httptest.ResponseRecorder) {
	t.Helper()
	q := url.Values{"service": {ta.service}, "scope": scopes}
	r := httptest.NewRequest("GET", "http://registry.test/token?"+q.Encode(), nil)
	if user != "" {
		r.SetBasicAuth(user, pw)
	}
	w := httptest.NewRecorder()
	ta.TokenHandler().ServeHTTP(w, r)
	var resp tokenResponse
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("token response %q: %v", w.Body, err)
		}
	}
	return w.Code, resp, w
}

// mustToken fetches a token and fails the test unless it is issued.
func mustToken(t *testing.T, ta *tokenAuthorizer, user, pw string, scopes ...string) string {
	t.Helper()
	code, resp, w := fetchToken(t, ta, user, pw, scopes...)
	if code != http.StatusOK {
		t.Fatalf("token for %q %v: %d %s", user, scopes, code, w.Body)
	}
	return resp.Token
}

// tokenAccess decodes a token's access claim without verifying it.
func tokenAccess(t *testing.T, token string) []Access {
	t.Helper()
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatal(err)
	}
	return c.Access
}

func TestTokenRoundTrip(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	code, resp, w := fetchToken(t, ta, "alice", "apw", "repository:alice/app:pull,push")
	if code != http.StatusOK {
		t.Fatalf("token: %d %s", code, w.Body)
	}
	if resp.Token == "" || resp.AccessToken != resp.Token {
		t.Errorf("token %q, access_token %q", resp.Token, resp.AccessToken)
	}
	if resp.ExpiresIn != 300 {
		t.Errorf("expires_in %d, want 300", resp.ExpiresIn)
	}
	issued, err := time.Parse(time.RFC3339, resp.IssuedAt)
	if err != nil || time.Since(issued) > time.Minute {
		t.Errorf("issued_at %q: %v", resp.IssuedAt, err)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}

	// The token's header and claims.
	var c claims
	tok, _, err := jwt.NewParser().ParseUnverified(resp.Token, &c)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["alg"] != "ES256" || tok.Header["typ"] != "JWT" || tok.Header["kid"] != ta.kid {
		t.Errorf("header %v", tok.Header)
	}
	if c.Issuer != "berth-registry" || c.Subject != "alice" || len(c.Audience) != 1 || c.Audience[0] != "berth-registry" ||
		c.ID == "" || c.IssuedAt == nil || c.NotBefore == nil || c.ExpiresAt == nil ||
		c.ExpiresAt.Sub(c.IssuedAt.Time) != 5*time.Minute {
		t.Errorf("claims %+v", c.RegisteredClaims)
	}
	if !accessEqual(c.Access, []Access{repo("alice/app", "pull", "push")}) {
		t.Errorf("access %v", c.Access)
	}

	for _, want := range [][]Access{
		{repo("alice/app", "push")},
		{repo("alice/app", "pull")},
		{repo("alice/app", "pull", "push")},
		nil, // the base endpoint
	} {
		if user, err := ta.Authorize(bearer(resp.Token), want); user != "alice" || err != nil {
			t.Errorf("Authorize(%v) = %q, %v", want, user, err)
		}
	}

	// Each token gets its own ID.
	if other := mustToken(t, ta, "alice", "apw", "repository:alice/app:pull"); other == resp.Token {
		t.Error("two tokens are identical")
	}
}

func TestTokenScopes(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	tests := []struct {
		name     string
		user, pw string
		scopes   []string
		want     []Access
	}{
		{"escalation is cut down", "bob", "bpw", []string{"repository:alice/app:pull,push"}, []Access{repo("alice/app", "pull")}},
		{"nothing allowed", "bob", "bpw", []string{"repository:bob/app:push"}, []Access{}},
		{"anonymous", "", "", []string{"repository:public/x:pull,push", "repository:alice/app:pull"}, []Access{repo("public/x", "pull")}},
		{"anonymous catalog", "", "", []string{"registry:catalog:*"}, []Access{catalog}},
		{"space-separated", "alice", "apw", []string{"repository:alice/a:pull repository:alice/b:push"}, []Access{repo("alice/a", "pull"), repo("alice/b", "push")}},
		{"mount from", "alice", "apw", []string{"repository:alice/a:pull,push", "repository:public/b:pull"}, []Access{repo("alice/a", "pull", "push"), repo("public/b", "pull")}},
		{"repeated scope merged", "alice", "apw", []string{"repository:alice/a:push", "repository:alice/a:pull"}, []Access{repo("alice/a", "pull", "push")}},
		{"unknown action", "alice", "apw", []string{"repository:alice/a:pull,frobnicate,*"}, []Access{repo("alice/a", "pull")}},
		{"plugin class", "alice", "apw", []string{"repository(plugin):alice/a:pull"}, []Access{}},
		{"no scope (login)", "alice", "apw", nil, []Access{}},
		{"empty actions", "alice", "apw", []string{"repository:alice/a:"}, []Access{}},
	}
	for _, tt := range tests {
		token := mustToken(t, ta, tt.user, tt.pw, tt.scopes...)
		if got := tokenAccess(t, token); !accessEqual(got, tt.want) {
			t.Errorf("%s: access %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestTokenInsufficientScope(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	// bob asks for push where he may only pull: he gets pull, and the
	// token does not let him push.
	token := mustToken(t, ta, "bob", "bpw", "repository:alice/app:pull,push")
	if user, err := ta.Authorize(bearer(token), []Access{repo("alice/app", "pull")}); user != "bob" || err != nil {
		t.Fatalf("pull: %q, %v", user, err)
	}
	tests := []struct {
		name  string
		want  []Access
		scope string
	}{
		{"push", []Access{repo("alice/app", "push")}, "repository:alice/app:push"},
		{"other repository", []Access{repo("alice/other", "pull")}, "repository:alice/other:pull"},
		{"prefix of the repository", []Access{repo("alice", "pull")}, "repository:alice:pull"},
		{"catalog", []Access{catalog}, "registry:catalog:*"},
		{"one of two", []Access{repo("alice/app", "pull"), repo("public/x", "pull")}, "repository:alice/app:pull repository:public/x:pull"},
		{"no action", []Access{repo("alice/app")}, "repository:alice/app:"},
	}
	for _, tt := range tests {
		_, err := ta.Authorize(bearer(token), tt.want)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code != "UNAUTHORIZED" {
			t.Errorf("%s: err = %v, want a 401", tt.name, err)
			continue
		}
		want := `Bearer realm="http://registry.test/token",service="berth-registry",scope="` + tt.scope + `",error="insufficient_scope"`
		if ae.Challenge != want {
			t.Errorf("%s: challenge\n%s\nwant\n%s", tt.name, ae.Challenge, want)
		}
	}
}

func TestTokenChallenge(t *testing.T) {
	want := []Access{repo("foo/bar", "pull", "push"), catalog}
	const scope = `,scope="repository:foo/bar:pull,push registry:catalog:*"`

	ta := newTokenAuth(t, Config{})
	r := httptest.NewRequest("GET", "http://registry.test:5000/v2/foo/bar/blobs/uploads/", nil)
	_, err := ta.Authorize(r, want)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "UNAUTHORIZED" ||
		ae.Challenge != `Bearer realm="http://registry.test:5000/token",service="berth-registry"`+scope {
		t.Errorf("no token: %+v", err)
	}

	r.TLS = &tls.ConnectionState{}
	r.Header.Set("X-Forwarded-Proto", "http")
	if _, err := ta.Authorize(r, nil); !errors.As(err, &ae) ||
		ae.Challenge != `Bearer realm="https://registry.test:5000/token",service="berth-registry"` {
		t.Errorf("TLS, base endpoint: %+v", err)
	}

	ta = newTokenAuth(t, Config{Realm: "https://auth.example.com/token", Service: "reg.example.com"})
	if _, err := ta.Authorize(bearer("garbage"), want); !errors.As(err, &ae) ||
		ae.Challenge != `Bearer realm="https://auth.example.com/token",service="reg.example.com"`+scope+`,error="invalid_token"` {
		t.Errorf("configured realm, bad token: %+v", err)
	}

	r = httptest.NewRequest("GET", "/v2/", nil)
	r.SetBasicAuth("alice", "apw")
	if _, err := ta.Authorize(r, nil); !errors.As(err, &ae) || strings.Contains(ae.Challenge, "error=") {
		t.Errorf("basic auth in token mode: %+v", err)
	}
}

// signToken signs claims with method and key, with the given kid header
// when not empty.
func signToken(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// es384 signs c with key (P-256) but names and hashes it as ES384, which
// the library would refuse to produce.
func es384(t *testing.T, key *ecdsa.PrivateKey, kid string, c claims) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "ES384", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	signed := b64(header) + "." + b64(payload)
	sum := sha512.Sum384([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + b64(sig)
}

func TestTokenRejected(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	now := time.Now()
	access := []Access{repo("alice/app", "pull", "push")}
	valid := func() claims {
		return claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer:    "berth-registry",
				Subject:   "alice",
				Audience:  jwt.ClaimStrings{"berth-registry"},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
				NotBefore: jwt.NewNumericDate(now),
				IssuedAt:  jwt.NewNumericDate(now),
				ID:        "x",
			},
			Access: access,
		}
	}
	with := func(f func(*claims)) claims {
		c := valid()
		f(&c)
		return c
	}
	ours := func(c claims) string { return signToken(t, jwt.SigningMethodES256, ta.key, ta.kid, c) }

	// The crafted tokens are good when signed with our key.
	if _, err := ta.Authorize(bearer(ours(valid())), access); err != nil {
		t.Fatalf("crafted token: %v", err)
	}
	for name, c := range map[string]claims{
		"expired within leeway":       with(func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) }),
		"not yet valid within leeway": with(func(c *claims) { c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Second)) }),
		"audience among others":       with(func(c *claims) { c.Audience = jwt.ClaimStrings{"other", "berth-registry"} }),
	} {
		if _, err := ta.Authorize(bearer(ours(c)), access); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&ta.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	good := ours(valid())
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString

	tests := map[string]string{
		"forged signature":      signToken(t, jwt.SigningMethodES256, other, ta.kid, valid()),
		"other key, no kid":     signToken(t, jwt.SigningMethodES256, other, "", valid()),
		"our key, no kid":       signToken(t, jwt.SigningMethodES256, ta.key, "", valid()),
		"our key, wrong kid":    signToken(t, jwt.SigningMethodES256, ta.key, "AAAA:BBBB", valid()),
		"alg none":              signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ta.kid, valid()),
		"HS256 with public PEM": signToken(t, jwt.SigningMethodHS256, pubPEM, ta.kid, valid()),
		"HS256 with public DER": signToken(t, jwt.SigningMethodHS256, pubDER, ta.kid, valid()),
		"ES384 by our key":      es384(t, ta.key, ta.kid, valid()),
		"expired":               ours(with(func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })),
		"no expiry":             ours(with(func(c *claims) { c.ExpiresAt = nil })),
		"not yet valid":         ours(with(func(c *claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) })),
		"issued in the future":  ours(with(func(c *claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute)) })),
		"wrong audience":        ours(with(func(c *claims) { c.Audience = jwt.ClaimStrings{"other-registry"} })),
		"no audience":           ours(with(func(c *claims) { c.Audience = nil })),
		"wrong issuer":          ours(with(func(c *claims) { c.Issuer = "evil" })),
		"no issuer":             ours(with(func(c *claims) { c.Issuer = "" })),
		"no access claim":       ours(with(func(c *claims) { c.Access = nil })),
		"payload swapped":       parts[0] + "." + b64([]byte(`{"iss":"berth-registry","aud":"berth-registry","exp":9999999999,"access":[{"type":"repository","name":"alice/app","actions":["pull","push"]}]}`)) + "." + parts[2],
		"signature stripped":    parts[0] + "." + parts[1] + ".",
		"two parts":             parts[0] + "." + parts[1],
		"garbage":               "garbage",
		"dots":                  "..",
		"base64 junk":           b64([]byte("{")) + "." + b64([]byte("{")) + "." + b64([]byte("x")),
		"token with spaces":     good + " extra",
	}
	for name, token := range tests {
		_, err := ta.Authorize(bearer(token), access)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !strings.Contains(ae.Challenge, `error="invalid_token"`) {
			t.Errorf("%s: err = %v, want 401 invalid_token", name, err)
		}
	}

	for name, header := range map[string]string{
		"no header":    "",
		"empty bearer": "Bearer ",
		"basic":        "Basic YWxpY2U6YXB3",
		"token alone":  good,
	} {
		r := httptest.NewRequest("GET", "/v2/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		_, err := ta.Authorize(r, access)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || strings.Contains(ae.Challenge, "error=") ||
			!strings.HasPrefix(ae.Challenge, "Bearer ") {
			t.Errorf("%s: err = %v, want a 401 challenge without error", name, err)
		}
	}

	// Another registry's token, signed by its own key for its own
	// service, is refused even though it is otherwise well-formed.
	foreign := newTokenAuth(t, Config{Service: "other"})
	ft := mustToken(t, foreign, "alice", "apw", "repository:alice/app:pull")
	if _, err := ta.Authorize(bearer(ft), []Access{repo("alice/app", "pull")}); err == nil {
		t.Error("a foreign registry's token was accepted")
	}
}

func TestTokenLowercaseScheme(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	token := mustToken(t, ta, "alice", "apw", "repository:alice/app:pull")
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", "bearer "+token)
	if user, err := ta.Authorize(r, []Access{repo("alice/app", "pull")}); user != "alice" || err != nil {
		t.Errorf("lowercase bearer: %q, %v", user, err)
	}
}

func TestTokenAnonymous(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	token := mustToken(t, ta, "", "", "repository:public/x:pull")
	if user, err := ta.Authorize(bearer(token), []Access{repo("public/x", "pull")}); user != "" || err != nil {
		t.Errorf("anonymous pull: %q, %v", user, err)
	}
	if _, err := ta.Authorize(bearer(token), []Access{repo("public/x", "push")}); err == nil {
		t.Error("anonymous push allowed")
	}
}

func TestTokenEndpoint(t *testing.T) {
	ta := newTokenAuth(t, Config{})
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		ta.TokenHandler().ServeHTTP(w, r)
		return w
	}
	form := func(v url.Values) *http.Request {
		r := httptest.NewRequest("POST", "/token", strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	get := func(query, user, pw string) *http.Request {
		r := httptest.NewRequest("GET", "/token?"+query, nil)
		if user != "" || pw != "" {
			r.SetBasicAuth(user, pw)
		}
		return r
	}

	tests := []struct {
		name      string
		req       *http.Request
		status    int
		errText   string // in the body
		challenge string
		access    []Access // when 200
		sub       string
	}{
		{name: "docker login", req: get("account=alice&client_id=docker&offline_token=true&service=berth-registry", "alice", "apw"),
			status: 200, access: []Access{}, sub: "alice"},
		{name: "docker push", req: get("account=alice&scope=repository%3Aalice%2Fapp%3Apull%2Cpush&service=berth-registry", "alice", "apw"),
			status: 200, access: []Access{repo("alice/app", "pull", "push")}, sub: "alice"},
		{name: "no service", req: get("scope=repository:public/x:pull", "", ""),
			status: 200, access: []Access{repo("public/x", "pull")}},
		{name: "wrong service", req: get("service=other&scope=repository:public/x:pull", "", ""),
			status: 400, errText: `unknown service \"other\"`},
		{name: "wrong password", req: get("service=berth-registry", "alice", "bpw"),
			status: 401, errText: "UNAUTHORIZED", challenge: `Basic realm="berth-registry"`},
		{name: "unknown user", req: get("service=berth-registry", "mallory", "x"),
			status: 401, errText: "invalid username or password", challenge: `Basic realm="berth-registry"`},
		{name: "empty user", req: get("service=berth-registry", "", "x"),
			status: 401, challenge: `Basic realm="berth-registry"`},
		{name: "account mismatch", req: get("service=berth-registry&account=bob", "alice", "apw"),
			status: 400, errText: `account \"bob\"`},
		{name: "malformed scope", req: get("service=berth-registry&scope=repository:foo", "alice", "apw"),
			status: 400, errText: `scope \"repository:foo\"`},
		{name: "name with a port", req: get("service=berth-registry&scope=repository:localhost:5000/foo:pull", "alice", "apw"),
			status: 400, errText: "invalid resource name"},
		{name: "password grant", req: form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"apw"},
			"service": {"berth-registry"}, "client_id": {"containerd-client"}, "access_type": {"offline"},
			"scope": {"repository:alice/app:pull,push repository:public/x:pull"}}),
			status: 200, access: []Access{repo("alice/app", "pull", "push"), repo("public/x", "pull")}, sub: "alice"},
		{name: "password grant, wrong password", req: form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"},
			"service": {"berth-registry"}}),
			status: 401, errText: `"error":"invalid_grant"`, challenge: `Basic realm="berth-registry"`},
		{name: "password grant, no user", req: form(url.Values{"grant_type": {"password"}, "service": {"berth-registry"}}),
			status: 401, errText: `"error":"invalid_grant"`, challenge: `Basic realm="berth-registry"`},
		{name: "refresh grant", req: form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "service": {"berth-registry"}}),
			status: 400, errText: `"error":"unsupported_grant_type"`},
		{name: "no grant", req: form(url.Values{"service": {"berth-registry"}}),
			status: 400, errText: `"error":"invalid_request"`},
		{name: "post with wrong service", req: form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"apw"}, "service": {"x"}}),
			status: 400, errText: `"error":"invalid_request"`},
		{name: "put", req: httptest.NewRequest("PUT", "/token", nil), status: 405},
	}
	for _, tt := range tests {
		w := serve(tt.req)
		if w.Code != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, w.Code, tt.status, w.Body)
			continue
		}
		if !strings.Contains(w.Body.String(), tt.errText) {
			t.Errorf("%s: body %s, want it to contain %s", tt.name, w.Body, tt.errText)
		}
		if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
			t.Errorf("%s: challenge %q, want %q", tt.name, got, tt.challenge)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: answer may be cached", tt.name)
		}
		if tt.status != http.StatusOK {
			continue
		}
		var resp tokenResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.Token == "" || resp.AccessToken != resp.Token {
			t.Errorf("%s: token %q, access_token %q", tt.name, resp.Token, resp.AccessToken)
			continue
		}
		c, err := ta.verify(resp.Token)
		if err != nil {
			t.Errorf("%s: issued token does not verify: %v", tt.name, err)
			continue
		}
		if c.Subject != tt.sub || !accessEqual(c.Access, tt.access) {
			t.Errorf("%s: sub %q access %v, want %q %v", tt.name, c.Subject, c.Access, tt.sub, tt.access)
		}
	}
}

func TestTokenWithoutHtpasswd(t *testing.T) {
	a, err := New(Config{Mode: "token", Access: []Rule{{Anonymous: true, Repos: []string{"**"}, Actions: []string{"pull"}}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ta := a.(*tokenAuthorizer)
	if code, _, _ := fetchToken(t, ta, "alice", "apw"); code != http.StatusUnauthorized {
		t.Errorf("credentials without an htpasswd file: %d, want 401", code)
	}
	token := mustToken(t, ta, "", "", "repository:any/thing:pull,push")
	if got := tokenAccess(t, token); !accessEqual(got, []Access{repo("any/thing", "pull")}) {
		t.Errorf("anonymous access %v", got)
	}
}

func TestParseScopes(t *testing.T) {
	got, err := parseScopes([]string{"repository:a/b:pull,push registry:catalog:*", " repository:c:delete "})
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{repo("a/b", "pull", "push"), catalog, repo("c", "delete")}
	if !accessEqual(got, want) {
		t.Errorf("parseScopes = %v, want %v", got, want)
	}
	for _, bad := range []string{"repository", "repository:a", ":a:pull", "repository::pull", "repository:a:b:pull"} {
		if _, err := parseScopes([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("parseScopes(%q) = %v, want an error naming it", bad, err)
		}
	}
}

package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func repo(name string, actions ...string) Access {
	return Access{Type: TypeRepository, Name: name, Actions: actions}
}

var catalog = Access{Type: TypeRegistry, Name: CatalogName, Actions: []string{"*"}}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	users := writeHtpasswd(t, dir, "alice", "apw")
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("# x\nalice:{SHA}abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rsaKey := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(rsaKey, []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	p384Key := filepath.Join(dir, "p384.pem")
	if err := os.WriteFile(p384Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown mode", Config{Mode: "ldap"}, `unknown mode "ldap"`},
		{"htpasswd without file", Config{Mode: "htpasswd"}, "needs an htpasswd file"},
		{"missing file", Config{Mode: "htpasswd", Htpasswd: filepath.Join(dir, "nope")}, "nope"},
		{"broken file", Config{Mode: "token", Htpasswd: broken}, "line 2"},
		{"rules without auth", Config{Access: []Rule{{Anonymous: true}}}, `need mode "htpasswd" or "token"`},
		{"htpasswd without auth", Config{Mode: "none", Htpasswd: users}, `need mode "htpasswd" or "token"`},
		{"bad rule", Config{Mode: "htpasswd", Htpasswd: users, Access: []Rule{{Groups: []string{"g"}}}}, `unknown group "g"`},
		{"short ttl", Config{Mode: "token", TokenTTL: time.Second}, "tokenTTL 1s"},
		{"bad realm", Config{Mode: "token", Realm: "/token"}, `realm "/token"`},
		{"rsa key", Config{Mode: "token", Key: rsaKey}, `PEM block "RSA PRIVATE KEY"`},
		{"p384 key", Config{Mode: "token", Key: p384Key}, "curve P-384"},
		{"missing key", Config{Mode: "token", Key: filepath.Join(dir, "nokey")}, "nokey"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestModeNone(t *testing.T) {
	for _, mode := range []string{"", "none"} {
		a, err := New(Config{Mode: mode}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("DELETE", "/v2/x/manifests/latest", nil)
		if user, err := a.Authorize(r, []Access{repo("x", "delete"), catalog}); user != "" || err != nil {
			t.Errorf("mode %q: Authorize = %q, %v", mode, user, err)
		}
		if got := a.Actions("", "x"); !slices.Equal(got, allActions) {
			t.Errorf("mode %q: Actions = %v", mode, got)
		}
		if a.TokenHandler() != nil {
			t.Errorf("mode %q: a token handler", mode)
		}
	}
}

func TestBasicAuthorize(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		Mode:     "htpasswd",
		Htpasswd: writeHtpasswd(t, dir, "alice", "apw", "bob", "bpw", "carol", "cpw"),
		Groups:   map[string][]string{"admins": {"carol"}},
		Access: []Rule{
			{Anonymous: true, Repos: []string{"public/*"}, Actions: []string{"pull"}},
			{Users: []string{"alice"}, Repos: []string{"alice/**"}, Actions: []string{"pull", "push"}},
			{Groups: []string{"admins"}, Repos: []string{"**"}, Actions: []string{"*"}},
		},
	}
	a, err := New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.TokenHandler() != nil {
		t.Error("htpasswd mode has a token handler")
	}
	const challenge = `Basic realm="berth-registry"`
	tests := []struct {
		name       string
		user, pw   string
		header     string // instead of user and pw
		want       []Access
		wantUser   string
		status     int
		code       string
		challenged bool
	}{
		{name: "alice pushes her own", user: "alice", pw: "apw", want: []Access{repo("alice/app", "pull", "push")}, wantUser: "alice"},
		{name: "alice deletes", user: "alice", pw: "apw", want: []Access{repo("alice/app", "delete")}, status: 403, code: "DENIED"},
		{name: "alice elsewhere", user: "alice", pw: "apw", want: []Access{repo("bob/app", "pull")}, status: 403, code: "DENIED"},
		{name: "alice pulls public", user: "alice", pw: "apw", want: []Access{repo("public/x", "pull")}, wantUser: "alice"},
		{name: "alice lists", user: "alice", pw: "apw", want: []Access{catalog}, wantUser: "alice"},
		{name: "alice base", user: "alice", pw: "apw", wantUser: "alice"},
		{name: "admin group deletes", user: "carol", pw: "cpw", want: []Access{repo("bob/app", "delete")}, wantUser: "carol"},
		{name: "bob has only anonymous grants", user: "bob", pw: "bpw", want: []Access{repo("bob/app", "pull")}, status: 403, code: "DENIED"},
		{name: "wrong password", user: "alice", pw: "bpw", want: []Access{repo("public/x", "pull")}, status: 401, code: "UNAUTHORIZED", challenged: true},
		{name: "unknown user", user: "mallory", pw: "x", want: []Access{repo("alice/app", "pull")}, status: 401, code: "UNAUTHORIZED", challenged: true},
		{name: "empty user", header: "Basic Og==", want: []Access{repo("public/x", "pull")}, status: 401, code: "UNAUTHORIZED", challenged: true},
		{name: "anonymous pulls public", want: []Access{repo("public/x", "pull")}},
		{name: "anonymous lists", want: []Access{catalog}},
		{name: "anonymous base", want: nil},
		{name: "anonymous pushes public", want: []Access{repo("public/x", "push")}, status: 401, code: "UNAUTHORIZED", challenged: true},
		{name: "anonymous pulls private", want: []Access{repo("alice/app", "pull")}, status: 401, code: "UNAUTHORIZED", challenged: true},
		{name: "bearer instead of basic", header: "Bearer abc", want: []Access{repo("public/x", "pull")}, status: 401, code: "UNAUTHORIZED", challenged: true},
		{name: "garbage header", header: "Basic !!!", want: []Access{repo("public/x", "pull")}, status: 401, code: "UNAUTHORIZED", challenged: true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v2/", nil)
		switch {
		case tt.header != "":
			r.Header.Set("Authorization", tt.header)
		case tt.user != "":
			r.SetBasicAuth(tt.user, tt.pw)
		}
		user, err := a.Authorize(r, tt.want)
		if tt.status == 0 {
			if err != nil || user != tt.wantUser {
				t.Errorf("%s: Authorize = %q, %v; want %q", tt.name, user, err, tt.wantUser)
			}
			continue
		}
		var ae *Error
		if !errors.As(err, &ae) {
			t.Errorf("%s: Authorize = %q, %v; want an *Error", tt.name, user, err)
			continue
		}
		if ae.Status != tt.status || ae.Code != tt.code || (ae.Challenge == challenge) != tt.challenged ||
			(!tt.challenged && ae.Challenge != "") {
			t.Errorf("%s: error %+v; want status %d code %s challenged %v", tt.name, ae, tt.status, tt.code, tt.challenged)
		}
	}

	if got := a.Actions("alice", "alice/x"); !slices.Equal(got, []string{"pull", "push"}) {
		t.Errorf("Actions(alice) = %v", got)
	}
	if got := a.Actions("", "public/x"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("Actions(anonymous) = %v", got)
	}
}

func TestBasicAuthorizeBrokenFile(t *testing.T) {
	dir := t.TempDir()
	path := writeHtpasswd(t, dir, "alice", "apw")
	a, err := New(Config{Mode: "htpasswd", Htpasswd: path}, dir)
	if err != nil {
		t.Fatal(err)
	}
	a.(*basicAuthorizer).users.recheck = 0
	if err := os.WriteFile(path, []byte("alice:plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.SetBasicAuth("alice", "apw")
	_, err = a.Authorize(r, nil)
	var ae *Error
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), path+" line 1") {
		t.Errorf("Authorize with a broken file: %v; want a plain error naming the file and line", err)
	}
}

func TestKeyPersisted(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	a1, err := New(Config{Mode: "token"}, root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(root, KeyFile+".tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	a2, err := New(Config{Mode: "token"}, root)
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := a1.(*tokenAuthorizer), a2.(*tokenAuthorizer)
	if !t1.key.Equal(t2.key) || t1.kid != t2.kid {
		t.Fatal("key not reused on restart")
	}
	// A token from before the restart is still good.
	tok, _, err := t1.issue("u", []Access{repo("x", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := t2.verify(tok); err != nil {
		t.Errorf("token from before the restart: %v", err)
	}
}

func TestKeyFromConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The curve's OID, as openssl ecparam -genkey writes it first.
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	for name, data := range map[string][]byte{
		"sec1":            pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"pkcs8":           pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"openssl ecparam": append(params, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".pem")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		a, err := New(Config{Mode: "token", Key: path}, root)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !a.(*tokenAuthorizer).key.Equal(key) {
			t.Errorf("%s: a different key was loaded", name)
		}
		if _, err := os.Stat(filepath.Join(root, KeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a key was generated although one was configured", name)
		}
	}
}

func TestKeyID(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := keyID(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// 12 groups of 4 base32 characters.
	if groups := strings.Split(kid, ":"); len(groups) != 12 || len(kid) != 59 {
		t.Errorf("key id %q is not libtrust-shaped", kid)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if kid2, _ := keyID(&other.PublicKey); kid2 == kid {
		t.Error("two keys, one id")
	}
}

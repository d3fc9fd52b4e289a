package auth

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// bcryptHash hashes password at the lowest cost, with the given version
// prefix ("$2a$", "$2b$" or "$2y$").
func bcryptHash(t *testing.T, password, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(h[4:])
}

// writeHtpasswd writes user:password pairs (bcrypt) to a new file and
// returns its path.
func writeHtpasswd(t *testing.T, dir string, pairs ...string) string {
	t.Helper()
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte(htpasswdText(t, pairs...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func htpasswdText(t *testing.T, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(pairs); i += 2 {
		b.WriteString(pairs[i] + ":" + bcryptHash(t, pairs[i+1], "$2y$") + "\n")
	}
	return b.String()
}

func TestParseHtpasswd(t *testing.T) {
	a := bcryptHash(t, "pa", "$2a$")
	b := bcryptHash(t, "pb", "$2b$")
	y := bcryptHash(t, "py", "$2y$")
	good := "# users\n\nalice:" + a + "\n  bob:" + b + "  \r\ncarol:" + y + "\n#eve:plain\n"
	users, err := parseHtpasswd("f", []byte(good))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(users) != 3 {
		t.Fatalf("parsed %d users, want 3", len(users))
	}
	for user, pw := range map[string]string{"alice": "pa", "bob": "pb", "carol": "py"} {
		if err := bcrypt.CompareHashAndPassword(users[user], []byte(pw)); err != nil {
			t.Errorf("%s: %v", user, err)
		}
	}

	bad := []struct {
		name, text, want string
	}{
		{"md5", "alice:" + a + "\nbob:$apr1$Vt9ZpDsn$0ntNJGyA6bA9C3Fk3wLrk/\n", "f line 2: user \"bob\": unsupported hash type"},
		{"sha", "\n\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "f line 3: user \"bob\": unsupported hash type"},
		{"crypt sha512", "bob:$6$salt$hash\n", "f line 1: user \"bob\": unsupported hash type"},
		{"plain", "# c\nbob:secret\n", "f line 2: user \"bob\": unsupported hash type"},
		{"no colon", "bob\n", "f line 1: no colon"},
		{"empty user", ":" + a + "\n", "f line 1: empty user name"},
		{"repeated user", "bob:" + a + "\nbob:" + b + "\n", "f line 2: user \"bob\" listed again"},
		{"truncated", "bob:" + a[:50] + "\n", "f line 1: user \"bob\": malformed bcrypt hash"},
		{"trailing field", "bob:" + a + ":x\n", "f line 1: user \"bob\": malformed bcrypt hash"},
		{"bad cost", "bob:$2y$99$" + a[7:] + "\n", "f line 1: user \"bob\": malformed bcrypt hash"},
	}
	for _, tt := range bad {
		_, err := parseHtpasswd("f", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestHtpasswdVerifyAndReload(t *testing.T) {
	dir := t.TempDir()
	path := writeHtpasswd(t, dir, "alice", "apw", "bob", "bpw")
	h, err := openHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	h.recheck = 0
	check := func(user, pw string, want bool) {
		t.Helper()
		ok, err := h.verify(user, pw)
		if err != nil {
			t.Fatalf("verify(%q): %v", user, err)
		}
		if ok != want {
			t.Errorf("verify(%q, %q) = %v, want %v", user, pw, ok, want)
		}
	}
	check("alice", "apw", true)
	check("alice", "apw", true) // remembered
	check("alice", "bpw", false)
	check("bob", "bpw", true)
	check("nobody", "x", false)
	if len(h.verified) != 2 {
		t.Errorf("%d checks remembered, want 2", len(h.verified))
	}

	// Replace the file: alice's password changes, bob is gone. The
	// remembered checks must not outlive the change.
	if err := os.WriteFile(path, []byte(htpasswdText(t, "alice", "new", "carol", "cpw")), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	check("alice", "apw", false)
	check("alice", "new", true)
	check("bob", "bpw", false)
	check("carol", "cpw", true)

	// A broken file stops every login, with an error naming the line.
	if err := os.WriteFile(path, []byte("alice:$apr1$x$y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.verify("alice", "new"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("verify with a broken file: err = %v, want one naming line 1", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := h.verify("alice", "new"); err == nil {
		t.Error("verify with the file gone succeeded")
	}
	// Fixed again.
	writeHtpasswd(t, dir, "alice", "again")
	check("alice", "again", true)
}

func TestHtpasswdRecheckInterval(t *testing.T) {
	dir := t.TempDir()
	path := writeHtpasswd(t, dir, "alice", "apw")
	h, err := openHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h.now = func() time.Time { return now }
	h.checked = now

	writeHtpasswd(t, dir, "alice", "new")
	future := now.Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.verify("alice", "apw"); !ok {
		t.Error("file read again before the recheck interval passed")
	}
	now = now.Add(htpasswdRecheck)
	if ok, _ := h.verify("alice", "apw"); ok {
		t.Error("old password accepted after the recheck interval")
	}
	if ok, _ := h.verify("alice", "new"); !ok {
		t.Error("new password refused after the recheck interval")
	}
}

func TestHtpasswdRememberedChecks(t *testing.T) {
	path := writeHtpasswd(t, t.TempDir(), "alice", "apw")
	h, err := openHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h.now = func() time.Time { return now }
	h.recheck = time.Hour

	if ok, _ := h.verify("alice", "apw"); !ok {
		t.Fatal("refused")
	}
	// Remembered until it expires; a remembered success for one
	// password says nothing about another.
	h.users["alice"] = []byte(bcryptHash(t, "other", "$2y$"))
	if ok, _ := h.verify("alice", "apw"); !ok {
		t.Error("remembered check not used")
	}
	if ok, _ := h.verify("alice", "apw2"); ok {
		t.Error("a different password was accepted")
	}
	now = now.Add(verifiedTTL)
	if ok, _ := h.verify("alice", "apw"); ok {
		t.Error("expired check still used")
	}

	// The memory stays bounded.
	h.users["alice"] = []byte(bcryptHash(t, "apw", "$2y$"))
	for i := range verifiedMax + 10 {
		h.verified[[32]byte{byte(i), byte(i >> 8), 1}] = now.Add(time.Duration(i) * time.Millisecond)
	}
	if ok, _ := h.verify("alice", "apw"); !ok {
		t.Fatal("refused")
	}
	if len(h.verified) > verifiedMax {
		t.Errorf("%d checks remembered, more than %d", len(h.verified), verifiedMax)
	}
}

func TestHtpasswdConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := writeHtpasswd(t, dir, "alice", "apw")
	h, err := openHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	h.recheck = 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := h.verify("alice", "apw"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 5 {
		// Rewrite through a rename, as editors and htpasswd do, so that
		// readers never see a half-written file.
		tmp := filepath.Join(dir, "new")
		if err := os.WriteFile(tmp, []byte(htpasswdText(t, "alice", "apw", "u"+string(rune('a'+i)), "x")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if ok, err := h.verify("ue", "x"); !ok || err != nil {
		t.Errorf("last version of the file not in use: %v, %v", ok, err)
	}
}

package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	// htpasswdRecheck is how often the file's metadata is looked at.
	htpasswdRecheck = time.Second
	// verifiedTTL is how long a successful password check is remembered.
	verifiedTTL = time.Minute
	// verifiedMax bounds the remembered checks.
	verifiedMax = 1024
)

// parseHtpasswd reads an Apache htpasswd file's users and bcrypt hashes.
// Blank lines and lines starting with # are skipped; any other hash type,
// a line without a colon, an empty user name or a repeated user is an
// error naming the line. name is the file's path, for messages.
func parseHtpasswd(name string, data []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("htpasswd %s line %d: no colon between user and hash", name, n)
		case user == "":
			return nil, fmt.Errorf("htpasswd %s line %d: empty user name", name, n)
		case users[user] != nil:
			return nil, fmt.Errorf("htpasswd %s line %d: user %q listed again", name, n, user)
		}
		if err := checkBcrypt(hash); err != nil {
			return nil, fmt.Errorf("htpasswd %s line %d: user %q: %w", name, n, user, err)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", name, err)
	}
	return users, nil
}

// checkBcrypt accepts only well-formed bcrypt hashes ($2a$, $2b$, $2y$).
func checkBcrypt(hash string) error {
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
		return fmt.Errorf("unsupported hash type (only bcrypt is accepted; create entries with htpasswd -B)")
	}
	// A bcrypt hash is always 60 characters: version, cost, 22 of salt
	// and 31 of digest.
	if len(hash) != 60 {
		return fmt.Errorf("malformed bcrypt hash: %d characters, want 60", len(hash))
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("malformed bcrypt hash: %w", err)
	}
	return nil
}

// htpasswd is an htpasswd file that is read again when it changes, with a
// short-lived memory of successful password checks so that a client
// sending the same credentials with every request costs one bcrypt run a
// minute instead of one a request.
type htpasswd struct {
	path    string
	recheck time.Duration
	now     func() time.Time
	// secret keys the memory of checks, so that it holds no plain hash
	// of any password.
	secret []byte

	mu      sync.Mutex
	checked time.Time   // last look at the file's metadata
	info    os.FileInfo // metadata of the file users came from
	users   map[string][]byte
	loadErr error // the file's last read or parse failure, if any
	gen     uint64
	// verified maps a keyed digest of user and password to when the
	// check expires; it is emptied whenever the file changes.
	verified map[[sha256.Size]byte]time.Time
}

// openHtpasswd reads path and fails if it is unreadable or invalid.
func openHtpasswd(path string) (*htpasswd, error) {
	h := &htpasswd{
		path:     path,
		recheck:  htpasswdRecheck,
		now:      time.Now,
		secret:   []byte(rand.Text()),
		verified: map[[sha256.Size]byte]time.Time{},
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloadLocked(h.now())
	if h.loadErr != nil {
		return nil, h.loadErr
	}
	return h, nil
}

// reloadLocked reads the file again if its metadata changed, looking at
// most once per recheck. A file that became unreadable or invalid leaves no
// user able to log in until it is fixed: loadErr is reported with every
// check.
func (h *htpasswd) reloadLocked(now time.Time) {
	if !h.checked.IsZero() && now.Sub(h.checked) < h.recheck {
		return
	}
	h.checked = now
	info, err := os.Stat(h.path)
	if err != nil {
		h.fail(fmt.Errorf("htpasswd: %w", err))
		return
	}
	if h.info != nil && h.loadErr == nil && os.SameFile(h.info, info) &&
		info.ModTime().Equal(h.info.ModTime()) && info.Size() == h.info.Size() {
		return
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		h.fail(fmt.Errorf("htpasswd: %w", err))
		return
	}
	users, err := parseHtpasswd(h.path, data)
	if err != nil {
		h.fail(err)
		return
	}
	h.info, h.users, h.loadErr = info, users, nil
	h.forget()
}

func (h *htpasswd) fail(err error) {
	h.info, h.users, h.loadErr = nil, nil, err
	h.forget()
}

// forget drops every remembered check and makes checks still running
// against the old contents unable to add theirs.
func (h *htpasswd) forget() {
	h.gen++
	clear(h.verified)
}

// verify reports whether password is user's. The error is set only when
// the file cannot be used; it names the file and the problem.
func (h *htpasswd) verify(user, password string) (bool, error) {
	mac := hmac.New(sha256.New, h.secret)
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var key [sha256.Size]byte
	mac.Sum(key[:0])

	h.mu.Lock()
	now := h.now()
	h.reloadLocked(now)
	if h.loadErr != nil {
		err := h.loadErr
		h.mu.Unlock()
		return false, err
	}
	if exp, ok := h.verified[key]; ok && now.Before(exp) {
		h.mu.Unlock()
		return true, nil
	}
	hash, known := h.users[user]
	gen := h.gen
	h.mu.Unlock()

	if !known {
		// Take as long as for a known user, so that timing does not
		// tell which names exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false, nil
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false, nil
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen == gen {
		if len(h.verified) >= verifiedMax {
			for k, exp := range h.verified {
				if !now.Before(exp) {
					delete(h.verified, k)
				}
			}
			if len(h.verified) >= verifiedMax {
				clear(h.verified)
			}
		}
		h.verified[key] = now.Add(verifiedTTL)
	}
	return true, nil
}

// dummyHash is a bcrypt hash of a random password at the default cost.
var dummyHash = sync.OnceValue(func() []byte {
	hash, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), bcrypt.DefaultCost)
	if err != nil {
		panic("auth: bcrypt: " + err.Error())
	}
	return hash
})

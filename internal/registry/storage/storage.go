// Package storage is where a registry keeps its bytes: blobs and upload
// chunks, by key, behind one small Driver interface. Drivers know nothing of
// digests, manifests or repositories; they must make every Put atomic (a
// reader sees the whole object or nothing) and must never follow a key out of
// their root or bucket prefix.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) for a key the driver does not hold.
var ErrNotFound = errors.New("storage: not found")

// ErrSizeMismatch is returned (wrapped) by Put when the reader yields more or
// fewer bytes than the size it was given.
var ErrSizeMismatch = errors.New("storage: size mismatch")

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Driver stores objects by key. Keys are slash-separated relative paths made
// of [A-Za-z0-9._-] segments (never "", ".", ".."); a driver rejects others.
type Driver interface {
	// Put stores r under key, atomically replacing what was there. size is
	// the length of r, or -1 when unknown; when r yields a different
	// length, Put fails with ErrSizeMismatch and stores nothing.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open returns the object from offset on; offset may be at most the
	// object's size (at the size the reader is empty; beyond it, or
	// negative, Open fails). The reader is an *os.File for the filesystem
	// driver (so http.ServeContent can use sendfile).
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
	// Stat reports an object's size and time.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes an object; a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every object whose key starts with prefix (as a
	// string: "a/b" matches "a/bc"), in no particular order, and stops at
	// the first error fn returns. prefix is "" (everything) or a valid key,
	// optionally followed by "/". A prefix nothing has is not an error.
	Walk(ctx context.Context, prefix string, fn func(Info) error) error
	// Concat stores the concatenation of srcs under dst, atomically, and
	// leaves srcs in place. No srcs makes an empty object.
	Concat(ctx context.Context, dst string, srcs []string) error
}

// Redirector is implemented by drivers that can hand a client a short-lived
// URL to GET an object directly (S3 presigned URLs).
type Redirector interface {
	RedirectURL(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// ValidKey reports whether key is one a Driver accepts: slash-separated
// segments of [A-Za-z0-9._-], none of them "", "." or "..". The error names
// the key.
func ValidKey(key string) error {
	if key == "" {
		return errors.New(`storage: invalid key "": empty`)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("storage: invalid key %q: empty, . or .. segment", key)
		}
		for _, c := range []byte(seg) {
			if !keyByte(c) {
				return fmt.Errorf("storage: invalid key %q: byte %q not allowed", key, c)
			}
		}
	}
	return nil
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ExactReader returns a reader that yields what r does, failing with
// ErrSizeMismatch when r ends before size bytes or has more than size. It
// reads at most one byte past size. The read that would complete size
// bytes checks for that extra byte first and, finding it, returns the error
// and no bytes, so even a consumer that stops after size bytes and drops an
// error that comes with the bytes it wanted (io.ReadFull does) sees it.
func ExactReader(r io.Reader, size int64) io.Reader {
	return &exactReader{r: r, size: size, left: size}
}

type exactReader struct {
	r          io.Reader
	size, left int64
	err        error // sticky: a mismatch found
}

func (e *exactReader) Read(p []byte) (int, error) {
	switch {
	case e.err != nil:
		return 0, e.err
	case e.left == 0:
		e.err = e.checkEnd()
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0 && err == nil:
		if err := e.checkEnd(); err != io.EOF {
			e.err = err
			return 0, err
		}
	case e.left > 0 && err == io.EOF:
		e.err = fmt.Errorf("%w: %d bytes, want %d", ErrSizeMismatch, e.size-e.left, e.size)
		return 0, e.err
	}
	return n, err
}

// checkEnd returns io.EOF if r has nothing more.
func (e *exactReader) checkEnd() error {
	var extra [1]byte
	switch _, err := io.ReadFull(e.r, extra[:]); err {
	case io.EOF:
		return io.EOF
	case nil:
		return fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, e.size)
	default:
		return err
	}
}

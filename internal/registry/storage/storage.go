// Package storage is where a registry keeps its bytes: blobs and upload
// chunks, by key, behind one small Driver interface. Drivers know nothing of
// digests, manifests or repositories; they must make every Put atomic (a
// reader sees the whole object or nothing) and must never follow a key out of
// their root or bucket prefix.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) for a key the driver does not hold.
var ErrNotFound = errors.New("storage: not found")

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
	// the length of r, or -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open returns the object from offset on. The reader is an *os.File
	// for the filesystem driver (so http.ServeContent can use sendfile).
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
	// Stat reports an object's size and time.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes an object; a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every object whose key starts with prefix, in no
	// particular order.
	Walk(ctx context.Context, prefix string, fn func(Info) error) error
	// Concat stores the concatenation of srcs under dst, atomically, and
	// leaves srcs in place.
	Concat(ctx context.Context, dst string, srcs []string) error
}

// Redirector is implemented by drivers that can hand a client a short-lived
// URL to GET an object directly (S3 presigned URLs).
type Redirector interface {
	RedirectURL(ctx context.Context, key string, expiry time.Duration) (string, error)
}

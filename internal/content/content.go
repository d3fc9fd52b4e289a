// Package content is berth's content-addressable blob store: bytes named by
// their digest, and nothing else.
//
// A blob becomes visible only after its digest and size were verified while
// streaming, its bytes were fsynced and it was renamed into place, so a reader
// never sees a partial or wrong blob and concurrent writers of one blob are
// harmless. The store knows nothing of images, manifests or names; it must
// never hand out a blob it has not verified.
package content

import (
	"bytes"
	_ "crypto/sha256" // digest algorithms the store accepts
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = errors.New("blob not found")

// Store keeps blobs under root/blobs/<algorithm>/<hex>; in-flight writes live
// under root/ingest until they are committed.
type Store struct {
	root string
}

// Info describes one stored blob.
type Info struct {
	Digest digest.Digest
	Size   int64
}

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	for _, d := range []string{"blobs", "ingest"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Store{root: dir}, nil
}

// Path returns where the blob with digest d lives (whether or not it exists).
func (s *Store) Path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("blob %q: %w", d, err)
	}
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded()), nil
}

// Stat reports the size of a stored blob.
func (s *Store) Stat(d digest.Digest) (Info, error) {
	p, err := s.Path(d)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Digest: d, Size: fi.Size()}, nil
}

// Has reports whether the blob is stored.
func (s *Store) Has(d digest.Digest) bool {
	_, err := s.Stat(d)
	return err == nil
}

// Open opens a stored blob for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	p, err := s.Path(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	return f, err
}

// ReadAll returns the bytes of a blob, refusing blobs larger than limit.
func (s *Store) ReadAll(d digest.Digest, limit int64) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s: larger than %d bytes", d, limit)
	}
	return b, nil
}

// Delete removes a blob; deleting a missing blob is not an error.
func (s *Store) Delete(d digest.Digest) error {
	p, err := s.Path(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn for every committed blob. Files whose names are not valid
// digests are reported to fn with a zero Info and an error.
func (s *Store) Walk(fn func(Info, error) error) error {
	base := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		entries, err := os.ReadDir(filepath.Join(base, alg.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), e.Name())
			if verr := d.Validate(); verr != nil {
				if err := fn(Info{}, fmt.Errorf("stray file blobs/%s/%s: %w", alg.Name(), e.Name(), verr)); err != nil {
					return err
				}
				continue
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			if err := fn(Info{Digest: d, Size: fi.Size()}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Verify rehashes a stored blob and reports a mismatch.
func (s *Store) Verify(d digest.Digest) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	v := d.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if !v.Verified() {
		return fmt.Errorf("blob %s: content does not match its digest", d)
	}
	return nil
}

// CleanIngest removes every in-flight write. Only call it when no writer can
// be running (the caller holds the store's exclusive lock).
func (s *Store) CleanIngest() error {
	dir := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Writer streams one blob into the store. Write the bytes, then Commit; Close
// without Commit discards them.
type Writer struct {
	s        *Store
	f        *os.File
	digester digest.Digester
	n        int64
	done     bool
}

// NewWriter starts an ingest hashing with alg (sha256 when empty). The
// blob's digest is known only at Commit.
func (s *Store) NewWriter(alg digest.Algorithm) (*Writer, error) {
	if alg == "" {
		alg = digest.Canonical
	}
	if !alg.Available() {
		return nil, fmt.Errorf("digest algorithm %q is not supported", alg)
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "ingest"), "blob-")
	if err != nil {
		return nil, err
	}
	return &Writer{s: s, f: f, digester: alg.Digester()}, nil
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.digester.Hash().Write(p[:n])
	w.n += int64(n)
	return n, err
}

// ReadFrom lets io.Copy stream through a large buffer.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Digest is the digest of the bytes written so far.
func (w *Writer) Digest() digest.Digest { return w.digester.Digest() }

// Commit verifies the written bytes against expected (when not empty) and
// size (when >= 0), fsyncs them and makes the blob visible. A blob that is
// already stored is left as it is.
func (w *Writer) Commit(expected digest.Digest, size int64) (Info, error) {
	if w.done {
		return Info{}, errors.New("blob writer already closed")
	}
	got := w.Digest()
	if expected != "" && expected != got {
		w.Close()
		return Info{}, fmt.Errorf("blob %s: content digest is %s", expected, got)
	}
	if size >= 0 && size != w.n {
		w.Close()
		return Info{}, fmt.Errorf("blob %s: size is %d, expected %d", got, w.n, size)
	}
	info := Info{Digest: got, Size: w.n}
	dst, err := w.s.Path(got)
	if err != nil {
		w.Close()
		return Info{}, err
	}
	if _, err := os.Stat(dst); err == nil {
		w.Close()
		return info, nil
	}
	if err := w.f.Sync(); err != nil {
		w.Close()
		return Info{}, err
	}
	if err := w.f.Chmod(0o444); err != nil {
		w.Close()
		return Info{}, err
	}
	if err := w.f.Close(); err != nil {
		w.done = true
		os.Remove(w.f.Name())
		return Info{}, err
	}
	w.done = true
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		os.Remove(w.f.Name())
		return Info{}, err
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		os.Remove(w.f.Name())
		return Info{}, err
	}
	return info, syncDir(filepath.Dir(dst))
}

// Close discards an uncommitted write.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

// Put stores the bytes of r, verifying them against expected (when set) and
// size (when >= 0).
func (s *Store) Put(r io.Reader, expected digest.Digest, size int64) (Info, error) {
	alg := digest.Canonical
	if expected != "" {
		if err := expected.Validate(); err != nil {
			return Info{}, fmt.Errorf("blob %q: %w", expected, err)
		}
		alg = expected.Algorithm()
		if s.Has(expected) {
			if size >= 0 {
				if info, err := s.Stat(expected); err == nil && info.Size != size {
					return Info{}, fmt.Errorf("blob %s: stored size %d, expected %d", expected, info.Size, size)
				}
			}
			return s.Stat(expected)
		}
	}
	w, err := s.NewWriter(alg)
	if err != nil {
		return Info{}, err
	}
	defer w.Close()
	src := r
	if size >= 0 {
		src = io.LimitReader(r, size+1)
	}
	if _, err := io.Copy(w, src); err != nil {
		return Info{}, fmt.Errorf("blob %s: %w", expected, err)
	}
	return w.Commit(expected, size)
}

// PutBytes stores b.
func (s *Store) PutBytes(b []byte) (Info, error) {
	return s.Put(bytes.NewReader(b), digest.FromBytes(b), int64(len(b)))
}

func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

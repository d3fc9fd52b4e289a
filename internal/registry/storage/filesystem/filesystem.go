// Package filesystem is the registry's storage driver for a local directory:
// one file per key under the root, written to a temporary file in root/_tmp
// and renamed into place, so a reader sees a whole object or none. A Put
// returns once its object is durable: concurrent Puts share one syncfs of
// the filesystem instead of two fsyncs each.
//
// Every path is resolved through an [os.Root], so neither a key nor a
// symlink planted inside the root can reach a file outside it. Open returns
// the *os.File itself, which lets http.ServeContent use sendfile, and Concat
// never copies bytes through user space: one part is hard-linked, several are
// joined with copy_file_range.
//
// Keys whose first segment is "_tmp" are reserved. A path cannot be both an
// object and a directory, so this driver cannot hold both "a" and "a/b".
package filesystem

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/registry/storage"
)

// tmpDir holds files being written. Drivers hold a shared flock on it while
// they live; New removes its files only when it can take the lock
// exclusively, that is when no other driver on the root can be writing them.
const tmpDir = "_tmp"

// renameAttempts bounds how often a Put retries creating the key's
// directory, which a concurrent Delete may prune between MkdirAll and rename.
const renameAttempts = 100

// Driver is a storage.Driver over a directory. It is safe for concurrent
// use, also by several processes sharing the directory.
type Driver struct {
	root  *os.Root
	tmp   *os.File // root/_tmp, flocked shared
	flush *groupSync
}

var _ storage.Driver = (*Driver)(nil)

// New opens (creating it if needed) the directory root as a Driver, and
// removes temporary files a crashed writer left in root/_tmp unless another
// live Driver uses root.
func New(root string) (*Driver, error) {
	if err := os.MkdirAll(filepath.Join(root, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("filesystem storage: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("filesystem storage: %w", err)
	}
	d := &Driver{root: r, flush: newGroupSync()}
	if d.tmp, err = r.Open(tmpDir); err == nil {
		err = d.removeStale()
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("filesystem storage: %s: %w", root, err)
	}
	return d, nil
}

// removeStale empties _tmp if no other driver holds it, then leaves d
// holding its shared lock.
func (d *Driver) removeStale() error {
	fd := int(d.tmp.Fd())
	err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case err == nil:
		names, err := d.tmp.Readdirnames(-1)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := d.root.RemoveAll(path.Join(tmpDir, name)); err != nil {
				return err
			}
		}
	case !errors.Is(err, unix.EWOULDBLOCK):
		return fmt.Errorf("lock %s: %w", tmpDir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
		return fmt.Errorf("lock %s: %w", tmpDir, err)
	}
	return nil
}

// Close releases the root. Writes in flight fail.
func (d *Driver) Close() error {
	var err error
	if d.tmp != nil {
		err = d.tmp.Close()
	}
	return errors.Join(err, d.root.Close())
}

// Put implements storage.Driver.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filesystem storage: put %s: %w", key, err)
	}
	if size >= 0 {
		r = storage.ExactReader(r, size)
	}
	tmp, err := d.writeTemp(func(f *os.File) error {
		_, err := io.Copy(f, r)
		return err
	})
	if err == nil {
		err = d.commit(tmp, key)
	}
	if err != nil {
		return fmt.Errorf("filesystem storage: put %s: %w", key, err)
	}
	return nil
}

// Open implements storage.Driver; the reader is an *os.File.
func (d *Driver) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, size, err := d.open(key)
	if err != nil {
		return nil, fmt.Errorf("filesystem storage: open %s: %w", key, err)
	}
	if offset < 0 || offset > size {
		f.Close()
		return nil, fmt.Errorf("filesystem storage: open %s: offset %d outside its %d bytes", key, offset, size)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("filesystem storage: open %s: %w", key, err)
	}
	return f, nil
}

// open opens the regular file at key, with its size.
func (d *Driver) open(key string) (*os.File, int64, error) {
	f, err := d.root.Open(key)
	if err != nil {
		return nil, 0, notFound(err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = storage.ErrNotFound
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Stat implements storage.Driver.
func (d *Driver) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := checkKey(key); err != nil {
		return storage.Info{}, err
	}
	fi, err := d.root.Stat(key)
	if err != nil {
		err = notFound(err)
	} else if !fi.Mode().IsRegular() {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Info{}, fmt.Errorf("filesystem storage: stat %s: %w", key, err)
	}
	return storage.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements storage.Driver, and removes the directories the object
// leaves empty.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	dir := path.Dir(key)
	err := d.unlinkAt(dir, path.Base(key), 0)
	switch {
	case missing(err), errors.Is(err, syscall.EISDIR):
		return nil
	case err != nil:
		return fmt.Errorf("filesystem storage: delete %s: %w", key, err)
	}
	// Prune up to the first directory that still holds something (or that
	// a concurrent Put just recreated).
	for dir != "." {
		if d.unlinkAt(path.Dir(dir), path.Base(dir), unix.AT_REMOVEDIR) != nil {
			break
		}
		dir = path.Dir(dir)
	}
	return nil
}

// unlinkAt removes the file (flags 0) or empty directory (AT_REMOVEDIR)
// name in dir. Unlike os.Root.Remove it never removes the other kind.
func (d *Driver) unlinkAt(dir, name string, flags int) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Unlinkat(int(f.Fd()), name, flags)
}

// Walk implements storage.Driver.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if prefix != "" {
		if err := storage.ValidKey(strings.TrimSuffix(prefix, "/")); err != nil {
			return err
		}
	}
	base := "."
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		base = prefix[:i]
	}
	err := fs.WalkDir(d.root.FS(), base, func(p string, e fs.DirEntry, err error) error {
		switch {
		case err != nil:
			// A missing prefix, or a directory a concurrent Delete pruned.
			if missing(err) {
				return nil
			}
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case e.IsDir():
			if p == tmpDir || p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		case !e.Type().IsRegular() || !strings.HasPrefix(p, prefix):
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
				return nil
			}
			return err
		}
		return fn(storage.Info{Key: p, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("filesystem storage: walk %s: %w", prefix, err)
	}
	return nil
}

// Concat implements storage.Driver. One part is hard-linked (dst then
// shares its inode, which is safe because nothing is ever written in
// place, and its modification time, which Concat sets to now); several are
// joined with copy_file_range.
func (d *Driver) Concat(ctx context.Context, dst string, srcs []string) error {
	for _, k := range append([]string{dst}, srcs...) {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filesystem storage: concat %s: %w", dst, err)
	}
	var err error
	switch len(srcs) {
	case 0:
		return d.Put(ctx, dst, strings.NewReader(""), 0)
	case 1:
		tmp := tempName()
		if err = d.root.Link(srcs[0], tmp); err != nil {
			err = fmt.Errorf("%s: %w", srcs[0], notFound(err))
			break
		}
		// dst is stored now, as S3's copy would be (and src with it).
		if err = d.root.Chtimes(tmp, time.Time{}, time.Now()); err == nil {
			err = d.commit(tmp, dst)
		} else {
			d.root.Remove(tmp)
		}
	default:
		err = d.concatCopy(dst, srcs)
	}
	if err != nil {
		return fmt.Errorf("filesystem storage: concat %s: %w", dst, err)
	}
	return nil
}

func (d *Driver) concatCopy(dst string, srcs []string) error {
	files := make([]*os.File, 0, len(srcs))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, src := range srcs {
		f, _, err := d.open(src)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		files = append(files, f)
	}
	tmp, err := d.writeTemp(func(w *os.File) error {
		for i, f := range files {
			// *os.File to *os.File: copy_file_range, in the kernel.
			if _, err := io.Copy(w, f); err != nil {
				return fmt.Errorf("%s: %w", srcs[i], err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.commit(tmp, dst)
}

func tempName() string {
	return path.Join(tmpDir, rand.Text())
}

// writeTemp creates a temporary file and has fill write it. On error
// nothing is left behind.
func (d *Driver) writeTemp(fill func(*os.File) error) (string, error) {
	tmp := tempName()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.root.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// commit renames the written file tmp to key, creating key's directory as
// needed, and returns once the file, its name and any directories made
// for it are durable. tmp is gone afterwards either way (rename leaves it
// when key is already a link to the same inode).
func (d *Driver) commit(tmp, key string) error {
	defer d.root.Remove(tmp)
	dir := path.Dir(key)
	for attempt := 1; ; attempt++ {
		err := d.root.Rename(tmp, key)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == renameAttempts {
			return err
		}
		// The directory was never made, or a concurrent Delete pruned it
		// (possibly midway through MkdirAll, hence ErrNotExist again).
		if err := d.root.MkdirAll(dir, 0o755); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// One syncfs flushes the data and every name change of all the Puts
	// waiting now: far fewer device flushes than an fsync of each file
	// and directory.
	return d.flush.wait(func() error { return unix.Syncfs(int(d.tmp.Fd())) })
}

// checkKey is storage.ValidKey, with _tmp reserved.
func checkKey(key string) error {
	if err := storage.ValidKey(key); err != nil {
		return err
	}
	if first, _, _ := strings.Cut(key, "/"); first == tmpDir {
		return fmt.Errorf("filesystem storage: invalid key %q: %s is reserved", key, tmpDir)
	}
	return nil
}

// missing reports whether err is what a missing key causes: a missing file
// or directory, or a file where a directory should be.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notFound is err, or storage.ErrNotFound if err means the key is missing.
func notFound(err error) error {
	if missing(err) {
		return storage.ErrNotFound
	}
	return err
}

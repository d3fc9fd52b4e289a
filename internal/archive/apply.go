package archive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

const (
	copyBufSize   = 1 << 20
	maxCachedDirs = 4096
)

var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, copyBufSize)
	return &b
}}

// Link is a hard link found in a layer whose target is not in that layer
// itself (it lives in a lower layer). Both paths are cleaned, relative to the
// layer root, with no leading "/".
type Link struct{ Name, Target string }

// ApplyResult describes an applied layer.
type ApplyResult struct {
	Size  int64  // sum of regular-file content bytes written
	Links []Link // hard links to resolve against lower layers with LinkFromLowers
}

// ApplyLayer reads an uncompressed tar stream from r and writes its entries
// into root, an existing empty directory (one directory per layer, to be
// stacked later as an overlayfs lowerdir).
//
// The result is in overlayfs form: an OCI whiteout "dir/.wh.name" becomes a
// 0/0 character device "dir/name" and an opaque marker "dir/.wh..wh..opq"
// sets the xattr trusted.overlay.opaque="y" on dir; other ".wh..wh.*" AUFS
// metadata is skipped.
//
// Every entry name is cleaned (so ".." and absolute names stay inside root)
// and resolved inside root: symlinks met on the way are followed as if root
// were "/", and a path through a symlink that does not resolve to a
// directory inside root is an error. Missing parent directories are created
// with mode 0755. A later entry replaces an earlier one of the same name,
// except that a directory over a directory only updates its metadata; a
// whiteout replaces whatever this layer wrote under that name, and a
// directory written where this layer put a whiteout is made opaque. A hard
// link whose target is not in this layer is not created but returned in
// ApplyResult.Links. trusted.overlay.* and user.overlay.* xattrs in the tar
// are dropped; other xattrs the filesystem does not support are skipped.
// File content that is all zeros in 1 MiB chunks is left as holes.
// Directory times are applied after all entries.
//
// On success r has been read to EOF, so a caller hashing r sees every byte.
// Errors name the offending entry. On error the content of root is
// unspecified and the caller is expected to remove it.
func ApplyLayer(root string, r io.Reader) (ApplyResult, error) {
	a, err := newApplier(root)
	if err != nil {
		return ApplyResult{}, err
	}
	defer a.close()

	br := bufio.NewReaderSize(r, 64<<10)
	tr := tar.NewReader(br)
	last := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// Names escaping the root are fine here: they are contained by
		// resolution, so ignore a GODEBUG=tarinsecurepath=0 setting.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			if last == "" {
				return ApplyResult{}, fmt.Errorf("reading first layer entry: %w", err)
			}
			return ApplyResult{}, fmt.Errorf("reading layer entry after %q: %w", fsat.ShortName(last), err)
		}
		err = a.apply(hdr, tr)
		a.releaseRetired()
		if err != nil {
			return ApplyResult{}, fmt.Errorf("layer entry %q: %w", fsat.ShortName(hdr.Name), err)
		}
		last = hdr.Name
	}
	if err := a.finish(); err != nil {
		return ApplyResult{}, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return ApplyResult{}, fmt.Errorf("reading layer stream after the end of the archive: %w", err)
	}
	return ApplyResult{Size: a.size, Links: a.links()}, nil
}

// dirHandle is an open directory inside the layer root. The descriptor is
// never O_PATH when the handle is cached, so it can also carry fsetxattr.
type dirHandle struct {
	fd int
	f  *os.File // owns fd when it came from pathrs-lite; nil when fd is raw
}

func (h dirHandle) close() {
	if h.f != nil {
		h.f.Close()
		return
	}
	unix.Close(h.fd)
}

// dirTime is the atime/mtime of a directory entry, applied after all
// entries to the directory it created (identified by its inode, so that a
// directory removed or replaced later in the layer is left alone).
type dirTime struct {
	name string
	raw  string // entry name as in the tar, for errors
	fsat.DirTime
}

type applier struct {
	root   *os.File
	rootFD int

	// dirs caches directory handles by clean path. It is dropped whenever
	// anything is removed; dropped handles stay open in retired until the
	// current entry is done, since that entry may still be using them.
	dirs    map[string]dirHandle
	retired []dirHandle

	times   []dirTime
	timeIdx map[string]int // name -> index in times

	// pending maps a hard link's name to its target in a lower layer.
	// under maps a directory to the pending names ever recorded below it,
	// so that replacing the directory drops them without a full scan.
	pending      map[string]string
	pendingOrder []string
	under        map[string][]string

	size int64
	bufp *[]byte
	buf  []byte
}

func newApplier(root string) (*applier, error) {
	f, err := os.OpenFile(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening layer root: %w", err)
	}
	bufp := copyBufPool.Get().(*[]byte)
	return &applier{
		root:    f,
		rootFD:  int(f.Fd()),
		dirs:    make(map[string]dirHandle),
		timeIdx: make(map[string]int),
		bufp:    bufp,
		buf:     *bufp,
	}, nil
}

func (a *applier) close() {
	a.dropCache()
	a.releaseRetired()
	a.root.Close()
	copyBufPool.Put(a.bufp)
}

func (a *applier) dropCache() {
	for _, h := range a.dirs {
		a.retired = append(a.retired, h)
	}
	clear(a.dirs)
}

func (a *applier) releaseRetired() {
	for _, h := range a.retired {
		h.close()
	}
	clear(a.retired)
	a.retired = a.retired[:0]
}

func (a *applier) cacheDir(dir string, h dirHandle) {
	if len(a.dirs) >= maxCachedDirs {
		a.dropCache()
	}
	a.dirs[dir] = h
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// parentDir returns a handle of directory dir inside the root, creating
// missing directories (mode 0755). A component that is not a plain
// directory (a symlink) is handed to the pathrs-lite resolver, which follows
// it as if the root were "/"; everything else is a single-component
// O_NOFOLLOW openat below a handle that was itself obtained this way.
func (a *applier) parentDir(dir string) (int, error) {
	if dir == "" {
		return a.rootFD, nil
	}
	if h, ok := a.dirs[dir]; ok {
		return h.fd, nil
	}
	up, base := fsat.SplitRel(dir)
	upFD, err := a.parentDir(up)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat(upFD, base, dirFlags, 0)
	if err != nil {
		fd, err = a.implicitDir(upFD, dir, base, err)
	}
	h := dirHandle{fd: fd}
	if err != nil {
		f, rerr := pathrs.MkdirAllHandle(a.root, dir, 0o755)
		if rerr != nil {
			return -1, fmt.Errorf("resolving directory %q inside the layer: %w", fsat.ShortName(dir), rerr)
		}
		h = dirHandle{fd: int(f.Fd()), f: f}
	}
	a.cacheDir(dir, h)
	return h.fd, nil
}

// implicitDir handles a directory dir (named base below upFD) that a later
// entry needs but that could not be opened with openErr: a missing one is
// created, and a whiteout written earlier by this layer is replaced by an
// opaque directory (the lower directory stays deleted; only this layer's
// content shows). Anything else returns openErr.
func (a *applier) implicitDir(upFD int, dir, base string, openErr error) (int, error) {
	opaque := false
	switch {
	case errors.Is(openErr, unix.ENOENT):
	case errors.Is(openErr, unix.ENOTDIR):
		var st unix.Stat_t
		if err := unix.Fstatat(upFD, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !isWhiteout(&st) {
			return -1, openErr
		}
		if err := a.remove(upFD, base, dir); err != nil {
			return -1, err
		}
		opaque = true
	default:
		return -1, openErr
	}
	if err := unix.Mkdirat(upFD, base, 0o755); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(upFD, base, dirFlags, 0)
	if err != nil {
		return -1, err
	}
	// Do not depend on the process umask.
	err = unix.Fchmod(fd, 0o755)
	if err == nil && opaque {
		err = unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// lookupDir is parentDir without creating anything. A handle that is not
// from the cache is retired right away (closed when the entry is done).
func (a *applier) lookupDir(dir string) (int, error) {
	if dir == "" {
		return a.rootFD, nil
	}
	if h, ok := a.dirs[dir]; ok {
		return h.fd, nil
	}
	f, err := pathrs.OpenatInRoot(a.root, dir)
	if err != nil {
		return -1, err
	}
	h := dirHandle{fd: int(f.Fd()), f: f}
	a.retired = append(a.retired, h)
	return h.fd, nil
}

// remove deletes whatever this layer wrote at name so that a new entry can
// take its place.
func (a *applier) remove(parent int, base, name string) error {
	if err := removeAllAt(parent, base); err != nil {
		return fmt.Errorf("removing existing %q: %w", fsat.ShortName(name), err)
	}
	a.dropCache()
	a.forget(name)
	return nil
}

// forget drops pending hard links at or below name, which a newer entry of
// the layer replaces.
func (a *applier) forget(name string) {
	if len(a.pending) == 0 {
		return
	}
	delete(a.pending, name)
	for _, n := range a.under[name] {
		delete(a.pending, n)
	}
	delete(a.under, name)
}

func (a *applier) addPending(name, target string) {
	if a.pending == nil {
		a.pending = make(map[string]string)
		a.under = make(map[string][]string)
	}
	a.pending[name] = target
	a.pendingOrder = append(a.pendingOrder, name)
	for d, _ := fsat.SplitRel(name); d != ""; d, _ = fsat.SplitRel(d) {
		a.under[d] = append(a.under[d], name)
	}
}

func (a *applier) links() []Link {
	var out []Link
	for _, name := range a.pendingOrder {
		if target, ok := a.pending[name]; ok {
			out = append(out, Link{Name: name, Target: target})
			delete(a.pending, name)
		}
	}
	return out
}

func (a *applier) recordDirTime(name, raw string, fd int, ts [2]unix.Timespec) error {
	dt, err := fsat.NewDirTime(fd, ts)
	if err != nil {
		return err
	}
	t := dirTime{name: name, raw: raw, DirTime: dt}
	if i, ok := a.timeIdx[name]; ok {
		a.times[i] = t
		return nil
	}
	a.timeIdx[name] = len(a.times)
	a.times = append(a.times, t)
	return nil
}

// finish applies directory times, children before parents.
func (a *applier) finish() error {
	for i := len(a.times) - 1; i >= 0; i-- {
		t := &a.times[i]
		err := a.setDirTime(t)
		a.releaseRetired()
		if err != nil {
			return fmt.Errorf("layer entry %q: setting directory times: %w", fsat.ShortName(t.raw), err)
		}
	}
	return nil
}

func (a *applier) setDirTime(t *dirTime) error {
	parent, base := a.rootFD, "."
	if t.name != "" {
		dir, b := fsat.SplitRel(t.name)
		fd, err := a.lookupDir(dir)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil // no longer there: removed or replaced by a later entry
		}
		if err != nil {
			return err
		}
		parent, base = fd, b
	}
	return t.Apply(parent, base)
}

// setMeta applies owner, then mode (chown clears setuid/setgid), then
// xattrs (chown clears security.capability) to a new entry. Times are left
// to the caller.
func setMeta(n fsat.Node, hdr *tar.Header, m *fsat.Meta) error {
	if err := n.Chown(m.UID, m.GID); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := n.Chmod(m.Mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for name, v := range fsat.PAXXattrs(hdr) {
		if fsat.IsOverlayXattr(name) {
			continue
		}
		err := n.Setxattr(name, []byte(v))
		switch {
		case err == nil, errors.Is(err, unix.EOPNOTSUPP):
			// Not supported by the filesystem: nothing to preserve it in.
		case n.Symlink && errors.Is(err, unix.EPERM) && strings.HasPrefix(name, "user."):
			// Linux refuses user.* xattrs on symlinks.
		default:
			return fmt.Errorf("setting xattr %q: %w", name, err)
		}
	}
	return nil
}

func (a *applier) apply(hdr *tar.Header, tr *tar.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse, tar.TypeSymlink,
		tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// TypeRegA is normalised to TypeReg or TypeDir by archive/tar.
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	name := fsat.CleanRel(hdr.Name)
	if err := fsat.CheckName(hdr.Name, name); err != nil {
		return err
	}
	if strings.HasPrefix(name, whiteoutMeta) && name != opaqueMarker {
		return nil // AUFS metadata at the top level (.wh..wh.plnk/..., .wh..wh.aufs)
	}
	dir, base := fsat.SplitRel(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("only a directory entry may name the layer root")
		}
		return a.rootEntry(hdr)
	}
	if hdr.Typeflag == tar.TypeLink {
		return a.hardlink(hdr, name, dir, base)
	}
	m, err := fsat.NewMeta(hdr)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		// A pending link of that name is replaced; ones below it stay.
		delete(a.pending, name)
	} else {
		a.forget(name)
	}
	parent, err := a.parentDir(dir)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.mkdir(parent, name, base, hdr, &m)
	case tar.TypeSymlink:
		return a.symlink(parent, name, base, hdr, &m)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.special(parent, name, base, hdr, &m)
	}
	return a.regular(parent, name, base, hdr, tr, &m)
}

func (a *applier) rootEntry(hdr *tar.Header) error {
	m, err := fsat.NewMeta(hdr)
	if err != nil {
		return err
	}
	if err := setMeta(fsat.Node{Parent: a.rootFD, Base: ".", FD: a.rootFD}, hdr, &m); err != nil {
		return err
	}
	return a.recordDirTime("", hdr.Name, a.rootFD, m.Times)
}

func (a *applier) whiteout(dir, base string) error {
	if base == opaqueMarker {
		fd, err := a.parentDir(dir)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("marking directory %q opaque: %w", fsat.ShortName(dir), err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata
	}
	victim := base[len(whiteoutPrefix):]
	if victim == "" || victim == "." || victim == ".." {
		return fmt.Errorf("invalid whiteout name %q", base)
	}
	name := fsat.JoinRel(dir, victim)
	a.forget(name)
	parent, err := a.parentDir(dir)
	if err != nil {
		return err
	}
	err = unix.Mknodat(parent, victim, unix.S_IFCHR, 0)
	if errors.Is(err, unix.EEXIST) {
		if err = a.remove(parent, victim, name); err != nil {
			return err
		}
		err = unix.Mknodat(parent, victim, unix.S_IFCHR, 0)
	}
	if err != nil {
		return fmt.Errorf("creating whiteout: %w", err)
	}
	return nil
}

func (a *applier) mkdir(parent int, name, base string, hdr *tar.Header, m *fsat.Meta) error {
	// A directory replacing a whiteout of this layer is opaque: the lower
	// directory stays deleted.
	opaque := false
	err := unix.Mkdirat(parent, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil &&
			st.Mode&unix.S_IFMT != unix.S_IFDIR {
			opaque = isWhiteout(&st)
			if err = a.remove(parent, base, name); err != nil {
				return err
			}
			err = unix.Mkdirat(parent, base, 0o700)
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(parent, base, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("opening directory: %w", err)
	}
	h := dirHandle{fd: fd}
	err = setMeta(fsat.Node{Parent: parent, Base: base, FD: fd}, hdr, m)
	if err == nil && opaque {
		err = unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0)
	}
	if err == nil {
		err = a.recordDirTime(name, hdr.Name, fd, m.Times)
	}
	if err != nil {
		h.close()
		return err
	}
	if _, ok := a.dirs[name]; ok {
		h.close()
	} else {
		a.cacheDir(name, h)
	}
	return nil
}

func (a *applier) regular(parent int, name, base string, hdr *tar.Header, r io.Reader, m *fsat.Meta) error {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, base, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		if err = a.remove(parent, base, name); err != nil {
			return err
		}
		fd, err = unix.Openat(parent, base, flags, 0o600)
	}
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	n := fsat.Node{Parent: parent, Base: base, FD: fd}
	err = fsat.WriteContent(fd, r, hdr.Size, a.buf)
	if err == nil {
		a.size += hdr.Size
		err = setMeta(n, hdr, m)
	}
	if err == nil {
		if err = n.Utimes(&m.Times); err != nil {
			err = fmt.Errorf("setting times: %w", err)
		}
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("closing file: %w", cerr)
	}
	return err
}

func (a *applier) symlink(parent int, name, base string, hdr *tar.Header, m *fsat.Meta) error {
	if len(hdr.Linkname) > fsat.MaxPathLen {
		return fmt.Errorf("symlink target is %d bytes, longer than the %d byte limit", len(hdr.Linkname), fsat.MaxPathLen)
	}
	err := unix.Symlinkat(hdr.Linkname, parent, base)
	if errors.Is(err, unix.EEXIST) {
		if err = a.remove(parent, base, name); err != nil {
			return err
		}
		err = unix.Symlinkat(hdr.Linkname, parent, base)
	}
	if err != nil {
		return fmt.Errorf("creating symlink: %w", err)
	}
	return finishNode(fsat.Node{Parent: parent, Base: base, FD: -1, Symlink: true}, hdr, m)
}

func (a *applier) special(parent int, name, base string, hdr *tar.Header, m *fsat.Meta) error {
	mode, dev, err := fsat.DeviceNode(hdr)
	if err != nil {
		return err
	}
	err = unix.Mknodat(parent, base, mode, dev)
	if errors.Is(err, unix.EEXIST) {
		if err = a.remove(parent, base, name); err != nil {
			return err
		}
		err = unix.Mknodat(parent, base, mode, dev)
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return finishNode(fsat.Node{Parent: parent, Base: base, FD: -1}, hdr, m)
}

// finishNode sets the metadata and times of an entry without a descriptor.
func finishNode(n fsat.Node, hdr *tar.Header, m *fsat.Meta) error {
	if err := setMeta(n, hdr, m); err != nil {
		return err
	}
	if err := n.Utimes(&m.Times); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

func (a *applier) hardlink(hdr *tar.Header, name, dir, base string) error {
	target := fsat.CleanRel(hdr.Linkname)
	if err := fsat.CheckName(hdr.Linkname, target); err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	switch {
	case target == "":
		return errors.New("hard link to the layer root")
	case target == name || strings.HasPrefix(target, name+"/"):
		return fmt.Errorf("hard link to %q, inside itself", fsat.ShortName(target))
	}
	a.forget(name)
	if lower, ok := a.pending[target]; ok {
		a.addPending(name, lower)
		return nil
	}
	tdir, tbase := fsat.SplitRel(target)
	tparent, err := a.lookupDir(tdir)
	var st unix.Stat_t
	if err == nil {
		err = unix.Fstatat(tparent, tbase, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if errors.Is(err, unix.ENOENT) {
		a.addPending(name, target)
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolving hard link target %q: %w", fsat.ShortName(target), err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hard link to directory %q", fsat.ShortName(target))
	}
	if isWhiteout(&st) {
		return fmt.Errorf("hard link to %q, which this layer whites out", fsat.ShortName(target))
	}
	parent, err := a.parentDir(dir)
	if err != nil {
		return err
	}
	err = unix.Linkat(tparent, tbase, parent, base, 0)
	if errors.Is(err, unix.EEXIST) {
		var cur unix.Stat_t
		if err = unix.Fstatat(parent, base, &cur, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			if cur.Dev == st.Dev && cur.Ino == st.Ino {
				return nil
			}
			if err = a.remove(parent, base, name); err == nil {
				err = unix.Linkat(tparent, tbase, parent, base, 0)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", fsat.ShortName(target), err)
	}
	return nil
}

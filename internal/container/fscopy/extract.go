package fscopy

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// resolver finds the directory an entry goes into.
type resolver interface {
	// dir returns a handle of directory rel (clean, relative to the
	// resolver's root; "" is the root), creating missing directories (mode
	// 0755) when create is set.
	dir(rel string, create bool) (handle, error)
	// show names rel for an error message.
	show(rel string) string
	close()
}

// containerResolver resolves inside a container root: symlinks are
// followed as if the root were "/" (pathrs-lite), so nothing outside the
// root is ever reached. Nothing is cached: the container may be running and
// may change its tree at any time.
type containerResolver struct{ r *inRoot }

func (c containerResolver) dir(rel string, create bool) (handle, error) {
	h, err := c.r.open(rel)
	if create && errors.Is(err, unix.ENOENT) {
		var f *os.File
		f, err = pathrs.MkdirAllHandle(c.r.f, rel, 0o755)
		if err == nil {
			h = handle{fd: int(f.Fd()), f: f}
		}
	}
	if err != nil {
		return handle{}, fmt.Errorf("resolving directory %q inside the container: %w", c.show(rel), err)
	}
	return h, nil
}

func (c containerResolver) show(rel string) string { return "/" + rel }

func (c containerResolver) close() {}

// hostResolver resolves below a host directory without following any
// symlink: a symlink (or any non-directory) on the way is an error, so an
// archive cannot lead anything out of the tree it is extracted to.
// Directory handles are cached: the extraction never removes a directory
// (a directory is never replaced by or with a non-directory).
type hostResolver struct {
	root *os.File
	path string
	dirs map[string]int
}

func newHostResolver(dir string) (*hostResolver, error) {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &hostResolver{root: f, path: dir, dirs: make(map[string]int)}, nil
}

func (h *hostResolver) dir(rel string, create bool) (handle, error) {
	if rel == "" {
		return handle{fd: int(h.root.Fd())}, nil
	}
	if fd, ok := h.dirs[rel]; ok {
		return handle{fd: fd}, nil
	}
	up, base := fsat.SplitRel(rel)
	uh, err := h.dir(up, create)
	if err != nil {
		return handle{}, err
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(uh.fd, base, flags, 0)
	if create && errors.Is(err, unix.ENOENT) {
		if err = unix.Mkdirat(uh.fd, base, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
			if fd, err = unix.Openat(uh.fd, base, flags, 0); err == nil {
				err = unix.Fchmod(fd, 0o755) // do not depend on the umask
			}
		}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		err = fmt.Errorf("%w (symlinks are not followed when extracting to the host)", unix.ENOTDIR)
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return handle{}, fmt.Errorf("directory %q: %w", h.show(rel), err)
	}
	if len(h.dirs) >= 1024 {
		h.dropCache()
	}
	h.dirs[rel] = fd
	return handle{fd: fd}, nil
}

func (h *hostResolver) show(rel string) string { return filepath.Join(h.path, rel) }

func (h *hostResolver) dropCache() {
	for _, fd := range h.dirs {
		unix.Close(fd)
	}
	clear(h.dirs)
}

func (h *hostResolver) close() {
	h.dropCache()
	h.root.Close()
}

// extractor unpacks a tar stream the way Docker's Untar does for cp
// (NoOverwriteDirNonDir): entry names are relative to the extraction
// directory and may not climb out of it, missing parents are created with
// mode 0755, an existing non-directory is replaced, an existing directory
// is merged into by a directory entry, and replacing a directory by a
// non-directory or the other way round is an error. Nothing is ever written
// through an existing file, symlink or hard link: an entry is created with
// O_EXCL, mkdir, symlink, mknod or link after removing what was there.
type extractor struct {
	res    resolver
	prefix string // the extraction directory inside the resolver's root
	host   bool   // extracting to the host: see extractHost
	top    string // host mode: every entry must be top or below it ("" = any)
	times  []dirTime
	buf    []byte
}

// dirTime is the atime/mtime of a directory entry, applied after all
// entries (identified by its inode, so that a directory replaced meanwhile
// is left alone).
type dirTime struct {
	rel string
	fsat.DirTime
}

// extractContainer extracts r into directory dir (clean, relative) of the
// container root. Owners are taken from the archive.
func extractContainer(r io.Reader, root *inRoot, dir string) error {
	x := &extractor{res: containerResolver{r: root}, prefix: dir}
	return x.run(r)
}

// extractHost extracts r into the host directory dir. Every entry must be
// top or below it (top "" allows any name). Owners are not restored (files
// belong to the caller, as with Docker, which extracts with NoLchown), the
// setuid and setgid bits are dropped, only user.* xattrs are set, device
// nodes are refused, and no symlink is followed below dir.
func extractHost(r io.Reader, dir, top string) error {
	res, err := newHostResolver(dir)
	if err != nil {
		return err
	}
	defer res.close()
	x := &extractor{res: res, host: true, top: top}
	return x.run(r)
}

func (x *extractor) run(r io.Reader) error {
	x.buf = make([]byte, copyBufSize)
	tr := tar.NewReader(bufio.NewReaderSize(r, 64<<10))
	last := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// Names escaping the destination are checked below; ignore a
		// GODEBUG=tarinsecurepath=0 setting.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			if last == "" {
				return fmt.Errorf("reading tar: %w", err)
			}
			return fmt.Errorf("reading tar after %q: %w", fsat.ShortName(last), err)
		}
		// Entry errors do not unwrap: a missing hard link target must not
		// read as "the destination does not exist" (fs.ErrNotExist).
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extracting %q: %v", fsat.ShortName(hdr.Name), err)
		}
		last = hdr.Name
	}
	for i := len(x.times) - 1; i >= 0; i-- {
		if err := x.setDirTime(&x.times[i]); err != nil {
			return fmt.Errorf("setting times of %q: %v", x.res.show(x.times[i].rel), err)
		}
	}
	return nil
}

// entryRel returns a tar name relative to the extraction directory ("" for
// the directory itself); a name climbing out of it is an error, as in
// Docker's Untar.
func (x *extractor) entryRel(name string) (string, error) {
	c := path.Clean(strings.TrimLeft(name, "/"))
	if err := fsat.CheckName(name, c); err != nil {
		return "", err
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q is outside of %q", name, x.res.show(x.prefix))
	}
	if c == "." {
		c = ""
	}
	if x.top != "" && c != x.top && !strings.HasPrefix(c, x.top+"/") {
		return "", fmt.Errorf("%q is outside of the copied tree %q", name, x.top)
	}
	return c, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse, tar.TypeSymlink,
		tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("unhandled tar header type %q", hdr.Typeflag)
	}
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	if x.host && (hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) {
		return errors.New("refusing to create a device node on the host")
	}
	rel, err := x.entryRel(hdr.Name)
	if err != nil {
		return err
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if rel == "" {
		// The extraction directory itself: Docker leaves it alone.
		if isDir {
			return nil
		}
		return fmt.Errorf("cannot overwrite directory %q with non-directory", x.res.show(x.prefix))
	}
	full := fsat.JoinRel(x.prefix, rel)
	dir, base := fsat.SplitRel(full)
	parent, err := x.res.dir(dir, true)
	if err != nil {
		return err
	}
	defer parent.close()
	pfd := parent.fd

	var st unix.Stat_t
	err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil:
		existingDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case existingDir && !isDir:
			return fmt.Errorf("cannot overwrite directory %q with non-directory", x.res.show(full))
		case !existingDir && isDir:
			return fmt.Errorf("cannot overwrite non-directory %q with directory", x.res.show(full))
		case !existingDir:
			if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("removing existing %q: %w", x.res.show(full), err)
			}
		}
	case !errors.Is(err, unix.ENOENT):
		return err
	}

	if hdr.Typeflag == tar.TypeLink {
		return x.hardlink(hdr, pfd, base)
	}
	m, err := fsat.NewMeta(hdr)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.mkdir(pfd, full, base, hdr, &m)
	case tar.TypeSymlink:
		if len(hdr.Linkname) > fsat.MaxPathLen {
			return fmt.Errorf("symlink target is %d bytes, longer than the %d byte limit", len(hdr.Linkname), fsat.MaxPathLen)
		}
		// The target is stored as is: it is only ever resolved inside a
		// root (the container's, or not at all on the host).
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("creating symlink: %w", err)
		}
		return x.finish(fsat.Node{Parent: pfd, Base: base, FD: -1, Symlink: true}, hdr, &m)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.special(pfd, base, hdr, &m)
	}
	return x.regular(pfd, base, hdr, r, &m)
}

func (x *extractor) mkdir(pfd int, full, base string, hdr *tar.Header, m *fsat.Meta) error {
	err := unix.Mkdirat(pfd, base, 0o700)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening directory: %w", err)
	}
	defer unix.Close(fd)
	if err := x.setMeta(fsat.Node{Parent: pfd, Base: base, FD: fd}, hdr, m); err != nil {
		return err
	}
	dt, err := fsat.NewDirTime(fd, m.Times)
	if err != nil {
		return err
	}
	x.times = append(x.times, dirTime{rel: full, DirTime: dt})
	return nil
}

func (x *extractor) regular(pfd int, base string, hdr *tar.Header, r io.Reader, m *fsat.Meta) error {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, base, flags, 0o600)
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	err = fsat.WriteContent(fd, r, hdr.Size, x.buf)
	if err == nil {
		err = x.finish(fsat.Node{Parent: pfd, Base: base, FD: fd}, hdr, m)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("closing file: %w", cerr)
	}
	return err
}

func (x *extractor) special(pfd int, base string, hdr *tar.Header, m *fsat.Meta) error {
	mode, dev, err := fsat.DeviceNode(hdr)
	if err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, base, mode, dev); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return x.finish(fsat.Node{Parent: pfd, Base: base, FD: -1}, hdr, m)
}

func (x *extractor) hardlink(hdr *tar.Header, pfd int, base string) error {
	trel, err := x.entryRel(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if trel == "" {
		return errors.New("hard link to the extraction directory")
	}
	tfull := fsat.JoinRel(x.prefix, trel)
	tdir, tbase := fsat.SplitRel(tfull)
	tparent, err := x.res.dir(tdir, false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	defer tparent.close()
	// linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its
	// target.
	if err := unix.Linkat(tparent.fd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", x.res.show(tfull), err)
	}
	return nil
}

// finish sets the metadata and times of a new non-directory.
func (x *extractor) finish(n fsat.Node, hdr *tar.Header, m *fsat.Meta) error {
	if err := x.setMeta(n, hdr, m); err != nil {
		return err
	}
	if err := n.Utimes(&m.Times); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// setMeta applies owner (not on the host), then mode (chown clears setuid
// and setgid), then xattrs (chown clears security.capability).
func (x *extractor) setMeta(n fsat.Node, hdr *tar.Header, m *fsat.Meta) error {
	if !x.host {
		if err := n.Chown(m.UID, m.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	mode := m.Mode
	if x.host {
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if err := n.Chmod(mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	keep := copyXattr
	if x.host {
		keep = hostXattr
	}
	for name, v := range fsat.PAXXattrs(hdr) {
		if name == "" || !keep(name) {
			continue
		}
		err := n.Setxattr(name, []byte(v))
		// Like Docker, skip xattrs the filesystem does not support or
		// the caller may not set (user.* on a symlink is EPERM).
		if err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setting xattr %q: %w", name, err)
		}
	}
	return nil
}

func (x *extractor) setDirTime(t *dirTime) error {
	dir, base := fsat.SplitRel(t.rel)
	h, err := x.res.dir(dir, false)
	if err != nil {
		return nil // no longer there
	}
	defer h.close()
	return t.Apply(h.fd, base)
}

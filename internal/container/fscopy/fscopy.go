package fscopy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// Errors of the docker cp rules. Their texts are Docker's (moby/go-archive).
var (
	// ErrCannotCopyDir: the source is a directory and the destination an
	// existing non-directory.
	ErrCannotCopyDir = errors.New("cannot copy directory")
	// ErrDirNotExists: the source is not a directory and the destination,
	// which does not exist, ends in "/" (or "/.").
	ErrDirNotExists = errors.New("no such directory")
	// ErrNotDirectory: the parent of a host destination is not a directory.
	ErrNotDirectory = errors.New("not a directory")
	// ErrExtractPointNotDirectory: the container directory an archive is
	// extracted to is not a directory.
	ErrExtractPointNotDirectory = errors.New("extraction point is not a directory")
	// ErrMustBeDirectory ends the error for a tar from stdin ("-") whose
	// container destination is not an existing directory:
	// `destination "/path" must be a directory`.
	ErrMustBeDirectory = errors.New("must be a directory")
	// ErrDevice: the destination is a device node. The error reads
	// `destination "/path" must be a directory or a regular file: got a
	// device` (or `invalid output path: ...` on the host).
	ErrDevice = errors.New("got a device")
)

// Export writes an uncompressed tar of the whole tree under rootfs to w, as
// `docker export` does: the flattened filesystem, entries named relative to
// rootfs without a leading "./" or "/" ("bin/", "bin/sh"), the root itself
// not archived. Entries are in lexical order (each directory's children
// sorted by name, depth first), so the output is deterministic. uid, gid,
// mode (with setuid, setgid and sticky) and mtime (with nanoseconds) are
// preserved and Uname/Gname are left empty; xattrs other than overlayfs'
// own (trusted.overlay.*, user.overlay.*) go into PAX records
// (SCHILY.xattr.*); symlinks are archived as symlinks, never followed;
// files sharing an inode become tar hard links to the first of them;
// character and block devices and FIFOs are archived as such (and never
// opened); sockets are skipped. Export does not close w.
func Export(w io.Writer, rootfs string) error {
	root, err := os.OpenFile(rootfs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening container root filesystem: %w", err)
	}
	defer root.Close()
	wk := newWalker(w, exportXattr)
	if err := wk.children(root, ""); err != nil {
		return err
	}
	return wk.close()
}

// CopyFrom implements `berth cp CONTAINER:SRC DST`: it copies container path
// src of the root filesystem rootfs to host path dst, or, when dst is "-",
// writes a tar of it to stdout.
//
// src is resolved inside rootfs: it is taken as absolute ("etc" is "/etc"),
// ".." cannot climb above the root, and symlinks on the way are followed as
// if rootfs were "/". A final symlink is copied as a symlink unless
// followLink (-L) is set or src ends in "/" (then its target, resolved
// inside rootfs, is copied under the name of the link). src ending in "/."
// copies the content of a directory rather than the directory itself; "/"
// means the content of the root. A src that does not exist gives an error
// matching fs.ErrNotExist (only container-side errors do), to be phrased by
// the caller ("Could not find the file SRC in container C").
//
// dst follows docker cp: an existing directory receives the source (or,
// for "/.", its content); an existing file is replaced by a file source
// (ErrCannotCopyDir for a directory source); a missing dst is created from
// the source if its parent directory exists, except that a file source with
// dst ending in "/" gives ErrDirNotExists. A dst that is a symlink is
// followed (the host side is the caller's). Host files get the caller as
// owner (as Docker's NoLchown) and keep their mode, times and user.*
// xattrs; as hardening against a hostile container, the setuid and setgid
// bits are dropped, device nodes are refused, and no symlink is followed
// while writing below the destination.
//
// The stdout tar names entries after the last element of src ("name",
// "name/", "name/child"; with "/." or "/" the directory's own entry is "./"
// and children have no prefix), with uid, gid, mode, mtime and xattrs other
// than overlayfs' own and security.selinux.
func CopyFrom(rootfs, src, dst string, stdout io.Writer, followLink bool) error {
	var hostDst string
	if dst != "-" {
		// As Docker's CLI, check the host destination first.
		abs, err := filepath.Abs(dst)
		if err != nil {
			return err
		}
		hostDst = preserveTrailing(abs, dst)
		if err := validateOutputPath(hostDst); err != nil {
			return err
		}
	}
	root, err := openInRoot(rootfs)
	if err != nil {
		return err
	}
	defer root.close()
	s, err := openContainerSource(root, src, followLink)
	if err != nil {
		return err
	}
	defer s.close()
	if dst == "-" {
		if stdout == nil {
			return errors.New("no output to write the archive to")
		}
		wk := newWalker(stdout, copyXattr)
		if err := wk.node(s.f, s.dirfd, s.base, s.name); err != nil {
			return named(s.name, err)
		}
		return wk.close()
	}
	info, err := hostDestInfo(hostDst)
	if err != nil {
		return err
	}
	dir, top, err := prepareCopy(info, s.isDir, s.name)
	if err != nil {
		return err
	}
	hostTop := top // every entry must be top or below it
	if top == "." {
		hostTop = "" // the content of an existing directory
	}
	return pipeTar(func(w io.Writer) error {
		wk := newWalker(w, copyXattr)
		if err := wk.node(s.f, s.dirfd, s.base, top); err != nil {
			return named(s.name, err)
		}
		return wk.close()
	}, func(r io.Reader) error {
		return extractHost(r, dir, hostTop)
	})
}

// CopyTo implements `berth cp SRC CONTAINER:DST`: it copies host path src
// to container path dst of the root filesystem rootfs, or, when src is "-",
// extracts the tar read from stdin into dst, which must then be an existing
// directory (ErrMustBeDirectory).
//
// dst follows docker cp, on the container side: it is resolved inside
// rootfs (symlinks on the way followed as if rootfs were "/"), and a final
// symlink is followed inside rootfs too, so the copy replaces or creates
// its in-container target (a symlink to "/etc/shadow" means
// rootfs/etc/shadow, never the host file). An existing directory receives
// the source (or, for src ending in "/.", its content); an existing
// non-directory is replaced by a file source (ErrCannotCopyDir for a
// directory source); a missing dst is created if its parent exists, except
// for a file source with dst ending in "/" (ErrDirNotExists). A device dst
// is refused (ErrDevice). A missing parent gives an error matching
// fs.ErrNotExist.
//
// src follows docker cp on the host side: symlinks before its last element
// are followed, a final symlink is copied as a symlink unless followLink
// (-L) is set (then its target is copied under the link's name), and
// symlinks inside a copied directory are copied as symlinks.
//
// Owners are kept from the source (the host files' uid/gid, or the tar's),
// as Docker does without -a; so are modes, times and xattrs other than
// overlayfs' own and security.selinux. The archive, from the host or from
// stdin, is hostile input: every name is resolved inside rootfs, a name
// climbing out of dst with ".." is an error, every write is a *at system
// call relative to a directory handle obtained inside rootfs, and nothing is
// written through an existing symlink or file: a non-directory is replaced,
// and replacing a directory by a non-directory or the reverse is an error.
func CopyTo(rootfs, dst, src string, stdin io.Reader, followLink bool) error {
	root, err := openInRoot(rootfs)
	if err != nil {
		return err
	}
	defer root.close()
	dstInfo, err := containerDestInfo(root, dst)
	if err != nil {
		return err
	}
	if src == "-" {
		if !dstInfo.isDir {
			return fmt.Errorf("destination %q %w", dst, ErrMustBeDirectory)
		}
		if stdin == nil {
			return errors.New("no input to read the archive from")
		}
		return extractToContainer(root, dstInfo.path, stdin)
	}
	s, err := openHostSource(src, followLink)
	if err != nil {
		return err
	}
	defer s.close()
	dir, top, err := prepareCopy(dstInfo, s.isDir, s.name)
	if err != nil {
		return err
	}
	return pipeTar(func(w io.Writer) error {
		wk := newWalker(w, copyXattr)
		if err := wk.node(s.f, s.dirfd, s.base, top); err != nil {
			return named(s.name, err)
		}
		return wk.close()
	}, func(r io.Reader) error {
		return extractToContainer(root, dir, r)
	})
}

// source is the top entry of a copy: f is an O_PATH handle of it (never
// followed unless asked), dirfd and base locate it in its parent when it
// was opened that way (dirfd < 0 otherwise; it then is not a symlink).
type source struct {
	f      *os.File
	parent *os.File
	dirfd  int
	base   string
	name   string // the name the copy takes by default; "." for content
	isDir  bool
}

func (s *source) close() {
	s.f.Close()
	if s.parent != nil {
		s.parent.Close()
	}
}

// openContainerSource resolves container path src inside root, following
// a final symlink only when follow is set or src asserts a directory.
func openContainerSource(root *inRoot, src string, follow bool) (*source, error) {
	rel := fsat.CleanRel(src)
	s := &source{name: path.Base("/" + rel), dirfd: -1}
	if rel == "" || specifiesCurrentDir(src) {
		s.name = "."
	}
	rootFD := int(root.f.Fd())
	var err error
	if rel == "" || assertsDirectory(src) || follow {
		if rel == "" {
			s.f, err = openPathAt(rootFD, ".")
		} else {
			s.f, err = pathrs.OpenatInRoot(root.f, rel)
		}
		if err != nil {
			return nil, notFound(src, err)
		}
	} else {
		dir, base := fsat.SplitRel(rel)
		if dir == "" {
			s.parent, err = openPathAt(rootFD, ".")
		} else {
			s.parent, err = pathrs.OpenatInRoot(root.f, dir)
		}
		if err != nil {
			return nil, notFound(src, err)
		}
		s.dirfd, s.base = int(s.parent.Fd()), base
		if s.f, err = openPathAt(s.dirfd, base); err != nil {
			s.parent.Close()
			return nil, notFound(src, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.f.Fd()), &st); err != nil {
		s.close()
		return nil, err
	}
	s.isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	if assertsDirectory(src) && !s.isDir {
		s.close()
		return nil, notFound(src, unix.ENOTDIR)
	}
	return s, nil
}

// openPathAt opens base below the directory open as dirfd as an O_PATH
// handle without following a final symlink.
func openPathAt(dirfd int, base string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), base), nil
}

// notFound turns a failed lookup of container path p into a *os.PathError
// carrying the errno, so that a missing path matches fs.ErrNotExist.
func notFound(p string, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return &os.PathError{Op: "stat", Path: p, Err: errno}
	}
	return fmt.Errorf("stat %s: %w", p, err)
}

// destInfo is Docker's CopyInfo for a destination.
type destInfo struct {
	path          string // as given (absolute), or the symlink target; trailing "/" or "/." kept
	exists, isDir bool
}

// prepareCopy is Docker's PrepareArchiveCopy: the directory to extract to,
// and the name the top entry of the source takes there ("." for the
// content of a directory).
func prepareCopy(dst destInfo, srcIsDir bool, srcName string) (dir, top string, err error) {
	dstDir, dstBase := splitPathDirEntry(dst.path)
	switch {
	case dst.exists && dst.isDir:
		return dst.path, srcName, nil
	case dst.exists && srcIsDir:
		return "", "", ErrCannotCopyDir
	case dst.exists, srcIsDir:
		return dstDir, dstBase, nil
	case assertsDirectory(dst.path):
		return "", "", ErrDirNotExists
	default:
		return dstDir, dstBase, nil
	}
}

// containerDestInfo stats container path dst as Docker's CLI does before a
// copy into a container: a final symlink is evaluated inside the root (a
// dangling one gives its missing target), a device is refused, and any
// other failure to stat means "does not exist" (extraction fails later if
// the parent does not exist either).
func containerDestInfo(root *inRoot, dst string) (destInfo, error) {
	abs := preserveTrailing(filepath.Clean("/"+dst), dst)
	info := destInfo{path: abs}
	st, err := root.lstat(abs)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, rerr := root.resolve(fsat.CleanRel(abs))
		if rerr != nil {
			return info, nil // extraction reports the missing directory
		}
		info.path = "/" + target
		st, err = root.lstat(info.path)
	}
	if err != nil {
		return info, nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		return destInfo{}, fmt.Errorf("destination %q must be a directory or a regular file: %w", dst, ErrDevice)
	}
	info.exists, info.isDir = true, st.Mode&unix.S_IFMT == unix.S_IFDIR
	return info, nil
}

// extractToContainer extracts r into container directory dir, which is
// fully resolved inside root (a final symlink included) and must be a
// directory.
func extractToContainer(root *inRoot, dir string, r io.Reader) error {
	h, err := root.open(fsat.CleanRel(dir))
	if err != nil {
		return notFound(dir, err)
	}
	defer h.close()
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ErrExtractPointNotDirectory
	}
	rel, err := root.canonical(h.fd)
	if err != nil {
		return err
	}
	return extractContainer(r, root, rel)
}

// openHostSource is Docker's CopyInfoSourcePath on host path src: symlinks
// before the last element are evaluated; the last one too when follow is
// set, the copy then taking the link's name.
func openHostSource(src string, follow bool) (*source, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	abs = preserveTrailing(abs, src)
	var resolved, rebase string
	if follow {
		if resolved, err = filepath.EvalSymlinks(abs); err != nil {
			return nil, hostErr(err)
		}
		resolved, rebase = rebaseName(abs, resolved)
	} else {
		dir, base := filepath.Split(abs)
		rdir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return nil, hostErr(err)
		}
		resolved = rdir + "/" + base
		if hasTrailingSep(abs) && filepath.Base(abs) != filepath.Base(resolved) {
			rebase = filepath.Base(abs)
		}
	}
	st, err := os.Lstat(resolved)
	if err != nil {
		return nil, hostErr(err)
	}
	_, name := splitPathDirEntry(resolved)
	if rebase != "" {
		name = rebase
	}
	s := &source{name: name, dirfd: -1, isDir: st.IsDir()}
	clean := filepath.Clean(resolved)
	if st.IsDir() {
		// A directory, possibly reached through a symlink with a trailing
		// "/": the host side is the caller's, so it may be followed.
		s.f, err = os.OpenFile(clean, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, hostErr(err)
		}
		return s, nil
	}
	parent, err := os.OpenFile(filepath.Dir(clean), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, hostErr(err)
	}
	f, err := openPathAt(int(parent.Fd()), filepath.Base(clean))
	if err != nil {
		parent.Close()
		return nil, hostErr(err)
	}
	s.f, s.parent, s.dirfd, s.base = f, parent, int(parent.Fd()), filepath.Base(clean)
	return s, nil
}

// rebaseName is Docker's GetRebaseName: resolved keeps the trailing "/." or
// "/" of p, and the copy takes p's name when resolution changed it.
func rebaseName(p, resolved string) (string, string) {
	if specifiesCurrentDir(p) && !specifiesCurrentDir(resolved) {
		resolved += "/."
	}
	if hasTrailingSep(p) && !hasTrailingSep(resolved) {
		resolved += "/"
	}
	if filepath.Base(p) != filepath.Base(resolved) {
		return resolved, filepath.Base(p)
	}
	return resolved, ""
}

// hostErr hides the errno of a host-side failure, so that only
// container-side errors match fs.ErrNotExist.
func hostErr(err error) error { return errors.New(err.Error()) }

// validateOutputPath is Docker's ValidateOutputPath on host path p: its
// parent must exist, and p, if it exists, must not be a device.
func validateOutputPath(p string) error {
	dir := filepath.Dir(filepath.Clean(p))
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return fmt.Errorf("invalid output path: directory %q does not exist", dir)
	}
	fi, err := os.Stat(p)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return hostErr(err)
	case fi.Mode().IsDir() || fi.Mode().IsRegular():
		return nil
	case fi.Mode()&os.ModeDevice != 0:
		return fmt.Errorf("invalid output path: %q must be a directory or a regular file: %w", p, ErrDevice)
	}
	return nil
}

// hostDestInfo is Docker's CopyInfoDestinationPath: a final symlink is
// followed (up to 10 times; a dangling one names the file to create).
func hostDestInfo(p string) (destInfo, error) {
	orig := p
	st, err := os.Lstat(p)
	for n := 0; err == nil && st.Mode()&os.ModeSymlink != 0; n++ {
		if n >= maxHostSymlinks {
			return destInfo{}, errors.New("too many symlinks in " + orig)
		}
		target, lerr := os.Readlink(p)
		if lerr != nil {
			return destInfo{}, hostErr(lerr)
		}
		if !filepath.IsAbs(target) {
			parent, _ := splitPathDirEntry(p)
			target = filepath.Join(parent, target)
		}
		p = target
		st, err = os.Lstat(p)
	}
	if err != nil {
		if !os.IsNotExist(err) {
			return destInfo{}, hostErr(err)
		}
		parent, _ := splitPathDirEntry(p)
		pst, err := os.Stat(parent)
		if err != nil {
			return destInfo{}, hostErr(err)
		}
		if !pst.IsDir() {
			return destInfo{}, ErrNotDirectory
		}
		return destInfo{path: p}, nil
	}
	return destInfo{path: p, exists: true, isDir: st.IsDir()}, nil
}

// errConsumerDone closes the pipe when the extracting side has returned.
var errConsumerDone = errors.New("extraction ended")

// pipeWriter notes whether the extracting side went away under a write.
type pipeWriter struct {
	w      *io.PipeWriter
	closed bool
}

func (p *pipeWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, errConsumerDone) {
		p.closed = true
	}
	return n, err
}

// pipeTar runs produce (writing a tar) and consume (reading it)
// concurrently and returns the error that came first: the producer's,
// unless it failed because the consumer had given up.
func pipeTar(produce func(io.Writer) error, consume func(io.Reader) error) error {
	pr, pw := io.Pipe()
	w := &pipeWriter{w: pw}
	done := make(chan error, 1)
	go func() {
		err := produce(w)
		pw.CloseWithError(err)
		done <- err
	}()
	cerr := consume(pr)
	pr.CloseWithError(errConsumerDone)
	perr := <-done
	if perr != nil && !w.closed {
		return perr
	}
	return cerr
}

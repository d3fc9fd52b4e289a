package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// LinkFromLowers materialises pending hard links of a layer (see
// ApplyResult.Links). For each link it finds Target in the first of lowers
// (top-most first; each a layer root directory in overlayfs form) that has
// it, resolving the path inside that lower root, and copies the entry
// (content, mode, owner, xattrs, times) to Name inside root. A whiteout of
// the target or of one of its parents in a higher lower is an error, as is a
// target hidden by an opaque directory. A symlink target is copied as a
// symlink, never followed. Links sharing one Target become hard links to each
// other inside root. Name must not exist in root yet.
func LinkFromLowers(root string, links []Link, lowers []string) error {
	if len(links) == 0 {
		return nil
	}
	rootFile, err := os.OpenFile(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening layer root: %w", err)
	}
	defer rootFile.Close()
	ls := &lowerSet{paths: lowers, files: make([]*os.File, len(lowers))}
	defer ls.close()
	xbuf := make([]byte, 64<<10)
	made := make(map[string]string) // target -> name of its copy in root
	for _, l := range links {
		if err := linkFromLowers(rootFile, ls, made, l, xbuf); err != nil {
			return fmt.Errorf("layer entry %q: hard link to %q: %w", fsat.ShortName(l.Name), fsat.ShortName(l.Target), err)
		}
	}
	return nil
}

func linkFromLowers(root *os.File, ls *lowerSet, made map[string]string, l Link, xbuf []byte) error {
	name, target := fsat.CleanRel(l.Name), fsat.CleanRel(l.Target)
	if err := fsat.CheckName(l.Name, name); err != nil {
		return err
	}
	if err := fsat.CheckName(l.Target, target); err != nil {
		return err
	}
	if name == "" || target == "" {
		return errors.New("the layer root cannot be a hard link")
	}
	dir, base := fsat.SplitRel(name)
	parent, err := pathrs.MkdirAllHandle(root, dir, 0o755)
	if err != nil {
		return fmt.Errorf("resolving directory %q inside the layer: %w", fsat.ShortName(dir), err)
	}
	defer parent.Close()
	pfd := int(parent.Fd())

	if first, ok := made[target]; ok {
		fdir, fbase := fsat.SplitRel(first)
		srcFD := int(root.Fd())
		if fdir != "" {
			src, err := pathrs.OpenatInRoot(root, fdir)
			if err != nil {
				return fmt.Errorf("resolving %q: %w", fsat.ShortName(first), err)
			}
			defer src.Close()
			srcFD = int(src.Fd())
		}
		if err := unix.Linkat(srcFD, fbase, pfd, base, 0); err != nil {
			return fmt.Errorf("linking to %q: %w", fsat.ShortName(first), err)
		}
		return nil
	}

	src, err := ls.find(target)
	if err != nil {
		return err
	}
	defer src.close()
	if src.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return errors.New("target is a directory")
	}
	if err := copyEntry(src, fsat.Node{Parent: pfd, Base: base, FD: -1}, xbuf); err != nil {
		return err
	}
	made[target] = name
	return nil
}

// lowerSet opens lower layer roots on demand.
type lowerSet struct {
	paths []string
	files []*os.File
}

func (ls *lowerSet) close() {
	for _, f := range ls.files {
		if f != nil {
			f.Close()
		}
	}
}

func (ls *lowerSet) open(i int) (*os.File, error) {
	if ls.files[i] == nil {
		f, err := os.OpenFile(ls.paths[i], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		ls.files[i] = f
	}
	return ls.files[i], nil
}

type lookupStatus int

const (
	absent lookupStatus = iota // not in this lower; look further down
	hidden                     // not visible through this lower (opaque directory or a non-directory parent)
	found
)

// lowerEntry is an entry found in a lower layer.
type lowerEntry struct {
	parentFD int
	owned    *os.File // the parent directory handle when it is not the lower root
	base     string
	st       unix.Stat_t
}

func (e *lowerEntry) close() {
	if e.owned != nil {
		e.owned.Close()
	}
}

func (ls *lowerSet) find(target string) (*lowerEntry, error) {
	comps := strings.Split(target, "/")
	for i := range ls.paths {
		lroot, err := ls.open(i)
		if err != nil {
			return nil, fmt.Errorf("opening lower layer %d: %w", i, err)
		}
		e, status, err := lookupLower(lroot, comps)
		if err != nil {
			return nil, fmt.Errorf("lower layer %d: %w", i, err)
		}
		switch status {
		case found:
			return e, nil
		case hidden:
			return nil, fmt.Errorf("not found: hidden by lower layer %d", i)
		}
	}
	return nil, errors.New("not found in any lower layer")
}

// lookupLower walks comps inside the lower root one component at a time,
// without following symlinks except through the pathrs-lite resolver, and
// noting whiteouts and opaque directories on the way.
func lookupLower(lroot *os.File, comps []string) (*lowerEntry, lookupStatus, error) {
	curFD := int(lroot.Fd())
	var owned *os.File
	defer func() {
		if owned != nil {
			owned.Close()
		}
	}()
	missing := absent
	last := len(comps) - 1
	for i, c := range comps[:last] {
		st, err := lowerStat(curFD, comps[:i+1])
		if st == nil {
			return nil, missing, err
		}
		var next *os.File
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			fd, err := unix.Openat(curFD, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, absent, err
			}
			next = os.NewFile(uintptr(fd), c)
		case unix.S_IFLNK:
			next, err = resolveLowerDir(lroot, strings.Join(comps[:i+1], "/"))
			if errors.Is(err, unix.ENOENT) {
				return nil, missing, nil
			}
			if err != nil {
				return nil, absent, err
			}
		default:
			return nil, hidden, nil // a non-directory hides everything below it
		}
		if owned != nil {
			owned.Close()
		}
		owned, curFD = next, int(next.Fd())
		var v [1]byte
		if n, err := unix.Fgetxattr(curFD, opaqueXattr, v[:]); err == nil && n == 1 && v[0] == 'y' {
			missing = hidden
		}
	}
	st, err := lowerStat(curFD, comps)
	if st == nil {
		return nil, missing, err
	}
	e := &lowerEntry{parentFD: curFD, owned: owned, base: comps[last], st: *st}
	owned = nil
	return e, found, nil
}

// lowerStat stats the last of comps inside dirfd (the directory holding it).
// It returns nil without an error when there is no such entry, and an error
// when the entry is a whiteout.
func lowerStat(dirfd int, comps []string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, comps[len(comps)-1], &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if isWhiteout(&st) {
		return nil, fmt.Errorf("%q is whited out", fsat.ShortName(strings.Join(comps, "/")))
	}
	return &st, nil
}

// resolveLowerDir opens directory p inside the lower root, following symlinks
// as if the lower root were "/".
func resolveLowerDir(lroot *os.File, p string) (*os.File, error) {
	h, err := pathrs.OpenatInRoot(lroot, p)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// copyEntry copies the lower entry src to dst (which must not exist),
// with owner, mode, xattrs (except overlayfs') and times.
func copyEntry(src *lowerEntry, dst fsat.Node, xbuf []byte) error {
	var err error
	switch src.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = copyRegular(src, dst, xbuf)
	case unix.S_IFLNK:
		var target string
		if target, err = fsat.ReadlinkAt(src.parentFD, src.base); err == nil {
			dst.Symlink = true
			err = unix.Symlinkat(target, dst.Parent, dst.Base)
		}
		if err == nil {
			err = copyMeta(src, dst, xbuf)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err = unix.Mknodat(dst.Parent, dst.Base, src.st.Mode&unix.S_IFMT, int(src.st.Rdev)); err == nil {
			err = copyMeta(src, dst, xbuf)
		}
	default:
		return fmt.Errorf("cannot copy file of mode %#o", src.st.Mode)
	}
	return err
}

func copyRegular(src *lowerEntry, dst fsat.Node, xbuf []byte) error {
	sfd, err := unix.Openat(src.parentFD, src.base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening source: %w", err)
	}
	sf := os.NewFile(uintptr(sfd), src.base)
	defer sf.Close()
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	if st.Dev != src.st.Dev || st.Ino != src.st.Ino {
		return errors.New("source changed while copying")
	}
	dfd, err := unix.Openat(dst.Parent, dst.Base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating copy: %w", err)
	}
	df := os.NewFile(uintptr(dfd), dst.Base)
	// *os.File to *os.File uses copy_file_range.
	n, err := io.Copy(df, sf)
	switch {
	case err != nil:
		err = fmt.Errorf("copying content: %w", err)
	case n != st.Size:
		err = errors.New("source changed while copying")
	default:
		dst.FD = dfd
		err = copyMeta(src, dst, xbuf)
	}
	if cerr := df.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing copy: %w", cerr)
	}
	return err
}

func copyMeta(src *lowerEntry, dst fsat.Node, xbuf []byte) error {
	if err := dst.Chown(int(src.st.Uid), int(src.st.Gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := dst.Chmod(src.st.Mode & 0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	xattrs, err := fsat.ReadXattrs(fsat.ProcPath(src.parentFD, src.base), false, nil, xbuf)
	if err != nil {
		return err
	}
	for _, x := range xattrs {
		if fsat.IsOverlayXattr(x.Name) {
			continue
		}
		if err := dst.Setxattr(x.Name, x.Value); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("setting xattr %q: %w", x.Name, err)
		}
	}
	ts := [2]unix.Timespec{src.st.Atim, src.st.Mtim}
	if err := dst.Utimes(&ts); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

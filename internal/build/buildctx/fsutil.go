package buildctx

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// filter decides which entries below a directory source are copied: those
// neither .dockerignore (by their path in the tree) nor --exclude (by their
// path relative to the source) excludes.
type filter struct {
	tree *Tree
	exc  *patternmatcher.PatternMatcher
}

// matchState carries the parent directory's pattern results down a walk.
type matchState struct {
	ign, exc patternmatcher.MatchInfo
}

// rootState is the state of a directory source at tree path p: .dockerignore
// results for it (taking its parents into account); --exclude starts afresh.
func (f *filter) rootState(p string) (matchState, error) {
	if p == "." {
		p = ""
	}
	_, ign, err := f.tree.ignoreMatch(p, patternmatcher.MatchInfo{})
	return matchState{ign: ign}, err
}

// check classifies an entry: include means it is copied; descend (for
// directories) that its children must still be looked at, because a "!"
// pattern may re-include some of them.
func (f *filter) check(treePath, srcRel string, isDir bool, parent matchState) (include, descend bool, st matchState, err error) {
	ignored, excluded := false, false
	if f.tree.ignore != nil {
		ignored, st.ign, err = f.tree.ignoreMatch(treePath, parent.ign)
		if err != nil {
			return false, false, st, err
		}
	}
	if f.exc != nil {
		excluded, st.exc, err = f.exc.MatchesUsingParentResults(srcRel, parent.exc)
		if err != nil {
			return false, false, st, err
		}
	}
	include = !ignored && !excluded
	descend = isDir && (!ignored || f.tree.ignoreExclusions()) && (!excluded || f.exc.Exclusions())
	return include, descend, st, nil
}

// readDirNames lists a directory descriptor's entry names, sorted.
func readDirNames(fd int) ([]string, error) {
	buf := make([]byte, 32<<10)
	var names []string
	// Start from the beginning even if the descriptor was read before.
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names, nil
}

// xattr is one extended attribute.
type xattr struct {
	name  string
	value []byte
}

// copyableXattr reports whether an extended attribute travels with a copied
// file: overlayfs' private attributes and SELinux labels do not.
func copyableXattr(name string) bool {
	return !strings.HasPrefix(name, "trusted.overlay.") &&
		!strings.HasPrefix(name, "user.overlay.") &&
		name != "security.selinux"
}

// maxXattrList bounds the attribute names read from one file.
const maxXattrList = 64 << 10

// listXattrs reads the copyable extended attributes of an open file, sorted
// by name. Filesystems without xattr support give none.
func listXattrs(fd int) ([]xattr, error) {
	var small [256]byte
	buf := small[:]
	n, err := unix.Flistxattr(fd, buf)
	if err == unix.ERANGE {
		size, err2 := unix.Flistxattr(fd, nil)
		if err2 != nil {
			return nil, err2
		}
		if size > maxXattrList {
			return nil, unix.E2BIG
		}
		buf = make([]byte, size)
		n, err = unix.Flistxattr(fd, buf)
	}
	if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
		return nil, nil
	}
	if err != nil || n == 0 {
		return nil, err
	}
	var out []xattr
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 || !copyableXattr(string(name)) {
			continue
		}
		v, err := getXattr(fd, string(name))
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, xattr{name: string(name), value: v})
	}
	slices.SortFunc(out, func(a, b xattr) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func getXattr(fd int, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		if err == unix.ERANGE && len(buf) < 64<<10 {
			buf = make([]byte, 64<<10)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// setXattrs sets extended attributes on an open file, best effort (as
// BuildKit does): a filesystem or kernel refusing one is not an error.
func setXattrs(fd int, xs []xattr) {
	for _, x := range xs {
		_ = unix.Fsetxattr(fd, x.name, x.value, 0)
	}
}

// procFd is the /proc path that reopens descriptor fd.
func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// setTimes sets the access and modification times of what fd (any kind of
// descriptor, O_PATH included, but not a symlink) refers to.
func setTimes(fd int, ts []unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, procFd(fd), ts, 0)
}

// chmodFd sets the permission bits of what fd refers to (O_PATH included,
// not a symlink).
func chmodFd(fd int, mode uint32) error {
	return unix.Fchmodat(unix.AT_FDCWD, procFd(fd), mode, 0)
}

// removeAllAt removes name in dirfd and, if it is a directory, everything
// below it, without following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	names, err := readDirNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// statTimes returns the [atime, mtime] of a stat.
func statTimes(st *unix.Stat_t) []unix.Timespec {
	return []unix.Timespec{st.Atim, st.Mtim}
}

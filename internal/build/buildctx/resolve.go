package buildctx

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks is how many symlinks one resolution may expand (Linux's
// MAXSYMLINKS).
const maxSymlinks = 40

// mkdirSpec says how walkIn creates missing directories: with mode perm
// (exactly, regardless of the umask), owned by uid:gid when chown is set.
// Each created directory's resolved path is appended to created.
type mkdirSpec struct {
	perm     uint32
	chown    bool
	uid, gid int
	created  []string
}

// walkIn resolves rel (a slash-separated path, taken relative to root even
// when it starts with "/") inside the directory root, interpreting every
// symlink as if root were "/": absolute targets restart at root and ".."
// never climbs above it. A symlink in the last component is expanded only
// when followFinal is set. With mk, missing directories (including the last
// component) are created.
//
// It returns an O_PATH descriptor of what rel names (the caller closes it)
// and its resolved path relative to root ("" for root itself).
//
// Every component is opened with O_NOFOLLOW relative to the descriptor of
// its parent, which walkIn holds; ".." drops the innermost held descriptor
// instead of opening "..". Nothing outside root can be reached even if the
// tree changes while it is being walked.
func walkIn(root int, rel string, followFinal bool, mk *mkdirSpec) (int, string, error) {
	var (
		fds   []int
		names []string
		links int
	)
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
		fds, names = fds[:0], names[:0]
	}
	cur := func() int {
		if len(fds) == 0 {
			return root
		}
		return fds[len(fds)-1]
	}
	fail := func(err error) (int, string, error) {
		p := "/" + strings.Join(names, "/")
		closeAll()
		return -1, "", &os.PathError{Op: "resolve", Path: p, Err: err}
	}
	pending := splitPath(rel)
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if n := len(fds); n > 0 {
				unix.Close(fds[n-1])
				fds, names = fds[:n-1], names[:n-1]
			}
			continue
		}
		last := len(pending) == 0
		fd, err := openat(cur(), c, unix.O_PATH|unix.O_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && mk != nil {
			names = append(names, c)
			if err := mkdirAt(cur(), c, mk); err != nil && !errors.Is(err, unix.EEXIST) {
				return fail(err)
			} else if err == nil {
				mk.created = append(mk.created, strings.Join(names, "/"))
			}
			names = names[:len(names)-1]
			fd, err = openat(cur(), c, unix.O_PATH|unix.O_NOFOLLOW)
		}
		if err != nil {
			names = append(names, c)
			return fail(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			names = append(names, c)
			return fail(err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if last && !followFinal {
				break
			}
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err != nil {
				names = append(names, c)
				return fail(err)
			}
			if links++; links > maxSymlinks {
				names = append(names, c)
				return fail(unix.ELOOP)
			}
			if target == "" {
				names = append(names, c)
				return fail(unix.ENOENT)
			}
			if target[0] == '/' {
				closeAll()
			}
			pending = append(splitPath(target), pending...)
			continue
		case unix.S_IFDIR:
		default:
			if !last {
				unix.Close(fd)
				names = append(names, c)
				return fail(unix.ENOTDIR)
			}
		}
		fds = append(fds, fd)
		names = append(names, c)
	}
	if len(fds) == 0 {
		fd, err := unix.FcntlInt(uintptr(root), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, "", err
		}
		return fd, "", nil
	}
	fd := fds[len(fds)-1]
	for _, f := range fds[:len(fds)-1] {
		unix.Close(f)
	}
	return fd, strings.Join(names, "/"), nil
}

// splitPath splits a slash-separated path into its components.
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// mkdirAt creates dir name in dirfd with exactly the mode and owner of mk.
func mkdirAt(dirfd int, name string, mk *mkdirSpec) error {
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
		return err
	}
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if mk.chown {
		if err := unix.Fchown(fd, mk.uid, mk.gid); err != nil {
			return err
		}
	}
	return unix.Fchmod(fd, mk.perm)
}

// openat is unix.Openat with O_CLOEXEC, retrying on EINTR.
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openIn opens rel inside root (see walkIn) with flags. The last component is
// followed only when follow is set; otherwise opening a symlink fails unless
// flags has O_PATH.
func openIn(root int, rel string, follow bool, flags int) (int, string, error) {
	fd, resolved, err := walkIn(root, rel, follow, nil)
	if err != nil {
		return -1, "", err
	}
	if flags&unix.O_PATH != 0 {
		return fd, resolved, nil
	}
	defer unix.Close(fd)
	nfd, err := reopen(fd, flags)
	return nfd, resolved, err
}

// reopen turns an O_PATH descriptor into a real one with flags, without
// following a symlink: opening "." relative to a directory handle opens the
// directory itself; anything else goes through /proc/self/fd, which refers to
// the very inode the handle holds. Only directories and regular files are
// reopened.
func reopen(fd int, flags int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return openat(fd, ".", flags|unix.O_NOFOLLOW)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		// Never open devices, FIFOs or sockets, nor symlinks.
		return -1, unix.EINVAL
	}
	nfd, err := openat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), flags)
	if err != nil {
		return -1, err
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(nfd, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino {
		unix.Close(nfd)
		return -1, unix.EXDEV
	}
	return nfd, nil
}

// readlinkFd reads the target of the symlink an O_PATH descriptor holds.
func readlinkFd(fd int) (string, error) {
	return readlinkAt(fd, "")
}

// readlinkAt reads the target of symlink name in dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
		buf = make([]byte, 2*len(buf))
	}
}

// splitDir splits a clean relative path into parent ("" for the root) and
// last component.
func splitDir(p string) (string, string) {
	d, b := path.Split(p)
	return strings.TrimSuffix(d, "/"), b
}

// joinRel joins a relative directory ("" for the root) and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	if name == "" {
		return dir
	}
	return dir + "/" + name
}

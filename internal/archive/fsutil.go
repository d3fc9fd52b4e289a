package archive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	maxPathLen      = 4096
	maxComponentLen = 255
	maxID           = 1<<32 - 2 // (uid_t)-1 means "unchanged" to chown
	whiteoutPrefix  = ".wh."
	whiteoutMeta    = ".wh..wh."
	opaqueMarker    = ".wh..wh..opq"
	paxXattrPrefix  = "SCHILY.xattr."
	opaqueXattr     = "trusted.overlay.opaque"
)

// cleanName turns a tar entry name into a clean path relative to the layer
// root, with no leading "/" and no ".." component ("" is the root itself).
func cleanName(name string) string {
	return path.Clean("/" + name)[1:]
}

// splitPath splits a clean relative path into its parent ("" for the root)
// and its last component.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// joinPath joins a clean relative directory and a single component.
func joinPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// checkName enforces the length limits on a raw tar name and its cleaned form.
func checkName(raw, clean string) error {
	if len(raw) > maxPathLen {
		return fmt.Errorf("name is %d bytes, longer than the %d byte limit", len(raw), maxPathLen)
	}
	for rest := clean; rest != ""; {
		c := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			c, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if len(c) > maxComponentLen {
			return fmt.Errorf("path component %q is %d bytes, longer than the %d byte limit",
				shortName(c), len(c), maxComponentLen)
		}
	}
	return nil
}

// shortName bounds a name for use in an error message.
func shortName(name string) string {
	const max = 256
	if len(name) <= max {
		return name
	}
	return name[:max] + "...(" + strconv.Itoa(len(name)) + " bytes)"
}

// isWhiteout reports whether st describes an overlayfs whiteout.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOverlayXattr reports whether an xattr belongs to overlayfs itself and so
// must never be taken from, or written to, a layer tar.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// procPath names the entry base inside the directory open as dirfd, through
// /proc/self/fd, for the l*xattr calls that have no *at form. The final
// component is never followed by those calls.
func procPath(dirfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base
}

// node is one entry in a layer directory: base inside the directory open as
// parent, plus, for regular files and directories, an open descriptor of the
// entry itself (fd < 0 when there is none). No method follows a symlink.
type node struct {
	parent  int
	base    string
	fd      int
	symlink bool
}

func (n node) chown(uid, gid int) error {
	if n.fd >= 0 {
		return unix.Fchown(n.fd, uid, gid)
	}
	return unix.Fchownat(n.parent, n.base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// chmod sets the permission bits (including setuid, setgid and sticky).
// Symlinks have no mode of their own on Linux and are left alone.
func (n node) chmod(mode uint32) error {
	if n.fd >= 0 {
		return unix.Fchmod(n.fd, mode)
	}
	if n.symlink {
		return nil
	}
	// Device nodes and FIFOs must not be opened for real, so change the
	// mode through an O_PATH handle taken without following a symlink.
	fd, err := unix.Openat(n.parent, n.base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), mode, 0)
}

func (n node) setxattr(name string, value []byte) error {
	if n.fd >= 0 {
		return unix.Fsetxattr(n.fd, name, value, 0)
	}
	return unix.Lsetxattr(procPath(n.parent, n.base), name, value, 0)
}

func (n node) utimes(ts *[2]unix.Timespec) error {
	return unix.UtimesNanoAt(n.parent, n.base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// removeAllAt removes name (recursively if it is a directory) from the
// directory open as dirfd, never following a symlink. A missing name is not
// an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	for _, child := range names {
		if err != nil {
			break
		}
		err = removeAllAt(fd, child)
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// zeroPage is compared against to find all-zero chunks of file content.
var zeroPage [4096]byte

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// pwriteAll writes all of b at offset off of fd.
func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("short write")
		}
		b = b[n:]
		off += int64(n)
	}
	return nil
}

// xattr is one extended attribute.
type xattr struct {
	name  string
	value []byte
}

// readXattrs returns the xattrs of base inside the directory open as dirfd,
// sorted by name, without following a final symlink. buf must hold 64 KiB,
// the kernel's limit for both the name list and a single value.
func readXattrs(dirfd int, base string, buf []byte) ([]xattr, error) {
	p := procPath(dirfd, base)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	out := make([]xattr, 0, len(names))
	for _, name := range names {
		sz, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %q: %w", name, err)
		}
		out = append(out, xattr{name: name, value: bytes.Clone(buf[:sz])})
	}
	return out, nil
}

// readlinkAt returns the target of the symlink base inside dirfd.
func readlinkAt(dirfd int, base string) (string, error) {
	buf := make([]byte, maxPathLen+1)
	n, err := unix.Readlinkat(dirfd, base, buf)
	if err != nil {
		return "", err
	}
	if n > maxPathLen {
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}

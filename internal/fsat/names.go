package fsat

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// MaxPathLen is the longest name, or symlink target, accepted (PATH_MAX).
	MaxPathLen      = 4096
	maxComponentLen = 255
)

// CleanRel turns a tar entry name or a container path into a clean path
// relative to the root, with no leading "/" and no ".." component ("" is
// the root itself).
func CleanRel(name string) string { return path.Clean("/" + name)[1:] }

// SplitRel splits a clean relative path into its parent ("" for the root)
// and its last component.
func SplitRel(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// JoinRel joins clean relative paths ("" is the root).
func JoinRel(dir, rel string) string {
	switch {
	case dir == "":
		return rel
	case rel == "":
		return dir
	}
	return dir + "/" + rel
}

// CheckName enforces the length limits on a raw name and its cleaned form.
func CheckName(raw, clean string) error {
	if len(raw) > MaxPathLen {
		return fmt.Errorf("name is %d bytes, longer than the %d byte limit", len(raw), MaxPathLen)
	}
	for c := range strings.SplitSeq(clean, "/") {
		if len(c) > maxComponentLen {
			return fmt.Errorf("path component %q is %d bytes, longer than the %d byte limit",
				ShortName(c), len(c), maxComponentLen)
		}
	}
	return nil
}

// ShortName bounds a name for use in an error message.
func ShortName(name string) string {
	const max = 256
	if len(name) <= max {
		return name
	}
	return name[:max] + "...(" + strconv.Itoa(len(name)) + " bytes)"
}

// ProcFD names the file open as fd through /proc/self/fd.
func ProcFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// ProcPath names the entry base inside the directory open as dirfd, for
// the l*xattr calls that have no *at form. The final component is never
// followed by those calls.
func ProcPath(dirfd int, base string) string { return ProcFD(dirfd) + "/" + base }

// ReadlinkAt returns the target of the symlink base inside dirfd, or of the
// symlink open (O_PATH|O_NOFOLLOW) as dirfd when base is "". A target
// longer than MaxPathLen is ENAMETOOLONG.
func ReadlinkAt(dirfd int, base string) (string, error) {
	buf := make([]byte, MaxPathLen+1)
	n, err := unix.Readlinkat(dirfd, base, buf)
	if err != nil {
		return "", err
	}
	if n > MaxPathLen {
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}

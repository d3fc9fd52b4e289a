package fscopy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

const (
	maxSymlinks     = 40 // as the kernel's MAXSYMLINKS
	maxHostSymlinks = 10 // as Docker's CopyInfoDestinationPath
	copyBufSize     = 1 << 20
)

// Xattr filters. Overlayfs' own xattrs are never archived nor extracted;
// SELinux labels belong to the policy of the side they are on, so cp does
// not carry them; on the host, cp only sets user.* xattrs (trusted.* and
// security.*, file capabilities included, could grant privileges there).
func exportXattr(name string) bool { return !fsat.IsOverlayXattr(name) }

func copyXattr(name string) bool { return !fsat.IsOverlayXattr(name) && name != "security.selinux" }

func hostXattr(name string) bool {
	return strings.HasPrefix(name, "user.") && !fsat.IsOverlayXattr(name)
}

// Docker's path conventions (moby/go-archive copy.go), on "/"-separated
// paths: a path "asserts a directory" when it ends in "/" or "/.", and
// "specifies the current directory" when its last element is ".".

func hasTrailingSep(p string) bool { return strings.HasSuffix(p, "/") }

func specifiesCurrentDir(p string) bool { return filepath.Base(p) == "." }

func assertsDirectory(p string) bool { return hasTrailingSep(p) || specifiesCurrentDir(p) }

// preserveTrailing re-appends to a cleaned path the trailing "/." or "/"
// that the original path had.
func preserveTrailing(cleaned, original string) string {
	if !specifiesCurrentDir(cleaned) && specifiesCurrentDir(original) {
		if !hasTrailingSep(cleaned) {
			cleaned += "/"
		}
		cleaned += "."
	}
	if !hasTrailingSep(cleaned) && hasTrailingSep(original) {
		cleaned += "/"
	}
	return cleaned
}

// splitPathDirEntry splits a path into its directory and its last element,
// keeping a trailing "." as the last element.
func splitPathDirEntry(p string) (dir, base string) {
	cleaned := filepath.Clean(p)
	if specifiesCurrentDir(p) {
		cleaned += "/."
	}
	return filepath.Dir(cleaned), filepath.Base(cleaned)
}

// inRoot is a container root filesystem: a directory handle that every
// container path is resolved against, with symlinks followed as if it were
// "/" and magic links refused (pathrs-lite, openat2 RESOLVE_IN_ROOT).
type inRoot struct {
	f    *os.File
	real string // the root's host path as the kernel reports it, for canonical()
}

func openInRoot(rootfs string) (*inRoot, error) {
	// Errors do not unwrap: a missing root must not read as "the path in
	// the container does not exist" (fs.ErrNotExist).
	f, err := os.OpenFile(rootfs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening container root filesystem: %v", err)
	}
	real, err := os.Readlink(fsat.ProcFD(int(f.Fd())))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening container root filesystem: %v", err)
	}
	return &inRoot{f: f, real: real}, nil
}

func (r *inRoot) close() { r.f.Close() }

// handle is a descriptor that may or may not have to be closed.
type handle struct {
	fd int
	f  *os.File // owns fd; nil when fd is borrowed
}

func (h handle) close() {
	if h.f != nil {
		h.f.Close()
	}
}

// open resolves rel (clean, relative) inside the root, following every
// symlink including a final one, and returns an O_PATH handle ("" is the
// root itself, borrowed).
func (r *inRoot) open(rel string) (handle, error) {
	if rel == "" {
		return handle{fd: int(r.f.Fd())}, nil
	}
	f, err := pathrs.OpenatInRoot(r.f, rel)
	if err != nil {
		return handle{}, err
	}
	return handle{fd: int(f.Fd()), f: f}, nil
}

// canonical returns the path of the directory open as fd relative to the
// root, with no symlinks ("" for the root).
func (r *inRoot) canonical(fd int) (string, error) {
	p, err := os.Readlink(fsat.ProcFD(fd))
	if err != nil {
		return "", err
	}
	if p == r.real {
		return "", nil
	}
	prefix := r.real
	if prefix != "/" {
		prefix += "/"
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok || strings.HasSuffix(p, " (deleted)") {
		return "", fmt.Errorf("directory %q is no longer inside the container root", p)
	}
	return rel, nil
}

// resolve returns rel with every symlink in it evaluated inside the root,
// including a final one, as Docker's FollowSymlinkInScope: a component that
// does not exist (possibly the target of a dangling symlink) is accepted
// and the rest of the path taken lexically.
func (r *inRoot) resolve(rel string) (string, error) {
	todo := strings.Split(rel, "/")
	cur, missing, links := "", false, 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur, _ = fsat.SplitRel(cur)
			continue
		}
		next := fsat.JoinRel(cur, c)
		if missing {
			cur = next
			continue
		}
		h, err := r.open(cur)
		var st unix.Stat_t
		if err == nil {
			err = unix.Fstatat(h.fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if errors.Is(err, unix.ENOENT) {
			h.close()
			cur, missing = next, true
			continue
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			h.close()
			if err != nil {
				return "", err
			}
			cur = next
			continue
		}
		target, err := fsat.ReadlinkAt(h.fd, c)
		h.close()
		if err != nil {
			return "", err
		}
		if links++; links > maxSymlinks {
			return "", unix.ELOOP
		}
		if path.IsAbs(target) {
			cur = ""
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

// lstat stats container path p the way Docker's ResolvePath and StatPath
// do: the directory part is resolved inside the root; the last component is
// not followed unless p asserts a directory (a trailing "/" or "/.") or is
// the root.
func (r *inRoot) lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	rel := fsat.CleanRel(p)
	if rel == "" || assertsDirectory(p) {
		h, err := r.open(rel)
		if err != nil {
			return st, err
		}
		defer h.close()
		if err := unix.Fstat(h.fd, &st); err != nil {
			return st, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return st, unix.ENOTDIR
		}
		return st, nil
	}
	dir, base := fsat.SplitRel(rel)
	h, err := r.open(dir)
	if err != nil {
		return st, err
	}
	defer h.close()
	err = unix.Fstatat(h.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

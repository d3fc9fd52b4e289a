package fsat

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/sys/unix"
)

// maxID is the largest uid or gid taken from a tar: (uid_t)-1 means
// "unchanged" to chown.
const maxID = 1<<32 - 2

// Node is an entry being written: Base inside the directory open as Parent,
// plus, for a regular file or directory, an open descriptor of the entry
// itself (FD < 0 when there is none). Symlink marks a symlink. No method
// follows a symlink.
type Node struct {
	Parent  int
	Base    string
	FD      int
	Symlink bool
}

// Chown sets the owner.
func (n Node) Chown(uid, gid int) error {
	if n.FD >= 0 {
		return unix.Fchown(n.FD, uid, gid)
	}
	return unix.Fchownat(n.Parent, n.Base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// Chmod sets the permission bits (including setuid, setgid and sticky).
// Symlinks have no mode of their own on Linux and are left alone.
func (n Node) Chmod(mode uint32) error {
	if n.FD >= 0 {
		return unix.Fchmod(n.FD, mode)
	}
	if n.Symlink {
		return nil
	}
	// Device nodes and FIFOs must not be opened for real, so change the
	// mode through an O_PATH handle taken without following a symlink.
	fd, err := unix.Openat(n.Parent, n.Base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
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
	return unix.Fchmodat(unix.AT_FDCWD, ProcFD(fd), mode, 0)
}

// Setxattr sets one xattr.
func (n Node) Setxattr(name string, value []byte) error {
	if n.FD >= 0 {
		return unix.Fsetxattr(n.FD, name, value, 0)
	}
	return unix.Lsetxattr(ProcPath(n.Parent, n.Base), name, value, 0)
}

// Utimes sets the access and modification times.
func (n Node) Utimes(ts *[2]unix.Timespec) error {
	return unix.UtimesNanoAt(n.Parent, n.Base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// Meta is the validated metadata of a tar entry.
type Meta struct {
	UID, GID int
	Mode     uint32           // permission bits, with setuid, setgid and sticky
	Times    [2]unix.Timespec // atime, mtime
}

// NewMeta validates the owner and times of hdr. A missing access time is
// the modification time.
func NewMeta(hdr *tar.Header) (Meta, error) {
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return Meta{}, fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	m := Meta{UID: hdr.Uid, GID: hdr.Gid, Mode: uint32(hdr.Mode & 0o7777)}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	var err error
	if m.Times[0], err = unix.TimeToTimespec(atime); err != nil {
		return Meta{}, fmt.Errorf("access time: %w", err)
	}
	if m.Times[1], err = unix.TimeToTimespec(hdr.ModTime); err != nil {
		return Meta{}, fmt.Errorf("modification time: %w", err)
	}
	return m, nil
}

// DeviceNode returns the file type and device number to mknod a character
// device, block device or FIFO entry with. The permission bits are left
// out: mknod is subject to the umask, so they are set by a chmod afterwards.
func DeviceNode(hdr *tar.Header) (mode uint32, dev int, err error) {
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode = unix.S_IFCHR
	case tar.TypeBlock:
		mode = unix.S_IFBLK
	default:
		return unix.S_IFIFO, 0, nil
	}
	if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
		return 0, 0, fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
	}
	return mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))), nil
}

// DirTime is the atime/mtime of a directory entry, applied after all
// entries, to the directory it was taken for only (identified by its inode,
// so that a directory removed or replaced meanwhile is left alone).
type DirTime struct {
	ts       [2]unix.Timespec
	dev, ino uint64
}

// NewDirTime ties ts to the directory open as fd.
func NewDirTime(fd int, ts [2]unix.Timespec) (DirTime, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return DirTime{}, err
	}
	return DirTime{ts: ts, dev: st.Dev, ino: st.Ino}, nil
}

// Apply sets the times of base inside the directory open as dirfd ("." for
// dirfd itself) when it is still the directory t was taken for; anything
// else there, or nothing, is left alone without an error.
func (t *DirTime) Apply(dirfd int, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		st.Dev != t.dev || st.Ino != t.ino {
		return nil // removed or replaced meanwhile
	}
	return unix.UtimesNanoAt(dirfd, base, t.ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// WriteContent copies size bytes of r into the new, empty file fd, a chunk
// of buf's size at a time. All-zero chunks are left as holes, so sparse
// content (or a hostile sparse header claiming a huge size) does not
// consume disk space.
func WriteContent(fd int, r io.Reader, size int64, buf []byte) error {
	var off, end int64
	for off < size {
		chunk := buf[:min(int64(len(buf)), size-off)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading content: %w", err)
		}
		if !allZero(chunk) {
			if err := pwriteAll(fd, chunk, off); err != nil {
				return fmt.Errorf("writing content: %w", err)
			}
			end = off + int64(len(chunk))
		}
		off += int64(len(chunk))
	}
	if end < size {
		if err := unix.Ftruncate(fd, size); err != nil {
			return fmt.Errorf("extending file: %w", err)
		}
	}
	return nil
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

package fsat

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// Header returns the PAX header of an entry named name that st describes,
// with its mode (setuid, setgid and sticky included), owner and mtime (with
// nanoseconds); Uname and Gname are left empty and the type to the caller.
func Header(name string, st *unix.Stat_t) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
}

type inode struct{ dev, ino uint64 }

// HardLinks remembers the first name written of each multiply-linked inode.
type HardLinks map[inode]string

// Link makes hdr a hard link to the name the inode st describes was first
// written under, and reports true, when st is a non-directory written
// before. Otherwise it reports false, after recording hdr.Name as that
// first name when st is a non-directory with more than one link.
func (l HardLinks) Link(hdr *tar.Header, st *unix.Stat_t) bool {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Nlink <= 1 {
		return false
	}
	key := inode{dev: st.Dev, ino: st.Ino}
	if first, ok := l[key]; ok {
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = first
		return true
	}
	l[key] = hdr.Name
	return false
}

// SetSpecialType sets the type of hdr for what st describes when it is a
// symlink (with its target, read from base inside dirfd, or from dirfd
// itself, an O_PATH|O_NOFOLLOW handle of the symlink, when base is ""), a
// character or block device (with its device numbers) or a FIFO. Any other
// type is an error.
func SetSpecialType(hdr *tar.Header, st *unix.Stat_t, dirfd int, base string) error {
	switch ftype := st.Mode & unix.S_IFMT; ftype {
	case unix.S_IFLNK:
		target, err := ReadlinkAt(dirfd, base)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if ftype == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("unsupported file mode %#o", st.Mode)
	}
	return nil
}

// WriteHeader writes hdr to tw.
func WriteHeader(tw *tar.Writer, hdr *tar.Header) error {
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header: %w", err)
	}
	return nil
}

// WriteRegular writes hdr to tw as a regular file of size bytes, followed
// by that many bytes of r, copied through buf. r ending early is an error.
func WriteRegular(tw *tar.Writer, hdr *tar.Header, r io.Reader, size int64, buf []byte) error {
	hdr.Typeflag = tar.TypeReg
	hdr.Size = size
	if err := WriteHeader(tw, hdr); err != nil {
		return err
	}
	// A LimitReader hides *os.File's WriteTo, so buf is used.
	n, err := io.CopyBuffer(tw, io.LimitReader(r, size), buf)
	if err != nil {
		return fmt.Errorf("copying content: %w", err)
	}
	if n != size {
		return errors.New("file shrank while archiving")
	}
	return nil
}

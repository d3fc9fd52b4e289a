package fscopy

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// walker writes a tree to a tar stream without ever following a symlink:
// every entry is opened O_PATH|O_NOFOLLOW by a single-component openat
// below a directory handle obtained the same way (or from the in-root
// resolver), its type is taken from that handle, and only a regular file is
// ever opened for reading (by reopening that very handle), so a FIFO or
// device swapped in is never opened and a symlink swapped in is never
// followed.
type walker struct {
	tw    *tar.Writer
	keep  func(string) bool // which xattrs to archive
	links fsat.HardLinks
	xbuf  []byte
	buf   []byte
}

func newWalker(w io.Writer, keep func(string) bool) *walker {
	return &walker{
		tw:    tar.NewWriter(w),
		keep:  keep,
		links: make(fsat.HardLinks),
		xbuf:  make([]byte, 64<<10),
		buf:   make([]byte, copyBufSize),
	}
}

// close writes the end-of-archive marker (it does not close the writer).
func (w *walker) close() error {
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("finishing tar: %w", err)
	}
	return nil
}

// walkError names the entry a walk failed on. It does not unwrap: a file
// vanishing in the middle of a walk must not read as "the source does not
// exist" (fs.ErrNotExist).
type walkError struct {
	name string
	err  error
}

func (e *walkError) Error() string {
	return fmt.Sprintf("archiving %q: %v", fsat.ShortName(e.name), e.err)
}

func named(name string, err error) error {
	var we *walkError
	if err == nil || errors.As(err, &we) {
		return err
	}
	return &walkError{name: name, err: err}
}

// children writes the entries of the directory open (readable) as dir,
// sorted by name, each named prefix+name.
func (w *walker) children(dir *os.File, prefix string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := w.child(int(dir.Fd()), name, prefix+name); err != nil {
			return named(prefix+name, err)
		}
	}
	return nil
}

// child writes the entry base of the directory open as dirfd, named name.
func (w *walker) child(dirfd int, base, name string) error {
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	return w.node(f, dirfd, base, name)
}

// node writes the entry open as f (an O_PATH handle, never followed), named
// name ("." names a directory whose children get no prefix), and everything
// below it. dirfd and base locate the entry in its parent; they are needed
// only for a symlink (dirfd < 0 when f was not opened that way).
func (w *walker) node(f *os.File, dirfd int, base, name string) error {
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	ftype := st.Mode & unix.S_IFMT
	if ftype == unix.S_IFSOCK {
		return nil // sockets cannot be archived; Docker skips them too
	}
	hdr := fsat.Header(name, &st)
	var xattrs []fsat.Xattr
	var err error
	if ftype == unix.S_IFLNK {
		if dirfd < 0 {
			return errors.New("symlink without a parent directory handle")
		}
		xattrs, err = fsat.ReadXattrs(fsat.ProcPath(dirfd, base), false, w.keep, w.xbuf)
	} else {
		xattrs, err = fsat.ReadXattrs(fsat.ProcFD(fd), true, w.keep, w.xbuf)
	}
	if err != nil {
		return err
	}
	for _, x := range xattrs {
		fsat.AddPAXXattr(hdr, x)
	}

	if w.links.Link(hdr, &st) {
		return fsat.WriteHeader(w.tw, hdr)
	}
	switch ftype {
	case unix.S_IFDIR:
		return w.dir(f, hdr)
	case unix.S_IFREG:
		return w.regular(f, hdr, &st)
	}
	if err := fsat.SetSpecialType(hdr, &st, fd, ""); err != nil {
		return err
	}
	return fsat.WriteHeader(w.tw, hdr)
}

func (w *walker) dir(f *os.File, hdr *tar.Header) error {
	name := hdr.Name
	hdr.Typeflag = tar.TypeDir
	hdr.Name += "/"
	if err := fsat.WriteHeader(w.tw, hdr); err != nil {
		return err
	}
	// "." below the handle is the directory itself, never a symlink.
	fd, err := unix.Openat(int(f.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	prefix := name + "/"
	if name == "." {
		prefix = ""
	}
	return w.children(d, prefix)
}

func (w *walker) regular(f *os.File, hdr *tar.Header, st *unix.Stat_t) error {
	// Reopening the O_PATH handle opens the very inode that was stat'ed.
	rf, err := pathrs.Reopen(f, unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("opening file: %w", err)
	}
	defer rf.Close()
	return fsat.WriteRegular(w.tw, hdr, rf, st.Size, w.buf)
}

package archive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// WriteDiff writes an uncompressed tar of an overlayfs upper directory: the
// container layer or diff layer.
//
// 0/0 character devices become ".wh.<name>" entries; a directory with
// trusted.overlay.opaque=y gets a "<dir>/.wh..wh..opq" entry right after
// its own entry; files sharing an inode inside upper become tar hard links
// to the first of them; xattrs other than overlayfs' own go into PAX
// records (SCHILY.xattr.*); uid, gid, mode and mtime (with nanoseconds) are
// preserved and Uname/Gname are left empty. Entries are written in lexical
// order (each directory's children sorted by name, depth first, as
// filepath.WalkDir), so the output is deterministic. The upper root itself
// and sockets are not archived. An upper that relies on overlayfs
// redirect_dir or metacopy (the trusted.overlay.redirect or .metacopy
// xattrs) cannot be expressed as a tar diff and is an error, as is a real
// file whose name starts with ".wh.". upper must not change while WriteDiff
// runs. WriteDiff does not close w.
func WriteDiff(w io.Writer, upper string) error { return WriteDiffWith(w, upper, DiffOptions{}) }

// DiffOptions adjust what WriteDiffWith writes.
type DiffOptions struct {
	// Exclude leaves out every entry for which it returns true (given its
	// name relative to upper, without a trailing slash); an excluded
	// directory is left out with everything below it.
	Exclude func(name string) bool
	// ClampTime, when set, is the latest modification time written: later
	// ones become it (SOURCE_DATE_EPOCH, for reproducible layers).
	ClampTime time.Time
}

// WriteDiffWith is WriteDiff with options.
func WriteDiffWith(w io.Writer, upper string, opts DiffOptions) error {
	f, err := os.OpenFile(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening upper directory: %w", err)
	}
	defer f.Close()
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	// Headers and small files would otherwise be a write to w each.
	bw := bufio.NewWriterSize(w, 256<<10)
	d := &differ{
		exclude: opts.Exclude,
		clamp:   opts.ClampTime,
		tw:      tar.NewWriter(bw),
		links:   make(fsat.HardLinks),
		xbuf:    make([]byte, 64<<10),
		buf:     *bufp,
	}
	if err := d.walk(f, ""); err != nil {
		return err
	}
	if err := d.tw.Close(); err != nil {
		return fmt.Errorf("finishing diff tar: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("finishing diff tar: %w", err)
	}
	return nil
}

type differ struct {
	exclude func(string) bool
	clamp   time.Time
	tw      *tar.Writer
	links   fsat.HardLinks
	xbuf    []byte
	buf     []byte
}

func (d *differ) walk(dir *os.File, prefix string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return &diffError{name: prefix, err: fmt.Errorf("reading directory: %w", err)}
	}
	slices.Sort(names)
	for _, name := range names {
		if d.exclude != nil && d.exclude(prefix+name) {
			continue
		}
		if err := d.entry(int(dir.Fd()), prefix, name); err != nil {
			if _, ok := err.(*diffError); ok {
				return err
			}
			return &diffError{name: prefix + name, err: err}
		}
	}
	return nil
}

// diffError names the upper entry a WriteDiff failure is about.
type diffError struct {
	name string
	err  error
}

func (e *diffError) Error() string {
	return fmt.Sprintf("diff entry %q: %v", fsat.ShortName(e.name), e.err)
}

func (e *diffError) Unwrap() error { return e.err }

func (d *differ) entry(dirfd int, prefix, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	name := prefix + base
	mtime := time.Unix(st.Mtim.Unix())
	if !d.clamp.IsZero() && mtime.After(d.clamp) {
		mtime = d.clamp
	}
	if isWhiteout(&st) {
		return fsat.WriteHeader(d.tw, &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     prefix + whiteoutPrefix + base,
			ModTime:  mtime,
			Format:   tar.FormatPAX,
		})
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return errors.New("a real file name uses the reserved whiteout prefix")
	}
	if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		return nil
	}
	hdr := fsat.Header(name, &st)
	hdr.ModTime = mtime
	xattrs, err := fsat.ReadXattrs(fsat.ProcPath(dirfd, base), false, nil, d.xbuf)
	if err != nil {
		return err
	}
	opaque := false
	for _, x := range xattrs {
		switch {
		case x.Name == opaqueXattr:
			opaque = string(x.Value) == "y"
		case x.Name == "trusted.overlay.redirect" || x.Name == "trusted.overlay.metacopy":
			return fmt.Errorf("has the overlayfs xattr %q; mount with redirect_dir=off,metacopy=off", x.Name)
		case fsat.IsOverlayXattr(x.Name):
		default:
			fsat.AddPAXXattr(hdr, x)
		}
	}

	if d.links.Link(hdr, &st) {
		return fsat.WriteHeader(d.tw, hdr)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return d.dir(dirfd, base, hdr, opaque)
	case unix.S_IFREG:
		return d.regular(dirfd, base, hdr, &st)
	}
	if err := fsat.SetSpecialType(hdr, &st, dirfd, base); err != nil {
		return err
	}
	return fsat.WriteHeader(d.tw, hdr)
}

func (d *differ) dir(dirfd int, base string, hdr *tar.Header, opaque bool) error {
	hdr.Typeflag = tar.TypeDir
	name := hdr.Name
	hdr.Name += "/"
	if err := fsat.WriteHeader(d.tw, hdr); err != nil {
		return err
	}
	if opaque {
		if err := fsat.WriteHeader(d.tw, &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name + "/" + opaqueMarker,
			ModTime:  hdr.ModTime,
			Format:   tar.FormatPAX,
		}); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	child := os.NewFile(uintptr(fd), name)
	defer child.Close()
	return d.walk(child, name+"/")
}

func (d *differ) regular(dirfd int, base string, hdr *tar.Header, st *unix.Stat_t) error {
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), hdr.Name)
	defer f.Close()
	var cur unix.Stat_t
	if err := unix.Fstat(fd, &cur); err != nil {
		return err
	}
	if cur.Dev != st.Dev || cur.Ino != st.Ino || cur.Size != st.Size {
		return errors.New("file changed while archiving")
	}
	return fsat.WriteRegular(d.tw, hdr, f, st.Size, d.buf)
}

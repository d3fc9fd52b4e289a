package buildctx

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/berth-dev/berth/internal/archive"
	"golang.org/x/sys/unix"
)

// Limits on hostile archive entries.
const (
	maxTarName = 4096
	maxID      = 1<<32 - 2 // (uid_t)-1 means "unchanged" to chown
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// decompress returns the plain bytes of a possibly compressed stream: gzip,
// bzip2, zstd (in process) or xz (through the xz program, as Docker does),
// detected from magic bytes.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(xzMagic))
	if err != nil && err != io.EOF {
		return nil, err
	}
	if bytes.HasPrefix(head, xzMagic) {
		return xzReader(br)
	}
	rc, _, err := archive.DecompressStream(br)
	return rc, err
}

type cmdReader struct {
	io.ReadCloser
	cmd *exec.Cmd
}

func (c *cmdReader) Close() error {
	c.ReadCloser.Close()
	c.cmd.Wait() // killed by SIGPIPE when closed early: not an error here
	return nil
}

func xzReader(r io.Reader) (io.ReadCloser, error) {
	cmd := exec.Command("xz", "-d", "-c", "-q")
	cmd.Stdin = r
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("xz archive: %w", err)
	}
	return &cmdReader{ReadCloser: out, cmd: cmd}, nil
}

// IsArchive reports whether r holds a tar archive, plain or compressed: the
// first entry header must decode (as BuildKit decides for ADD). It reads at
// most a few headers' worth of r.
func IsArchive(r io.Reader) bool {
	dr, err := decompress(r)
	if err != nil {
		return false
	}
	defer dr.Close()
	_, err = tar.NewReader(dr).Next()
	return err == nil
}

// tryUnpack extracts source sname (a regular file in sdir) into destRel if it
// is an archive, reporting whether it was.
func (c *copier) tryUnpack(sdir int, sname, destRel string) (bool, error) {
	fd, err := openat(sdir, sname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(fd), sname)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, err
	}
	if !IsArchive(io.NewSectionReader(f, 0, st.Size)) {
		return false, nil
	}
	dfd, dres, err := walkIn(c.root, destRel, true, &c.mk)
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", display(destRel), err)
	}
	defer unix.Close(dfd)
	if err := requireDir(dfd, dres); err != nil {
		return false, err
	}
	// The archive's entries keep their own owners (BuildKit's rule):
	// --chown only applies to the destination directories made for them.
	return true, unpackInto(io.NewSectionReader(f, 0, st.Size), dfd, nil)
}

// unpackInto extracts a (possibly compressed) tar archive into the directory
// dirfd, which is also the root every entry is resolved in: names may not
// climb out of it with "..", absolute names and symlink targets are taken
// relative to it, and nothing outside it is created or changed. Entries keep
// their modes, times, extended attributes (best effort) and owners, unless
// owner is set. Existing entries are replaced; existing directories are
// merged.
func unpackInto(r io.Reader, dirfd int, owner *Owner) error {
	dr, err := decompress(r)
	if err != nil {
		return err
	}
	defer dr.Close()
	u := &unpacker{root: dirfd, owner: owner, mk: mkdirSpec{perm: 0o755}}
	if owner != nil {
		u.mk.chown, u.mk.uid, u.mk.gid = true, owner.UID, owner.GID
	}
	tr := tar.NewReader(dr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("archive entry %q: %w", trimName(hdr.Name), err)
		}
	}
	return u.finish()
}

func trimName(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}

type unpacker struct {
	root  int
	owner *Owner
	mk    mkdirSpec
	dirs  []pendingTimes // relative to root
}

// entryPath cleans an archive name into a path relative to the extraction
// root ("" for the root itself), refusing names that climb above it.
func entryPath(name string) (string, error) {
	if len(name) > maxTarName {
		return "", fmt.Errorf("name longer than %d bytes", maxTarName)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("name escapes the destination")
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return nil // pax globals, GNU volume labels and the like
	}
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if strings.HasPrefix(rel, ".wh..wh.") {
		return nil // aufs metadata, skipped as Docker does
	}
	uid, gid := hdr.Uid, hdr.Gid
	if u.owner != nil {
		uid, gid = u.owner.UID, u.owner.GID
	}
	if uid < 0 || gid < 0 || uid > maxID || gid > maxID {
		return fmt.Errorf("owner %d:%d out of range", uid, gid)
	}
	perm := uint32(hdr.Mode) & permMask
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if !hdr.AccessTime.IsZero() {
		ts[0] = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}

	if rel == "" {
		// The destination itself: Docker applies a "./" entry's metadata.
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the archive root is not a directory")
		}
		return u.dirMeta(u.root, "", uid, gid, perm, ts, hdr)
	}

	d, b := splitDir(rel)
	pfd, pres, err := walkIn(u.root, d, true, &u.mk)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if !isDirFd(pfd) {
		return fmt.Errorf("%s is not a directory", d)
	}
	target := joinRel(pres, b)

	var cur unix.Stat_t
	exists := unix.Fstatat(pfd, b, &cur, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists && !(hdr.Typeflag == tar.TypeDir && cur.Mode&unix.S_IFMT == unix.S_IFDIR) {
		if err := removeAllAt(pfd, b); err != nil {
			return err
		}
		exists = false
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(pfd, b, 0o700); err != nil {
				return err
			}
		}
		fd, err := openat(pfd, b, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return u.dirMeta(fd, target, uid, gid, perm, ts, hdr)

	case tar.TypeReg, tar.TypeRegA:
		f, err := createFile(pfd, b, r, uid, gid, perm)
		if err != nil {
			return err
		}
		defer f.Close()
		fd := int(f.Fd())
		setXattrs(fd, paxXattrs(hdr))
		if err := setTimes(fd, ts); err != nil {
			return err
		}
		return f.Close()

	case tar.TypeSymlink:
		if len(hdr.Linkname) > maxTarName || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return errors.New("invalid symlink target")
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, b); err != nil {
			return err
		}
		if err := unix.Fchownat(pfd, b, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return unix.UtimesNanoAt(pfd, b, ts, unix.AT_SYMLINK_NOFOLLOW)

	case tar.TypeLink:
		tgt, err := entryPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", trimName(hdr.Linkname), err)
		}
		if tgt == "" {
			return errors.New("hard link to the archive root")
		}
		td, tb := splitDir(tgt)
		tfd, _, err := walkIn(u.root, td, true, nil)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", trimName(hdr.Linkname), err)
		}
		defer unix.Close(tfd)
		var tst unix.Stat_t
		if err := unix.Fstatat(tfd, tb, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("hard link target %q: %w", trimName(hdr.Linkname), err)
		}
		if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("hard link target %q is a directory", trimName(hdr.Linkname))
		}
		// Without AT_SYMLINK_FOLLOW a symlink target is linked itself.
		return unix.Linkat(tfd, tb, pfd, b, 0)

	default: // char, block, fifo
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 0xfff || hdr.Devminor > 0xfffff {
			return errors.New("device number out of range")
		}
		return makeNode(pfd, b, typ, unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)), uid, gid, perm, ts)
	}
}

// dirMeta gives directory fd (path rel in the root) an entry's owner, mode
// and xattrs; its times are set at the end, after its children were written.
func (u *unpacker) dirMeta(fd int, rel string, uid, gid int, perm uint32, ts []unix.Timespec, hdr *tar.Header) error {
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if err := chmodFd(fd, perm); err != nil {
		return err
	}
	if xs := paxXattrs(hdr); len(xs) > 0 {
		if rfd, err := openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
			setXattrs(rfd, xs)
			unix.Close(rfd)
		}
	}
	u.dirs = append(u.dirs, pendingTimes{path: rel, ts: ts})
	return nil
}

// paxXattrs are the extended attributes an entry records, less those that
// never travel (overlayfs' own, SELinux labels).
func paxXattrs(hdr *tar.Header) []xattr {
	var xs []xattr
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && copyableXattr(name) {
			xs = append(xs, xattr{name: name, value: []byte(v)})
		}
	}
	return xs
}

// finish sets directory times, innermost last-written first.
func (u *unpacker) finish() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		p := u.dirs[i]
		fd, _, err := walkIn(u.root, p.path, false, nil)
		if err != nil {
			continue // replaced by a later entry
		}
		if isDirFd(fd) {
			err = setTimes(fd, p.ts)
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

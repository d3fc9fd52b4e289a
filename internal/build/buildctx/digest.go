package buildctx

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// digestVersion changes whenever the digest encoding does.
const digestVersion = "buildctx.Digest/v1"

// Digest is what the build cache keys a COPY/ADD on. For every matched
// source it covers the name the source is copied under and, for every entry
// copied, its path relative to that, type, permission bits (after Chmod),
// owner (after Chown), symlink target, device number, extended attributes
// and a SHA-256 of its content; it also covers the options. It never covers
// times or inode numbers. The destination is the caller's to add.
func Digest(srcs []Source, opts CopyOptions) (digest.Digest, error) {
	mode, err := ParseMode(opts.Chmod)
	if err != nil {
		return "", err
	}
	exc, err := newMatcher(opts.Excludes)
	if err != nil {
		return "", err
	}
	d := newDigester(mode, opts)
	defer d.stop()
	d.w.str(digestVersion)
	d.w.strs(opts.Excludes)
	d.w.flag(opts.Parents)
	d.w.flag(opts.Unpack)
	d.w.str(mode.String())
	if opts.Chown != nil {
		d.w.flag(true)
		d.w.num(uint64(opts.Chown.UID))
		d.w.num(uint64(opts.Chown.GID))
	} else {
		d.w.flag(false)
	}
	d.w.flag(destIsDir(srcs))
	d.w.num(uint64(len(srcs)))
	for _, s := range srcs {
		if s.tree == nil || s.tree.root == nil {
			return "", fmt.Errorf("source %q: its tree is closed", s.Arg)
		}
		if err := d.source(s, &filter{tree: s.tree, exc: exc}); err != nil {
			return "", fmt.Errorf("source %q: %w", s.Arg, err)
		}
	}
	return d.sum()
}

// recWriter appends length-prefixed fields, so that no two different
// sequences of fields encode alike.
type recWriter struct {
	b []byte
}

func (w *recWriter) num(n uint64) { w.b = binary.AppendUvarint(w.b, n) }

func (w *recWriter) bytes(b []byte) {
	w.num(uint64(len(b)))
	w.b = append(w.b, b...)
}

func (w *recWriter) str(s string) {
	w.num(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *recWriter) strs(ss []string) {
	w.num(uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}

func (w *recWriter) flag(b bool) {
	if b {
		w.num(1)
	} else {
		w.num(0)
	}
}

// A digester walks sources on one goroutine, encoding every entry in order;
// regular files are opened, hashed and encoded by workers, each into its own
// slot, and the slots are hashed in walk order at the end.
type digester struct {
	w    recWriter // the segment being encoded
	segs []*segment
	mode *ModeSpec
	opts CopyOptions

	jobs chan *segment
	wg   sync.WaitGroup
	quit sync.Once
}

// segment is encoded bytes, or a regular file a worker encodes.
type segment struct {
	b    []byte
	dir  *sharedFd // for a file: its directory
	name string
	tree *Tree
	err  error
}

// sharedFd is a directory descriptor closed when its last user is done.
type sharedFd struct {
	fd   int
	refs atomic.Int32
}

func (s *sharedFd) release() {
	if s.refs.Add(-1) == 0 {
		unix.Close(s.fd)
	}
}

func newDigester(mode *ModeSpec, opts CopyOptions) *digester {
	d := &digester{mode: mode, opts: opts, jobs: make(chan *segment, 256)}
	n := min(max(runtime.GOMAXPROCS(0), 1), 8)
	for range n {
		d.wg.Add(1)
		go d.worker()
	}
	return d
}

func (d *digester) worker() {
	defer d.wg.Done()
	buf := make([]byte, 32<<10)
	for s := range d.jobs {
		w := recWriter{}
		s.err = d.file(&w, s.tree, s.dir.fd, s.name, buf)
		s.b = w.b
		s.dir.release()
	}
}

// stop ends the workers (after they finished every queued file).
func (d *digester) stop() {
	d.quit.Do(func() {
		close(d.jobs)
		d.wg.Wait()
	})
}

// cut ends the segment being encoded.
func (d *digester) cut() {
	if len(d.w.b) > 0 {
		d.segs = append(d.segs, &segment{b: d.w.b})
		d.w.b = nil
	}
}

// queueFile has a worker encode regular file name of dir.
func (d *digester) queueFile(t *Tree, dir *sharedFd, name string) {
	d.cut()
	s := &segment{dir: dir, name: name, tree: t}
	dir.refs.Add(1)
	d.segs = append(d.segs, s)
	d.jobs <- s
}

// sum waits for the workers and hashes every segment in order.
func (d *digester) sum() (digest.Digest, error) {
	d.cut()
	d.stop()
	h := sha256.New()
	for _, s := range d.segs {
		if s.err != nil {
			return "", s.err
		}
		h.Write(s.b)
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

func (d *digester) source(s Source, f *filter) error {
	root := s.tree.rootFd()
	sdir, sname := splitDir(s.Resolved)
	if s.Resolved == "." {
		sdir, sname = "", "."
	}
	pfd, _, err := openIn(root, sdir, true, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	parent := &sharedFd{fd: pfd}
	parent.refs.Add(1)
	defer parent.release()
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, sname, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	d.w.str("source")
	d.w.flag(isDir)
	d.w.flag(s.NoUnpack)
	switch {
	case s.parents:
		d.w.str(s.DestPath)
		// The directories --parents makes between dest and the source.
		comps := splitPath(s.DestPath)
		srcComps := splitPath(s.Path)
		if len(comps) > 1 {
			base := strings.Join(srcComps[:len(srcComps)-len(comps)], "/")
			for i := range comps[:len(comps)-1] {
				dfd, _, err := openIn(root, joinRel(base, strings.Join(comps[:i+1], "/")), true, unix.O_PATH)
				if err != nil {
					return err
				}
				var dst unix.Stat_t
				err = unix.Fstat(dfd, &dst)
				unix.Close(dfd)
				if err != nil {
					return err
				}
				d.meta(&d.w, s.tree, &dst, nil)
			}
		}
		if s.DestPath != "" || !isDir {
			if err := d.entry(s.tree, parent, sname, &st); err != nil {
				return err
			}
		}
	case isDir:
		d.w.str("")
	default:
		d.w.str(lastElem(s.Path))
		return d.entry(s.tree, parent, sname, &st)
	}
	if !isDir {
		return nil
	}
	fd, err := openat(pfd, sname, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	ms, err := f.rootState(s.Resolved)
	if err != nil {
		unix.Close(fd)
		return err
	}
	return d.dir(s.tree, f, fd, treeRel(s.Resolved), "", ms)
}

// lastElem is the name a file source is copied under.
func lastElem(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// dir encodes the entries below directory fd that a copy would write. It
// takes over fd.
func (d *digester) dir(t *Tree, f *filter, fd int, treePath, srcRel string, ms matchState) error {
	dir := &sharedFd{fd: fd}
	dir.refs.Add(1)
	defer dir.release()
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return err
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		childTree, childRel := joinRel(treePath, name), joinRel(srcRel, name)
		include, descend, cms, err := f.check(childTree, childRel, isDir, ms)
		if err != nil {
			return err
		}
		if !include && !descend {
			continue
		}
		d.w.str(childRel)
		d.w.flag(include)
		if err := d.entry(t, dir, name, &st); err != nil {
			return err
		}
		if descend {
			cfd, err := openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err != nil {
				return err
			}
			if err := d.dir(t, f, cfd, childTree, childRel, cms); err != nil {
				return err
			}
			d.w.str("..") // end of directory
		}
	}
	return nil
}

// meta encodes type, permissions (after Chmod) and owner (after Chown).
func (d *digester) meta(w *recWriter, t *Tree, st *unix.Stat_t, xs []xattr) {
	typ := st.Mode & unix.S_IFMT
	w.num(uint64(typ))
	if typ != unix.S_IFLNK {
		w.num(uint64(d.mode.Apply(st.Mode&permMask, typ == unix.S_IFDIR)))
	}
	var uid, gid int
	switch {
	case d.opts.Chown != nil:
		uid, gid = d.opts.Chown.UID, d.opts.Chown.GID
	case t.context:
	default:
		uid, gid = int(st.Uid), int(st.Gid)
	}
	w.num(uint64(uid))
	w.num(uint64(gid))
	w.num(uint64(len(xs)))
	for _, x := range xs {
		w.str(x.name)
		w.bytes(x.value)
	}
}

// entry encodes one entry: its metadata and content (through a worker),
// symlink target or device number.
func (d *digester) entry(t *Tree, dir *sharedFd, name string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		d.queueFile(t, dir, name)
	case unix.S_IFDIR:
		var xs []xattr
		if fd, err := openat(dir.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW); err == nil {
			xs, _ = listXattrs(fd)
			unix.Close(fd)
		}
		d.meta(&d.w, t, st, xs)
	case unix.S_IFLNK:
		d.meta(&d.w, t, st, nil)
		target, err := readlinkAt(dir.fd, name)
		if err != nil {
			return err
		}
		d.w.str(target)
	default:
		d.meta(&d.w, t, st, nil)
		d.w.num(st.Rdev)
	}
	return nil
}

// file encodes regular file name of dirfd: metadata and SHA-256 of content.
func (d *digester) file(w *recWriter, t *Tree, dirfd int, name string, buf []byte) error {
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s changed while being read", name)
	}
	xs, _ := listXattrs(fd)
	d.meta(w, t, &st, xs)
	h := sha256.New()
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
	}
	w.bytes(h.Sum(nil))
	return nil
}

package buildctx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// destIsDir reports whether Docker's rules make the destination a directory
// for these sources, regardless of how it is spelled: more than one source
// argument, a wildcard in any of them, or --parents.
func destIsDir(srcs []Source) bool {
	groups := map[uint64]bool{}
	for _, s := range srcs {
		if s.Wildcard || s.parents {
			return true
		}
		groups[s.group] = true
	}
	return len(groups) > 1
}

// Copy copies the matched sources into rootfs (a writable, hostile root
// filesystem) at dest, an absolute container path, with Docker's COPY rules:
//
//   - dest is a directory (created with missing parents, 0755) when it ends
//     in "/", when there is more than one source argument, when any has a
//     wildcard, or with Parents;
//   - a directory source has its contents copied into dest, recursively;
//     dest gets the directory's times, not its mode or owner;
//   - a file source goes to dest/<name> when dest is (or must be) a
//     directory, else to dest itself; <name> is the last element of its
//     Path (a followed symlink keeps the symlink's name);
//   - symlinks inside copied directories are copied as symlinks; modes, times
//     (atime and mtime), extended attributes (best effort) and hard links
//     within one Copy are preserved; owners follow CopyOptions.Chown;
//   - existing files are replaced (never written through); existing
//     directories are merged, also through a symlink that resolves, inside
//     rootfs, to a directory; a directory where a file must go, or a file
//     where a directory must go, is an error naming the path;
//   - missing parents of dest are created 0755, owned by Chown or by the
//     caller (root);
//   - with Unpack, a source that is a tar archive is extracted into dest (see
//     CopyOptions.Unpack) with its entries' own modes and owners (or Chown).
//
// Every path in rootfs is resolved inside it; nothing outside it is created
// or changed.
func Copy(rootfs, dest string, srcs []Source, opts CopyOptions) error {
	mode, err := ParseMode(opts.Chmod)
	if err != nil {
		return err
	}
	exc, err := newMatcher(opts.Excludes)
	if err != nil {
		return err
	}
	rootf, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer rootf.Close()
	c := &copier{
		root:  int(rootf.Fd()),
		mode:  mode,
		opts:  opts,
		exc:   exc,
		links: map[devIno]string{},
		mk:    mkdirSpec{perm: 0o755},
	}
	if opts.Chown != nil {
		c.mk.chown, c.mk.uid, c.mk.gid = true, opts.Chown.UID, opts.Chown.GID
	}
	if !strings.HasPrefix(dest, "/") {
		dest = "/" + dest
	}
	destRel := cleanRel(dest)
	forceDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || destIsDir(srcs)
	for _, s := range srcs {
		if s.tree == nil || s.tree.root == nil {
			return fmt.Errorf("source %q: its tree is closed", s.Arg)
		}
		if err := c.copySource(s, destRel, forceDir); err != nil {
			return err
		}
	}
	return c.finish()
}

type devIno struct{ dev, ino uint64 }

type copier struct {
	root  int // rootfs handle
	mode  *ModeSpec
	opts  CopyOptions
	exc   *patternmatcher.PatternMatcher
	links map[devIno]string // source inode -> resolved path of its first copy
	mk    mkdirSpec         // how missing destination parents are made

	// dirTimes are directories made for Parents whose times are set last,
	// after everything below them was written.
	dirTimes []pendingTimes
}

type pendingTimes struct {
	path string // resolved in rootfs
	ts   []unix.Timespec
}

// display is how a resolved rootfs path appears in errors.
func display(rel string) string { return "/" + rel }

// copySource copies one source.
func (c *copier) copySource(s Source, destRel string, forceDir bool) error {
	srcRoot := s.tree.rootFd()
	sdir, sname := splitDir(s.Resolved)
	if s.Resolved == "." {
		sdir, sname = "", "."
	}
	spfd, _, err := openIn(srcRoot, sdir, true, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.Arg, err)
	}
	defer unix.Close(spfd)
	var st unix.Stat_t
	if err := unix.Fstatat(spfd, sname, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("source %q: %w", s.Arg, err)
	}
	f := &filter{tree: s.tree, exc: c.exc}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR

	if c.opts.Unpack && !s.NoUnpack && st.Mode&unix.S_IFMT == unix.S_IFREG {
		done, err := c.tryUnpack(spfd, sname, destRel)
		if err != nil {
			return fmt.Errorf("unpacking %q: %w", s.Arg, err)
		}
		if done {
			return nil
		}
	}

	if s.parents {
		return c.copyParents(s, f, spfd, sname, &st, destRel)
	}
	if isDir {
		dfd, dres, err := walkIn(c.root, destRel, true, &c.mk)
		if err != nil {
			return fmt.Errorf("creating %s: %w", display(destRel), err)
		}
		defer unix.Close(dfd)
		if err := requireDir(dfd, dres); err != nil {
			return err
		}
		return c.copyDirContents(s, f, spfd, sname, &st, dfd, dres)
	}

	var pfd int
	var pres, name string
	if forceDir {
		pfd, pres, err = walkIn(c.root, destRel, true, &c.mk)
		name = path.Base("/" + s.Path)
	} else if fd, res, err2 := walkIn(c.root, destRel, true, nil); err2 == nil && isDirFd(fd) {
		pfd, pres, name = fd, res, path.Base("/"+s.Path)
	} else {
		if err2 == nil {
			unix.Close(fd)
		}
		d, b := splitDir(destRel)
		pfd, pres, err = walkIn(c.root, d, true, &c.mk)
		name = b
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", display(destRel), err)
	}
	defer unix.Close(pfd)
	if err := requireDir(pfd, pres); err != nil {
		return err
	}
	if name == "" || name == "/" || name == "." {
		return fmt.Errorf("cannot copy %q to %s: not a file name", s.Arg, display(destRel))
	}
	return c.copyNonDir(s.tree, spfd, sname, &st, pfd, name, joinRel(pres, name))
}

// copyDirContents copies the contents of source directory sname (in spfd)
// into the existing destination directory dfd (resolved path dres), then
// gives dfd the source directory's times.
func (c *copier) copyDirContents(s Source, f *filter, spfd int, sname string, st *unix.Stat_t, dfd int, dres string) error {
	sfd, err := openat(spfd, sname, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.Arg, err)
	}
	defer unix.Close(sfd)
	ms, err := f.rootState(s.Resolved)
	if err != nil {
		return err
	}
	node := &dirNode{fd: dfd, path: dres}
	if err := c.copyChildren(s.tree, f, sfd, treeRel(s.Resolved), "", node, ms); err != nil {
		return err
	}
	return setTimes(dfd, statTimes(st))
}

// copyParents copies a --parents source to dest/DestPath, creating the
// directories in between from the source's parent directories.
func (c *copier) copyParents(s Source, f *filter, spfd int, sname string, st *unix.Stat_t, destRel string) error {
	dfd, dres, err := walkIn(c.root, destRel, true, &c.mk)
	if err != nil {
		return fmt.Errorf("creating %s: %w", display(destRel), err)
	}
	defer unix.Close(dfd)
	if err := requireDir(dfd, dres); err != nil {
		return err
	}
	if s.DestPath == "" {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("source %q: no name to copy it under", s.Arg)
		}
		return c.copyDirContents(s, f, spfd, sname, st, dfd, dres)
	}
	comps := splitPath(s.DestPath)
	srcComps := splitPath(s.Path)
	// The source directory of DestPath's first component.
	srcBase := strings.Join(srcComps[:len(srcComps)-len(comps)], "/")
	cur, curPath := dfd, dres
	owned := -1 // cur needs closing when it is not dfd
	defer func() {
		if owned >= 0 {
			unix.Close(owned)
		}
	}()
	for i, comp := range comps[:len(comps)-1] {
		srcDir := joinRel(srcBase, strings.Join(comps[:i+1], "/"))
		nfd, npath, err := c.parentDir(s.tree, srcDir, cur, comp, joinRel(curPath, comp))
		if err != nil {
			return err
		}
		if owned >= 0 {
			unix.Close(owned)
		}
		cur, curPath, owned = nfd, npath, nfd
	}
	name := comps[len(comps)-1]
	target := joinRel(curPath, name)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return c.copyNonDir(s.tree, spfd, sname, st, cur, name, target)
	}
	parent := &dirNode{fd: cur, path: curPath}
	sfd, err := openat(spfd, sname, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("source %q: %w", s.Arg, err)
	}
	defer unix.Close(sfd)
	ms, err := f.rootState(s.Resolved)
	if err != nil {
		return err
	}
	node := &dirNode{parent: parent, name: name, path: target, st: *st, fd: -1, tree: s.tree}
	node.xattrs, _ = listXattrs(sfd)
	if err := c.ensureDir(node, true); err != nil {
		return err
	}
	err = c.copyChildren(s.tree, f, sfd, treeRel(s.Resolved), "", node, ms)
	if err2 := c.finishDir(node); err == nil {
		err = err2
	}
	return err
}

// parentDir makes (or enters) directory name in dirfd for --parents, giving a
// new one the mode, owner and times of tree directory srcDir.
func (c *copier) parentDir(t *Tree, srcDir string, dirfd int, name, target string) (int, string, error) {
	var dst unix.Stat_t
	err := unix.Fstatat(dirfd, name, &dst, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		if dst.Mode&unix.S_IFMT == unix.S_IFLNK {
			return c.followDir(target)
		}
		if dst.Mode&unix.S_IFMT != unix.S_IFDIR {
			return -1, "", fmt.Errorf("cannot copy to %s: not a directory", display(target))
		}
		fd, err := openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		return fd, target, err
	}
	if err != unix.ENOENT {
		return -1, "", err
	}
	sfd, _, err := openIn(t.rootFd(), srcDir, true, unix.O_PATH)
	if err != nil {
		return -1, "", fmt.Errorf("source directory %q: %w", srcDir, err)
	}
	var st unix.Stat_t
	err = unix.Fstat(sfd, &st)
	unix.Close(sfd)
	if err != nil {
		return -1, "", err
	}
	uid, gid := c.owner(t, &st)
	mk := mkdirSpec{perm: c.mode.Apply(st.Mode&permMask, true), chown: true, uid: uid, gid: gid}
	if err := mkdirAt(dirfd, name, &mk); err != nil {
		return -1, "", fmt.Errorf("creating %s: %w", display(target), err)
	}
	c.dirTimes = append(c.dirTimes, pendingTimes{path: target, ts: statTimes(&st)})
	fd, err := openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	return fd, target, err
}

// followDir resolves a destination symlink inside rootfs and returns the
// directory it leads to, creating it (as dest's parents are) if missing.
func (c *copier) followDir(target string) (int, string, error) {
	fd, res, err := walkIn(c.root, target, true, &c.mk)
	if err != nil {
		return -1, "", fmt.Errorf("cannot copy to %s: %w", display(target), err)
	}
	if !isDirFd(fd) {
		unix.Close(fd)
		return -1, "", fmt.Errorf("cannot copy a directory to %s: not a directory", display(target))
	}
	return fd, res, nil
}

// dirNode is a destination directory of a recursive copy. A directory the
// ignore rules exclude but whose children may be re-included is made only
// when a child is copied into it.
type dirNode struct {
	parent  *dirNode
	name    string      // in parent
	path    string      // resolved in rootfs
	st      unix.Stat_t // of the source directory
	tree    *Tree
	include bool // copied itself, not just made to hold children
	fd      int  // O_PATH handle once made, else -1
	created bool // made by this copy
	closeFd bool
	xattrs  []xattr // of the source directory
}

// ensureDir makes n (and the parents it waits on) exist.
func (c *copier) ensureDir(n *dirNode, include bool) error {
	if n.fd >= 0 {
		return nil
	}
	n.include = include
	if err := c.ensureDir(n.parent, false); err != nil {
		return err
	}
	pfd := n.parent.fd
	var dst unix.Stat_t
	err := unix.Fstatat(pfd, n.name, &dst, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
		if err := unix.Mkdirat(pfd, n.name, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", display(n.path), err)
		}
		n.created = true
	case err != nil:
		return fmt.Errorf("%s: %w", display(n.path), err)
	case dst.Mode&unix.S_IFMT == unix.S_IFLNK:
		fd, res, err := c.followDir(n.path)
		if err != nil {
			return err
		}
		n.fd, n.path, n.closeFd = fd, res, true
		return nil
	case dst.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("cannot copy a directory to %s: not a directory", display(n.path))
	}
	fd, err := openat(pfd, n.name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("%s: %w", display(n.path), err)
	}
	n.fd, n.closeFd = fd, true
	return nil
}

// finishDir gives a copied directory its metadata, now that its children are
// written, and releases its handle.
func (c *copier) finishDir(n *dirNode) error {
	if n.fd < 0 {
		return nil
	}
	defer func() {
		if n.closeFd {
			unix.Close(n.fd)
		}
		n.fd = -1
	}()
	if !n.include && !n.created {
		return nil
	}
	uid, gid := c.owner(n.tree, &n.st)
	if err := unix.Fchownat(n.fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", display(n.path), err)
	}
	if err := chmodFd(n.fd, c.mode.Apply(n.st.Mode&permMask, true)); err != nil {
		return fmt.Errorf("chmod %s: %w", display(n.path), err)
	}
	if xs := n.xattrs; len(xs) > 0 {
		if rfd, err := openat(n.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
			setXattrs(rfd, xs)
			unix.Close(rfd)
		}
	}
	return setTimes(n.fd, statTimes(&n.st))
}

// copyChildren copies the entries of source directory sfd (tree path
// treePath, srcRel relative to the source) into node.
func (c *copier) copyChildren(t *Tree, f *filter, sfd int, treePath, srcRel string, node *dirNode, ms matchState) error {
	names, err := readDirNames(sfd)
	if err != nil {
		return fmt.Errorf("reading %s: %w", treePath, err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("%s: %w", joinRel(treePath, name), err)
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		childTree, childRel := joinRel(treePath, name), joinRel(srcRel, name)
		include, descend, cms, err := f.check(childTree, childRel, isDir, ms)
		if err != nil {
			return err
		}
		if !isDir {
			if !include {
				continue
			}
			if err := c.ensureDir(node, node.include); err != nil {
				return err
			}
			if err := c.copyNonDir(t, sfd, name, &st, node.fd, name, joinRel(node.path, name)); err != nil {
				return err
			}
			continue
		}
		if !include && !descend {
			continue
		}
		child := &dirNode{parent: node, name: name, path: joinRel(node.path, name), st: st, tree: t, fd: -1}
		if include {
			if err := c.ensureDir(child, true); err != nil {
				return err
			}
		}
		if descend {
			cfd, err := openat(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err != nil {
				return fmt.Errorf("%s: %w", childTree, err)
			}
			child.xattrs, _ = listXattrs(cfd)
			err = c.copyChildren(t, f, cfd, childTree, childRel, child, cms)
			unix.Close(cfd)
			if err != nil {
				c.finishDir(child)
				return err
			}
		}
		if err := c.finishDir(child); err != nil {
			return err
		}
	}
	return nil
}

// owner is the owner a copied entry with source stat st gets.
func (c *copier) owner(t *Tree, st *unix.Stat_t) (int, int) {
	switch {
	case c.opts.Chown != nil:
		return c.opts.Chown.UID, c.opts.Chown.GID
	case t == nil || t.context:
		return 0, 0
	}
	return int(st.Uid), int(st.Gid)
}

// copyNonDir copies non-directory sname of sdir to name in pfd (resolved
// path target), replacing what is there unless it is a directory.
func (c *copier) copyNonDir(t *Tree, sdir int, sname string, st *unix.Stat_t, pfd int, name, target string) error {
	var dst unix.Stat_t
	switch err := unix.Fstatat(pfd, name, &dst, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil && dst.Mode&unix.S_IFMT == unix.S_IFDIR:
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil
		}
		return fmt.Errorf("cannot replace directory %s with a file", display(target))
	case err == nil:
		if err := unix.Unlinkat(pfd, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("replacing %s: %w", display(target), err)
		}
	case err != unix.ENOENT:
		return fmt.Errorf("%s: %w", display(target), err)
	}
	uid, gid := c.owner(t, st)
	perm := c.mode.Apply(st.Mode&permMask, false)
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = c.copyFile(sdir, sname, st, pfd, name, target, uid, gid, perm)
	case unix.S_IFLNK:
		err = copySymlink(sdir, sname, st, pfd, name, uid, gid)
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFSOCK:
		err = makeNode(pfd, name, st.Mode&unix.S_IFMT, st.Rdev, uid, gid, perm, statTimes(st))
	default:
		err = fmt.Errorf("unsupported file type %o", st.Mode&unix.S_IFMT)
	}
	if err != nil {
		return fmt.Errorf("copying to %s: %w", display(target), err)
	}
	return nil
}

// copyFile copies a regular file, as a hard link to an earlier copy of the
// same inode when there is one.
func (c *copier) copyFile(sdir int, sname string, st *unix.Stat_t, pfd int, name, target string, uid, gid int, perm uint32) error {
	key := devIno{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[key]; ok {
			if c.linkTo(first, pfd, name) == nil {
				return nil
			}
		}
	}
	sfd, err := openat(sdir, sname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(sfd), sname)
	defer src.Close()
	var sst unix.Stat_t
	if err := unix.Fstat(sfd, &sst); err != nil {
		return err
	}
	if sst.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("source changed while being copied")
	}
	dst, err := createFile(pfd, name, src, uid, gid, perm)
	if err != nil {
		return err
	}
	defer dst.Close()
	dfd := int(dst.Fd())
	if xs, _ := listXattrs(sfd); len(xs) > 0 {
		setXattrs(dfd, xs)
	}
	if err := setTimes(dfd, statTimes(st)); err != nil {
		return err
	}
	if st.Nlink > 1 {
		c.links[key] = target
	}
	return dst.Close()
}

// createFile creates name in pfd (never through an existing entry),
// fills it from r and gives it its owner and permissions. The caller
// closes the returned file.
func createFile(pfd int, name string, r io.Reader, uid, gid int, perm uint32) (*os.File, error) {
	fd, err := openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err := fill(f, r, uid, gid, perm); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func fill(f *os.File, r io.Reader, uid, gid int, perm uint32) error {
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := unix.Fchown(int(f.Fd()), uid, gid); err != nil {
		return err
	}
	return unix.Fchmod(int(f.Fd()), perm)
}

// linkTo hard-links name in pfd to the earlier copy at rootfs path first.
func (c *copier) linkTo(first string, pfd int, name string) error {
	d, b := splitDir(first)
	fd, _, err := walkIn(c.root, d, true, nil)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Linkat(fd, b, pfd, name, 0)
}

func copySymlink(sdir int, sname string, st *unix.Stat_t, pfd int, name string, uid, gid int) error {
	target, err := readlinkAt(sdir, sname)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, pfd, name); err != nil {
		return err
	}
	if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, name, statTimes(st), unix.AT_SYMLINK_NOFOLLOW)
}

// makeNode creates a FIFO, socket or device node.
func makeNode(pfd int, name string, typ uint32, rdev uint64, uid, gid int, perm uint32, ts []unix.Timespec) error {
	if err := unix.Mknodat(pfd, name, typ|0o600, int(rdev)); err != nil {
		return err
	}
	fd, err := openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if err := chmodFd(fd, perm); err != nil {
		return err
	}
	return setTimes(fd, ts)
}

// finish sets the times of directories made for --parents.
func (c *copier) finish() error {
	for i := len(c.dirTimes) - 1; i >= 0; i-- {
		p := c.dirTimes[i]
		fd, _, err := walkIn(c.root, p.path, false, nil)
		if err != nil {
			return err
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

// isDirFd reports whether fd refers to a directory.
func isDirFd(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// requireDir fails unless fd is a directory.
func requireDir(fd int, res string) error {
	if !isDirFd(fd) {
		return fmt.Errorf("cannot copy to %s: not a directory", display(res))
	}
	return nil
}

// treeRel turns a Source's Resolved path into the tree path form used for
// ignore matching ("" for the root).
func treeRel(p string) string {
	if p == "." {
		return ""
	}
	return p
}

package buildctx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// ErrOutside is wrapped by the error for a source argument that names
// something outside its tree ("../x").
var ErrOutside = errors.New("outside the build context")

// NotFoundError is returned by Match for an argument that matches nothing
// (after .dockerignore and --exclude). It wraps fs.ErrNotExist.
type NotFoundError struct {
	Arg      string // the source argument
	Wildcard bool   // it contained a wildcard
}

func (e *NotFoundError) Error() string {
	if e.Wildcard {
		return fmt.Sprintf("no source files were specified: %q matches nothing", e.Arg)
	}
	return fmt.Sprintf("%q: not found", e.Arg)
}

// Unwrap lets errors.Is(err, fs.ErrNotExist) hold.
func (e *NotFoundError) Unwrap() error { return fs.ErrNotExist }

// Owner is a numeric uid and gid.
type Owner struct{ UID, GID int }

// CopyOptions are the flags of one COPY or ADD.
type CopyOptions struct {
	// Excludes are --exclude patterns (patternmatcher syntax). They apply to
	// paths inside a directory source relative to that directory, and to a
	// wildcard's matches by their name.
	Excludes []string
	// Parents is COPY --parents: every match keeps its path relative to the
	// tree root, or to the part of the argument before a "/./" pivot.
	// A matched symlink is then copied as a symlink, as BuildKit does.
	Parents bool
	// Chown gives every copied entry, and every directory created for the
	// destination, this owner. When nil, entries from a build context get
	// 0:0 and entries from a root filesystem keep their owner; unpacked
	// archive entries keep the owner recorded in the archive.
	Chown *Owner
	// Chmod is --chmod: octal ("755", "0644", at most 07777) or symbolic
	// ("u+x,g-w", chmod(1) syntax with no umask). It applies to every copied
	// entry but symlinks, including directories; not to unpacked archives.
	// "" keeps modes.
	Chmod string
	// Unpack is ADD's archive rule: a matched regular file that is a tar
	// archive (plain, gzip, bzip2, xz or zstd; detected from its content) is
	// extracted into dest instead of copied.
	Unpack bool
	// Link is COPY --link; it only matters to the executor.
	Link bool
}

// Source is one file or directory a COPY/ADD source argument matched.
type Source struct {
	// Arg is the source argument it came from, as given.
	Arg string
	// Path is what matched, relative to the tree's root ("." for the root
	// itself), before a symlink in its last component is followed. A file
	// source is copied under the name path.Base(Path).
	Path string
	// Resolved is Path with every symlink resolved inside the tree: the
	// entry that is copied (with Parents, a final symlink is not followed).
	Resolved string
	// DestPath is, with Parents, where below the destination it is copied
	// ("" for the destination itself); empty otherwise.
	DestPath string
	// Info describes the entry at Resolved; Info.Sys() is a *unix.Stat_t.
	Info fs.FileInfo
	// Wildcard reports that Arg contained a wildcard.
	Wildcard bool
	// NoUnpack, set by the caller, keeps CopyOptions.Unpack from extracting
	// this source: ADD never unpacks what it downloaded from a URL.
	NoUnpack bool

	tree    *Tree
	group   uint64 // one per argument of one Match call
	parents bool
}

// Tree is the tree the source belongs to.
func (s Source) Tree() *Tree { return s.tree }

// IsDir reports whether the source is a directory (whose contents are
// copied).
func (s Source) IsDir() bool { return s.Info != nil && s.Info.IsDir() }

var matchSeq atomic.Uint64

// Match resolves the (variable-expanded) source arguments of one COPY or ADD
// to what they name. A leading "/" is the tree's root; filepath.Match
// wildcards (* ? [...] and \ escapes) are expanded per path element, in
// lexical order; symlinks are resolved inside the tree (a matched symlink is
// followed unless opts.Parents). Entries excluded by .dockerignore, and
// wildcard matches excluded by opts.Excludes, are skipped. An argument that
// matches nothing is a *NotFoundError; one that escapes the tree lexically
// ("../x") wraps ErrOutside.
func (t *Tree) Match(srcs []string, opts CopyOptions) ([]Source, error) {
	if t.root == nil {
		return nil, errors.New("buildctx: tree is closed")
	}
	exc, err := newMatcher(opts.Excludes)
	if err != nil {
		return nil, err
	}
	var out []Source
	for _, arg := range srcs {
		got, err := t.matchArg(arg, opts, exc)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// newMatcher compiles --exclude patterns (nil for none).
func newMatcher(patterns []string) (*patternmatcher.PatternMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := compilePatterns(patterns)
	if err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	return pm, nil
}

func (t *Tree) matchArg(arg string, opts CopyOptions, exc *patternmatcher.PatternMatcher) ([]Source, error) {
	if arg == "" {
		return nil, &NotFoundError{Arg: arg}
	}
	if escapes(arg) {
		return nil, fmt.Errorf("source %q: %w", arg, ErrOutside)
	}
	base, pattern := "", arg
	if opts.Parents {
		if b, p, ok := strings.Cut(arg, "/./"); ok {
			base, pattern = b, p
		}
	}
	baseN := len(splitPath(cleanRel(base)))
	group := matchSeq.Add(1)

	comps := splitPath(cleanRel(path.Join(base, pattern)))
	cands := []string{""}
	wild := false
	for _, c := range comps {
		if !hasWildcard(c) && !strings.ContainsRune(c, '\\') {
			for i := range cands {
				cands[i] = joinRel(cands[i], c)
			}
			continue
		}
		if _, err := filepath.Match(c, ""); err != nil {
			return nil, fmt.Errorf("source %q: %w", arg, err)
		}
		// An element with only escapes ("a\\*b") is matched like a pattern
		// but is no wildcard.
		wild = wild || hasWildcard(c)
		var next []string
		for _, cand := range cands {
			names, err := t.listDir(cand)
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("source %q: %w", arg, err)
			}
			for _, n := range names {
				if ok, _ := filepath.Match(c, n); ok {
					next = append(next, joinRel(cand, n))
				}
			}
		}
		cands = next
	}

	var out []Source
	for _, cand := range cands {
		s, err := t.source(cand, !opts.Parents)
		if err != nil {
			if isNotFound(err) {
				if wild {
					continue
				}
				return nil, &NotFoundError{Arg: arg}
			}
			return nil, fmt.Errorf("source %q: %w", arg, err)
		}
		if wild && exc != nil && cand != "" {
			m, err := exc.MatchesOrParentMatches(path.Base(cand))
			if err != nil {
				return nil, err
			}
			if m && (!s.IsDir() || !exc.Exclusions()) {
				continue
			}
		}
		s.Arg, s.Wildcard, s.group, s.parents = arg, wild, group, opts.Parents
		if opts.Parents {
			s.DestPath = strings.Join(splitPath(cand)[min(baseN, len(splitPath(cand))):], "/")
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, &NotFoundError{Arg: arg, Wildcard: wild}
	}
	return out, nil
}

// escapes reports whether a source argument climbs above its tree's root
// lexically.
func escapes(arg string) bool {
	c := path.Clean(strings.TrimLeft(arg, "/"))
	return c == ".." || strings.HasPrefix(c, "../")
}

// hasWildcard reports whether a path element has an unescaped wildcard.
func hasWildcard(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist)
}

// errIgnored marks an entry excluded by .dockerignore: it does not exist as
// far as COPY is concerned.
var errIgnored = fmt.Errorf("excluded by .dockerignore: %w", fs.ErrNotExist)

// listDir lists the names in directory p of the tree (resolved inside it),
// sorted, without entries .dockerignore excludes.
func (t *Tree) listDir(p string) ([]string, error) {
	fd, resolved, err := openIn(t.rootFd(), p, true, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	if t.ignored(resolved, true) {
		unix.Close(fd)
		return nil, errIgnored
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !t.ignored(joinRel(resolved, e.Name()), e.IsDir()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// ignored reports whether .dockerignore removes entry p from the context. A
// directory the rules exclude still exists when they re-include something
// below it ("!" patterns), as BuildKit sends the parents of re-included
// files.
func (t *Tree) ignored(p string, isDir bool) bool {
	if !t.Ignored(p) {
		return false
	}
	if !isDir || !t.ignoreExclusions() {
		return true
	}
	return !t.hasIncluded(p)
}

// hasIncluded reports whether anything below directory p (a resolved tree
// path) is not ignored.
func (t *Tree) hasIncluded(p string) bool {
	fd, _, err := openIn(t.rootFd(), p, false, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	f := &filter{tree: t}
	ms, err := f.rootState(p)
	if err != nil {
		return false
	}
	var walk func(fd int, dir string, ms matchState) bool
	walk = func(fd int, dir string, ms matchState) bool {
		names, err := readDirNames(fd)
		if err != nil {
			return false
		}
		for _, n := range names {
			var st unix.Stat_t
			if unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			include, descend, cms, err := f.check(joinRel(dir, n), n, isDir, ms)
			if err != nil {
				return false
			}
			if include {
				return true
			}
			if descend {
				cfd, err := openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
				if err != nil {
					continue
				}
				found := walk(cfd, joinRel(dir, n), cms)
				unix.Close(cfd)
				if found {
					return true
				}
			}
		}
		return false
	}
	return walk(fd, p, ms)
}

// source makes the Source for tree path p (resolved inside the tree).
func (t *Tree) source(p string, follow bool) (Source, error) {
	if t.ignored(p, false) && !(t.ignoreExclusions()) {
		return Source{}, errIgnored
	}
	fd, resolved, err := walkIn(t.rootFd(), p, follow, nil)
	if err != nil {
		return Source{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Source{}, err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if t.ignored(p, isDir) || t.ignored(resolved, isDir) {
		return Source{}, errIgnored
	}
	name := path.Base("/" + p)
	if p == "" {
		p, name = ".", "."
	}
	if resolved == "" {
		resolved = "."
	}
	return Source{Path: p, Resolved: resolved, Info: &statInfo{name: name, st: st}, tree: t}, nil
}

// statInfo is an fs.FileInfo made from a unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) Mode() fs.FileMode  { return fileMode(s.st.Mode) }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }

// fileMode converts a st_mode to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

package buildctx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"
)

// MaxIgnoreFileSize bounds how much of an ignore file is read.
const MaxIgnoreFileSize = 4 << 20

// Tree is a directory files are copied from: the build context (with its
// .dockerignore rules) or another stage's or image's root filesystem.
// Its methods may be called from several goroutines.
type Tree struct {
	dir     string
	root    *os.File // O_PATH handle of dir
	context bool

	ignoreFile     string
	ignorePatterns []string
	mu             sync.Mutex // guards ignore: patternmatcher is not concurrency-safe
	ignore         *patternmatcher.PatternMatcher
}

// OpenContext opens a build context directory. dockerfile is the path of the
// Dockerfile ("" if it has none on disk): "<dockerfile>.dockerignore", when
// it exists, is used instead of "<dir>/.dockerignore", as BuildKit does. The
// context's .dockerignore is read inside the context (a symlink there cannot
// point outside it).
func OpenContext(dir, dockerfile string) (*Tree, error) {
	t, err := openTree(dir)
	if err != nil {
		return nil, err
	}
	t.context = true
	data, name, err := t.readIgnoreFile(dockerfile)
	if err == nil && name != "" {
		t.ignoreFile = name
		t.ignorePatterns, t.ignore, err = ParseIgnoreFile(bytes.NewReader(data))
		if err != nil {
			err = fmt.Errorf("%s: %w", name, err)
		}
	}
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// OpenRoot opens a root filesystem: no ignore rules, and symlinks in source
// arguments are resolved inside it.
func OpenRoot(dir string) (*Tree, error) {
	return openTree(dir)
}

func openTree(dir string) (*Tree, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &Tree{dir: dir, root: f}, nil
}

// readIgnoreFile returns the content and name of the ignore file that
// applies, or no name if there is none.
func (t *Tree) readIgnoreFile(dockerfile string) ([]byte, string, error) {
	if dockerfile != "" {
		name := dockerfile + ".dockerignore"
		f, err := os.Open(name)
		if err == nil {
			defer f.Close()
			data, err := readBounded(f, MaxIgnoreFileSize)
			return data, name, err
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, "", err
		}
	}
	fd, _, err := openIn(t.rootFd(), ".dockerignore", true, unix.O_RDONLY)
	if errors.Is(err, unix.ENOENT) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening .dockerignore: %w", err)
	}
	f := os.NewFile(uintptr(fd), ".dockerignore")
	defer f.Close()
	data, err := readBounded(f, MaxIgnoreFileSize)
	return data, path.Join(t.dir, ".dockerignore"), err
}

// readBounded reads r to its end, failing if it holds more than max bytes.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

// ParseIgnoreFile parses a .dockerignore file (at most MaxIgnoreFileSize
// bytes) into its patterns and a matcher for them (nil when there are none).
func ParseIgnoreFile(r io.Reader) ([]string, *patternmatcher.PatternMatcher, error) {
	data, err := readBounded(r, MaxIgnoreFileSize)
	if err != nil {
		return nil, nil, err
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	if len(patterns) == 0 {
		return nil, nil, nil
	}
	pm, err := compilePatterns(patterns)
	if err != nil {
		return nil, nil, err
	}
	return patterns, pm, nil
}

// compilePatterns makes a matcher, checking every pattern: patternmatcher
// compiles a pattern only when it first needs it, so a bad one would
// otherwise fail half-way through a copy, or never.
func compilePatterns(patterns []string) (*patternmatcher.PatternMatcher, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	for _, p := range pm.Patterns() {
		one, err := patternmatcher.New([]string{p.String()})
		if err == nil {
			_, err = one.MatchesOrParentMatches("x")
		}
		if err != nil {
			return nil, fmt.Errorf("invalid pattern %q: %w", p.String(), err)
		}
	}
	return pm, nil
}

// Close releases the tree's directory handle.
func (t *Tree) Close() error {
	if t == nil || t.root == nil {
		return nil
	}
	err := t.root.Close()
	t.root = nil
	return err
}

// Dir is the directory the tree was opened on.
func (t *Tree) Dir() string { return t.dir }

// IsContext reports whether the tree is a build context (from OpenContext).
func (t *Tree) IsContext() bool { return t.context }

// IgnoreFile is the path of the ignore file in effect ("" for none).
func (t *Tree) IgnoreFile() string { return t.ignoreFile }

// IgnorePatterns are the patterns of the ignore file in effect.
func (t *Tree) IgnorePatterns() []string { return t.ignorePatterns }

// Ignored reports whether a context-relative path (with or without a leading
// "/") is excluded by the .dockerignore rules: it, or a directory above it,
// matches and no later "!" pattern re-includes it.
func (t *Tree) Ignored(p string) bool {
	p = cleanRel(p)
	if t.ignore == nil || p == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m, err := t.ignore.MatchesOrParentMatches(p)
	return err == nil && m
}

// ignoreMatch is MatchesUsingParentResults on the ignore rules.
func (t *Tree) ignoreMatch(p string, parent patternmatcher.MatchInfo) (bool, patternmatcher.MatchInfo, error) {
	if t.ignore == nil || p == "" {
		return false, patternmatcher.MatchInfo{}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ignore.MatchesUsingParentResults(p, parent)
}

// ignoreExclusions reports whether the ignore rules re-include anything
// ("!" patterns), so that an ignored directory must still be searched.
func (t *Tree) ignoreExclusions() bool {
	return t.ignore != nil && t.ignore.Exclusions()
}

func (t *Tree) rootFd() int {
	if t.root == nil {
		return -1
	}
	return int(t.root.Fd())
}

// cleanRel cleans a tree-relative path: no leading "/", "" for the root.
func cleanRel(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

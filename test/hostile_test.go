//go:build linux

package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------------------
// the sentinel: a host directory tree an escaping layer would touch

// sentinel is a directory tree outside the berth root. Hostile layers aim at
// it; nothing berth does may change it.
type sentinel struct {
	base   string            // t.TempDir(): holds dir and a sibling file
	dir    string            // base/sentinel
	victim string            // dir/victim, a regular file
	secret map[string]string // path -> content of every sentinel file
}

func newSentinel(t *testing.T) *sentinel {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	tag := hex.EncodeToString(b[:])
	s := &sentinel{base: t.TempDir(), secret: map[string]string{}}
	s.dir = filepath.Join(s.base, "sentinel")
	s.victim = filepath.Join(s.dir, "victim")
	mk := func(p string, perm os.FileMode) {
		if err := os.Mkdir(p, perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
	}
	file := func(p string, perm os.FileMode) {
		content := "SENTINEL " + tag + " " + filepath.Base(p) + "\n"
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		s.secret[p] = content
	}
	mk(s.dir, 0o755)
	file(s.victim, 0o644)
	file(filepath.Join(s.dir, "secret"), 0o600)
	mk(filepath.Join(s.dir, "sub"), 0o750)
	file(filepath.Join(s.dir, "sub", "inner"), 0o640)
	file(filepath.Join(s.base, "sibling"), 0o644)
	if err := os.Symlink("victim", filepath.Join(s.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.dir, "sub"), filepath.Join(s.dir, "abslink")); err != nil {
		t.Fatal(err)
	}
	// Keep the times away from "now" so that any touch shows.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, p := range []string{s.victim, filepath.Join(s.dir, "secret"), filepath.Join(s.dir, "sub", "inner"), filepath.Join(s.base, "sibling"), filepath.Join(s.dir, "sub"), s.dir} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// fpEntry is everything observable about one sentinel entry but its atime.
type fpEntry struct {
	Mode         uint32
	UID, GID     uint32
	Nlink        uint64
	Size         int64
	Mtime, Ctime string
	SHA256       string
	Target       string
	Xattrs       string
}

// fingerprint records every entry below dir (dir included), without
// following symlinks.
func fingerprint(t testing.TB, dir string) map[string]fpEntry {
	t.Helper()
	fp := map[string]fpEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := fpEntry{
			Mode: st.Mode, UID: st.Uid, GID: st.Gid, Nlink: uint64(st.Nlink), Size: st.Size,
			Mtime: fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec),
			Ctime: fmt.Sprintf("%d.%09d", st.Ctim.Sec, st.Ctim.Nsec),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.SHA256 = hex.EncodeToString(sum[:])
		case unix.S_IFLNK:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		e.Xattrs = xattrString(p)
		fp[p] = e
		return nil
	})
	if err != nil {
		t.Fatalf("fingerprint %s: %v", dir, err)
	}
	return fp
}

// xattrString lists the extended attributes of p (not following a symlink)
// as "name=value" pairs.
func xattrString(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "error: " + err.Error()
	}
	var pairs []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			pairs = append(pairs, name+"=<"+err.Error()+">")
			continue
		}
		pairs = append(pairs, fmt.Sprintf("%s=%q", name, v[:m]))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// fpDiff describes how two fingerprints differ ("" when they do not).
func fpDiff(before, after map[string]fpEntry) string {
	var out []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			out = append(out, "removed: "+p)
		case a != b:
			out = append(out, fmt.Sprintf("changed: %s\n    before %+v\n    after  %+v", p, b, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			out = append(out, fmt.Sprintf("created: %s %+v", p, a))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// ---------------------------------------------------------------------------
// building hostile archives

// hentry is one tar entry of a hostile layer.
type hentry struct {
	hdr  tar.Header
	body string
}

func hreg(name, body string) hentry {
	return hentry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func hdir(name string) hentry {
	return hentry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func hsym(name, target string) hentry {
	return hentry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hlink(name, target string) hentry {
	return hentry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

// withPAX adds PAX records to an entry.
func withPAX(e hentry, records map[string]string) hentry {
	e.hdr.PAXRecords = records
	return e
}

// hlayer is one layer: a tar made of entries, optionally turned into other
// bytes (compressed, cut, ...) by blob, which also returns the diff ID the
// config names.
type hlayer struct {
	entries []hentry
	blob    func(t testing.TB, tarBytes []byte) (data []byte, diffID string)
}

func layerTar(t testing.TB, entries []hentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %.80q: %v", h.Name, err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeHostileArchive writes a Docker archive of one image tagged tag whose
// layers are built from layers; it returns the image ID.
func writeHostileArchive(t testing.TB, file, tag string, layers []hlayer) string {
	t.Helper()
	var blobs [][]byte
	var diffIDs, names []string
	var history []map[string]any
	for i, l := range layers {
		tb := layerTar(t, l.entries)
		data, diffID := tb, digestOf(tb)
		if l.blob != nil {
			data, diffID = l.blob(t, tb)
		}
		blobs = append(blobs, data)
		diffIDs = append(diffIDs, diffID)
		names = append(names, fmt.Sprintf("%s/layer.tar", strings.TrimPrefix(digestOf(data), "sha256:")))
		history = append(history, map[string]any{"created": "2024-05-06T07:08:09Z", "created_by": fmt.Sprintf("hostile layer %d", i)})
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      "2024-05-06T07:08:09Z",
		"config":       map[string]any{"Cmd": []string{"sh"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history":      history,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := digestOf(cfg)
	cfgName := strings.TrimPrefix(id, "sha256:") + ".json"
	manifest, err := json.Marshal([]dockerManifestEntry{{Config: cfgName, RepoTags: []string{tag}, Layers: names}})
	if err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for i, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: filepath.Dir(name) + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		add(name, blobs[i])
	}
	add(cfgName, cfg)
	add("manifest.json", manifest)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return id
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// noise is n bytes that do not compress (a SHA-256 counter stream).
func noise(n int) string {
	var b []byte
	for i := 0; len(b) < n; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		b = append(b, sum[:]...)
	}
	return string(b[:n])
}

// up is n "../" components: far more than any berth directory is deep, so
// that a name starting with it reaches "/" if it is resolved naively.
func up(n int) string { return strings.Repeat("../", n) }

// rel is an absolute host path without its leading "/".
func rel(p string) string { return strings.TrimPrefix(p, "/") }

// ---------------------------------------------------------------------------
// looking at what berth made

// inRoot resolves p inside root the way an image sees its file system:
// every component but the last is followed if it is a symlink, absolute
// targets start again at root and ".." never leaves it. It returns the
// resolved parent directory (as components below root) and the last
// component. Paths of any length work: directories are opened one by one.
func inRoot(root, p string) (parent []string, last string, err error) {
	todo := splitComponents(p)
	if len(todo) == 0 {
		return nil, "", errors.New("empty path")
	}
	links := 0
	for len(todo) > 1 {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			if len(parent) > 0 {
				parent = parent[:len(parent)-1]
			}
			continue
		}
		fd, err := openDirIn(root, parent)
		if err != nil {
			return nil, "", err
		}
		var st unix.Stat_t
		err = unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target := make([]byte, 8192)
			var n int
			n, err = unix.Readlinkat(fd, c, target)
			unix.Close(fd)
			if err != nil {
				return nil, "", err
			}
			if links++; links > 40 {
				return nil, "", unix.ELOOP
			}
			if strings.HasPrefix(string(target[:n]), "/") {
				parent = nil
			}
			todo = append(splitComponents(string(target[:n])), todo...)
			continue
		}
		unix.Close(fd)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", strings.Join(append(parent, c), "/"), err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, "", fmt.Errorf("%s: %w", strings.Join(append(parent, c), "/"), unix.ENOTDIR)
		}
		parent = append(parent, c)
	}
	last = todo[0]
	if last == ".." {
		return nil, "", errors.New("path ends in ..")
	}
	return parent, last, nil
}

func splitComponents(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// openDirIn opens root/comps... one directory at a time, never following a
// symlink; the caller closes the descriptor.
func openDirIn(root string, comps []string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range comps {
		nfd, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", c, err)
		}
		fd = nfd
	}
	return fd, nil
}

// readInRoot returns the content of the regular file p inside root (see
// inRoot); the last component must be a regular file, not a symlink.
func readInRoot(root, p string) (string, error) {
	parent, last, err := inRoot(root, p)
	if err != nil {
		return "", err
	}
	dfd, err := openDirIn(root, parent)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, last, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", fmt.Errorf("%s/%s: %w", strings.Join(parent, "/"), last, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s/%s: mode %o, not a regular file", strings.Join(parent, "/"), last, st.Mode)
	}
	return readAt(dfd, last)
}

func readAt(dfd int, name string) (string, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.String(), err
}

// treeEntry is one entry of a mounted image.
type treeEntry struct {
	path    string // below the mount, "/"-separated
	mode    uint32
	content string // regular files
	target  string // symlinks
	rdev    uint64 // devices
}

// readTree reads every entry below root (symlinks are not followed), with
// the content of every regular file. Directories are opened one by one, so
// paths longer than PATH_MAX are read too.
func readTree(t testing.TB, root string) []treeEntry {
	t.Helper()
	var out []treeEntry
	var walk func(dfd int, rel string)
	walk = func(dfd int, rel string) {
		f := os.NewFile(uintptr(dfd), rel)
		names, err := f.Readdirnames(-1)
		if err != nil {
			t.Errorf("mounted image: read directory /%s: %v", rel, err)
		}
		sort.Strings(names)
		for _, n := range names {
			p := n
			if rel != "" {
				p = rel + "/" + n
			}
			var st unix.Stat_t
			if err := unix.Fstatat(int(f.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Errorf("BUG (not a host escape): the mounted image is inconsistent: readdir lists /%.200s but lstat fails: %v", p, err)
				continue
			}
			e := treeEntry{path: p, mode: st.Mode, rdev: st.Rdev}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				if e.content, err = readAt(int(f.Fd()), n); err != nil {
					t.Errorf("mounted image: read /%.200s: %v", p, err)
				}
			case unix.S_IFLNK:
				buf := make([]byte, 8192)
				if m, err := unix.Readlinkat(int(f.Fd()), n, buf); err != nil {
					t.Errorf("mounted image: readlink /%.200s: %v", p, err)
				} else {
					e.target = string(buf[:m])
				}
			case unix.S_IFDIR:
				sub, err := unix.Openat(int(f.Fd()), n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Errorf("mounted image: open /%.200s: %v", p, err)
				} else {
					out = append(out, e)
					walk(sub, p)
					continue
				}
			}
			out = append(out, e)
		}
		f.Close()
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open mounted image %s: %v", root, err)
	}
	walk(fd, "")
	return out
}

// ---------------------------------------------------------------------------
// the corpus

const pwned = "PWNED"

// hostileCase is one malicious image.
type hostileCase struct {
	name string
	// layers builds the image's layers aimed at s.
	layers func(t testing.TB, s *sentinel) []hlayer
	// mustRefuse: loading it has to fail (the bytes are wrong), whatever
	// the containment.
	mustRefuse bool
	// check runs on the mounted image when the load succeeded.
	check func(t *testing.T, mnt string, tree []treeEntry)
}

// payload is the content of a file a hostile entry writes: it names the
// case and the host path it aims at, so it is recognised wherever it lands.
func payload(name, aim string) string {
	return fmt.Sprintf("%s by hostile/%s aiming at %s\n", pwned, name, aim)
}

func one(entries ...hentry) []hlayer { return []hlayer{{entries: entries}} }

func hostileCorpus() []hostileCase {
	far := up(40)
	return []hostileCase{
		{name: "path-traversal", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(far+rel(s.dir)+"/x", payload("path-traversal", s.dir+"/x")))
		}},
		{name: "path-traversal-shallow", layers: func(t testing.TB, s *sentinel) []hlayer {
			// Lands in the berth root or near it if resolved naively.
			var es []hentry
			for n := 1; n <= 8; n++ {
				es = append(es, hreg(fmt.Sprintf("%spwned-up%d", up(n), n), payload("path-traversal-shallow", fmt.Sprintf("%d levels up", n))))
			}
			return one(es...)
		}},
		{name: "path-traversal-inner", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hdir("a/"), hreg("a/"+far+rel(s.dir)+"/x", payload("path-traversal-inner", s.dir+"/x")))
		}},
		{name: "path-traversal-dir", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hdir(far + rel(s.dir) + "/newdir/"))
		}},
		{name: "path-traversal-symlink-entry", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym(far+rel(s.dir)+"/evil", "/etc/shadow"))
		}},
		{name: "absolute-path", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(s.dir+"/x", payload("absolute-path", s.dir+"/x")))
		}},
		{name: "absolute-path-overwrite", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(s.victim, payload("absolute-path-overwrite", s.victim)))
		}},
		{name: "symlink-escape", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", s.dir), hreg("l/pwned", payload("symlink-escape", s.dir+"/pwned")))
		}},
		{name: "symlink-escape-overwrite", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", s.dir), hreg("l/victim", payload("symlink-escape-overwrite", s.victim)))
		}},
		{name: "symlink-escape-relative", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", far+rel(s.dir)), hreg("l/pwned", payload("symlink-escape-relative", s.dir+"/pwned")))
		}},
		{name: "symlink-escape-chain", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hdir("d/"), hsym("d/l1", "../l2"), hsym("l2", far+rel(s.base)), hreg("d/l1/sentinel/pwned", payload("symlink-escape-chain", s.dir+"/pwned")))
		}},
		{name: "symlink-escape-mkdir", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", s.dir), hdir("l/newdir/"))
		}},
		{name: "symlink-escape-cross-layer", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hsym("l", s.dir)}},
				{entries: []hentry{hreg("l/pwned", payload("symlink-escape-cross-layer", s.dir+"/pwned"))}},
			}
		}},
		{name: "symlink-escape-cross-layer-relative", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hdir("a/"), hsym("a/l", far+rel(s.dir))}},
				{entries: []hentry{hdir("a/"), hreg("a/l/pwned", payload("symlink-escape-cross-layer-relative", s.dir+"/pwned"))}},
			}
		}},
		{name: "hardlink-absolute", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hlink("h", s.victim))
		}},
		{name: "hardlink-relative", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hlink("h", up(3)+rel(s.victim)), hlink("h2", far+rel(s.victim)))
		}},
		{name: "hardlink-through-symlink", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", s.dir), hlink("h", "l/victim"))
		}},
		{name: "hardlink-to-symlink-then-write", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("s", s.victim), hlink("h", "s"), hreg("h", payload("hardlink-to-symlink-then-write", s.victim)))
		}},
		{name: "hardlink-cross-layer", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hsym("s", s.victim)}},
				{entries: []hentry{hlink("h", "s")}},
				{entries: []hentry{hreg("h", payload("hardlink-cross-layer", s.victim))}},
			}
		}},
		{name: "hardlink-cross-layer-symlink-dir", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hsym("l", s.dir)}},
				{entries: []hentry{hlink("h", "l/victim")}},
			}
		}},
		{name: "whiteout-traversal", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(far+rel(s.dir)+"/.wh.victim", ""), hreg(far+rel(s.dir)+"/.wh.sub", ""))
		}},
		{name: "whiteout-absolute", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(s.dir+"/.wh.victim", ""))
		}},
		{name: "whiteout-through-symlink", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", s.dir), hreg("l/.wh.victim", ""), hreg("l/.wh.sub", ""))
		}},
		{name: "whiteout-through-symlink-cross-layer", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hsym("l", s.dir)}},
				{entries: []hentry{hreg("l/.wh.victim", ""), hreg("l/.wh.sub", "")}},
			}
		}},
		{name: "opaque-through-symlink", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", s.dir), hreg("l/.wh..wh..opq", ""))
		}},
		{name: "opaque-through-symlink-cross-layer", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hsym("l", s.dir)}},
				{entries: []hentry{hreg("l/.wh..wh..opq", "")}},
			}
		}},
		{name: "opaque-traversal", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(far+rel(s.dir)+"/.wh..wh..opq", ""))
		}},
		{name: "file-over-symlink", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hsym("f", s.victim)}},
				{entries: []hentry{hreg("f", payload("file-over-symlink", s.victim))}},
			}
		}},
		{name: "file-over-symlink-same-layer", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("f", s.victim), hreg("f", payload("file-over-symlink-same-layer", s.victim)))
		}},
		{name: "file-over-relative-symlink", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("f", far+rel(s.victim)), hreg("f", payload("file-over-relative-symlink", s.victim)))
		}},
		{name: "metadata-through-symlink", layers: func(t testing.TB, s *sentinel) []hlayer {
			// A directory entry over a symlink to a host directory: its
			// mode, owner, times and xattrs must not reach the host.
			d := hdir("d")
			d.hdr.Mode = 0o777
			d.hdr.Uid, d.hdr.Gid = 4242, 4242
			d.hdr.ModTime = time.Date(1999, 9, 9, 9, 9, 9, 0, time.UTC)
			d = withPAX(d, map[string]string{"SCHILY.xattr.user.pwned": "1"})
			return one(hsym("d", s.dir), d)
		}},
		{name: "metadata-through-symlink-cross-layer", layers: func(t testing.TB, s *sentinel) []hlayer {
			d := hdir("d/")
			d.hdr.Mode = 0o777
			d.hdr.Uid, d.hdr.Gid = 4242, 4242
			d = withPAX(d, map[string]string{"SCHILY.xattr.user.pwned": "1"})
			return []hlayer{
				{entries: []hentry{hsym("d", s.dir), hsym("v", s.victim)}},
				{entries: []hentry{d}},
			}
		}},
		{name: "symlink-loop", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("a", "b"), hsym("b", "a"), hreg("a/x", payload("symlink-loop", "a/x")))
		}},
		{name: "long-pax-path", layers: func(t testing.TB, s *sentinel) []hlayer {
			var comps []string
			for i := 0; len(strings.Join(comps, "/")) < 5000; i++ {
				comps = append(comps, fmt.Sprintf("%03d-%s", i, strings.Repeat("d", 96)))
			}
			return one(hreg(strings.Join(comps, "/")+"/pwned", payload("long-pax-path", "a 5000-byte path")))
		}},
		{name: "long-pax-component", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hreg(strings.Repeat("n", 300), payload("long-pax-component", "a 300-byte name")))
		}},
		{name: "long-pax-linkname", layers: func(t testing.TB, s *sentinel) []hlayer {
			return one(hsym("l", strings.Repeat("../", 1700)+rel(s.dir)), hreg("l/pwned", payload("long-pax-linkname", s.dir+"/pwned")))
		}},
		{name: "diffid-mismatch", mustRefuse: true, layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{{
				entries: []hentry{hreg("f", "honest content\n")},
				blob: func(t testing.TB, tb []byte) ([]byte, string) {
					return tb, digestOf(layerTar(t, []hentry{hreg("f", "other content\n")}))
				},
			}}
		}},
		{name: "diffid-mismatch-gzip", mustRefuse: true, layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{{
				entries: []hentry{hreg("f", "honest content\n")},
				blob: func(t testing.TB, tb []byte) ([]byte, string) {
					return gzipBytes(t, tb), digestOf(layerTar(t, []hentry{hreg("f", "other content\n")}))
				},
			}}
		}},
		{name: "truncated-gzip", mustRefuse: true, layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{{
				entries: []hentry{hdir("data/"), hreg("data/a", noise(128<<10)), hreg("data/b", noise(128<<10)+"b")},
				blob: func(t testing.TB, tb []byte) ([]byte, string) {
					gz := gzipBytes(t, tb)
					return gz[:len(gz)/2], digestOf(tb)
				},
			}}
		}},
		{name: "truncated-gzip-trailer", mustRefuse: true, layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{{
				entries: []hentry{hdir("data/"), hreg("data/a", noise(64<<10))},
				blob: func(t testing.TB, tb []byte) ([]byte, string) {
					gz := gzipBytes(t, tb)
					return gz[:len(gz)-8], digestOf(tb) // CRC and size gone
				},
			}}
		}},
		{name: "forged-overlay-opaque-xattr", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hdir("data/"), hreg("data/keep", "KEEP\n")}},
				{entries: []hentry{
					withPAX(hdir("data/"), map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}),
					hreg("data/new", "NEW\n"),
				}},
			}
		}, check: func(t *testing.T, mnt string, tree []treeEntry) {
			expectFile(t, mnt, "data/keep", "KEEP\n", "a forged trusted.overlay.opaque xattr must not hide the lower layer")
			expectFile(t, mnt, "data/new", "NEW\n", "")
		}},
		{name: "forged-user-overlay-opaque-xattr", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hdir("data/"), hreg("data/keep", "KEEP\n")}},
				{entries: []hentry{
					withPAX(hdir("data/"), map[string]string{"SCHILY.xattr.user.overlay.opaque": "y"}),
					hreg("data/new", "NEW\n"),
				}},
			}
		}, check: func(t *testing.T, mnt string, tree []treeEntry) {
			expectFile(t, mnt, "data/keep", "KEEP\n", "a forged user.overlay.opaque xattr must not hide the lower layer")
		}},
		{name: "forged-overlay-redirect-xattr", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hdir("secret/"), hreg("secret/s", "SECRET\n"), hdir("pub/"), hreg("pub/p", "PUBLIC\n")}},
				{entries: []hentry{
					withPAX(hdir("pub/"), map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/secret"}),
					withPAX(hdir("other/"), map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/secret"}),
					hreg("pub/q", "Q\n"),
				}},
			}
		}, check: func(t *testing.T, mnt string, tree []treeEntry) {
			expectFile(t, mnt, "pub/p", "PUBLIC\n", "a forged trusted.overlay.redirect xattr must not replace the lower directory")
			expectFile(t, mnt, "pub/q", "Q\n", "")
			expectFile(t, mnt, "secret/s", "SECRET\n", "")
			for _, p := range []string{"pub/s", "other/s"} {
				if _, err := readInRoot(mnt, p); err == nil {
					t.Errorf("BUG: /%s exists: berth honoured a forged trusted.overlay.redirect xattr from the tar", p)
				}
			}
		}},
		{name: "forged-overlay-whiteout-xattrs", layers: func(t testing.TB, s *sentinel) []hlayer {
			return []hlayer{
				{entries: []hentry{hreg("keep", "KEEP\n")}},
				{entries: []hentry{
					withPAX(hreg("keep", "KEEP2\n"), map[string]string{"SCHILY.xattr.trusted.overlay.metacopy": "y", "SCHILY.xattr.trusted.overlay.origin": "x"}),
					withPAX(hreg("w", "W\n"), map[string]string{"SCHILY.xattr.trusted.overlay.whiteout": "y"}),
				}},
			}
		}, check: func(t *testing.T, mnt string, tree []treeEntry) {
			expectFile(t, mnt, "keep", "KEEP2\n", "forged trusted.overlay.metacopy/origin xattrs must be dropped")
			expectFile(t, mnt, "w", "W\n", "a forged trusted.overlay.whiteout xattr must be dropped")
		}},
	}
}

// expectFile checks a file of a loaded hostile image.
func expectFile(t *testing.T, mnt, p, want, why string) {
	t.Helper()
	got, err := readInRoot(mnt, p)
	switch {
	case err != nil:
		t.Errorf("BUG: mounted image: /%s: %v (%s)", p, err, why)
	case got != want:
		t.Errorf("BUG: mounted image: /%s = %q, want %q (%s)", p, got, want, why)
	}
}

// ---------------------------------------------------------------------------
// the test

// TestHostile loads malicious image archives: path traversal, symlink and
// hard link escapes (within and across layers), whiteouts and opaque
// markers aimed outside, writes and metadata changes through symlinks,
// symlink loops, over-long names, wrong diff IDs, truncated layers and
// forged overlayfs xattrs. berth may refuse an image or load it contained,
// but never touch a host file, and its store stays consistent.
func TestHostile(t *testing.T) {
	needBerth(t)
	var summary []string
	for _, c := range hostileCorpus() {
		var outcome string
		ok := t.Run(c.name, func(t *testing.T) { outcome = runHostile(t, c) })
		if !ok {
			outcome = "FAILED (" + outcome + ")"
		}
		summary = append(summary, fmt.Sprintf("%-40s %s", c.name, outcome))
	}
	t.Logf("summary:\n%s", strings.Join(summary, "\n"))
}

// runHostile runs one case and returns "refused" or "contained".
func runHostile(t *testing.T, c hostileCase) (outcome string) {
	s := newSentinel(t)
	root := newRoot(t)
	before := fingerprint(t, s.base)
	tag := "hostile/" + c.name + ":latest"
	layers := c.layers(t, s)
	archiveDir := t.TempDir()
	archive := filepath.Join(archiveDir, "hostile.tar")
	id := writeHostileArchive(t, archive, tag, layers)

	// The payloads of the image: every regular file that says PWNED, by
	// its name in the tar (the last layer writing a name wins).
	payloads := map[string]string{}
	for _, l := range layers {
		for _, e := range l.entries {
			if e.hdr.Typeflag == tar.TypeReg && strings.HasPrefix(e.body, pwned) {
				payloads[e.hdr.Name] = e.body
			}
		}
	}

	sentinelIntact := func(when string) {
		t.Helper()
		now := fingerprint(t, s.base)
		if d := fpDiff(before, now); d != "" {
			t.Errorf("BUG: %s: the host sentinel tree %s changed:\n%s", when, s.base, d)
			before = now // report later changes only
		}
	}
	defer func() {
		// Removing the image (and GC of whatever a refused load left)
		// must not touch the host either.
		code, stdout, stderr := berthErr(t, root, "image", "prune", "-a", "-f")
		if code != 0 {
			t.Errorf("berth image prune -a -f: exit %d\n%s\n%s", code, stdout, stderr)
		}
		sentinelIntact("after image prune -a -f")
		escapeScan(t, root, s, archiveDir)
		if code, stdout, stderr := berthErr(t, root, "system", "check"); code != 0 {
			t.Errorf("after image prune -a -f: berth system check: exit %d\n%s\n%s", code, stdout, stderr)
		}
	}()

	code, stdout, stderr := berthErr(t, root, "load", "-i", archive)
	sentinelIntact("after berth load")
	if code != 0 {
		outcome = "refused"
		msg := strings.TrimSpace(stderr)
		t.Logf("refused: berth load exit %d: %.400s", code, msg)
		if msg == "" {
			t.Errorf("berth load failed (exit %d) without saying why on stderr", code)
		}
		if got := strings.TrimSpace(berth(t, root, "images", "-q", "-a")); got != "" {
			t.Errorf("after the refused load: berth images -q -a = %q, want nothing", got)
		}
		if code, stdout, stderr := berthErr(t, root, "system", "check"); code != 0 {
			t.Errorf("after the refused load: berth system check: exit %d\n%s\n%s", code, stdout, stderr)
		}
		return outcome
	}

	outcome = "contained"
	if c.mustRefuse {
		outcome = "LOADED (must be refused)"
		t.Errorf("BUG: berth load accepted an archive whose layer bytes do not match its diff ID:\n%s", stdout)
	}
	assertLoaded(t, stdout, tag)
	if got := berthID(t, root, tag); got != id {
		t.Errorf("loaded %s as %s, want the config digest %s", tag, got, id)
	}
	if code, stdout, stderr := berthErr(t, root, "system", "check"); code != 0 {
		t.Errorf("after the load: berth system check: exit %d\n%s\n%s", code, stdout, stderr)
	}

	mnt := strings.TrimSpace(berth(t, root, "image", "mount", tag))
	if !filepath.IsAbs(mnt) {
		t.Fatalf("berth image mount %s: got %q, want an absolute path", tag, mnt)
	}
	mounted := true
	defer func() {
		if mounted {
			berthErr(t, root, "image", "unmount", tag)
		}
	}()
	tree := readTree(t, mnt)
	sentinelIntact("after reading the mounted image")
	var listing []string
	for _, e := range tree {
		d := fmt.Sprintf("%.120s %o", e.path, e.mode)
		if e.target != "" {
			d += fmt.Sprintf(" -> %.120s", e.target)
		}
		listing = append(listing, d)
		if e.mode&unix.S_IFMT == unix.S_IFCHR {
			// No hostile tar holds a device: this is a whiteout that
			// shows through.
			t.Errorf("BUG (not a host escape): the mounted image shows a character device /%.200s (%d:%d) that no layer holds: an overlayfs whiteout leaks into the image's view",
				e.path, unix.Major(e.rdev), unix.Minor(e.rdev))
		}
		for p, secret := range s.secret {
			if strings.Contains(e.content, secret) {
				t.Errorf("BUG: mounted image: /%.200s holds the content of the host file %s", e.path, p)
			}
		}
	}
	t.Logf("contained: the mounted image holds:\n  %s", strings.Join(listing, "\n  "))

	// Everything the image wrote must be inside it, where an image whose
	// root is the mount would find it.
	for name, body := range payloads {
		got, err := readInRoot(mnt, name)
		if err == nil && got == body {
			continue
		}
		var where []string
		for _, e := range tree {
			if e.content == body {
				where = append(where, "/"+e.path)
			}
		}
		t.Errorf("BUG: the load succeeded but the file %.200q of the image is not at its place in the mount (%v, content %.80q); its content is at %.400q", name, err, got, where)
	}
	if c.check != nil {
		c.check(t, mnt, tree)
	}

	berth(t, root, "image", "unmount", tag)
	mounted = false
	sentinelIntact("after berth image unmount")
	berth(t, root, "rmi", tag)
	sentinelIntact("after berth rmi")
	return outcome
}

// escapeScan looks for hostile files that landed outside a layer directory:
// anywhere in the berth root but in snapshots (layer directories) and
// content (blobs hold the layer tars), next to the root (but in the
// directories skip, which hold the archive), and in the directories a
// shallow traversal reaches.
func escapeScan(t testing.TB, root string, s *sentinel, skipDirs ...string) {
	t.Helper()
	seen := map[string]bool{}
	bad := func(p string) {
		if !seen[p] {
			seen[p] = true
			t.Errorf("BUG: hostile file outside the image: %s", p)
		}
	}
	skip := map[string]bool{
		filepath.Join(root, "snapshots"): true,
		filepath.Join(root, "content"):   true,
		filepath.Join(root, "meta.db"):   true,
	}
	for _, d := range skipDirs {
		skip[d] = true
	}
	scan := func(top string) {
		filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if skip[p] || (p != top && p == root) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasPrefix(d.Name(), "pwned") {
				bad(p)
			}
			if d.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(pwned+" by hostile/")) {
					bad(p)
				}
			}
			return nil
		})
	}
	scan(root)
	scan(filepath.Dir(root))
	if filepath.Dir(s.base) != filepath.Dir(root) {
		scan(s.base)
	}
	// snapshots/ itself (not the layers below it) and every directory
	// above the root, up to "/".
	dirs := []string{filepath.Join(root, "snapshots"), filepath.Join(root, "snapshots", "tmp")}
	for d := root; ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == "/" {
			break
		}
	}
	for _, d := range dirs {
		for _, n := range dirEntries(t, d) {
			if strings.HasPrefix(n, "pwned") {
				bad(filepath.Join(d, n))
			}
		}
	}
}

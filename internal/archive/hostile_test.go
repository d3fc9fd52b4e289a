package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// hostProbe is a host path that hostile layers aim at; it must never appear.
const hostProbe = "/etc/berth-archive-hostile-probe"

type outcome int

const (
	either outcome = iota
	mustSucceed
	mustFail
)

type hostileCase struct {
	name   string
	data   []byte
	expect outcome
	entry  string // on error, the entry the error must name (prefix of it)
	check  func(t *testing.T, root string, res ApplyResult)
}

// makeSentinel creates the tree that hostile layers try to reach: files, a
// directory, a relative and an absolute symlink, and an xattr.
func makeSentinel(tb testing.TB, base string) string {
	tb.Helper()
	s := filepath.Join(base, "sentinel")
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(os.Mkdir(s, 0o755))
	must(os.WriteFile(filepath.Join(s, "file"), []byte("sentinel file"), 0o644))
	must(unix.Lsetxattr(filepath.Join(s, "file"), "user.s", []byte("1"), 0))
	must(os.WriteFile(filepath.Join(s, "secret"), []byte("top secret"), 0o600))
	must(os.Mkdir(filepath.Join(s, "dir"), 0o755))
	must(os.WriteFile(filepath.Join(s, "dir", "inner"), []byte("inner"), 0o644))
	must(os.Symlink("file", filepath.Join(s, "link")))
	must(os.Symlink(filepath.Join(s, "dir"), filepath.Join(s, "abslink")))
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{"file", "secret", "dir/inner", "dir", "."} {
		must(os.Chtimes(filepath.Join(s, p), old, old))
	}
	return s
}

// outsideState is everything outside the layer root that a hostile layer
// could touch.
type outsideState struct {
	sentinel   map[string]fileInfo
	base       fileInfo
	baseNames  []string
	upperNames []string
	probe      bool
}

func captureOutside(tb testing.TB, base, sentinel string) outsideState {
	tb.Helper()
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			tb.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	_, err := os.Lstat(hostProbe)
	base = filepath.Clean(base)
	return outsideState{
		sentinel:   scanTree(tb, sentinel),
		base:       statInfo(tb, base),
		baseNames:  names(base),
		upperNames: names(filepath.Dir(base)),
		probe:      err == nil,
	}
}

func (o outsideState) diff(tb testing.TB, after outsideState) {
	tb.Helper()
	if after.probe {
		tb.Errorf("host probe %s was created", hostProbe)
	}
	if !reflect.DeepEqual(o.baseNames, after.baseNames) {
		tb.Errorf("base directory now holds %v, was %v", after.baseNames, o.baseNames)
	}
	if !reflect.DeepEqual(o.upperNames, after.upperNames) {
		tb.Errorf("parent of base now holds %v, was %v", after.upperNames, o.upperNames)
	}
	if !reflect.DeepEqual(o.base, after.base) {
		tb.Errorf("base directory metadata changed: %+v -> %+v", o.base, after.base)
	}
	for p, was := range o.sentinel {
		now, ok := after.sentinel[p]
		if !ok {
			tb.Errorf("sentinel %q was removed", p)
			continue
		}
		if !reflect.DeepEqual(was, now) {
			tb.Errorf("sentinel %q changed: %+v -> %+v", p, was, now)
		}
	}
	for p := range after.sentinel {
		if _, ok := o.sentinel[p]; !ok {
			tb.Errorf("sentinel %q was created", p)
		}
	}
}

func ustar(e entry) entry {
	e.hdr.Format = tar.FormatUSTAR
	e.hdr.ModTime = e.hdr.ModTime.Truncate(time.Second)
	return e
}

// hostileCorpus returns the hostile layers, aimed at sentinel (an absolute
// path; the layer root is its sibling "root").
func hostileCorpus(tb testing.TB, sentinel string) []hostileCase {
	S := sentinel
	rel := strings.TrimPrefix(S, "/")
	fileIs := func(p, content string) func(*testing.T, string, ApplyResult) {
		return func(t *testing.T, root string, _ ApplyResult) {
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil || string(b) != content {
				t.Errorf("%s inside root: %q, %v; want %q", p, b, err, content)
			}
		}
	}
	typeIs := func(p, typ string) func(*testing.T, string, ApplyResult) {
		return func(t *testing.T, root string, _ ApplyResult) {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
				t.Errorf("%s inside root: %v", p, err)
				return
			}
			if got := fileType(st.Mode, st.Rdev); got != typ {
				t.Errorf("%s inside root is a %s, want %s", p, got, typ)
			}
		}
	}
	linksAre := func(want ...Link) func(*testing.T, string, ApplyResult) {
		return func(t *testing.T, root string, res ApplyResult) {
			if !slices.Equal(res.Links, want) {
				t.Errorf("links %v, want %v", res.Links, want)
			}
			for _, l := range want {
				if _, err := os.Lstat(filepath.Join(root, l.Name)); err == nil {
					t.Errorf("pending link %s exists in root", l.Name)
				}
			}
		}
	}
	opaqueIs := func(p string) func(*testing.T, string, ApplyResult) {
		return func(t *testing.T, root string, _ ApplyResult) {
			x := lxattrs(t, filepath.Join(root, p))
			if x[opaqueXattr] != "y" {
				t.Errorf("%s inside root is not opaque: %v", p, x)
			}
		}
	}
	all := func(fns ...func(*testing.T, string, ApplyResult)) func(*testing.T, string, ApplyResult) {
		return func(t *testing.T, root string, res ApplyResult) {
			for _, fn := range fns {
				fn(t, root, res)
			}
		}
	}
	negSize := patchHeader(mkTar(tb, ustar(regE("neg", "", 0o644))), 0, func(b []byte) {
		for i := 124; i < 136; i++ {
			b[i] = 0xff
		}
	})
	hugeSize := patchHeader(mkTar(tb, ustar(regE("huge", "", 0o644))), 0, func(b []byte) {
		copy(b[124:136], "77777777777\x00")
	})
	deep := strings.Repeat("d/", 1000) + "f"
	valid := mkTar(tb, dirE("a/", 0o755), regE("a/one", strings.Repeat("1", 3000), 0o644), regE("a/two", "2", 0o644))

	return []hostileCase{
		{name: "dotdot traversal", expect: mustSucceed,
			data:  mkTar(tb, regE("../../../x", "pwn", 0o644)),
			check: fileIs("x", "pwn")},
		{name: "dotdot to sibling sentinel", expect: mustSucceed,
			data:  mkTar(tb, regE("../sentinel/file", "pwn", 0o644)),
			check: fileIs("sentinel/file", "pwn")},
		{name: "deep dotdot to absolute sentinel", expect: mustSucceed,
			data:  mkTar(tb, regE(strings.Repeat("../", 30)+rel+"/file", "pwn", 0o644)),
			check: fileIs(rel+"/file", "pwn")},
		{name: "absolute names", expect: mustSucceed,
			data:  mkTar(tb, regE(S+"/file", "pwn", 0o644), regE(hostProbe, "pwn", 0o644)),
			check: all(fileIs(rel+"/file", "pwn"), fileIs(hostProbe[1:], "pwn"))},
		{name: "symlink to / then write through it", expect: mustSucceed,
			data:  mkTar(tb, symE("link", "/"), regE("link"+hostProbe, "pwn", 0o644), regE("link"+S+"/file", "pwn", 0o644)),
			check: all(fileIs(hostProbe[1:], "pwn"), fileIs(rel+"/file", "pwn"))},
		{name: "symlink dotdot then write", expect: mustSucceed,
			data:  mkTar(tb, symE("link", "../../.."), regE("link/x", "pwn", 0o644)),
			check: fileIs("x", "pwn")},
		{name: "relative symlink to sibling sentinel", expect: mustFail, entry: "link/file",
			data: mkTar(tb, symE("link", "../sentinel"), regE("link/file", "pwn", 0o600))},
		{name: "relative symlink to sibling sentinel name in the layer", expect: mustSucceed,
			data: mkTar(tb, dirE("sentinel/", 0o755), symE("link", "../sentinel"),
				regE("link/file", "pwn", 0o600), regE("link/new", "pwn", 0o644)),
			check: all(fileIs("sentinel/file", "pwn"), fileIs("sentinel/new", "pwn"))},
		{name: "absolute symlink to sentinel dir", expect: mustFail, entry: "link/dir/",
			data: mkTar(tb, symE("link", S), dirE("link/dir/", 0o777).owner(1234, 1234))},
		{name: "absolute symlink to sentinel dir name in the layer", expect: mustSucceed,
			data: mkTar(tb, dirE(S+"/", 0o755), symE("link", S), dirE("link/dir/", 0o777).owner(1234, 1234),
				regE("link/dir/inner", "pwn", 0o644), regE("link/link", "pwn", 0o644)),
			check: all(fileIs(rel+"/dir/inner", "pwn"), fileIs(rel+"/link", "pwn"))},
		{name: "symlink through /proc/self/root", expect: mustFail, entry: "p/file",
			data: mkTar(tb, symE("p", "/proc/self/root"+S), regE("p/file", "pwn", 0o644))},
		{name: "symlink through /proc/self/root name in the layer", expect: mustSucceed,
			data: mkTar(tb, dirE("proc/self/root"+S+"/", 0o755), symE("p", "/proc/self/root"+S),
				regE("p/file", "pwn", 0o644)),
			check: fileIs("proc/self/root"+S+"/file", "pwn")},
		{name: "symlink chain", expect: mustSucceed,
			data:  mkTar(tb, dirE("sentinel/", 0o755), symE("a", "b"), symE("b", "../sentinel"), regE("a/file", "pwn", 0o644)),
			check: fileIs("sentinel/file", "pwn")},
		{name: "sentinel's own symlinks named in the layer", expect: mustSucceed,
			data:  mkTar(tb, regE(S+"/abslink/inner", "pwn", 0o644), regE("../sentinel/link", "pwn", 0o644)),
			check: all(fileIs(rel+"/abslink/inner", "pwn"), fileIs("sentinel/link", "pwn"))},
		{name: "hard link dotdot", expect: mustSucceed,
			data:  mkTar(tb, linkE("h", "../../../etc/passwd")),
			check: linksAre(Link{"h", "etc/passwd"})},
		{name: "hard link absolute into sentinel", expect: mustSucceed,
			data:  mkTar(tb, linkE("h", S+"/secret")),
			check: linksAre(Link{"h", rel + "/secret"})},
		{name: "hard link through /proc", expect: mustSucceed,
			data:  mkTar(tb, linkE("h", "/proc/self/root"+S+"/secret")),
			check: linksAre(Link{"h", "proc/self/root" + S + "/secret"})},
		{name: "hard link through relative symlinked dir", expect: mustSucceed,
			data:  mkTar(tb, symE("sdir", "../sentinel"), linkE("h", "sdir/secret")),
			check: linksAre(Link{"h", "sdir/secret"})},
		{name: "hard link through absolute symlinked dir", expect: mustSucceed,
			data:  mkTar(tb, symE("sdir", S), linkE("h", "sdir/secret")),
			check: linksAre(Link{"h", "sdir/secret"})},
		{name: "hard link to a symlink pointing outside", expect: mustSucceed,
			data:  mkTar(tb, symE("s", S+"/secret"), linkE("h", "s")),
			check: typeIs("h", "symlink")},
		{name: "hard link replaces a symlink pointing outside", expect: mustSucceed,
			data:  mkTar(tb, symE("x", S+"/file"), regE("t", "T", 0o644), linkE("x", "t")),
			check: fileIs("x", "T")},
		{name: "hard link created through a symlinked dir", expect: mustSucceed,
			data:  mkTar(tb, dirE(S, 0o755), symE("sdir", S), regE("t", "T", 0o644), linkE("sdir/h", "t")),
			check: fileIs(rel+"/h", "T")},
		{name: "hard link to a directory", expect: mustFail, entry: "h",
			data: mkTar(tb, dirE("d/", 0o755), linkE("h", "d"))},
		{name: "hard link to a directory through a symlink", expect: mustFail, entry: "h",
			data: mkTar(tb, dirE("sentinel/dir/", 0o755), symE("sdir", "../sentinel"), linkE("h", "sdir/dir"))},
		{name: "hard link to an outside directory name", expect: mustSucceed,
			data:  mkTar(tb, symE("sdir", S), linkE("h", "sdir/dir")),
			check: linksAre(Link{"h", "sdir/dir"})},
		{name: "file over a hard link does not write through it", expect: mustSucceed,
			data:  mkTar(tb, regE("t", "orig", 0o644), linkE("h", "t"), regE("h", "new", 0o644)),
			check: all(fileIs("t", "orig"), fileIs("h", "new"))},
		{name: "whiteout dotdot", expect: mustSucceed,
			data:  mkTar(tb, regE("../../.wh.sentinel", "", 0o644)),
			check: typeIs("sentinel", "whiteout")},
		{name: "whiteout named dotdot", expect: mustFail, entry: ".wh...",
			data: mkTar(tb, regE(".wh...", "", 0o644))},
		{name: "whiteout named dot", expect: mustFail, entry: "x/.wh..",
			data: mkTar(tb, regE("x/.wh..", "", 0o644))},
		{name: "whiteout after dotdot", expect: mustSucceed,
			data:  mkTar(tb, regE("a/../../.wh.x", "", 0o644)),
			check: typeIs("x", "whiteout")},
		{name: "whiteout through dangling symlinked dir", expect: mustFail, entry: "sdir/.wh.file",
			data: mkTar(tb, symE("sdir", "../sentinel"), regE("sdir/.wh.file", "", 0o644))},
		{name: "whiteout through relative symlinked dir", expect: mustSucceed,
			data: mkTar(tb, dirE("sentinel", 0o755), symE("sdir", "../sentinel"),
				regE("sdir/.wh.file", "", 0o644), regE("sdir/.wh.dir", "", 0o644)),
			check: all(typeIs("sentinel/file", "whiteout"), typeIs("sentinel/dir", "whiteout"), typeIs("sdir", "symlink"))},
		{name: "whiteout through absolute symlinked dir", expect: mustSucceed,
			data:  mkTar(tb, dirE(S, 0o755), symE("sdir", S), regE("sdir/.wh.secret", "", 0o644)),
			check: typeIs(rel+"/secret", "whiteout")},
		{name: "whiteout of a symlink pointing outside", expect: mustSucceed,
			data:  mkTar(tb, symE("evil", S+"/file"), regE(".wh.evil", "", 0o644)),
			check: typeIs("evil", "whiteout")},
		{name: "whiteout of a symlink to an outside dir", expect: mustSucceed,
			data:  mkTar(tb, symE("evil", S), regE(".wh.evil", "", 0o644), regE(".wh.sentinel", "", 0o644)),
			check: all(typeIs("evil", "whiteout"), typeIs("sentinel", "whiteout"))},
		{name: "opaque through symlink to /", expect: mustSucceed,
			data:  mkTar(tb, symE("sdir", "/"), regE("sdir/.wh..wh..opq", "", 0o644)),
			check: opaqueIs(".")},
		{name: "opaque through symlink to sentinel", expect: mustSucceed,
			data:  mkTar(tb, dirE(S, 0o755), symE("sdir", S), regE("sdir/.wh..wh..opq", "", 0o644)),
			check: opaqueIs(rel)},
		{name: "opaque through relative symlink", expect: mustSucceed,
			data:  mkTar(tb, dirE("sentinel/dir", 0o755), symE("sdir", "../sentinel/dir"), regE("sdir/.wh..wh..opq", "", 0o644)),
			check: opaqueIs("sentinel/dir")},
		{name: "opaque through dotdot", expect: mustSucceed,
			data:  mkTar(tb, regE("../sentinel/.wh..wh..opq", "", 0o644)),
			check: opaqueIs("sentinel")},
		{name: "file over symlink to host file", expect: mustSucceed,
			data:  mkTar(tb, symE("evil", S+"/file"), regE("evil", "pwn", 0o777)),
			check: fileIs("evil", "pwn")},
		{name: "file over relative symlink", expect: mustSucceed,
			data:  mkTar(tb, symE("evil", "../sentinel/secret"), regE("evil", "pwn", 0o666).owner(1234, 1234)),
			check: fileIs("evil", "pwn")},
		{name: "dir over symlink to outside", expect: mustSucceed,
			data:  mkTar(tb, symE("evil", S+"/dir"), dirE("evil/", 0o777).owner(1234, 1234), regE("evil/inner", "pwn", 0o644)),
			check: all(typeIs("evil", "dir"), fileIs("evil/inner", "pwn"))},
		{name: "chmod via symlink", expect: mustSucceed,
			data: mkTar(tb, symE("c", S+"/secret"), dirE("c", 0o777),
				symE("c2", S+"/secret"), symE("c3", "../sentinel/dir")),
			check: all(typeIs("c", "dir"), typeIs("c2", "symlink"))},
		{name: "metadata on a symlink is not applied to its target", expect: mustSucceed,
			data: mkTar(tb, symE("s", S+"/file").owner(1234, 1234).xattr("trusted.pwn", "1").times(t1, t1),
				symE("r", "../sentinel/dir").owner(99, 99).xattr("user.pwn", "1").times(t2, t2)),
			check: typeIs("s", "symlink")},
		{name: "device over symlink", expect: mustSucceed,
			data:  mkTar(tb, symE("d", S+"/file"), devE(tar.TypeChar, "d", 1, 3, 0o666)),
			check: typeIs("d", "char")},
		{name: "fifo over symlink", expect: mustSucceed,
			data:  mkTar(tb, symE("f", "../sentinel/secret"), newEntry(tar.TypeFifo, "f", 0o666)),
			check: typeIs("f", "fifo")},
		{name: "symlink over symlink", expect: mustSucceed,
			data:  mkTar(tb, symE("s", S+"/file"), symE("s", S+"/secret")),
			check: typeIs("s", "symlink")},
		{name: "symlink loop", expect: mustFail, entry: "a/x",
			data: mkTar(tb, symE("a", "b"), symE("b", "a"), regE("a/x", "pwn", 0o644))},
		{name: "self symlink loop", expect: mustFail, entry: "loop/x",
			data: mkTar(tb, symE("loop", "loop"), regE("loop/x", "pwn", 0o644))},
		{name: "long pax name", expect: mustFail, entry: strings.Repeat("n/", 100),
			data: mkTar(tb, regE(strings.Repeat("n/", 2049)+"f", "pwn", 0o644))},
		{name: "long component", expect: mustFail, entry: "c/",
			data: mkTar(tb, regE("c/"+strings.Repeat("c", 300), "pwn", 0o644))},
		{name: "long hard link target", expect: mustFail, entry: "h",
			data: mkTar(tb, linkE("h", strings.Repeat("t/", 2049)))},
		{name: "long symlink target", expect: mustFail, entry: "s",
			data: mkTar(tb, symE("s", strings.Repeat("t/", 2049)))},
		{name: "deeply nested", expect: mustSucceed,
			data:  mkTar(tb, regE(deep, "deep", 0o644)),
			check: fileIs(deep, "deep")},
		{name: "forged overlay xattrs", expect: mustSucceed,
			data: mkTar(tb,
				dirE("d/", 0o755).xattr("trusted.overlay.redirect", S).xattr("trusted.overlay.opaque", "y"),
				regE("f", "", 0o644).xattr("trusted.overlay.metacopy", "").xattr("trusted.overlay.origin", "x"),
				symE("s", S).xattr("trusted.overlay.redirect", "/")),
			check: func(t *testing.T, root string, _ ApplyResult) {
				for p, fi := range scanTree(t, root) {
					for k := range fi.Xattrs {
						if strings.HasPrefix(k, "trusted.overlay.") {
							t.Errorf("%s has forged xattr %s", p, k)
						}
					}
				}
			}},
		{name: "device entries", expect: mustSucceed,
			data: mkTar(tb, devE(tar.TypeBlock, "sda", 8, 0, 0o666), devE(tar.TypeChar, "mem", 1, 1, 0o666),
				devE(tar.TypeChar, "../../"+rel+"/file", 1, 3, 0o666)),
			check: all(typeIs("sda", "block"), typeIs("mem", "char"), typeIs(rel+"/file", "char"))},
		{name: "negative size", expect: mustFail, entry: "", data: negSize},
		{name: "huge size", expect: mustFail, entry: "huge", data: hugeSize},
		{name: "truncated tar", expect: mustFail, entry: "a/one", data: valid[:len(valid)-1024-512-1800]},
		{name: "truncated mid header", expect: mustFail, entry: "a/one", data: valid[:len(valid)-1024-512-200]},
		{name: "garbage", expect: mustFail, entry: "", data: bytes.Repeat([]byte("garbage!"), 200)},
		{name: "dot entries keep the root", expect: mustSucceed,
			data: mkTar(tb, dirE(".", 0o777), dirE("..", 0o777), dirE("../..", 0o700), regE("f", "f", 0o644)),
			check: func(t *testing.T, root string, _ ApplyResult) {
				fi := statInfo(t, root)
				if fi.Type != "dir" || fi.Perm != 0o700 {
					t.Errorf("root is %s %#o, want dir 0700", fi.Type, fi.Perm)
				}
				fileIs("f", "f")(t, root, ApplyResult{})
			}},
		{name: "non-directory root entry", expect: mustFail, entry: "../..",
			data: mkTar(tb, symE("../..", S))},
		{name: "valid layer", expect: mustSucceed, data: valid, check: fileIs("a/two", "2")},
	}
}

func TestHostileLayers(t *testing.T) {
	requireRoot(t)
	for i, tc := range hostileCorpus(t, "/nonexistent/sentinel") {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			sentinel := makeSentinel(t, base)
			// Rebuild the corpus for this case's own sentinel, so that
			// absolute paths aim at it.
			c := hostileCorpus(t, sentinel)[i]
			root := filepath.Join(base, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			before := captureOutside(t, base, sentinel)
			res, err := ApplyLayer(root, bytes.NewReader(c.data))
			before.diff(t, captureOutside(t, base, sentinel))

			switch {
			case err != nil && c.expect == mustSucceed:
				t.Fatalf("ApplyLayer: %v", err)
			case err == nil && c.expect == mustFail:
				t.Fatalf("ApplyLayer succeeded, want an error")
			case err != nil:
				t.Logf("error (as expected): %v", fsat.ShortName(err.Error()))
				if c.entry != "" && !strings.Contains(err.Error(), `"`+c.entry) {
					t.Errorf("error %q does not name entry %q", err, c.entry)
				}
			default:
				scanTree(t, root)
				if c.check != nil {
					c.check(t, root, res)
				}
			}
		})
	}
}

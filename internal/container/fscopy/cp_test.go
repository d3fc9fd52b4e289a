package fscopy

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// containerTree is the content of the container in the cp tests.
func containerTree(tb testing.TB, root string) {
	tb.Helper()
	mkTree(tb, root,
		reg("file", "file", 0o640).owner(1000, 1001).xattr("user.k", "v").xattr("security.selinux", "label"),
		dir("dir", 0o750).owner(1000, 1001),
		reg("dir/a", "a", 0o644),
		hard("dir/hard", "dir/a"),
		sym("dir/ln", "a"),
		dir("dir/sub", 0o755),
		reg("dir/sub/b", "b", 0o600),
		sym("link-file", "/file"),
		sym("link-dir", "dir"),
		sym("abs-link-dir", "/dir"),
		reg("suid", "suid", 0o6755),
		dir("devdir", 0o755),
		chr("devdir/null", 1, 3, 0o666),
	)
}

func TestCopyFromStdout(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	containerTree(t, root)
	tests := []struct {
		src    string
		follow bool
		names  []string
		check  func(t *testing.T, ents []tarEnt)
	}{
		{src: "/file", names: []string{"file"}, check: func(t *testing.T, ents []tarEnt) {
			h := ents[0].hdr
			if ents[0].body != "file" || h.Mode != 0o640 || h.Uid != 1000 || h.Gid != 1001 || !h.ModTime.Equal(t0) {
				t.Errorf("header %+v body %q", h, ents[0].body)
			}
			if h.PAXRecords[fsat.PAXXattrPrefix+"user.k"] != "v" {
				t.Errorf("xattr missing: %v", h.PAXRecords)
			}
			if _, ok := h.PAXRecords[fsat.PAXXattrPrefix+"security.selinux"]; ok {
				t.Errorf("SELinux label copied: %v", h.PAXRecords)
			}
		}},
		{src: "file", names: []string{"file"}},
		{src: "/../../file", names: []string{"file"}},
		{src: "/dir", names: []string{"dir/", "dir/a", "dir/hard", "dir/ln", "dir/sub/", "dir/sub/b"}},
		{src: "/dir/", names: []string{"dir/", "dir/a", "dir/hard", "dir/ln", "dir/sub/", "dir/sub/b"}},
		{src: "/dir/.", names: []string{"./", "a", "hard", "ln", "sub/", "sub/b"}},
		{src: "/link-dir", names: []string{"link-dir"}, check: func(t *testing.T, ents []tarEnt) {
			if ents[0].hdr.Typeflag != tar.TypeSymlink || ents[0].hdr.Linkname != "dir" {
				t.Errorf("not the symlink: %+v", ents[0].hdr)
			}
		}},
		{src: "/link-dir/", names: []string{"link-dir/", "link-dir/a", "link-dir/hard", "link-dir/ln", "link-dir/sub/", "link-dir/sub/b"}},
		{src: "/abs-link-dir/sub", names: []string{"sub/", "sub/b"}},
		{src: "/link-dir", follow: true, names: []string{"link-dir/", "link-dir/a", "link-dir/hard", "link-dir/ln", "link-dir/sub/", "link-dir/sub/b"}},
		{src: "/link-file", follow: true, names: []string{"link-file"}, check: func(t *testing.T, ents []tarEnt) {
			if ents[0].hdr.Typeflag != tar.TypeReg || ents[0].body != "file" {
				t.Errorf("not the target: %+v", ents[0].hdr)
			}
		}},
		{src: "/dir/ln", follow: true, names: []string{"ln"}},
		{src: "/", names: []string{"./", "abs-link-dir", "devdir/", "devdir/null", "dir/", "dir/a", "dir/hard", "dir/ln",
			"dir/sub/", "dir/sub/b", "file", "link-dir", "link-file", "suid"}},
		{src: "/.", names: []string{"./", "abs-link-dir", "devdir/", "devdir/null", "dir/", "dir/a", "dir/hard", "dir/ln",
			"dir/sub/", "dir/sub/b", "file", "link-dir", "link-file", "suid"}},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			var buf bytes.Buffer
			must(t, CopyFrom(root, tc.src, "-", &buf, tc.follow))
			ents := readTar(t, buf.Bytes())
			if got := tarNames(ents); !slices.Equal(got, tc.names) {
				t.Fatalf("names %q, want %q", got, tc.names)
			}
			if tc.check != nil {
				tc.check(t, ents)
			}
		})
	}
}

func TestCopyFromErrors(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	containerTree(t, root)
	for _, src := range []string{"/missing", "/dir/missing", "/missing/x", "/link-dir/missing", "/link-file/"} {
		err := CopyFrom(root, src, "-", &bytes.Buffer{}, false)
		if src == "/link-file/" {
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %v, want a not-a-directory error", src, err)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want fs.ErrNotExist", src, err)
		}
	}
	if err := CopyFrom(root, "/file/", "-", &bytes.Buffer{}, false); err == nil {
		t.Errorf("/file/: no error")
	}
}

// TestCopyFromHost covers docker cp's rules for a host destination.
func TestCopyFromHost(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		src     string
		follow  bool
		setup   []fsEnt // in the host output directory
		dst     string  // relative to the host output directory
		wantErr error   // or errAny
		check   func(t *testing.T, out string)
	}{
		{name: "file to new", src: "/file", dst: "new", check: func(t *testing.T, out string) {
			st := lstat(t, filepath.Join(out, "new"))
			if readFile(t, filepath.Join(out, "new")) != "file" || st.Mode&0o7777 != 0o640 || st.Uid != 0 ||
				st.Mtim.Nano() != t0.UnixNano() {
				t.Errorf("new: %+v", st)
			}
			x := snapshot(t, out)["new"].xattrs
			if x != "user.k=v;" {
				t.Errorf("xattrs %q", x)
			}
		}},
		{name: "file to new dir", src: "/file", dst: "new/", wantErr: ErrDirNotExists},
		{name: "file to new dir dot", src: "/file", dst: "new/.", wantErr: errAny},
		{name: "file over file", src: "/file", setup: []fsEnt{reg("f", "old", 0o666)}, dst: "f",
			check: func(t *testing.T, out string) { wantBody(t, out, "f", "file") }},
		{name: "file into dir", src: "/file", setup: []fsEnt{dir("d", 0o700)}, dst: "d",
			check: func(t *testing.T, out string) { wantBody(t, out, "d/file", "file") }},
		{name: "file into dir slash", src: "/file", setup: []fsEnt{dir("d", 0o700)}, dst: "d/",
			check: func(t *testing.T, out string) { wantBody(t, out, "d/file", "file") }},
		{name: "file through host symlink", src: "/file", setup: []fsEnt{dir("d", 0o700), sym("l", "d")}, dst: "l",
			check: func(t *testing.T, out string) { wantBody(t, out, "d/file", "file") }},
		{name: "file to dangling host symlink", src: "/file", setup: []fsEnt{sym("l", "target")}, dst: "l",
			check: func(t *testing.T, out string) { wantBody(t, out, "target", "file") }},
		{name: "dir to new", src: "/dir", dst: "new", check: func(t *testing.T, out string) {
			wantBody(t, out, "new/a", "a")
			if a, h := lstat(t, filepath.Join(out, "new/a")), lstat(t, filepath.Join(out, "new/hard")); a.Ino != h.Ino {
				t.Errorf("hard link not kept")
			}
			wantBody(t, out, "new/sub/b", "b")
			if l, _ := os.Readlink(filepath.Join(out, "new/ln")); l != "a" {
				t.Errorf("new/ln -> %q", l)
			}
			st := lstat(t, filepath.Join(out, "new"))
			if st.Mode&0o7777 != 0o750 || st.Uid != 0 || st.Mtim.Nano() != t0.UnixNano() {
				t.Errorf("new: %+v", st)
			}
		}},
		{name: "dir to new slash", src: "/dir", dst: "new/", check: func(t *testing.T, out string) {
			wantBody(t, out, "new/a", "a")
		}},
		{name: "dir over file", src: "/dir", setup: []fsEnt{reg("f", "old", 0o666)}, dst: "f", wantErr: ErrCannotCopyDir},
		{name: "dir content over file", src: "/dir/.", setup: []fsEnt{reg("f", "old", 0o666)}, dst: "f", wantErr: ErrCannotCopyDir},
		{name: "dir into dir", src: "/dir", setup: []fsEnt{dir("d", 0o700)}, dst: "d", check: func(t *testing.T, out string) {
			wantBody(t, out, "d/dir/a", "a")
		}},
		{name: "dir content into dir", src: "/dir/.", setup: []fsEnt{dir("d", 0o700), reg("d/keep", "k", 0o600)}, dst: "d",
			check: func(t *testing.T, out string) {
				wantBody(t, out, "d/a", "a")
				wantBody(t, out, "d/keep", "k")
				if st := lstat(t, filepath.Join(out, "d")); st.Mode&0o7777 != 0o700 {
					t.Errorf("d mode changed to %#o", st.Mode&0o7777)
				}
			}},
		{name: "dir content to new", src: "/dir/.", dst: "new", check: func(t *testing.T, out string) {
			wantBody(t, out, "new/a", "a")
			wantBody(t, out, "new/sub/b", "b")
		}},
		{name: "dir over nested file", src: "/dir", setup: []fsEnt{dir("d", 0o700), reg("d/dir", "x", 0o600)}, dst: "d",
			wantErr: errAny},
		{name: "symlink itself", src: "/link-dir", setup: []fsEnt{dir("d", 0o700)}, dst: "d", check: func(t *testing.T, out string) {
			if l, _ := os.Readlink(filepath.Join(out, "d/link-dir")); l != "dir" {
				t.Errorf("d/link-dir -> %q", l)
			}
		}},
		{name: "symlink slash", src: "/link-dir/", setup: []fsEnt{dir("d", 0o700)}, dst: "d", check: func(t *testing.T, out string) {
			wantBody(t, out, "d/link-dir/a", "a")
		}},
		{name: "follow link", src: "/link-file", follow: true, setup: []fsEnt{dir("d", 0o700)}, dst: "d",
			check: func(t *testing.T, out string) { wantBody(t, out, "d/link-file", "file") }},
		{name: "missing source", src: "/nope", dst: "new", wantErr: fs.ErrNotExist},
		{name: "missing host parent", src: "/file", dst: "nope/new", wantErr: errAny},
		{name: "setuid dropped", src: "/suid", dst: "new", check: func(t *testing.T, out string) {
			if st := lstat(t, filepath.Join(out, "new")); st.Mode&0o7777 != 0o755 {
				t.Errorf("mode %#o, want 0755", st.Mode&0o7777)
			}
		}},
		{name: "device refused", src: "/devdir", dst: "new", wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, out := t.TempDir(), t.TempDir()
			containerTree(t, root)
			mkTree(t, out, tc.setup...)
			err := CopyFrom(root, tc.src, out+"/"+tc.dst, nil, tc.follow)
			checkErr(t, err, tc.wantErr)
			if err == nil && tc.check != nil {
				tc.check(t, out)
			}
			if tc.wantErr != fs.ErrNotExist && errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a host-side error matches fs.ErrNotExist: %v", err)
			}
		})
	}
}

// errAny stands for "some error".
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == errAny && err == nil:
		t.Fatalf("no error")
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

func wantBody(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("%s: mode %#o, not a regular file", name, st.Mode)
		return
	}
	if got := readFile(t, p); got != body {
		t.Errorf("%s: %q, want %q", name, got, body)
	}
}

// hostSource is the host side of the CopyTo tests.
func hostSource(tb testing.TB, src string) {
	tb.Helper()
	mkTree(tb, src,
		reg("file", "hf", 0o604).owner(1234, 5678).xattr("user.h", "1").xattr("trusted.t", "2"),
		dir("dir", 0o751).owner(1234, 5678),
		reg("dir/x", "x", 0o640).owner(1234, 5678),
		dir("dir/sub", 0o755),
		reg("dir/sub/y", "y", 0o4755),
		sym("dir/l", "x"),
		hard("dir/hx", "dir/x"),
		fifo("dir/fifo", 0o644),
		sym("link", "file"),
		sym("dirlink", "dir"),
	)
}

// TestCopyTo covers docker cp's rules for a container destination.
func TestCopyTo(t *testing.T) {
	requireRoot(t)
	containerSetup := []fsEnt{
		reg("existing-file", "old", 0o600),
		dir("existing-dir", 0o700),
		sym("abs-link", "/existing-dir"),
		sym("rel-link", "existing-file"),
		sym("dangling", "/newtarget"),
		sym("up", "../../../.."),
		chr("dev0", 1, 3, 0o600),
	}
	tarIn := func(t *testing.T) []byte {
		return mkTar(t,
			dir("t/", 0o711).owner(7, 8),
			reg("t/f", "tar file", 0o640).owner(9, 10).xattr("user.a", "b").xattr("trusted.overlay.opaque", "y"),
			sym("t/s", "/etc/passwd"),
			hard("t/h", "t/f"),
			reg("top", "top", 0o4711),
		)
	}
	tests := []struct {
		name    string
		src     string // relative to the host source directory, or "-"
		follow  bool
		setup   []fsEnt // more container content
		dst     string
		stdin   func(t *testing.T) []byte
		wantErr error
		check   func(t *testing.T, root string)
	}{
		{name: "file to new", src: "file", dst: "/new", check: func(t *testing.T, root string) {
			st := lstat(t, filepath.Join(root, "new"))
			if readFile(t, filepath.Join(root, "new")) != "hf" || st.Mode&0o7777 != 0o604 ||
				st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Nano() != t0.UnixNano() {
				t.Errorf("new: %+v", st)
			}
			if x := snapshot(t, root)["new"].xattrs; x != "trusted.t=2;user.h=1;" {
				t.Errorf("xattrs %q", x)
			}
		}},
		{name: "relative dst", src: "file", dst: "existing-dir", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/file", "hf")
		}},
		{name: "file to new dir", src: "file", dst: "/new/", wantErr: ErrDirNotExists},
		{name: "file over file", src: "file", dst: "/existing-file", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-file", "hf")
		}},
		{name: "file into dir", src: "file", dst: "/existing-dir/", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/file", "hf")
		}},
		{name: "file into missing parent", src: "file", dst: "/missing/x", wantErr: fs.ErrNotExist},
		{name: "file over symlink to dir", src: "file", dst: "/abs-link", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/file", "hf")
		}},
		{name: "file over symlink to file", src: "file", dst: "/rel-link", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-file", "hf")
			if l, _ := os.Readlink(filepath.Join(root, "rel-link")); l != "existing-file" {
				t.Errorf("rel-link replaced")
			}
		}},
		{name: "file over dangling symlink", src: "file", dst: "/dangling", check: func(t *testing.T, root string) {
			wantBody(t, root, "newtarget", "hf")
		}},
		{name: "file through parent symlink", src: "file", dst: "/up/new", check: func(t *testing.T, root string) {
			wantBody(t, root, "new", "hf")
		}},
		{name: "file over device", src: "file", dst: "/dev0", wantErr: ErrDevice},
		{name: "file over nested dir", src: "file", setup: []fsEnt{dir("existing-dir/file", 0o755)},
			dst: "/existing-dir", wantErr: errAny},
		{name: "dir to new", src: "dir", dst: "/newdir", check: func(t *testing.T, root string) {
			wantBody(t, root, "newdir/x", "x")
			wantBody(t, root, "newdir/sub/y", "y")
			if l, _ := os.Readlink(filepath.Join(root, "newdir/l")); l != "x" {
				t.Errorf("newdir/l -> %q", l)
			}
			x, hx := lstat(t, filepath.Join(root, "newdir/x")), lstat(t, filepath.Join(root, "newdir/hx"))
			if x.Ino != hx.Ino {
				t.Errorf("hard link not kept")
			}
			if st := lstat(t, filepath.Join(root, "newdir/fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o7777 != 0o644 {
				t.Errorf("fifo: %#o", st.Mode)
			}
			if st := lstat(t, filepath.Join(root, "newdir/sub/y")); st.Mode&0o7777 != 0o4755 {
				t.Errorf("setuid lost in the container: %#o", st.Mode)
			}
			st := lstat(t, filepath.Join(root, "newdir"))
			if st.Mode&0o7777 != 0o751 || st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Nano() != t0.UnixNano() {
				t.Errorf("newdir: %+v", st)
			}
		}},
		{name: "dir over file", src: "dir", dst: "/existing-file", wantErr: ErrCannotCopyDir},
		{name: "dir into dir", src: "dir", dst: "/existing-dir", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/dir/x", "x")
		}},
		{name: "dir content into dir", src: "dir/.", dst: "/existing-dir", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/x", "x")
			if st := lstat(t, filepath.Join(root, "existing-dir")); st.Mode&0o7777 != 0o700 {
				t.Errorf("existing-dir mode changed to %#o", st.Mode&0o7777)
			}
		}},
		{name: "dir content to new", src: "dir/.", dst: "/newdir", check: func(t *testing.T, root string) {
			wantBody(t, root, "newdir/x", "x")
		}},
		{name: "dir over nested file", src: "dir", setup: []fsEnt{reg("existing-dir/dir", "f", 0o600)},
			dst: "/existing-dir", wantErr: errAny},
		{name: "dir into dir merges", src: "dir", setup: []fsEnt{dir("existing-dir/dir", 0o700), reg("existing-dir/dir/keep", "k", 0o600)},
			dst: "/existing-dir", check: func(t *testing.T, root string) {
				wantBody(t, root, "existing-dir/dir/keep", "k")
				wantBody(t, root, "existing-dir/dir/x", "x")
			}},
		{name: "symlink itself", src: "link", dst: "/existing-dir", check: func(t *testing.T, root string) {
			if l, _ := os.Readlink(filepath.Join(root, "existing-dir/link")); l != "file" {
				t.Errorf("link -> %q", l)
			}
		}},
		{name: "follow link", src: "link", follow: true, dst: "/existing-dir", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/link", "hf")
		}},
		{name: "symlink to dir slash", src: "dirlink/", dst: "/existing-dir", check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/dirlink/x", "x")
		}},
		{name: "missing host source", src: "nope", dst: "/existing-dir", wantErr: errAny},
		{name: "stdin", src: "-", dst: "/existing-dir", stdin: tarIn, check: func(t *testing.T, root string) {
			st := lstat(t, filepath.Join(root, "existing-dir/t"))
			if st.Mode&0o7777 != 0o711 || st.Uid != 7 || st.Gid != 8 || st.Mtim.Nano() != t0.UnixNano() {
				t.Errorf("t: %+v", st)
			}
			st = lstat(t, filepath.Join(root, "existing-dir/t/f"))
			if st.Uid != 9 || st.Gid != 10 || st.Nlink != 2 {
				t.Errorf("t/f: %+v", st)
			}
			if x := snapshot(t, root)["existing-dir/t/f"].xattrs; x != "user.a=b;" {
				t.Errorf("xattrs %q", x)
			}
			if st := lstat(t, filepath.Join(root, "existing-dir/top")); st.Mode&0o7777 != 0o4711 {
				t.Errorf("top: %#o", st.Mode)
			}
		}},
		{name: "stdin through symlink", src: "-", dst: "/abs-link", stdin: tarIn, check: func(t *testing.T, root string) {
			wantBody(t, root, "existing-dir/t/f", "tar file")
		}},
		{name: "stdin to root", src: "-", dst: "/", stdin: tarIn, check: func(t *testing.T, root string) {
			wantBody(t, root, "t/f", "tar file")
		}},
		{name: "stdin to file", src: "-", dst: "/existing-file", stdin: tarIn, wantErr: ErrMustBeDirectory},
		{name: "stdin to missing", src: "-", dst: "/missing", stdin: tarIn, wantErr: ErrMustBeDirectory},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, src := t.TempDir(), t.TempDir()
			mkTree(t, root, containerSetup...)
			mkTree(t, root, tc.setup...)
			hostSource(t, src)
			var stdin []byte
			if tc.stdin != nil {
				stdin = tc.stdin(t)
			}
			s := tc.src
			if s != "-" {
				s = filepath.Join(src, s)
				if strings.HasSuffix(tc.src, "/") || strings.HasSuffix(tc.src, "/.") {
					s = src + "/" + tc.src
				}
			}
			err := CopyTo(root, tc.dst, s, bytes.NewReader(stdin), tc.follow)
			checkErr(t, err, tc.wantErr)
			if err == nil && tc.check != nil {
				tc.check(t, root)
			}
			if tc.wantErr != fs.ErrNotExist && errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error matches fs.ErrNotExist: %v", err)
			}
		})
	}
}

// TestNoFDLeak runs every operation, failing ones included, and checks that
// no descriptor is left open.
func TestNoFDLeak(t *testing.T) {
	requireRoot(t)
	root, out, src := t.TempDir(), t.TempDir(), t.TempDir()
	containerTree(t, root)
	hostSource(t, src)
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		must(t, err)
		return len(ents)
	}
	before := count()
	for range 3 {
		var buf bytes.Buffer
		Export(&buf, root)
		Export(&buf, filepath.Join(root, "nope"))
		for _, s := range []string{"/", "/dir", "/dir/.", "/file", "/link-dir", "/link-dir/", "/nope", "/file/", "/devdir"} {
			CopyFrom(root, s, "-", &buf, false)
			CopyFrom(root, s, "-", &buf, true)
			CopyFrom(root, s, filepath.Join(out, "x"+strings.ReplaceAll(s, "/", "_")), nil, false)
		}
		for _, d := range []string{"/", "/dir", "/new", "/nope/x", "/file", "/devdir/null", "/link-dir"} {
			CopyTo(root, d, filepath.Join(src, "dir"), nil, false)
			CopyTo(root, d, filepath.Join(src, "file"), nil, false)
			CopyTo(root, d, "-", bytes.NewReader(mkTar(t, reg("a", "a", 0o644), reg("../b", "b", 0o644))), false)
		}
	}
	if after := count(); after != before {
		t.Errorf("%d descriptors open before, %d after", before, after)
	}
}

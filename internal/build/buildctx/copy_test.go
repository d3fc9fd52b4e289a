package buildctx

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testContext is the build context most copy tests use.
var testContext = map[string]string{
	"a.txt":         "a",
	"b.txt":         "b",
	"c.go":          "c",
	"dir/x.txt":     "x",
	"dir/sub/y.txt": "y",
	"dir/link":      "link:x.txt",
	"dir/abs":       "link:/etc/passwd",
	"linkfile":      "link:a.txt",
	"linkdir":       "link:dir",
}

func TestCopy(t *testing.T) {
	tests := []struct {
		name     string
		existing map[string]string // in rootfs before the copy
		args     []string
		dest     string
		opts     CopyOptions
		want     []string // every path in rootfs afterwards
		wantErr  string
	}{
		{name: "file to dir/", args: []string{"a.txt"}, dest: "/app/",
			want: []string{"app/", "app/a.txt"}},
		{name: "file to file", args: []string{"a.txt"}, dest: "/app/b.txt",
			want: []string{"app/", "app/b.txt"}},
		{name: "file to existing dir", existing: map[string]string{"app": "dir:"}, args: []string{"a.txt"}, dest: "/app",
			want: []string{"app/", "app/a.txt"}},
		{name: "file to root", args: []string{"a.txt"}, dest: "/",
			want: []string{"a.txt"}},
		{name: "file replaces file", existing: map[string]string{"app/b.txt": "old"}, args: []string{"a.txt"}, dest: "/app/b.txt",
			want: []string{"app/", "app/b.txt"}},
		{name: "file replaces symlink", existing: map[string]string{"app/b.txt": "link:/etc/shadow"}, args: []string{"a.txt"}, dest: "/app/b.txt",
			want: []string{"app/", "app/b.txt"}},
		{name: "file onto existing dir inside dest dir", existing: map[string]string{"app/a.txt/f": "x"}, args: []string{"a.txt"}, dest: "/app/",
			wantErr: "cannot replace directory /app/a.txt with a file"},
		{name: "dir contents", args: []string{"dir"}, dest: "/app",
			want: []string{"app/", "app/abs@/etc/passwd", "app/link@x.txt", "app/sub/", "app/sub/y.txt", "app/x.txt"}},
		{name: "dir contents merge", existing: map[string]string{"app/old": "o", "app/sub/z": "z"}, args: []string{"dir/"}, dest: "/app/",
			want: []string{"app/", "app/abs@/etc/passwd", "app/link@x.txt", "app/old", "app/sub/", "app/sub/y.txt", "app/sub/z", "app/x.txt"}},
		{name: "dir onto file", existing: map[string]string{"app": "f"}, args: []string{"dir"}, dest: "/app",
			wantErr: "not a directory"},
		{name: "several sources make dest a dir", args: []string{"a.txt", "b.txt"}, dest: "/dst",
			want: []string{"dst/", "dst/a.txt", "dst/b.txt"}},
		{name: "wildcard makes dest a dir", args: []string{"a*"}, dest: "/dst",
			want: []string{"dst/", "dst/a.txt"}},
		{name: "followed symlink keeps its name", args: []string{"linkfile"}, dest: "/d/",
			want: []string{"d/", "d/linkfile"}},
		{name: "followed symlink to dir", args: []string{"linkdir"}, dest: "/d",
			want: []string{"d/", "d/abs@/etc/passwd", "d/link@x.txt", "d/sub/", "d/sub/y.txt", "d/x.txt"}},
		{name: "exclude", args: []string{"dir"}, dest: "/d", opts: CopyOptions{Excludes: []string{"sub", "link"}},
			want: []string{"d/", "d/abs@/etc/passwd", "d/x.txt"}},
		{name: "exclude with re-include", args: []string{"dir"}, dest: "/d", opts: CopyOptions{Excludes: []string{"**/*", "!sub/y.txt"}},
			want: []string{"d/", "d/sub/", "d/sub/y.txt"}},
		{name: "parents", args: []string{"dir/sub/y.txt", "a.txt"}, dest: "/p", opts: CopyOptions{Parents: true},
			want: []string{"p/", "p/a.txt", "p/dir/", "p/dir/sub/", "p/dir/sub/y.txt"}},
		{name: "parents pivot", args: []string{"dir/./sub/y.txt"}, dest: "/p/", opts: CopyOptions{Parents: true},
			want: []string{"p/", "p/sub/", "p/sub/y.txt"}},
		{name: "parents dir", args: []string{"dir/sub"}, dest: "/p/", opts: CopyOptions{Parents: true},
			want: []string{"p/", "p/dir/", "p/dir/sub/", "p/dir/sub/y.txt"}},
		{name: "parents wildcard", args: []string{"*/x.txt"}, dest: "/p/", opts: CopyOptions{Parents: true},
			want: []string{"p/", "p/dir/", "p/dir/x.txt", "p/linkdir/", "p/linkdir/x.txt"}},
		{name: "parents symlink stays a symlink", args: []string{"linkfile"}, dest: "/p/", opts: CopyOptions{Parents: true},
			want: []string{"p/", "p/linkfile@a.txt"}},
		{name: "whole context", args: []string{"."}, dest: "/",
			want: []string{"a.txt", "b.txt", "c.go", "dir/", "dir/abs@/etc/passwd", "dir/link@x.txt", "dir/sub/", "dir/sub/y.txt", "dir/x.txt", "linkdir@dir", "linkfile@a.txt"}},
		{name: "dest through existing symlinked dir", existing: map[string]string{"real": "dir:", "app": "link:/real"}, args: []string{"a.txt"}, dest: "/app/",
			want: []string{"app@/real", "real/", "real/a.txt"}},
		{name: "dir merges through symlinked subdir", existing: map[string]string{"real": "dir:", "app/sub": "link:../real"}, args: []string{"dir"}, dest: "/app",
			want: []string{"app/", "app/abs@/etc/passwd", "app/link@x.txt", "app/sub@../real", "app/x.txt", "real/", "real/y.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, rootfs := t.TempDir(), t.TempDir()
			mkfiles(t, ctx, testContext)
			mkfiles(t, rootfs, tt.existing)
			tr := openContext(t, ctx)
			err := copyArgs(t, tr, rootfs, tt.dest, tt.opts, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listFiles(t, rootfs); !slices.Equal(got, tt.want) {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCopyContentAndMetadata(t *testing.T) {
	ctx, rootfs := t.TempDir(), t.TempDir()
	mkfiles(t, ctx, testContext)
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	syscall.Chmod(filepath.Join(ctx, "dir/x.txt"), 0o4751)
	os.Chmod(filepath.Join(ctx, "dir/sub"), 0o700)
	os.Chtimes(filepath.Join(ctx, "dir/x.txt"), mtime, mtime)
	os.Chtimes(filepath.Join(ctx, "dir/sub"), mtime, mtime)
	os.Chtimes(filepath.Join(ctx, "dir"), mtime, mtime)
	tr := openContext(t, ctx)
	if err := copyArgs(t, tr, rootfs, "/app/", CopyOptions{}, "dir"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(rootfs, "app/x.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o751 || fi.Mode()&os.ModeSetuid == 0 || !fi.ModTime().Equal(mtime) {
		t.Errorf("x.txt: mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	if got := readFile(t, filepath.Join(rootfs, "app/sub/y.txt")); got != "y" {
		t.Errorf("content %q", got)
	}
	fi, _ = os.Stat(filepath.Join(rootfs, "app/sub"))
	if fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(mtime) {
		t.Errorf("sub: mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	// dest gets the directory source's times, not its mode.
	fi, _ = os.Stat(filepath.Join(rootfs, "app"))
	if fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(mtime) {
		t.Errorf("app: mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
}

func TestCopyCreatesParents(t *testing.T) {
	ctx, rootfs := t.TempDir(), t.TempDir()
	mkfiles(t, ctx, testContext)
	tr := openContext(t, ctx)
	if err := copyArgs(t, tr, rootfs, "/a/b/c/f", CopyOptions{Chmod: "600"}, "a.txt"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		fi, err := os.Stat(filepath.Join(rootfs, d))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(rootfs, "a/b/c/f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("f: %v", fi.Mode())
	}
}

func TestCopyChmod(t *testing.T) {
	tests := []struct {
		chmod         string
		file, dir, xf os.FileMode // a 0644 file, a 0755 dir, a 0755 file
	}{
		{"", 0o644, 0o755, 0o755},
		{"755", 0o755, 0o755, 0o755},
		{"0640", 0o640, 0o640, 0o640},
		{"u+x,g-w", 0o744, 0o755, 0o755},
		{"a=rX", 0o444, 0o555, 0o555},
		{"go=", 0o600, 0o700, 0o700},
		{"o+w", 0o646, 0o757, 0o757},
	}
	for _, tt := range tests {
		t.Run(tt.chmod, func(t *testing.T) {
			ctx, rootfs := t.TempDir(), t.TempDir()
			mkfiles(t, ctx, map[string]string{"d/f": "f", "d/sub/x": "x"})
			os.Chmod(filepath.Join(ctx, "d/sub/x"), 0o755)
			tr := openContext(t, ctx)
			if err := copyArgs(t, tr, rootfs, "/o", CopyOptions{Chmod: tt.chmod}, "d"); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]os.FileMode{"o/f": tt.file, "o/sub": tt.dir, "o/sub/x": tt.xf} {
				fi, err := os.Lstat(filepath.Join(rootfs, p))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s: %v, want %v", p, fi.Mode().Perm(), want)
				}
			}
		})
	}
	if _, err := Match1(t, "bad"); err == nil {
		t.Error("bad chmod accepted")
	}
}

// Match1 copies a.txt with chmod spec (for error checks).
func Match1(t *testing.T, chmod string) ([]Source, error) {
	ctx, rootfs := t.TempDir(), t.TempDir()
	mkfiles(t, ctx, map[string]string{"a": "a"})
	tr := openContext(t, ctx)
	srcs, err := tr.Match([]string{"a"}, CopyOptions{})
	if err != nil {
		return nil, err
	}
	return srcs, Copy(rootfs, "/x", srcs, CopyOptions{Chmod: chmod})
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		spec  string
		old   uint32
		isDir bool
		want  uint32
		bad   bool
	}{
		{spec: "755", old: 0o644, want: 0o755},
		{spec: "07777", old: 0, want: 0o7777},
		{spec: "17777", bad: true},
		{spec: "89", bad: true},
		{spec: "u+x", old: 0o644, want: 0o744},
		{spec: "+x", old: 0o644, want: 0o755},
		{spec: "a-w", old: 0o666, want: 0o444},
		{spec: "g=u", old: 0o740, want: 0o770},
		{spec: "o=g-x", old: 0o751, want: 0o754},
		{spec: "u=rwx,g=rx,o=", old: 0, want: 0o750},
		{spec: "a+X", old: 0o644, want: 0o644},
		{spec: "a+X", old: 0o644, isDir: true, want: 0o755},
		{spec: "a+X", old: 0o744, want: 0o755},
		{spec: "u+s,g+s", old: 0o755, want: 0o6755},
		{spec: "+t", old: 0o755, isDir: true, want: 0o1755},
		{spec: "u-s", old: 0o4755, want: 0o755},
		{spec: "a=r", old: 0o4755, want: 0o444},
		{spec: "u", bad: true},
		{spec: "u+q", bad: true},
		{spec: "x+r", bad: true},
		{spec: "u+x,", bad: true},
	}
	for _, tt := range tests {
		m, err := ParseMode(tt.spec)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: accepted", tt.spec)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.spec, err)
			continue
		}
		if got := m.Apply(tt.old, tt.isDir); got != tt.want {
			t.Errorf("%q on %o: %o, want %o", tt.spec, tt.old, got, tt.want)
		}
	}
}

func statOwner(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func TestCopyChown(t *testing.T) {
	requireRoot(t)
	src, ctx, rootfs := t.TempDir(), t.TempDir(), t.TempDir()
	mkfiles(t, src, testContext)
	mkfiles(t, ctx, testContext)
	for _, d := range []string{src, ctx} {
		filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 1234, 5678) })
	}
	rootTree, ctxTree := openRoot(t, src), openContext(t, ctx)

	// A root filesystem keeps owners.
	if err := copyArgs(t, rootTree, rootfs, "/keep/", CopyOptions{}, "dir"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"keep/x.txt", "keep/sub", "keep/sub/y.txt", "keep/link"} {
		if u, g := statOwner(t, filepath.Join(rootfs, p)); u != 1234 || g != 5678 {
			t.Errorf("%s: %d:%d", p, u, g)
		}
	}
	// The build context gives 0:0.
	if err := copyArgs(t, ctxTree, rootfs, "/ctx/", CopyOptions{}, "dir"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ctx/x.txt", "ctx/sub", "ctx/link"} {
		if u, g := statOwner(t, filepath.Join(rootfs, p)); u != 0 || g != 0 {
			t.Errorf("%s: %d:%d", p, u, g)
		}
	}
	// --chown applies to everything, created parents of dest included.
	own := &Owner{UID: 42, GID: 43}
	if err := copyArgs(t, ctxTree, rootfs, "/new/parent/", CopyOptions{Chown: own}, "dir", "a.txt"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "new/parent", "new/parent/x.txt", "new/parent/sub", "new/parent/sub/y.txt", "new/parent/link", "new/parent/a.txt"} {
		if u, g := statOwner(t, filepath.Join(rootfs, p)); u != 42 || g != 43 {
			t.Errorf("%s: %d:%d", p, u, g)
		}
	}
}

func TestCopyHardLinks(t *testing.T) {
	ctx, rootfs := t.TempDir(), t.TempDir()
	mkfiles(t, ctx, map[string]string{"d/a": "same"})
	if err := os.Link(filepath.Join(ctx, "d/a"), filepath.Join(ctx, "d/b")); err != nil {
		t.Fatal(err)
	}
	tr := openContext(t, ctx)
	if err := copyArgs(t, tr, rootfs, "/o", CopyOptions{}, "d"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(rootfs, "o/a"))
	b, _ := os.Stat(filepath.Join(rootfs, "o/b"))
	if !os.SameFile(a, b) {
		t.Error("hard link not preserved")
	}
	sa, _ := os.Stat(filepath.Join(ctx, "d/a"))
	if os.SameFile(a, sa) {
		t.Error("destination linked to the source")
	}
}

func TestCopyFromSeveralTrees(t *testing.T) {
	ctx, other, rootfs := t.TempDir(), t.TempDir(), t.TempDir()
	mkfiles(t, ctx, map[string]string{"a": "a"})
	mkfiles(t, other, map[string]string{"b": "b"})
	t1, t2 := openContext(t, ctx), openRoot(t, other)
	s1, err := t1.Match([]string{"a"}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := t2.Match([]string{"b"}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Copy(rootfs, "/d", append(s1, s2...), CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, rootfs); !slices.Equal(got, []string{"d/", "d/a", "d/b"}) {
		t.Errorf("got %q", got)
	}
}

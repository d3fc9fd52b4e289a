package buildctx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sourcePaths(srcs []Source) []string {
	var out []string
	for _, s := range srcs {
		p := s.Path
		if s.DestPath != "" {
			p += "=>" + s.DestPath
		}
		out = append(out, p)
	}
	return out
}

func TestMatch(t *testing.T) {
	ctx := t.TempDir()
	mkfiles(t, ctx, map[string]string{
		"a.txt":           "a",
		"b.txt":           "b",
		"c.go":            "c",
		".hidden":         "h",
		"star*":           "literal star",
		"dir/x.txt":       "x",
		"dir/sub/y.txt":   "y",
		"other/x.txt":     "ox",
		"linkdir":         "link:dir",
		"linkfile":        "link:a.txt",
		"abslink":         "link:/dir/x.txt",
		"dangling":        "link:nowhere",
		"dir/up":          "link:../../../../a.txt",
		"weird[name].txt": "w",
	})
	tr := openContext(t, ctx)
	tests := []struct {
		name    string
		args    []string
		opts    CopyOptions
		want    []string
		wantErr error
	}{
		{name: "plain file", args: []string{"a.txt"}, want: []string{"a.txt"}},
		{name: "leading slash is the context root", args: []string{"/a.txt"}, want: []string{"a.txt"}},
		{name: "dot is the root", args: []string{"."}, want: []string{"."}},
		{name: "star", args: []string{"*.txt"}, want: []string{"a.txt", "b.txt", "weird[name].txt"}},
		{name: "question mark", args: []string{"?.go"}, want: []string{"c.go"}},
		{name: "class", args: []string{"[ab].txt"}, want: []string{"a.txt", "b.txt"}},
		{name: "star matches dotfiles", args: []string{".h*"}, want: []string{".hidden"}},
		{name: "escaped star", args: []string{`star\*`}, want: []string{"star*"}},
		{name: "wildcard in a directory element", args: []string{"*/x.txt"}, want: []string{"dir/x.txt", "linkdir/x.txt", "other/x.txt"}},
		{name: "nested", args: []string{"dir/*/y.txt"}, want: []string{"dir/sub/y.txt"}},
		{name: "several", args: []string{"c.go", "a.txt"}, want: []string{"c.go", "a.txt"}},
		{name: "clean inside", args: []string{"dir/../a.txt"}, want: []string{"a.txt"}},
		{name: "symlinked dir component", args: []string{"linkdir/sub/y.txt"}, want: []string{"linkdir/sub/y.txt"}},
		{name: "symlink escaping is scoped", args: []string{"dir/up"}, want: []string{"dir/up"}},
		{name: "missing", args: []string{"nope"}, wantErr: fs.ErrNotExist},
		{name: "wildcard matching nothing", args: []string{"*.rs"}, wantErr: fs.ErrNotExist},
		{name: "dangling symlink", args: []string{"dangling"}, wantErr: fs.ErrNotExist},
		{name: "dotdot", args: []string{"../x"}, wantErr: ErrOutside},
		{name: "dotdot inside", args: []string{"dir/../../x"}, wantErr: ErrOutside},
		{name: "exclude drops wildcard matches", args: []string{"*.txt"}, opts: CopyOptions{Excludes: []string{"b*"}}, want: []string{"a.txt", "weird[name].txt"}},
		{name: "exclude all wildcard matches", args: []string{"b.*"}, opts: CopyOptions{Excludes: []string{"*.txt"}}, wantErr: fs.ErrNotExist},
		{name: "parents", args: []string{"dir/sub/y.txt"}, opts: CopyOptions{Parents: true}, want: []string{"dir/sub/y.txt=>dir/sub/y.txt"}},
		{name: "parents pivot", args: []string{"dir/./sub/y.txt"}, opts: CopyOptions{Parents: true}, want: []string{"dir/sub/y.txt=>sub/y.txt"}},
		{name: "parents wildcard", args: []string{"*/x.txt"}, opts: CopyOptions{Parents: true}, want: []string{"dir/x.txt=>dir/x.txt", "linkdir/x.txt=>linkdir/x.txt", "other/x.txt=>other/x.txt"}},
		{name: "parents keeps symlink", args: []string{"linkfile"}, opts: CopyOptions{Parents: true}, want: []string{"linkfile=>linkfile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tr.Match(tt.args, tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := sourcePaths(got); !slices.Equal(p, tt.want) {
				t.Fatalf("got %q, want %q", p, tt.want)
			}
		})
	}
}

func TestMatchResolvesSymlinksInTree(t *testing.T) {
	ctx := t.TempDir()
	mkfiles(t, ctx, map[string]string{
		"a.txt":   "a",
		"abs":     "link:/a.txt",
		"rel":     "link:./dir/../a.txt",
		"up":      "link:../../../../../a.txt",
		"dir/in":  "dir:",
		"loop1":   "link:loop2",
		"loop2":   "link:loop1",
		"tolinkd": "link:dir",
	})
	tr := openContext(t, ctx)
	for _, arg := range []string{"abs", "rel", "up"} {
		srcs, err := tr.Match([]string{arg}, CopyOptions{})
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if srcs[0].Resolved != "a.txt" || srcs[0].Path != arg || srcs[0].Info.IsDir() {
			t.Errorf("%s: got %+v", arg, srcs[0])
		}
	}
	if _, err := tr.Match([]string{"loop1"}, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("loop: err = %v", err)
	}
	srcs, err := tr.Match([]string{"tolinkd"}, CopyOptions{})
	if err != nil || !srcs[0].IsDir() || srcs[0].Resolved != "dir" {
		t.Errorf("symlink to dir: %+v, %v", srcs, err)
	}
}

func TestContextSymlinkOutsideDoesNotLeak(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	ctx := filepath.Join(base, "ctx")
	mkfiles(t, outside, map[string]string{"secret": "TOP SECRET", "sub/secret2": "TOP SECRET 2"})
	mkfiles(t, ctx, map[string]string{
		"abs":        "link:" + filepath.Join(outside, "secret"),
		"rel":        "link:../outside/secret",
		"absdir":     "link:" + outside,
		"reldir":     "link:../outside",
		"inside/abs": "link:" + filepath.Join(outside, "secret"),
	})
	tr := openContext(t, ctx)
	for _, arg := range []string{"abs", "rel", "absdir/secret", "reldir/secret", "reldir/sub/secret2", "*/secret", "reldir"} {
		_, err := tr.Match([]string{arg}, CopyOptions{})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: err = %v, want not found", arg, err)
		}
	}
	// Copying the whole context copies the symlinks as symlinks, never the
	// files they point at.
	rootfs := t.TempDir()
	if err := copyArgs(t, tr, rootfs, "/c/", CopyOptions{}, "."); err != nil {
		t.Fatal(err)
	}
	for _, f := range listFiles(t, rootfs) {
		if !strings.Contains(f, "@") && !strings.HasSuffix(f, "/") {
			t.Errorf("regular file %s copied", f)
		}
	}
	// The digest reads no outside file either: changing it changes nothing.
	srcs, err := tr.Match([]string{"."}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d1, err := Digest(srcs, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(outside, "secret"), []byte("changed"), 0o644)
	d2, _ := Digest(srcs, CopyOptions{})
	if d1 != d2 {
		t.Error("digest depends on a file outside the context")
	}
}

func TestDockerignore(t *testing.T) {
	ctx := t.TempDir()
	mkfiles(t, ctx, map[string]string{
		"a.txt":             "a",
		"debug.log":         "log",
		"secret":            "s",
		"linktosecret":      "link:secret",
		"dir/x.txt":         "x",
		"dir/sub/y.txt":     "y",
		"dir/sub/keep.txt":  "keep",
		"node_modules/m.js": "m",
		".dockerignore":     "# comment\n*.log\n/secret\ndir/sub\n!dir/sub/keep.txt\nnode_modules\n",
	})
	tr := openContext(t, ctx)
	if tr.IgnoreFile() != filepath.Join(ctx, ".dockerignore") {
		t.Errorf("IgnoreFile = %q", tr.IgnoreFile())
	}
	for p, want := range map[string]bool{
		"a.txt": false, "debug.log": true, "secret": true, "/secret": true, "dir/sub/y.txt": true,
		"dir/sub/keep.txt": false, "node_modules/m.js": true, "dir": false, ".": false,
	} {
		if got := tr.Ignored(p); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", p, got, want)
		}
	}
	for _, arg := range []string{"debug.log", "secret", "linktosecret", "node_modules", "dir/sub/y.txt"} {
		if _, err := tr.Match([]string{arg}, CopyOptions{}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: err = %v, want not found", arg, err)
		}
	}
	got, err := tr.Match([]string{"*"}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// linktosecret matches the wildcard, but following it reaches an
	// ignored file, so it is skipped (for an explicit name it is an error).
	if p := sourcePaths(got); !slices.Equal(p, []string{".dockerignore", "a.txt", "dir"}) {
		t.Errorf("* matched %q", p)
	}
	rootfs := t.TempDir()
	if err := copyArgs(t, tr, rootfs, "/out/", CopyOptions{}, "."); err != nil {
		t.Fatal(err)
	}
	want := []string{"out/", "out/.dockerignore", "out/a.txt", "out/dir/", "out/dir/sub/", "out/dir/sub/keep.txt", "out/dir/x.txt", "out/linktosecret@secret"}
	if got := listFiles(t, rootfs); !slices.Equal(got, want) {
		t.Errorf("copied %q\nwant %q", got, want)
	}
	if got, err := tr.Match([]string{"dir/sub/keep.txt"}, CopyOptions{}); err != nil || len(got) != 1 {
		t.Errorf("re-included file: %v %v", got, err)
	}
}

func TestDockerfileSpecificIgnore(t *testing.T) {
	ctx := t.TempDir()
	df := filepath.Join(t.TempDir(), "build.Dockerfile")
	mkfiles(t, ctx, map[string]string{"a.txt": "a", "b.txt": "b", ".dockerignore": "a.txt\n"})
	os.WriteFile(df+".dockerignore", []byte("b.txt\n"), 0o644)
	tr, err := OpenContext(ctx, df)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Ignored("a.txt") || !tr.Ignored("b.txt") || tr.IgnoreFile() != df+".dockerignore" {
		t.Errorf("Dockerfile-specific ignore file not used: %q %q", tr.IgnoreFile(), tr.IgnorePatterns())
	}
	// Without it, the context's applies.
	tr2, err := OpenContext(ctx, filepath.Join(ctx, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	if !tr2.Ignored("a.txt") || tr2.Ignored("b.txt") {
		t.Error("context .dockerignore not used")
	}
}

func TestDockerignoreSymlinkOutside(t *testing.T) {
	base := t.TempDir()
	mkfiles(t, base, map[string]string{"outside-ignore": "a.txt\n", "ctx/a.txt": "a"})
	os.Symlink(filepath.Join(base, "outside-ignore"), filepath.Join(base, "ctx/.dockerignore"))
	tr := openContext(t, filepath.Join(base, "ctx"))
	if tr.Ignored("a.txt") || tr.IgnoreFile() != "" {
		t.Error(".dockerignore read through a symlink leaving the context")
	}
}

func TestRootTree(t *testing.T) {
	root := t.TempDir()
	mkfiles(t, root, map[string]string{"etc/passwd": "root:x:0:0", "bin": "link:/usr/bin", "usr/bin/sh": "sh", ".dockerignore": "*\n"})
	tr := openRoot(t, root)
	got, err := tr.Match([]string{"/bin/sh", "/etc/*"}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := sourcePaths(got); !slices.Equal(p, []string{"bin/sh", "etc/passwd"}) || got[0].Resolved != "usr/bin/sh" {
		t.Errorf("got %q (%+v)", p, got[0])
	}
	if tr.IsContext() || tr.Ignored("etc/passwd") {
		t.Error("a root tree has no ignore rules")
	}
}

func TestBadPatterns(t *testing.T) {
	ctx := t.TempDir()
	mkfiles(t, ctx, map[string]string{"a": "a"})
	tr := openContext(t, ctx)
	if _, err := tr.Match([]string{"a"}, CopyOptions{Excludes: []string{"[z-"}}); err == nil {
		t.Error("bad --exclude accepted")
	}
	if _, err := tr.Match([]string{"[z-"}, CopyOptions{}); err == nil {
		t.Error("bad wildcard accepted")
	}
	for name, content := range map[string]string{
		"bad pattern": "x\n/..000*[00**00\n",
		"too large":   strings.Repeat("#", MaxIgnoreFileSize+1),
	} {
		os.WriteFile(filepath.Join(ctx, ".dockerignore"), []byte(content), 0o644)
		if tr, err := OpenContext(ctx, ""); err == nil {
			tr.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

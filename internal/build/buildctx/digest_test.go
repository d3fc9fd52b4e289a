package buildctx

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func digestOf(t testing.TB, tr *Tree, opts CopyOptions, args ...string) digest.Digest {
	t.Helper()
	srcs, err := tr.Match(args, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Digest(srcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDigest(t *testing.T) {
	type env struct{ ctx, root string }
	tests := []struct {
		name   string
		change func(t *testing.T, e env)
		opts   CopyOptions // for the second digest
		args   []string    // for the second digest (default: "dir", "a.txt")
		same   bool
		root   bool // digest the root tree instead of the context
	}{
		{name: "nothing", change: func(*testing.T, env) {}, same: true},
		{name: "mtime", same: true, change: func(t *testing.T, e env) {
			tm := time.Unix(12345, 0)
			os.Chtimes(filepath.Join(e.ctx, "dir/sub/y.txt"), tm, tm)
			os.Chtimes(filepath.Join(e.ctx, "dir"), tm, tm)
		}},
		{name: "inode (rewritten with same content)", same: true, change: func(t *testing.T, e env) {
			p := filepath.Join(e.ctx, "a.txt")
			os.Remove(p)
			os.WriteFile(p, []byte("a"), 0o644)
		}},
		{name: "context owner", same: true, change: func(t *testing.T, e env) {
			requireRoot(t)
			os.Lchown(filepath.Join(e.ctx, "dir/x.txt"), 99, 99)
		}},
		{name: "ignored file", same: true, change: func(t *testing.T, e env) {
			os.WriteFile(filepath.Join(e.ctx, "dir/debug.log"), []byte("changed"), 0o644)
		}},
		{name: "excluded file", same: true, opts: CopyOptions{Excludes: []string{"sub"}}, change: func(t *testing.T, e env) {
			os.WriteFile(filepath.Join(e.ctx, "dir/sub/y.txt"), []byte("changed"), 0o644)
		}},
		{name: "content", change: func(t *testing.T, e env) {
			os.WriteFile(filepath.Join(e.ctx, "dir/sub/y.txt"), []byte("Y"), 0o644)
		}},
		{name: "mode", change: func(t *testing.T, e env) {
			os.Chmod(filepath.Join(e.ctx, "dir/x.txt"), 0o755)
		}},
		{name: "dir mode", change: func(t *testing.T, e env) {
			os.Chmod(filepath.Join(e.ctx, "dir/sub"), 0o700)
		}},
		{name: "rename", change: func(t *testing.T, e env) {
			os.Rename(filepath.Join(e.ctx, "dir/x.txt"), filepath.Join(e.ctx, "dir/z.txt"))
		}},
		{name: "new file", change: func(t *testing.T, e env) {
			os.WriteFile(filepath.Join(e.ctx, "dir/new"), nil, 0o644)
		}},
		{name: "new empty dir", change: func(t *testing.T, e env) {
			os.Mkdir(filepath.Join(e.ctx, "dir/empty"), 0o755)
		}},
		{name: "symlink target", change: func(t *testing.T, e env) {
			os.Remove(filepath.Join(e.ctx, "dir/link"))
			os.Symlink("sub", filepath.Join(e.ctx, "dir/link"))
		}},
		{name: "file becomes symlink", change: func(t *testing.T, e env) {
			os.Remove(filepath.Join(e.ctx, "dir/x.txt"))
			os.Symlink("x", filepath.Join(e.ctx, "dir/x.txt"))
		}},
		{name: "followed source symlink target content", change: func(t *testing.T, e env) {
			os.WriteFile(filepath.Join(e.ctx, "a.txt"), []byte("A"), 0o644)
		}},
		{name: "xattr", change: func(t *testing.T, e env) {
			if err := setUserXattr(filepath.Join(e.ctx, "dir/x.txt")); err != nil {
				t.Skip("no user xattrs here:", err)
			}
		}},
		{name: "root owner", root: true, change: func(t *testing.T, e env) {
			requireRoot(t)
			os.Lchown(filepath.Join(e.root, "dir/x.txt"), 99, 99)
		}},
		{name: "root mtime", root: true, same: true, change: func(t *testing.T, e env) {
			os.Chtimes(filepath.Join(e.root, "dir/x.txt"), time.Unix(1, 0), time.Unix(1, 0))
		}},
		{name: "chmod option", opts: CopyOptions{Chmod: "755"}, change: func(*testing.T, env) {}},
		{name: "chmod that changes nothing", opts: CopyOptions{Chmod: "u+r"}, change: func(*testing.T, env) {}},
		{name: "chown option", opts: CopyOptions{Chown: &Owner{UID: 1, GID: 1}}, change: func(*testing.T, env) {}},
		{name: "parents option", opts: CopyOptions{Parents: true}, change: func(*testing.T, env) {}},
		{name: "unpack option", opts: CopyOptions{Unpack: true}, change: func(*testing.T, env) {}},
		{name: "exclude option matching nothing", opts: CopyOptions{Excludes: []string{"nothing"}}, change: func(*testing.T, env) {}},
		{name: "source order", args: []string{"a.txt", "dir"}, change: func(*testing.T, env) {}},
		{name: "single source", args: []string{"dir"}, change: func(*testing.T, env) {}},
		{name: "file name (via symlink)", args: []string{"dir", "linkfile"}, change: func(*testing.T, env) {}},
	}
	files := map[string]string{
		"a.txt":         "a",
		"linkfile":      "link:a.txt",
		"dir/x.txt":     "x",
		"dir/sub/y.txt": "y",
		"dir/link":      "link:x.txt",
		".dockerignore": "**/*.log\n",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env{ctx: t.TempDir(), root: t.TempDir()}
			mkfiles(t, e.ctx, files)
			mkfiles(t, e.root, files)
			tr := openContext(t, e.ctx)
			if tt.root {
				tr = openRoot(t, e.root)
			}
			opts1 := CopyOptions{}
			if tt.same && len(tt.opts.Excludes) > 0 {
				opts1 = tt.opts
			}
			d1 := digestOf(t, tr, opts1, "dir", "a.txt")
			if again := digestOf(t, tr, opts1, "dir", "a.txt"); again != d1 {
				t.Fatal("digest not stable")
			}
			tt.change(t, e)
			args := tt.args
			if args == nil {
				args = []string{"dir", "a.txt"}
			}
			d2 := digestOf(t, tr, tt.opts, args...)
			if (d1 == d2) != tt.same {
				t.Errorf("same = %v, want %v", d1 == d2, tt.same)
			}
		})
	}
}

func TestDigestSpeed(t *testing.T) {
	ctx := t.TempDir()
	files := map[string]string{}
	for i := range 2000 {
		files[fmt.Sprintf("d%02d/f%04d.txt", i%40, i)] = fmt.Sprintf("content of file %d\n", i)
	}
	mkfiles(t, ctx, files)
	tr := openContext(t, ctx)
	srcs, err := tr.Match([]string{"."}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Digest(srcs, CopyOptions{}); err != nil { // warm the caches
		t.Fatal(err)
	}
	best := time.Hour
	for range 3 {
		start := time.Now()
		if _, err := Digest(srcs, CopyOptions{}); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	t.Logf("2000 files digested in %v", best)
	limit := 50 * time.Millisecond
	if raceEnabled || testing.CoverMode() != "" {
		limit *= 10
	}
	if best > limit {
		t.Errorf("digest of 2000 files took %v, want < %v", best, limit)
	}
}

func BenchmarkDigest2000(b *testing.B) {
	ctx := b.TempDir()
	files := map[string]string{}
	for i := range 2000 {
		files[fmt.Sprintf("d%02d/f%04d.txt", i%40, i)] = fmt.Sprintf("content of file %d\n", i)
	}
	mkfiles(b, ctx, files)
	tr := openContext(b, ctx)
	srcs, err := tr.Match([]string{"."}, CopyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Digest(srcs, CopyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

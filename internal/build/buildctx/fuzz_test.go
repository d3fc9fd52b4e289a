package buildctx

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzable reports whether an archive is small enough to extract in a fuzz
// iteration: a tiny input may declare huge (sparse) files.
func fuzzable(data []byte) bool {
	if len(data) > 1<<20 {
		return false
	}
	dr, err := decompress(bytes.NewReader(data))
	if err != nil {
		return true
	}
	defer dr.Close()
	tr := tar.NewReader(io.LimitReader(dr, 8<<20))
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err != nil {
			return true
		}
		total += hdr.Size
		if n > 256 || hdr.Size > 1<<20 || total > 4<<20 {
			return false
		}
	}
}

func FuzzUnpack(f *testing.F) {
	for _, ents := range [][]tarEntry{
		{{name: "f", body: "x"}, {name: "d/", typ: tar.TypeDir}, {name: "d/g", body: "y"}},
		{{name: "../evil", body: "e"}},
		{{name: "/abs/evil", body: "e"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/etc/passwd", body: "e"}},
		{{name: "u", typ: tar.TypeSymlink, link: "../../../../.."}, {name: "u/outside/canary", body: "e"}},
		{{name: "h", typ: tar.TypeLink, link: "../../outside/canary"}},
		{{name: "s", typ: tar.TypeSymlink, link: "../../outside/canary"}, {name: "h", typ: tar.TypeLink, link: "s"}, {name: "h", body: "e"}},
		{{name: "d", typ: tar.TypeSymlink, link: "../../../outside"}, {name: "d/", typ: tar.TypeDir}, {name: "d/canary", body: "e"}},
		{{name: "./", typ: tar.TypeDir, mode: 0o700}, {name: "fifo", typ: tar.TypeFifo}},
	} {
		data := mkTar(f, ents...)
		f.Add(data)
	}
	f.Add(compressWithF(f, mkTar(f, tarEntry{name: "z/../../x", body: "e"})))
	f.Add([]byte("not an archive"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !fuzzable(data) {
			t.Skip()
		}
		base, _, rootfs := hostileRoot(t)
		ctx := filepath.Join(base, "ctx")
		if err := os.MkdirAll(ctx, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctx, "t.tar"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		before := outsideSnapshot(t, base, rootfs)
		tr := openContext(t, ctx)
		srcs, err := tr.Match([]string{"t.tar"}, CopyOptions{Unpack: true})
		if err != nil {
			t.Fatal(err)
		}
		// Into a plain directory, through an absolute symlink leading out, and
		// through a climbing one.
		dest := []string{"/x/", "/etc/", "/up/deep/"}[len(data)%3]
		_ = Copy(rootfs, dest, srcs, CopyOptions{Unpack: true})
		checkOutside(t, base, rootfs, before)
	})
}

func compressWithF(_ *testing.F, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func FuzzIgnoreFile(f *testing.F) {
	f.Add([]byte("*.log\n!keep.log\n"))
	f.Add([]byte("\xef\xbb\xbf# bom\n/abs\n../up\n**/x\n[a-\n"))
	f.Add([]byte("!\n!!\n \n\\\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		patterns, pm, err := ParseIgnoreFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		if (pm == nil) != (len(patterns) == 0) {
			t.Fatalf("matcher %v for %d patterns", pm, len(patterns))
		}
		ctx := t.TempDir()
		mkfiles(t, ctx, map[string]string{"a.log": "a", "keep.log": "k", "d/x": "x", "d/e/f": "f", "abs": "a"})
		if err := os.WriteFile(filepath.Join(ctx, ".dockerignore"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := OpenContext(ctx, "")
		if err != nil {
			return // a pattern patternmatcher rejects
		}
		defer tr.Close()
		for _, p := range []string{"a.log", "d/x", "d/e/f", "d", "", "/abs", "../x"} {
			tr.Ignored(p)
		}
		srcs, err := tr.Match([]string{"*"}, CopyOptions{})
		if err != nil {
			return
		}
		for _, s := range srcs {
			if tr.Ignored(s.Resolved) && !s.IsDir() {
				t.Errorf("matched ignored %q", s.Resolved)
			}
		}
		if _, err := Digest(srcs, CopyOptions{}); err != nil {
			t.Error(err)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("a.txt", false)
	f.Add("*/x\n../../etc/passwd", false)
	f.Add("abs/secret\nrel/../../x\n[\n\\*", false)
	f.Add("dir/./sub/*", true)
	base := f.TempDir()
	outside := filepath.Join(base, "outside")
	ctx := filepath.Join(base, "ctx")
	mkfiles(f, outside, map[string]string{"secret": "s", "d/x": "x"})
	mkfiles(f, ctx, map[string]string{
		"a.txt":      "a",
		"abs":        "link:" + outside,
		"rel":        "link:../outside",
		"dir/sub/x":  "x",
		"dir/up":     "link:../../..",
		"dir/loop":   "link:loop",
		"dir/absdot": "link:/..",
	})
	tr := openContext(f, ctx)
	f.Fuzz(func(t *testing.T, args string, parents bool) {
		srcs, err := tr.Match(strings.Split(args, "\n"), CopyOptions{Parents: parents})
		if err != nil {
			return
		}
		for _, s := range srcs {
			if s.Resolved != "." && (strings.HasPrefix(s.Resolved, "/") || filepath.Clean(s.Resolved) != s.Resolved || strings.HasPrefix(s.Resolved, "..")) {
				t.Fatalf("resolved %q is not a clean relative path", s.Resolved)
			}
			if s.Resolved == "." {
				continue
			}
			// Every directory on the way is a real one inside the context.
			real, err := filepath.EvalSymlinks(filepath.Dir(filepath.Join(ctx, s.Resolved)))
			if err == nil && !strings.HasPrefix(real+"/", ctx+"/") {
				t.Fatalf("%q resolved to %s outside the context", s.Arg, real)
			}
		}
	})
}

package buildctx

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func compressWith(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "plain":
		return data
	case "gzip":
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	case "zstd":
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	case "xz", "bzip2":
		if _, err := exec.LookPath(kind); err != nil {
			t.Skipf("%s not installed", kind)
		}
		cmd := exec.Command(kind, "-z", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return buf.Bytes()
}

func TestUnpackFormats(t *testing.T) {
	archive := mkTar(t,
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "top/", typ: tar.TypeDir, mode: 0o750},
		tarEntry{name: "top/f", body: "hello", mode: 0o600},
		tarEntry{name: "top/l", typ: tar.TypeSymlink, link: "f"},
		tarEntry{name: "top/h", typ: tar.TypeLink, link: "top/f"},
		tarEntry{name: "implicit/parent/g", body: "g"},
	)
	for _, kind := range []string{"plain", "gzip", "zstd", "xz", "bzip2"} {
		t.Run(kind, func(t *testing.T) {
			ctx, rootfs := t.TempDir(), t.TempDir()
			// The name says nothing: detection is by content.
			os.WriteFile(filepath.Join(ctx, "archive.bin"), compressWith(t, kind, archive), 0o644)
			if err := copyArgs(t, openContext(t, ctx), rootfs, "/x", CopyOptions{Unpack: true}, "archive.bin"); err != nil {
				t.Fatal(err)
			}
			want := []string{"x/", "x/implicit/", "x/implicit/parent/", "x/implicit/parent/g", "x/top/", "x/top/f", "x/top/h", "x/top/l@f"}
			if got := listFiles(t, rootfs); !slices.Equal(got, want) {
				t.Fatalf("got %q", got)
			}
			fi, _ := os.Stat(filepath.Join(rootfs, "x/top/f"))
			if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(time.Unix(1600000000, 0)) {
				t.Errorf("f: %v %v", fi.Mode(), fi.ModTime())
			}
			h, _ := os.Stat(filepath.Join(rootfs, "x/top/h"))
			if !os.SameFile(fi, h) {
				t.Error("hard link not made")
			}
			if fi, _ := os.Stat(filepath.Join(rootfs, "x/top")); fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(time.Unix(1600000000, 0)) {
				t.Errorf("top: %v %v", fi.Mode(), fi.ModTime())
			}
		})
	}
}

func TestUnpackOnlyArchives(t *testing.T) {
	ctx, rootfs := t.TempDir(), t.TempDir()
	mkfiles(t, ctx, map[string]string{"notes.tar.gz": "not really an archive", "empty.tar": ""})
	os.WriteFile(filepath.Join(ctx, "d.tar"), mkTar(t, tarEntry{name: "in-dir", body: "x"}), 0o644)
	os.MkdirAll(filepath.Join(ctx, "dir"), 0o755)
	os.WriteFile(filepath.Join(ctx, "dir/nested.tar"), mkTar(t, tarEntry{name: "n", body: "x"}), 0o644)
	tr := openContext(t, ctx)
	if err := copyArgs(t, tr, rootfs, "/o/", CopyOptions{Unpack: true}, "notes.tar.gz", "empty.tar", "dir"); err != nil {
		t.Fatal(err)
	}
	// Only a source that is itself an archive is unpacked.
	want := []string{"o/", "o/empty.tar", "o/nested.tar", "o/notes.tar.gz"}
	if got := listFiles(t, rootfs); !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	// Nor does a source marked NoUnpack (an ADD URL download).
	srcs, err := tr.Match([]string{"d.tar"}, CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srcs[0].NoUnpack = true
	if err := Copy(rootfs, "/u/", srcs, CopyOptions{Unpack: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "u/d.tar")); err != nil {
		t.Error(err)
	}
	// COPY never unpacks.
	if err := copyArgs(t, tr, rootfs, "/c/", CopyOptions{}, "d.tar"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "c/d.tar")); err != nil {
		t.Error(err)
	}
}

func TestUnpackChown(t *testing.T) {
	requireRoot(t)
	ctx, rootfs := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ctx, "a.tar"), mkTar(t,
		tarEntry{name: "d/", typ: tar.TypeDir, uid: 7, gid: 8},
		tarEntry{name: "d/f", body: "f", uid: 9, gid: 10},
	), 0o644)
	tr := openContext(t, ctx)
	if err := copyArgs(t, tr, rootfs, "/own", CopyOptions{Unpack: true}, "a.tar"); err != nil {
		t.Fatal(err)
	}
	if u, g := statOwner(t, filepath.Join(rootfs, "own/d/f")); u != 9 || g != 10 {
		t.Errorf("archive owner not kept: %d:%d", u, g)
	}
	if err := copyArgs(t, tr, rootfs, "/ch", CopyOptions{Unpack: true, Chown: &Owner{UID: 5, GID: 6}}, "a.tar"); err != nil {
		t.Fatal(err)
	}
	// --chown owns the destination made for the archive; its entries
	// keep their own owners, as under BuildKit.
	for p, want := range map[string][2]int{"ch": {5, 6}, "ch/d": {7, 8}, "ch/d/f": {9, 10}} {
		if u, g := statOwner(t, filepath.Join(rootfs, p)); u != want[0] || g != want[1] {
			t.Errorf("%s: %d:%d, want %d:%d", p, u, g, want[0], want[1])
		}
	}
}

func TestUnpackHostile(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		wantErr string
		want    []string // paths below rootfs/x, when no error
	}{
		{name: "dotdot name", entries: []tarEntry{{name: "../evil", body: "e"}}, wantErr: "escapes"},
		{name: "dotdot deep", entries: []tarEntry{{name: "a/../../../evil", body: "e"}}, wantErr: "escapes"},
		{name: "absolute name", entries: []tarEntry{{name: "/abs/evil", body: "e"}}, want: []string{"abs/", "abs/evil"}},
		{name: "symlink then write through it", entries: []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "l/canary", body: "evil"},
		}, want: []string{"OUTSIDE/", "OUTSIDE/canary", "l@/OUTSIDE"}},
		{name: "relative symlink climbing", entries: []tarEntry{
			{name: "u", typ: tar.TypeSymlink, link: "../../../../../.."},
			{name: "u/escaped", body: "evil"},
		}, want: []string{"escaped", "u@../../../../../.."}},
		{name: "symlink to rootfs escape", entries: []tarEntry{
			{name: "e", typ: tar.TypeSymlink, link: "/"},
			{name: "e/etc/passwd", body: "evil"},
		}, want: []string{"e@/", "etc/", "etc/passwd"}},
		{name: "symlink replaced by file", entries: []tarEntry{
			{name: "s", typ: tar.TypeSymlink, link: "OUTSIDE/canary"},
			{name: "s", body: "plain"},
		}, want: []string{"s"}},
		{name: "hard link outside", entries: []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../outside/canary"}}, wantErr: "escapes"},
		{name: "hard link absolute", entries: []tarEntry{{name: "h", typ: tar.TypeLink, link: "OUTSIDE/canary"}}, wantErr: "no such file"},
		{name: "hard link through symlink", entries: []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "h", typ: tar.TypeLink, link: "l/canary"},
		}, wantErr: "no such file"},
		{name: "hard link to symlink links the symlink", entries: []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "OUTSIDE/canary"},
			{name: "h", typ: tar.TypeLink, link: "l"},
			{name: "h", body: "replaces the link, not its target"},
		}, want: []string{"h", "l@/OUTSIDE/canary"}},
		{name: "dir over symlink", entries: []tarEntry{
			{name: "d", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "d/", typ: tar.TypeDir, mode: 0o777},
		}, want: []string{"d/"}},
		{name: "root entry not a dir", entries: []tarEntry{{name: ".", body: "x"}}, wantErr: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, outside, rootfs := hostileRoot(t)
			outRel := strings.TrimPrefix(outside, "/")
			ctx := t.TempDir()
			var ents []tarEntry
			for _, e := range tt.entries {
				e.link = strings.ReplaceAll(e.link, "OUTSIDE", outside)
				ents = append(ents, e)
			}
			os.WriteFile(filepath.Join(ctx, "t.tar"), mkTar(t, ents...), 0o644)
			before := outsideSnapshot(t, base, rootfs)
			err := copyArgs(t, openContext(t, ctx), rootfs, "/x/", CopyOptions{Unpack: true}, "t.tar")
			checkOutside(t, base, rootfs, before)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "OUTSIDE", outRel)
				// Intermediate directories made for an OUTSIDE path.
				if i := strings.Index(w, outRel); i == 0 {
					parts := strings.Split(outRel, "/")
					for j := 1; j < len(parts); j++ {
						want = append(want, strings.Join(parts[:j], "/")+"/")
					}
				}
				want = append(want, w)
			}
			want = append(want, "")
			slices.Sort(want)
			want = slices.Compact(want)[1:]
			if got := listFiles(t, filepath.Join(rootfs, "x")); !slices.Equal(got, want) {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestIsArchive(t *testing.T) {
	tarball := mkTar(t, tarEntry{name: "f", body: "x"})
	for _, tt := range []struct {
		data []byte
		want bool
	}{
		{tarball, true},
		{compressWith(t, "gzip", tarball), true},
		{compressWith(t, "zstd", tarball), true},
		{compressWith(t, "gzip", []byte("plain text")), false},
		{[]byte("plain text"), false},
		{nil, false},
		{tarball[:100], false},
	} {
		if got := IsArchive(bytes.NewReader(tt.data)); got != tt.want {
			t.Errorf("IsArchive(%q...) = %v", tt.data[:min(len(tt.data), 8)], got)
		}
	}
}

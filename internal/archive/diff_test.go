package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// makeUpper builds, by hand, what overlayfs leaves in an upper directory.
func makeUpper(t *testing.T) string {
	t.Helper()
	up := t.TempDir()
	p := func(name string) string { return filepath.Join(up, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(p("a"), 0o750))
	must(os.WriteFile(p("a/f"), []byte("hello"), 0o644))
	must(os.Chown(p("a/f"), 100000, 100001))
	must(unix.Chmod(p("a/f"), 0o4755))
	must(unix.Setxattr(p("a/f"), "user.x", []byte("1"), 0))
	must(unix.Setxattr(p("a/f"), "security.capability", []byte(fileCaps), 0))
	must(unix.Setxattr(p("a/f"), "trusted.overlay.origin", []byte("\x00\xfb"), 0))
	must(os.Link(p("a/f"), p("a/g")))
	must(unix.Mknod(p("a/w"), unix.S_IFCHR, 0))
	must(os.Link(p("a/w"), p("wh2")))
	must(unix.Setxattr(p("a"), "user.d", []byte("dir"), 0))
	must(unix.Setxattr(p("a"), opaqueXattr, []byte("y"), 0))
	must(unix.Setxattr(p("a"), "trusted.overlay.impure", []byte("y"), 0))
	must(os.Chown(p("a"), 5, 6))
	must(os.Symlink("/target", p("s")))
	must(unix.Lchown(p("s"), 7, 8))
	must(unix.Mkfifo(p("p"), 0o640))
	must(unix.Mknod(p("c"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))
	must(unix.Mknod(p("k"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 1))))
	must(unix.Mknod(p("sock"), unix.S_IFSOCK|0o600, 0))
	must(os.Mkdir(p("z"), 0o755))
	for name, mode := range map[string]uint32{"z": 0o1777, "k": 0o660, "c": 0o600, "p": 0o640} {
		must(unix.Chmod(p(name), mode))
	}
	for _, n := range []string{"a/f", "a", "z", "c"} {
		must(os.Chtimes(p(n), t2, t1))
	}
	must(unix.Lutimes(p("s"), []unix.Timeval{unix.NsecToTimeval(t1.UnixNano()), unix.NsecToTimeval(t1.UnixNano())}))
	return up
}

func TestWriteDiff(t *testing.T) {
	requireRoot(t)
	up := makeUpper(t)
	var buf bytes.Buffer
	if err := WriteDiff(&buf, up); err != nil {
		t.Fatal(err)
	}
	type hdrWant struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		linkname string
		pax      map[string]string
	}
	wantHdrs := []hdrWant{
		{name: "a/", typ: tar.TypeDir, mode: 0o750, uid: 5, gid: 6, pax: map[string]string{"SCHILY.xattr.user.d": "dir"}},
		{name: "a/.wh..wh..opq", typ: tar.TypeReg},
		{name: "a/f", typ: tar.TypeReg, mode: 0o4755, uid: 100000, gid: 100001,
			pax: map[string]string{"SCHILY.xattr.user.x": "1", "SCHILY.xattr.security.capability": fileCaps}},
		{name: "a/g", typ: tar.TypeLink, mode: 0o4755, uid: 100000, gid: 100001, linkname: "a/f",
			pax: map[string]string{"SCHILY.xattr.user.x": "1", "SCHILY.xattr.security.capability": fileCaps}},
		{name: "a/.wh.w", typ: tar.TypeReg},
		{name: "c", typ: tar.TypeChar, mode: 0o600},
		{name: "k", typ: tar.TypeBlock, mode: 0o660},
		{name: "p", typ: tar.TypeFifo, mode: 0o640},
		{name: "s", typ: tar.TypeSymlink, mode: 0o777, uid: 7, gid: 8, linkname: "/target"},
		{name: ".wh.wh2", typ: tar.TypeReg},
		{name: "z/", typ: tar.TypeDir, mode: 0o1777},
	}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	var got []*tar.Header
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, hdr)
		if hdr.Name == "a/f" {
			b, _ := io.ReadAll(tr)
			if string(b) != "hello" {
				t.Errorf("a/f content %q", b)
			}
			if !hdr.ModTime.Equal(t1) {
				t.Errorf("a/f mtime %v, want %v", hdr.ModTime, t1)
			}
		}
		if hdr.Name == "c" && (hdr.Devmajor != 1 || hdr.Devminor != 5) {
			t.Errorf("c is %d:%d", hdr.Devmajor, hdr.Devminor)
		}
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s has uname/gname %q/%q", hdr.Name, hdr.Uname, hdr.Gname)
		}
	}
	if len(got) != len(wantHdrs) {
		var names []string
		for _, h := range got {
			names = append(names, h.Name)
		}
		t.Fatalf("entries %v, want %d entries", names, len(wantHdrs))
	}
	for i, w := range wantHdrs {
		g := got[i]
		xattrs := map[string]string{}
		for k, v := range g.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xattrs[k] = v
			}
		}
		if w.pax == nil {
			w.pax = map[string]string{}
		}
		if g.Name != w.name || g.Typeflag != w.typ || g.Mode != w.mode || g.Uid != w.uid || g.Gid != w.gid ||
			g.Linkname != w.linkname || !equalMaps(xattrs, w.pax) {
			t.Errorf("entry %d: got %q type %q mode %#o owner %d:%d link %q xattrs %v\nwant %+v",
				i, g.Name, g.Typeflag, g.Mode, g.Uid, g.Gid, g.Linkname, xattrs, w)
		}
	}

	// Applying the diff reproduces the upper directory (minus the socket
	// and overlayfs' private xattrs).
	root, res, err := applyBytes(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Links) != 0 {
		t.Errorf("pending links %v", res.Links)
	}
	want := scanTree(t, up)
	delete(want, "sock")
	applied := scanTree(t, root)
	if !slices.Equal(sortedKeys(applied), sortedKeys(want)) {
		t.Fatalf("applied tree %v, want %v", sortedKeys(applied), sortedKeys(want))
	}
	for p, w := range want {
		g := applied[p]
		for k := range w.Xattrs {
			if fsat.IsOverlayXattr(k) && k != opaqueXattr {
				delete(w.Xattrs, k)
			}
		}
		same := g.Type == w.Type && g.Perm == w.Perm && g.UID == w.UID && g.GID == w.GID &&
			g.Content == w.Content && g.Target == w.Target && g.Major == w.Major && g.Minor == w.Minor &&
			equalMaps(g.Xattrs, w.Xattrs)
		if p != "." && g.Type != "whiteout" && g.Mtime != w.Mtime {
			same = false
		}
		if !same {
			t.Errorf("%s:\n applied %+v\n   upper %+v", p, g, w)
		}
	}
	if applied["a/f"].Ino != applied["a/g"].Ino {
		t.Error("a/f and a/g are not hard links after applying the diff")
	}
	if applied["a/w"].Ino == applied["wh2"].Ino {
		t.Error("whiteouts became hard links of each other")
	}
}

func TestWriteDiffErrors(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(up string) error
		entry string
	}{
		{"real whiteout-like name", func(up string) error {
			return os.WriteFile(filepath.Join(up, ".wh.evil"), nil, 0o644)
		}, ".wh.evil"},
		{"nested whiteout-like name", func(up string) error {
			if err := os.MkdirAll(filepath.Join(up, "d/e"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(up, "d/e/.wh..wh..opq"), nil, 0o644)
		}, "d/e/.wh..wh..opq"},
		{"redirect_dir", func(up string) error {
			if err := os.Mkdir(filepath.Join(up, "moved"), 0o755); err != nil {
				return err
			}
			return unix.Setxattr(filepath.Join(up, "moved"), "trusted.overlay.redirect", []byte("/orig"), 0)
		}, "moved"},
		{"metacopy", func(up string) error {
			if err := os.WriteFile(filepath.Join(up, "meta"), nil, 0o644); err != nil {
				return err
			}
			return unix.Setxattr(filepath.Join(up, "meta"), "trusted.overlay.metacopy", nil, 0)
		}, "meta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := t.TempDir()
			if err := tc.setup(up); err != nil {
				t.Fatal(err)
			}
			err := WriteDiff(io.Discard, up)
			if err == nil {
				t.Fatal("WriteDiff succeeded")
			}
			if want := `diff entry "` + tc.entry + `": `; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start with %q", err, want)
			}
		})
	}
}

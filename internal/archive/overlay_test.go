package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts an overlayfs with opts on a new directory and
// unmounts it in t.Cleanup. It skips the test when mounting is not allowed.
func mountOverlay(t *testing.T, opts string, flags uintptr) string {
	t.Helper()
	requireRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", flags, opts); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENODEV) {
			t.Skipf("cannot mount overlayfs: %v", err)
		}
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	t.Cleanup(func() { unmount(t, mnt) })
	return mnt
}

func unmount(t *testing.T, mnt string) {
	t.Helper()
	if err := unix.Unmount(mnt, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		t.Errorf("unmount %s: %v", mnt, err)
	}
}

// viewInfo is what a merged view shows for one path.
type viewInfo struct {
	Type, Content, Target string
	Perm, UID, GID        uint32
	Major, Minor          uint32
	Xattrs                map[string]string
	Mtime                 int64
}

func mergedView(t *testing.T, mnt string) map[string]viewInfo {
	t.Helper()
	out := map[string]viewInfo{}
	for p, fi := range scanTree(t, mnt) {
		if p == "." {
			continue
		}
		out[p] = viewInfo{Type: fi.Type, Content: fi.Content, Target: fi.Target, Perm: fi.Perm,
			UID: fi.UID, GID: fi.GID, Major: fi.Major, Minor: fi.Minor, Xattrs: fi.Xattrs, Mtime: fi.Mtime}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestOverlayMergedView(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	bottom := applyInto(t, base, "bottom",
		regE("a", "a", 0o644), regE("b", "b", 0o644),
		dirE("d/", 0o755), regE("d/x", "x", 0o644), regE("d/y", "y", 0o644),
		dirE("keep/", 0o755), regE("keep/k", "k", 0o644),
		regE("gone/deep/file", "g", 0o644),
		regE("w/old", "o", 0o644),
	)
	top := applyInto(t, base, "top",
		regE(".wh.a", "", 0o644),
		dirE("d/", 0o700), regE("d/.wh..wh..opq", "", 0o644), regE("d/z", "z", 0o644),
		regE("new", "n", 0o644),
		regE(".wh.gone", "", 0o644),
		regE("keep/k2", "k2", 0o644),
		regE("b", "b2", 0o600),
		regE(".wh.w", "", 0o644),
		regE("w/new", "w", 0o644),
	)
	mnt := mountOverlay(t, "lowerdir="+top+":"+bottom, unix.MS_RDONLY)
	view := mergedView(t, mnt)
	wantPaths := []string{"b", "d", "d/z", "keep", "keep/k", "keep/k2", "new", "w", "w/new"}
	if got := sortedKeys(view); !slices.Equal(got, wantPaths) {
		t.Fatalf("merged view holds %v, want %v", got, wantPaths)
	}
	for p, content := range map[string]string{"b": "b2", "d/z": "z", "keep/k": "k", "keep/k2": "k2", "new": "n"} {
		if view[p].Content != sha([]byte(content)) {
			t.Errorf("%s: wrong content in merged view", p)
		}
	}
	if view["d"].Perm != 0o700 || view["b"].Perm != 0o600 {
		t.Errorf("merged view does not take metadata from the top layer: d %#o, b %#o", view["d"].Perm, view["b"].Perm)
	}
}

func TestWriteDiffThroughOverlay(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	lower := applyInto(t, base, "lower",
		dirE("etc/", 0o755),
		regE("etc/modify", "old", 0o644),
		regE("etc/delete", "bye", 0o644),
		regE("etc/chmod", "c", 0o644),
		regE("etc/hl1", "hl", 0o644),
		linkE("etc/hl2", "etc/hl1"),
		symE("etc/link", "modify"),
		dirE("rmdir/", 0o755),
		regE("rmdir/a", "a", 0o644),
		regE("rmdir/sub/b", "b", 0o644),
		dirE("keep/", 0o755),
		regE("keep/k", "k", 0o644).xattr("user.k", "v"),
	)
	upper := filepath.Join(base, "upper")
	work := filepath.Join(base, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mnt := mountOverlay(t, "lowerdir="+lower+",upperdir="+upper+",workdir="+work+",redirect_dir=off,metacopy=off", 0)
	at := func(p string) string { return filepath.Join(mnt, p) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(at("etc/modify"), []byte("new content"), 0o644))
	must(os.Remove(at("etc/delete")))
	must(os.Remove(at("etc/hl2")))
	must(unix.Chmod(at("etc/chmod"), 0o4755))
	must(os.RemoveAll(at("rmdir")))
	must(os.Mkdir(at("rmdir"), 0o700))
	must(os.WriteFile(at("rmdir/fresh"), []byte("fresh"), 0o600))
	must(os.Mkdir(at("new"), 0o750))
	must(os.Chown(at("new"), 1000, 1000))
	must(os.WriteFile(at("new/file"), []byte("file"), 0o640))
	must(unix.Setxattr(at("new/file"), "user.n", []byte("nv"), 0))
	must(os.Chtimes(at("new/file"), t2, t1))
	must(os.WriteFile(at("new/h1"), []byte("shared"), 0o644))
	must(os.Link(at("new/h1"), at("new/h2")))
	must(os.Symlink("../etc/modify", at("new/sym")))
	must(unix.Mkfifo(at("new/fifo"), 0o600))
	must(unix.Mknod(at("new/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Chmod(at("new/null"), 0o666))
	want := mergedView(t, mnt)
	unmount(t, mnt)

	var diff bytes.Buffer
	if err := WriteDiff(&diff, upper); err != nil {
		t.Fatalf("WriteDiff: %v", err)
	}
	var again bytes.Buffer
	if err := WriteDiff(&again, upper); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(diff.Bytes(), again.Bytes()) {
		t.Error("WriteDiff is not deterministic")
	}

	var names []string
	tr := tar.NewReader(bytes.NewReader(diff.Bytes()))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: uname %q gname %q, want empty", hdr.Name, hdr.Uname, hdr.Gname)
		}
		for k := range hdr.PAXRecords {
			if strings.Contains(k, "overlay") {
				t.Errorf("%s: overlay xattr %s leaked into the diff", hdr.Name, k)
			}
		}
		if hdr.Name == "new/h2" && (hdr.Typeflag != tar.TypeLink || hdr.Linkname != "new/h1") {
			t.Errorf("new/h2 is %q -> %q, want a hard link to new/h1", hdr.Typeflag, hdr.Linkname)
		}
	}
	wantNames := []string{
		"etc/", "etc/chmod", "etc/.wh.delete", "etc/.wh.hl2", "etc/modify",
		"new/", "new/fifo", "new/file", "new/h1", "new/h2", "new/null", "new/sym",
		"rmdir/", "rmdir/.wh..wh..opq", "rmdir/fresh",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("diff entries\n%v\nwant\n%v", names, wantNames)
	}

	applied := filepath.Join(base, "applied")
	if err := os.Mkdir(applied, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := ApplyLayer(applied, bytes.NewReader(diff.Bytes()))
	if err != nil {
		t.Fatalf("applying the diff: %v", err)
	}
	if len(res.Links) != 0 {
		t.Errorf("unexpected pending links %v", res.Links)
	}
	mnt2 := mountOverlay(t, "lowerdir="+applied+":"+lower, unix.MS_RDONLY)
	got := mergedView(t, mnt2)
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		t.Fatalf("re-applied view holds %v\nwant %v", sortedKeys(got), sortedKeys(want))
	}
	for _, p := range sortedKeys(want) {
		g, w := got[p], want[p]
		if g.Type != w.Type || g.Content != w.Content || g.Target != w.Target || g.Perm != w.Perm ||
			g.UID != w.UID || g.GID != w.GID || g.Major != w.Major || g.Minor != w.Minor ||
			!equalMaps(g.Xattrs, w.Xattrs) || g.Mtime != w.Mtime {
			t.Errorf("%s differs:\n got %+v\nwant %+v", p, g, w)
		}
	}
	var h1, h2 unix.Stat_t
	must(unix.Lstat(filepath.Join(applied, "new/h1"), &h1))
	must(unix.Lstat(filepath.Join(applied, "new/h2"), &h2))
	if h1.Ino != h2.Ino {
		t.Error("new/h1 and new/h2 are not hard links of each other after re-applying")
	}
	for p, wantType := range map[string]string{"etc/delete": "whiteout", "etc/hl2": "whiteout"} {
		if fi := statInfo(t, filepath.Join(applied, p)); fi.Type != wantType {
			t.Errorf("applied %s is %s, want %s", p, fi.Type, wantType)
		}
	}
	if x := lxattrs(t, filepath.Join(applied, "rmdir")); x[opaqueXattr] != "y" {
		t.Errorf("applied rmdir is not opaque: %v", x)
	}
}

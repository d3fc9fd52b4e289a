package buildctx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// hostileRoot makes base/outside (canaries) and base/a/b/rootfs, whose
// symlinks all point out of it in various ways.
func hostileRoot(t *testing.T) (base, outside, rootfs string) {
	base = t.TempDir()
	outside = filepath.Join(base, "outside")
	rootfs = filepath.Join(base, "a", "b", "rootfs")
	mkfiles(t, outside, map[string]string{"canary": "canary", "dir/canary": "canary"})
	mkfiles(t, base, map[string]string{"a/b/sibling": "sibling"})
	mkfiles(t, rootfs, map[string]string{
		"etc":           "link:" + outside,                // /etc -> /host/etc style
		"abs":           "link:/",                         // absolute to the root
		"up":            "link:../../../..",               // climbs
		"deep/up":       "link:../../../../../../outside", // climbs to a real outside dir name
		"hostfile":      "link:" + filepath.Join(outside, "canary"),
		"relhostfile":   "link:../../../outside/canary",
		"loop":          "link:loop",
		"usr/lib/x":     "x",
		"lib":           "link:usr/lib",
		"app/sub":       "link:" + filepath.Join(outside, "dir"),
		"dotdotfile":    "link:../sibling",
		"chain/a":       "link:../chain/b",
		"chain/b":       "link:/up/outside",
		"file-not-dir":  "f",
		"dangling":      "link:/nonexistent/dir",
		"relup-in-root": "link:../../../../etc",
	})
	return base, outside, rootfs
}

// checkOutside fails if anything outside rootfs changed.
func checkOutside(t *testing.T, base, rootfs string, before map[string]string) {
	t.Helper()
	after := snapshot(t, base)
	for k := range after {
		if strings.HasPrefix(filepath.Join(base, k)+"/", rootfs+"/") {
			delete(after, k)
		}
	}
	sameSnapshot(t, "outside rootfs", before, after)
}

func outsideSnapshot(t *testing.T, base, rootfs string) map[string]string {
	s := snapshot(t, base)
	for k := range s {
		if strings.HasPrefix(filepath.Join(base, k)+"/", rootfs+"/") {
			delete(s, k)
		}
	}
	return s
}

func TestHostileRootfsDestinations(t *testing.T) {
	tests := []struct {
		dest   string
		args   []string
		landed string // where a.txt (or x.txt for a directory source) must appear inside rootfs
		errOK  bool
	}{
		{dest: "/etc/", args: []string{"a.txt"}, landed: "OUTSIDE/a.txt"},
		{dest: "/etc/passwd", args: []string{"a.txt"}, landed: "OUTSIDE/passwd"},
		{dest: "/etc/canary", args: []string{"a.txt"}, landed: "OUTSIDE/canary"},
		{dest: "/abs/x/", args: []string{"a.txt"}, landed: "x/a.txt"},
		{dest: "/up/y/", args: []string{"a.txt"}, landed: "y/a.txt"},
		{dest: "/deep/up/", args: []string{"a.txt"}, landed: "outside/a.txt"},
		{dest: "/hostfile", args: []string{"a.txt"}, landed: "hostfile"},
		{dest: "/relhostfile", args: []string{"a.txt"}, landed: "relhostfile"},
		{dest: "/dotdotfile", args: []string{"a.txt"}, landed: "dotdotfile"},
		{dest: "/lib/", args: []string{"a.txt"}, landed: "usr/lib/a.txt"},
		{dest: "/chain/a/", args: []string{"a.txt"}, landed: "outside/a.txt"},
		{dest: "/dangling/", args: []string{"a.txt"}, landed: "nonexistent/dir/a.txt"},
		{dest: "/relup-in-root/z", args: []string{"a.txt"}, landed: "OUTSIDE/z"},
		{dest: "/app", args: []string{"dir"}, landed: "OUTSIDE/dir/y.txt"},
		{dest: "/", args: []string{"dir"}, landed: "OUTSIDE/x.txt"},
		{dest: "/loop/", args: []string{"a.txt"}, errOK: true},
		{dest: "/file-not-dir/x", args: []string{"a.txt"}, errOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.dest+strings.Join(tt.args, ","), func(t *testing.T) {
			base, outside, rootfs := hostileRoot(t)
			ctx := t.TempDir()
			mkfiles(t, ctx, map[string]string{"a.txt": "A", "dir/x.txt": "X", "dir/sub/y.txt": "Y", "dir/etc/x.txt": "X"})
			before := outsideSnapshot(t, base, rootfs)
			err := copyArgs(t, openContext(t, ctx), rootfs, tt.dest, CopyOptions{}, tt.args...)
			checkOutside(t, base, rootfs, before)
			if tt.errOK {
				if err == nil {
					t.Error("expected an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			landed := strings.ReplaceAll(tt.landed, "OUTSIDE", strings.TrimPrefix(outside, "/"))
			if _, err := os.Lstat(filepath.Join(rootfs, landed)); err != nil {
				t.Errorf("not at %s: %v\n%q", landed, err, listFiles(t, rootfs))
			}
		})
	}
}

func TestHostileRootfsDirectorySources(t *testing.T) {
	// Copying a tree whose directories collide with hostile symlinks in
	// rootfs: every write stays inside rootfs.
	base, _, rootfs := hostileRoot(t)
	ctx := t.TempDir()
	mkfiles(t, ctx, map[string]string{
		"etc/passwd":        "p",
		"up/x":              "x",
		"deep/up/x":         "x",
		"hostfile":          "h",
		"app/sub/y":         "y",
		"lib/z":             "z",
		"chain/a/q":         "q",
		"relup-in-root/r":   "r",
		"dotdotfile":        "d",
		"abs/usr/lib/x":     "x2",
		"dangling/deeper/d": "d",
	})
	before := outsideSnapshot(t, base, rootfs)
	if err := copyArgs(t, openContext(t, ctx), rootfs, "/", CopyOptions{}, "."); err != nil {
		t.Fatal(err)
	}
	checkOutside(t, base, rootfs, before)
	// Through /abs -> / the file went to rootfs/usr/lib/x.
	if got := readFile(t, filepath.Join(rootfs, "usr/lib/x")); got != "x2" {
		t.Errorf("usr/lib/x = %q", got)
	}
	// A symlink in rootfs where the source has a file is replaced.
	if fi, err := os.Lstat(filepath.Join(rootfs, "hostfile")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("hostfile: %v %v", fi, err)
	}
}

func TestHostileRootfsParentsAndUnpack(t *testing.T) {
	base, _, rootfs := hostileRoot(t)
	ctx := t.TempDir()
	mkfiles(t, ctx, map[string]string{"etc/canary": "mine", "up/x": "x"})
	os.WriteFile(filepath.Join(ctx, "t.tar"), mkTar(t,
		tarEntry{name: "etc/canary", body: "evil"},
		tarEntry{name: "up/outside/canary", body: "evil"},
	), 0o644)
	before := outsideSnapshot(t, base, rootfs)
	tr := openContext(t, ctx)
	if err := copyArgs(t, tr, rootfs, "/", CopyOptions{Parents: true}, "etc/canary", "up/x"); err != nil {
		t.Fatal(err)
	}
	if err := copyArgs(t, tr, rootfs, "/", CopyOptions{Unpack: true}, "t.tar"); err != nil {
		t.Fatal(err)
	}
	if err := copyArgs(t, tr, rootfs, "/etc/", CopyOptions{Unpack: true}, "t.tar"); err != nil {
		t.Fatal(err)
	}
	checkOutside(t, base, rootfs, before)
}

// TestWalkInAgreesWithPathrs checks the resolver against pathrs-lite's
// OpenInRoot on the hostile layout.
func TestWalkInAgreesWithPathrs(t *testing.T) {
	_, _, rootfs := hostileRoot(t)
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	mkfiles(t, rootfs, map[string]string{"x": "rootx", "outside/dir/canary": "in", "nonexistent/dir/f": "f"})
	for _, p := range []string{
		"x", "/x", "abs/x", "up/x", "up/up/abs/x", "etc", "deep/up/dir/canary", "lib/x", "chain/a",
		"relup-in-root", "dangling/f", "../../x", "usr/../../x", "app/sub/canary", "loop", "hostfile", "file-not-dir/x",
	} {
		fd, _, werr := walkIn(int(root.Fd()), p, true, nil)
		f, perr := pathrs.OpenInRoot(rootfs, p)
		if (werr == nil) != (perr == nil) {
			t.Errorf("%s: walkIn err %v, pathrs err %v", p, werr, perr)
		}
		if werr == nil && perr == nil {
			var a, b unix.Stat_t
			unix.Fstat(fd, &a)
			unix.Fstat(int(f.Fd()), &b)
			if a.Ino != b.Ino || a.Dev != b.Dev {
				t.Errorf("%s: resolved to different inodes", p)
			}
		}
		if werr == nil {
			unix.Close(fd)
		}
		if perr == nil {
			f.Close()
		}
	}
}

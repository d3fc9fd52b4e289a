package build

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMkdirOwnedStaysInRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	outside := t.TempDir()
	rootfs := t.TempDir()
	// A hostile image: /a is a symlink to the host directory.
	if err := os.Symlink(outside, filepath.Join(rootfs, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootfs, "exists"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Through the dangling (in-root) symlink it may fail; it must not
	// write outside.
	mkdirOwned(rootfs, "/a/b/c", 65534, 65533)
	for _, p := range []string{"/exists/new/deeper", "rel/dir"} {
		if err := mkdirOwned(rootfs, p, 65534, 65533); err != nil {
			t.Fatalf("mkdirOwned %s: %v", p, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("mkdirOwned wrote outside the root: %v", entries)
	}
	for p, want := range map[string][2]uint32{
		"exists": {0, 0}, "exists/new": {65534, 65533}, "exists/new/deeper": {65534, 65533},
		"rel": {65534, 65533}, "rel/dir": {65534, 65533},
	} {
		fi, err := os.Stat(filepath.Join(rootfs, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != want[0] || st.Gid != want[1] || !fi.IsDir() {
			t.Errorf("%s: %d:%d dir=%v, want %d:%d", p, st.Uid, st.Gid, fi.IsDir(), want[0], want[1])
		}
	}
}

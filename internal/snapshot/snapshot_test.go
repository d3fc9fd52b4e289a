package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/meta"
)

func TestNewSpreadsLayerDirectories(t *testing.T) {
	root := t.TempDir()
	if _, err := New(filepath.Join(root, "snapshots"), meta.Open(filepath.Join(root, "meta.db"))); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(filepath.Join(root, "snapshots", "tmp"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		t.Skip("filesystem has no inode flags")
	}
	if err != nil {
		t.Fatal(err)
	}
	if flags&0x00020000 == 0 {
		t.Fatalf("snapshots/tmp flags %#x lack FS_TOPDIR_FL", flags)
	}
}

func TestCommitIsAtomicAndIdempotent(t *testing.T) {
	root := t.TempDir()
	db := meta.Open(filepath.Join(root, "meta.db"))
	s, err := New(filepath.Join(root, "snapshots"), db)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := s.Prepare("sha256:aa", "", "sha256:aa")
	p2, _ := s.Prepare("sha256:aa", "", "sha256:aa")
	os.WriteFile(filepath.Join(p1.Dir(), "f"), []byte("1"), 0o644)
	// A directory left by a transaction that never committed must not
	// block the number it would have used.
	os.MkdirAll(filepath.Join(root, "snapshots", "1", "fs", "stale"), 0o755)
	if err := s.Commit([]*Pending{p1, p2}); err != nil {
		t.Fatal(err)
	}
	var sn meta.Snapshot
	if err := db.View(func(tx *meta.Tx) error { sn, err = tx.Snapshot("sha256:aa"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir(sn), "f")); err != nil || string(b) != "1" {
		t.Fatalf("committed layer: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(sn), "stale")); !os.IsNotExist(err) {
		t.Fatal("stale directory content survived in a committed snapshot")
	}
	left, _ := os.ReadDir(filepath.Join(root, "snapshots", "tmp"))
	if len(left) != 0 {
		t.Fatalf("pending directories left: %v", left)
	}
	garbage, err := s.Garbage([]meta.Snapshot{sn})
	if err != nil || len(garbage) != 0 {
		t.Fatalf("garbage %v %v", garbage, err)
	}
}

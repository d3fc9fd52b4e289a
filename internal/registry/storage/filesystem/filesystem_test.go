package filesystem

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/registry/storage"
	"github.com/berth-dev/berth/internal/registry/storage/storagetest"
)

func newDriver(t *testing.T, root string) *Driver {
	t.Helper()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newDriver(t, t.TempDir())
	})
}

func TestOpenReturnsFile(t *testing.T) {
	d := newDriver(t, t.TempDir())
	if err := d.Put(t.Context(), "a/b", strings.NewReader("0123456789"), 10); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(t.Context(), "a/b", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, ok := rc.(*os.File)
	if !ok {
		t.Fatalf("Open returned a %T, want *os.File", rc)
	}
	if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 4 {
		t.Errorf("file is at %d, %v; want 4", pos, err)
	}
}

// A symlink planted inside the root must not lead a key out of it.
func TestSymlinkEscape(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	d := newDriver(t, root)
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, link := range []struct{ name, target string }{
		{"abs", outside},
		{"rel", filepath.Join("..", filepath.Base(outside))},
		{"up", ".."},
	} {
		if err := os.Symlink(link.target, filepath.Join(root, link.name)); err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		for _, key := range []string{link.name + "/secret", link.name + "/new/x"} {
			if rc, err := d.Open(ctx, key, 0); err == nil {
				rc.Close()
				t.Errorf("Open(%s) followed the symlink out of the root", key)
			}
			if _, err := d.Stat(ctx, key); err == nil {
				t.Errorf("Stat(%s) followed the symlink out of the root", key)
			}
			if err := d.Put(ctx, key, strings.NewReader("pwned"), 5); err == nil {
				t.Errorf("Put(%s) followed the symlink out of the root", key)
			}
			if err := d.Concat(ctx, "dst", []string{key}); err == nil {
				t.Errorf("Concat from %s followed the symlink out of the root", key)
			}
			if err := d.Concat(ctx, key, []string{"dst"}); err == nil {
				t.Errorf("Concat to %s followed the symlink out of the root", key)
			}
			// Whether or not Delete reports an error, the file must stay.
			d.Delete(ctx, key)
		}
		if err := d.Walk(ctx, link.name+"/", func(i storage.Info) error {
			t.Errorf("Walk(%s/) found %s outside the root", link.name, i.Key)
			return nil
		}); err != nil {
			t.Logf("Walk(%s/): %v", link.name, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(outside, "secret"))
	if err != nil || string(b) != "secret" {
		t.Errorf("outside/secret: %q, %v", b, err)
	}
	for _, dir := range []string{outside, filepath.Dir(root)} {
		if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
			t.Errorf("%s/new exists (%v)", dir, err)
		}
	}
}

// New clears what a crashed writer left in _tmp, but not while another
// driver on the same root may be writing there.
func TestStaleTempFiles(t *testing.T) {
	root := t.TempDir()
	stale := filepath.Join(root, tmpDir, "STALE")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("half a blob"), 0o644); err != nil {
		t.Fatal(err)
	}
	d1 := newDriver(t, root)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("New left %s (%v)", stale, err)
	}

	live := filepath.Join(root, tmpDir, "LIVE")
	if err := os.WriteFile(live, []byte("being written"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := newDriver(t, root)
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("New with another driver open removed its temp file: %v", err)
	}

	d1.Close()
	d2.Close()
	newDriver(t, root)
	if _, err := os.Stat(live); err == nil {
		t.Fatalf("New after every other driver closed kept %s", live)
	}
}

// Nothing is left in _tmp, and emptied directories are pruned.
func TestNoLeftovers(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	ctx := t.Context()
	if err := d.Put(ctx, "a/b/c", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "a/b/c", strings.NewReader("too long"), 3); err == nil {
		t.Fatal("Put with the wrong size succeeded")
	}
	for range 2 { // the second time, dst is already a link to src
		if err := d.Concat(ctx, "a/x", []string{"a/b/c"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Concat(ctx, "a/y", []string{"a/b/c", "a/x"}); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(filepath.Join(root, tmpDir)); err != nil || len(ents) != 0 {
		t.Errorf("_tmp holds %v (%v)", ents, err)
	}
	for _, k := range []string{"a/b/c", "a/x", "a/y"} {
		if err := d.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != tmpDir {
		t.Errorf("root holds %v after deleting everything, want just %s", ents, tmpDir)
	}
}

func TestReservedKeys(t *testing.T) {
	d := newDriver(t, t.TempDir())
	for _, key := range []string{"_tmp", "_tmp/x"} {
		err := d.Put(t.Context(), key, bytes.NewReader(nil), 0)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Put(%s) = %v, want an error naming the key", key, err)
		}
	}
	if err := d.Put(t.Context(), "x/_tmp", bytes.NewReader(nil), 0); err != nil {
		t.Errorf("_tmp below the top is an ordinary key: %v", err)
	}
}

// A linked Concat gives dst a fresh ModTime, as a copy would have.
func TestConcatModTime(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	if err := d.Put(t.Context(), "src", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(root, "src"), old, old); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	if err := d.Concat(t.Context(), "dst", []string{"src"}); err != nil {
		t.Fatal(err)
	}
	info, err := d.Stat(t.Context(), "dst")
	if err != nil {
		t.Fatal(err)
	}
	if info.ModTime.Before(start) {
		t.Errorf("dst ModTime %v, want after %v", info.ModTime, start)
	}
}

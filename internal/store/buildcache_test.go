package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/meta"
)

// TestBuildCacheKeepsLayers: a cache entry's layer (added from a
// directory, on top of an image's layer) survives the image's removal
// and GC until the entry is pruned; then GC reclaims it and its parent.
func TestBuildCacheKeepsLayers(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	base := layerTar(t, map[string]string{"base": "b"})
	rec, err := st.AddImage(ctx, newImage(t, [][]byte{base}, false, "base:1"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.Get(rec.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	step := layerTar(t, map[string]string{"step": "s"})
	info, err := st.Content.Put(bytes.NewReader(step), digest.FromBytes(step), int64(len(step)))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "upper")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "step"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The temp dir may be on another filesystem than the store: move it
	// next to the store first, as a build step's upper directory is.
	upper := filepath.Join(st.Root, "tmp", "upper")
	os.MkdirAll(filepath.Dir(upper), 0o755)
	if err := os.Rename(dir, upper); err != nil {
		t.Skipf("cannot place the upper directory in the store: %v", err)
	}
	chain, err := st.AddLayerDir(img.Config.RootFS.DiffIDs, info.Digest, upper, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(upper); !os.IsNotExist(err) {
		t.Errorf("AddLayerDir left its directory behind: %v", err)
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: info.Digest, Size: info.Size}
	if err := st.CachePut("k1", meta.CacheEntry{Layer: layer, ChainID: chain, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CachePut("empty", meta.CacheEntry{Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	dirs, err := st.LayerDirsOf(append(img.Config.RootFS.DiffIDs, info.Digest))
	if err != nil || len(dirs) != 2 {
		t.Fatalf("LayerDirsOf: %v %v", dirs, err)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "step")); err != nil || string(b) != "s" {
		t.Fatalf("the step's snapshot holds %q, %v", b, err)
	}
	if _, err := st.Remove("base:1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GC(true); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "empty"} {
		if _, ok, err := st.CacheGet(k); !ok || err != nil {
			t.Errorf("cache entry %s gone after GC: %v", k, err)
		}
	}
	if countSnapshots(t, st) != 2 {
		t.Errorf("%d snapshots after GC, want the step's and its parent's", countSnapshots(t, st))
	}
	assertClean(t, st)
	if _, ok, _ := st.CacheGet("nope"); ok {
		t.Error("a key never put is a hit")
	}
	n, err := st.CachePrune(time.Now().Add(time.Second))
	if err != nil || n != 2 {
		t.Fatalf("CachePrune: %d, %v", n, err)
	}
	res, err := st.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	if countSnapshots(t, st) != 0 || res.Blobs == 0 {
		t.Errorf("after pruning the cache GC left %d snapshots (removed %d blobs)", countSnapshots(t, st), res.Blobs)
	}
	if _, ok, _ := st.CacheGet("k1"); ok {
		t.Error("pruned entry is still a hit")
	}
}

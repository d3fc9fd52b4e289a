package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
)

// layerTar builds an uncompressed layer with the given files.
func layerTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// newImage assembles documents for layers (plain tars); compress chooses
// gzip blobs. diffIDs may be overridden to test verification.
func newImage(t *testing.T, layers [][]byte, compress bool, names ...string) NewImage {
	t.Helper()
	var descs []ocispec.Descriptor
	var diffIDs []digest.Digest
	var ls []Layer
	for _, l := range layers {
		blob, mt := l, ocispec.MediaTypeImageLayer
		if compress {
			blob, mt = gz(t, l), ocispec.MediaTypeImageLayerGzip
		}
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
		descs = append(descs, d)
		diffIDs = append(diffIDs, digest.FromBytes(l))
		ls = append(ls, Layer{Desc: d, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }})
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	m, err := image.NewManifest(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}, descs)
	if err != nil {
		t.Fatal(err)
	}
	return NewImage{Manifest: m, Config: cfg, Layers: ls, Names: names}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers in overlayfs form needs root")
	}
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func assertClean(t *testing.T, st *Store) {
	t.Helper()
	problems, err := st.Check()
	if err != nil || len(problems) > 0 {
		t.Fatalf("check: %v %v", problems, err)
	}
}

func countSnapshots(t *testing.T, st *Store) int {
	var n int
	st.DB.View(func(tx *meta.Tx) error {
		s, err := tx.Snapshots()
		n = len(s)
		return err
	})
	return n
}

func TestAddResolveRemove(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	base := layerTar(t, map[string]string{"etc/os": "base"})
	top := layerTar(t, map[string]string{"app/main": "v1"})
	rec1, err := st.AddImage(ctx, newImage(t, [][]byte{base}, true, "base"))
	if err != nil {
		t.Fatal(err)
	}
	rec2, err := st.AddImage(ctx, newImage(t, [][]byte{base, top}, false, "app:1", "registry.local/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	if n := countSnapshots(t, st); n != 2 {
		t.Fatalf("%d snapshots, want 2 (base shared)", n)
	}
	assertClean(t, st)

	for ref, want := range map[string]digest.Digest{
		"base": rec1.ID, "docker.io/library/base:latest": rec1.ID, "app:1": rec2.ID,
		rec2.ID.String(): rec2.ID, rec2.ID.Encoded()[:12]: rec2.ID,
	} {
		img, err := st.Get(ref)
		if err != nil || img.ID != want {
			t.Errorf("Get(%q) = %s, %v; want %s", ref, img.ID, err, want)
		}
	}
	if _, err := st.Get("app:2"); err == nil {
		t.Error("Get(app:2) found something")
	}

	dirs, err := st.LayerDirs(mustGet(t, st, "app:1"))
	if err != nil || len(dirs) != 2 {
		t.Fatalf("LayerDirs: %v %v", dirs, err)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "app/main")); err != nil || string(b) != "v1" {
		t.Fatalf("top layer: %q %v", b, err)
	}

	if _, err := st.Remove(rec2.ID.String(), false); err == nil || !strings.Contains(err.Error(), "must be forced") {
		t.Fatalf("removing an ID with two names: %v", err)
	}
	ev, err := st.Remove("app:1", false)
	if err != nil || len(ev) != 1 || ev[0].Untagged != "app:1" {
		t.Fatalf("untag: %+v %v", ev, err)
	}
	ev, err = st.Remove("registry.local/app:1", false)
	if err != nil || len(ev) != 2 || ev[1].Deleted != rec2.ID {
		t.Fatalf("last untag must delete: %+v %v", ev, err)
	}
	res, err := st.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	// app:1 stored its layers uncompressed, base gzipped: both of its layer
	// blobs, its config and its manifest go; the shared base snapshot stays.
	if res.Snapshots != 1 || res.Blobs != 4 {
		t.Fatalf("GC removed %d snapshots and %d blobs, want 1 and 4", res.Snapshots, res.Blobs)
	}
	assertClean(t, st)
	if _, err := st.Get("base"); err != nil {
		t.Fatal("base image lost after GC:", err)
	}
}

func mustGet(t *testing.T, st *Store, ref string) Image {
	img, err := st.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestAddImageRefusesBadLayers(t *testing.T) {
	good := layerTar(t, map[string]string{"a": "a"})
	tests := []struct {
		name   string
		mutate func(*NewImage)
		want   string
	}{
		{"blob digest mismatch", func(ni *NewImage) {
			ni.Layers[0].Open = func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(gz(t, layerTar(t, map[string]string{"a": "b"})))), nil
			}
		}, "digest"},
		{"truncated gzip", func(ni *NewImage) {
			b := gz(t, good)
			ni.Layers[0].Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b[:len(b)/2])), nil }
		}, "layer"},
		{"config from another manifest", func(ni *NewImage) { ni.Config = []byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`) }, "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			ni := newImage(t, [][]byte{good}, true, "x")
			tt.mutate(&ni)
			if _, err := st.AddImage(context.Background(), ni); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			imgs, _ := st.List()
			if len(imgs) != 0 || countSnapshots(t, st) != 0 {
				t.Fatalf("a refused image left %d images and %d snapshots", len(imgs), countSnapshots(t, st))
			}
			assertClean(t, st)
		})
	}
	t.Run("diff ID mismatch", func(t *testing.T) {
		st := openStore(t)
		ni := newImage(t, [][]byte{good}, true, "x")
		var cfg map[string]any
		json.Unmarshal(ni.Config, &cfg)
		cfg["rootfs"] = map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromString("nope")}}
		ni.Config, _ = json.Marshal(cfg)
		var m ocispec.Manifest
		json.Unmarshal(ni.Manifest, &m)
		m.Config.Digest, m.Config.Size = digest.FromBytes(ni.Config), int64(len(ni.Config))
		ni.Manifest, _ = json.Marshal(m)
		if _, err := st.AddImage(context.Background(), ni); err == nil || !strings.Contains(err.Error(), "diff ID") {
			t.Fatalf("err = %v", err)
		}
		if countSnapshots(t, st) != 0 {
			t.Fatal("snapshot committed for a layer with the wrong diff ID")
		}
		assertClean(t, st)
	})
}

func TestCheckFindsDamage(t *testing.T) {
	st := openStore(t)
	rec, err := st.AddImage(context.Background(), newImage(t, [][]byte{layerTar(t, map[string]string{"f": "x"})}, false, "d"))
	if err != nil {
		t.Fatal(err)
	}
	img := mustGet(t, st, "d")
	p, _ := st.Content.Path(img.Manifest.Layers[0].Digest)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("garbage"), 0o644)
	cfgPath, _ := st.Content.Path(rec.ID)
	os.Remove(cfgPath)
	problems, err := st.Check()
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(problems, "\n")
	if !strings.Contains(joined, "does not match") || !strings.Contains(joined, "config blob") {
		t.Fatalf("check missed damage:\n%s", joined)
	}
}

func TestMountImage(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	l1 := layerTar(t, map[string]string{"a": "1", "b": "lower"})
	l2 := layerTar(t, map[string]string{"b": "upper"})
	if _, err := st.AddImage(ctx, newImage(t, [][]byte{l1, l2}, true, "m")); err != nil {
		t.Fatal(err)
	}
	dir, err := st.Mount("m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Unmount("m") })
	for name, want := range map[string]string{"a": "1", "b": "upper"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q %v, want %q", name, b, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err == nil {
		t.Error("image mount is writable")
	}
	if _, err := st.Remove("m", false); err == nil {
		t.Error("removed a mounted image without force")
	}
	if err := st.Unmount("m"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("mount dir left behind: %v", err)
	}
}

func TestMountHidesOnlyRealWhiteouts(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	single := layerTar(t, map[string]string{"etc/hosts": "h", "etc/.wh.passwd": ""})
	if _, err := st.AddImage(ctx, newImage(t, [][]byte{single}, false, "one")); err != nil {
		t.Fatal(err)
	}
	l1 := layerTar(t, map[string]string{"a/keep": "k", "a/gone": "g"})
	l2 := layerTar(t, map[string]string{"a/.wh.gone": "", "a/.wh.never": "", "b/.wh.nothing": ""})
	if _, err := st.AddImage(ctx, newImage(t, [][]byte{l1, l2}, false, "two")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref  string
		dir  string
		want []string
	}{
		{"one", "etc", []string{"hosts"}},
		{"two", "a", []string{"keep"}},
		{"two", "b", nil},
	}
	for _, tt := range tests {
		mnt, err := st.Mount(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(mnt, tt.dir))
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		st.Unmount(tt.ref)
		if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s:/%s lists %v (%v), want %v", tt.ref, tt.dir, got, err, tt.want)
		}
	}
}

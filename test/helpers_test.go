//go:build linux

package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

var idRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// uniqueRepo returns a repository name no other run uses, such as
// "berthtest-1a2b3c4d/NAME", so peers' images can be removed safely.
func uniqueRepo(t testing.TB, name string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "berthtest-" + hex.EncodeToString(b[:]) + "/" + name
}

// berthImport runs `berth import ARGS...` and returns the image ID it
// printed, failing the test unless that is one line "sha256:<64 hex>".
func berthImport(t testing.TB, root string, args ...string) string {
	t.Helper()
	out := berth(t, root, append([]string{"import"}, args...)...)
	id := strings.TrimSpace(out)
	if !idRE.MatchString(id) || out != id+"\n" {
		t.Fatalf("berth import %s: printed %q, want one line sha256:<64 hex>", strings.Join(args, " "), out)
	}
	return id
}

// berthID is the image ID berth reports for ref ("sha256:<64 hex>").
func berthID(t testing.TB, root, ref string) string {
	t.Helper()
	id := strings.TrimSpace(berth(t, root, "inspect", "-f", "{{.Id}}", ref))
	if !idRE.MatchString(id) {
		t.Fatalf("berth inspect -f '{{.Id}}' %s: got %q, want sha256:<64 hex>", ref, id)
	}
	return id
}

func dockerID(t testing.TB, ref string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "docker", "inspect", "-f", "{{.Id}}", ref))
}

// podmanID is podman's image ID with the "sha256:" prefix docker and berth use
// (podman prints the bare hex).
func podmanID(t testing.TB, ref string) string {
	t.Helper()
	id := strings.TrimSpace(run(t, "podman", "image", "inspect", "-f", "{{.Id}}", ref))
	if !strings.HasPrefix(id, "sha256:") {
		id = "sha256:" + id
	}
	return id
}

// assertLoaded checks that `load` output names every ref in Docker's form.
func assertLoaded(t testing.TB, out string, refs ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, ref := range refs {
		want := "Loaded image: " + ref
		found := false
		for _, l := range lines {
			if strings.TrimSpace(l) == want {
				found = true
			}
		}
		if !found {
			t.Errorf("load output lacks %q; got:\n%s", want, out)
		}
	}
}

// systemCheck runs `berth system check` and fails the test unless it exits 0.
func systemCheck(t testing.TB, root string) {
	t.Helper()
	code, stdout, stderr := berthErr(t, root, "system", "check")
	if code != 0 {
		t.Fatalf("berth system check: exit %d, want 0\n--- stdout\n%s\n--- stderr\n%s", code, stdout, stderr)
	}
}

// checkLoaded is run after every load: the store must be consistent, and the
// image's mounted root filesystem must hold busybox plus the given files
// (path relative to / -> exact content).
func checkLoaded(t testing.TB, root, ref string, files map[string]string) {
	t.Helper()
	systemCheck(t, root)

	dir := strings.TrimSpace(berth(t, root, "image", "mount", ref))
	if dir == "" || !filepath.IsAbs(dir) {
		t.Fatalf("berth image mount %s: got %q, want an absolute path", ref, dir)
	}
	unmounted := false
	defer func() {
		if !unmounted {
			berthErr(t, root, "image", "unmount", ref)
		}
	}()

	fi, err := os.Stat(filepath.Join(dir, "bin", "busybox"))
	if err != nil {
		t.Fatalf("mounted image %s: %v", ref, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("mounted image %s: bin/busybox mode %v, want an executable file", ref, fi.Mode())
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin", "sh")); err != nil || target != "busybox" {
		t.Errorf("mounted image %s: bin/sh -> %q (%v), want a symlink to busybox", ref, target, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("mounted image %s: tmp: %v %v, want drwxrwxrwt", ref, fi.Mode(), err)
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Errorf("mounted image %s: %v", ref, err)
		} else if string(got) != want {
			t.Errorf("mounted image %s: /%s = %q, want %q", ref, p, got, want)
		}
	}

	berth(t, root, "image", "unmount", ref)
	unmounted = true
	if isMountPoint(dir) {
		t.Errorf("berth image unmount %s: %s is still a mount point", ref, dir)
	}
}

// assertAbsent checks that path (relative to /) does not exist in the
// mounted root filesystem of ref, e.g. because an upper layer deleted it.
func assertAbsent(t testing.TB, root, ref, path string) {
	t.Helper()
	dir := strings.TrimSpace(berth(t, root, "image", "mount", ref))
	_, err := os.Lstat(filepath.Join(dir, path))
	berth(t, root, "image", "unmount", ref)
	if !os.IsNotExist(err) {
		t.Errorf("mounted image %s: /%s exists (err %v), want it deleted by the upper layer's whiteout", ref, path, err)
	}
}

func isMountPoint(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && unescapeMountinfo(f[4]) == dir {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// reading and writing archives

// tarFiles reads a (possibly gzip-compressed) tar into memory: name -> data
// for regular files, with directories listed as name -> "" (names without a
// leading "./" and without trailing "/"); symlinks to files inside the
// archive read as their targets.
func tarFiles(t testing.TB, file string) map[string][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		f.Seek(0, io.SeekStart)
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	} else {
		f.Seek(0, io.SeekStart)
	}
	files := map[string][]byte{}
	links := map[string]string{} // symlink -> target, as docker save (<=24) writes for shared layers
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("%s: %s: %v", file, h.Name, err)
			}
			files[name] = data
		case tar.TypeDir:
			files[name] = nil
		case tar.TypeSymlink:
			links[name] = path.Join(path.Dir(name), h.Linkname)
		}
	}
	for name, target := range links {
		if data, ok := files[target]; ok {
			files[name] = data
		}
	}
	return files
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType,omitempty"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType,omitempty"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
}

func blobPath(digest string) string {
	return "blobs/" + strings.Replace(digest, ":", "/", 1)
}

// ociImages resolves an OCI image layout inside an archive: for every image
// manifest reachable from index.json (following nested indexes), its
// descriptor in the top index and its manifest. Blobs are checked against
// their digests and sizes.
func ociImages(t testing.TB, files map[string][]byte) (descs []ociDescriptor, manifests []ociManifest) {
	t.Helper()
	if _, ok := files["oci-layout"]; !ok {
		t.Fatal("archive has no oci-layout")
	}
	var idx ociIndex
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	blob := func(d ociDescriptor) []byte {
		b, ok := files[blobPath(d.Digest)]
		if !ok {
			t.Fatalf("OCI layout: blob %s missing", d.Digest)
		}
		if digestOf(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("OCI layout: blob %s: digest %s size %d, want size %d", d.Digest, digestOf(b), len(b), d.Size)
		}
		return b
	}
	var walk func(top ociDescriptor, d ociDescriptor)
	walk = func(top ociDescriptor, d ociDescriptor) {
		b := blob(d)
		switch d.MediaType {
		case "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json":
			var sub ociIndex
			if err := json.Unmarshal(b, &sub); err != nil {
				t.Fatalf("index %s: %v", d.Digest, err)
			}
			for _, m := range sub.Manifests {
				walk(top, m)
			}
		default:
			var m ociManifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("manifest %s: %v", d.Digest, err)
			}
			blob(m.Config)
			descs = append(descs, top)
			manifests = append(manifests, m)
		}
	}
	for _, d := range idx.Manifests {
		walk(d, d)
	}
	return descs, manifests
}

// ociConfigDigests returns the config digest of every image in an OCI
// archive: that is the image ID a loader must give it.
func ociConfigDigests(t testing.TB, path string) []string {
	t.Helper()
	_, ms := ociImages(t, tarFiles(t, path))
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.Config.Digest)
	}
	return ids
}

// dockerManifest parses a Docker archive's manifest.json and checks that the
// files it names exist; the config digests are the image IDs.
func dockerManifest(t testing.TB, files map[string][]byte) []dockerManifestEntry {
	t.Helper()
	data, ok := files["manifest.json"]
	if !ok {
		t.Fatal("archive has no manifest.json")
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	for _, e := range entries {
		for _, p := range append([]string{e.Config}, e.Layers...) {
			if _, ok := files[p]; !ok {
				t.Fatalf("manifest.json names %s, which is not in the archive", p)
			}
		}
	}
	return entries
}

// gzipFile writes a gzip-compressed copy of src to dst.
func gzipFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeDockerArchive writes a one-layer docker-archive (the format of
// `docker save` up to Docker 24) by hand, without any peer: the layer is the
// given uncompressed tar. It returns the image ID (the config digest).
func writeDockerArchive(t testing.TB, path, layerTar, repoTag string) string {
	t.Helper()
	layer, err := os.ReadFile(layerTar)
	if err != nil {
		t.Fatal(err)
	}
	diffID := digestOf(layer)
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339Nano)
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      created,
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd": []string{"sh"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]any{{
			"created":    created,
			"created_by": "berth integration test",
		}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := digestOf(cfgJSON)
	hexID := strings.TrimPrefix(id, "sha256:")
	layerName := strings.TrimPrefix(diffID, "sha256:") + "/layer.tar"
	manifest, _ := json.Marshal([]dockerManifestEntry{{
		Config:   hexID + ".json",
		RepoTags: []string{repoTag},
		Layers:   []string{layerName},
	}})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(diffID, "sha256:") + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	add(layerName, layer)
	add(hexID+".json", cfgJSON)
	add("manifest.json", manifest)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return id
}

// checkBerthArchive checks what `berth save` wrote: a Docker archive
// (manifest.json, repositories) and an OCI layout (oci-layout, index.json,
// blobs) that both carry an image whose config digest is wantID, tagged
// wantTags in manifest.json.
func checkBerthArchive(t testing.TB, path, wantID string, wantTags ...string) {
	t.Helper()
	files := tarFiles(t, path)
	want := []string{"manifest.json", "oci-layout", "index.json"}
	if len(wantTags) > 0 {
		want = append(want, "repositories") // Docker writes it only for tagged images
	}
	for _, name := range want {
		if _, ok := files[name]; !ok {
			t.Errorf("berth save: archive lacks %s", name)
		}
	}
	entries := dockerManifest(t, files)
	if len(entries) != 1 {
		t.Fatalf("berth save: manifest.json has %d entries, want 1", len(entries))
	}
	e := entries[0]
	if got := digestOf(files[e.Config]); got != wantID {
		t.Errorf("berth save: manifest.json config %s has digest %s, want %s", e.Config, got, wantID)
	}
	if fmt.Sprint(e.RepoTags) != fmt.Sprint(wantTags) {
		t.Errorf("berth save: manifest.json RepoTags = %q, want %q", e.RepoTags, wantTags)
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[e.Config], &cfg); err != nil {
		t.Fatalf("berth save: config: %v", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		t.Fatalf("berth save: config has %d diff_ids, manifest.json %d layers", len(cfg.RootFS.DiffIDs), len(e.Layers))
	}
	for i, l := range e.Layers {
		if got := digestOf(files[l]); got != cfg.RootFS.DiffIDs[i] {
			t.Errorf("berth save: layer %s has digest %s, want diff_id %s", l, got, cfg.RootFS.DiffIDs[i])
		}
	}
	_, ms := ociImages(t, files)
	if len(ms) != 1 {
		t.Fatalf("berth save: index.json leads to %d images, want 1", len(ms))
	}
	if ms[0].Config.Digest != wantID {
		t.Errorf("berth save: OCI manifest config %s, want %s", ms[0].Config.Digest, wantID)
	}
	if len(ms[0].Layers) != len(e.Layers) {
		t.Errorf("berth save: OCI manifest has %d layers, manifest.json %d", len(ms[0].Layers), len(e.Layers))
	}
}

// imagegenSamples returns the small files test/imagegen wrote into its
// layer n (under opt/layer<n>/), sorted by name, with their contents.
func imagegenSamples(t testing.TB, layer []byte, n int) ([]string, map[string]string) {
	t.Helper()
	prefix := fmt.Sprintf("opt/layer%d/", n)
	var names []string
	contents := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("imagegen layer %d: %v", n, err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(h.Name, prefix) || h.Size > 64<<10 {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		contents[h.Name] = string(b)
	}
	sort.Strings(names)
	return names, contents
}

// assertPrunedEmpty runs `image prune -a -f` and checks that it left no
// image, no blob, no snapshot and no leftover of an interrupted write.
func assertPrunedEmpty(t testing.TB, root string) {
	t.Helper()
	berth(t, root, "image", "prune", "-a", "-f")
	if got := strings.TrimSpace(berth(t, root, "images", "-q", "-a")); got != "" {
		t.Errorf("after image prune -a -f: berth images -q -a = %q, want nothing", got)
	}
	for _, d := range []string{"content/ingest", "snapshots/tmp", "content/blobs/sha256"} {
		if left := dirEntries(t, filepath.Join(root, d)); len(left) > 0 {
			t.Errorf("after image prune -a -f: %s still holds %q", d, left)
		}
	}
	for _, name := range dirEntries(t, filepath.Join(root, "snapshots")) {
		if name != "tmp" {
			t.Errorf("after image prune -a -f (no images left): snapshots/%s remains", name)
		}
	}
}

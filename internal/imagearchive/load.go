package imagearchive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// Loaded is one image a load stored.
type Loaded struct {
	ID    digest.Digest
	Names []string // full names
}

// dockerManifest is one entry of a Docker archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Load reads a Docker or OCI archive (possibly compressed) from r and adds
// every image in it to the store.
func Load(ctx context.Context, st *store.Store, r io.Reader) ([]Loaded, error) {
	f, cleanup, err := seekable(st, r)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	idx, err := indexTar(f)
	if err != nil {
		return nil, err
	}
	switch {
	case idx.has("manifest.json"):
		return loadDocker(ctx, st, idx)
	case idx.has("index.json"):
		return loadOCI(ctx, st, idx)
	}
	return nil, errors.New("archive has neither manifest.json nor index.json: not an image archive")
}

// seekable returns r as a plain (decompressed) seekable file, spooling it
// to a temporary file in the store when it is a stream or compressed.
func seekable(st *store.Store, r io.Reader) (*os.File, func(), error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			head := make([]byte, 8)
			n, _ := io.ReadFull(f, head)
			if _, err := f.Seek(0, io.SeekStart); err == nil && archive.DetectCompression(head[:n]) == archive.Uncompressed {
				return f, func() {}, nil
			}
		}
	}
	plain, _, err := archive.DecompressStream(r)
	if err != nil {
		return nil, nil, err
	}
	defer plain.Close()
	dir := st.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(dir, "load-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, plain); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("reading archive: %w", err)
	}
	return tmp, cleanup, nil
}

func loadDocker(ctx context.Context, st *store.Store, idx *tarIndex) ([]Loaded, error) {
	raw, err := idx.readAll("manifest.json", image.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var entries []dockerManifest
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("archive manifest.json: %w", err)
	}
	var out []Loaded
	for _, e := range entries {
		l, err := loadDockerImage(ctx, st, idx, e)
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
	return out, nil
}

func loadDockerImage(ctx context.Context, st *store.Store, idx *tarIndex, e dockerManifest) (Loaded, error) {
	cfgRaw, err := idx.readAll(e.Config, image.MaxConfigSize)
	if err != nil {
		return Loaded{}, err
	}
	cfg, err := image.ParseConfig(cfgRaw)
	if err != nil {
		return Loaded{}, fmt.Errorf("archive member %q: %w", e.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return Loaded{}, fmt.Errorf("archive manifest.json: %d layers for config %q with %d diff IDs", len(e.Layers), e.Config, len(cfg.RootFS.DiffIDs))
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	layers := make([]store.Layer, len(e.Layers))
	descs := make([]ocispec.Descriptor, len(e.Layers))
	for i, name := range e.Layers {
		desc, err := dockerLayerDesc(idx, name, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return Loaded{}, err
		}
		descs[i] = desc
		layers[i] = store.Layer{Desc: desc, Open: memberOpener(idx, name)}
	}
	m, err := image.NewManifest(cfgDesc, descs)
	if err != nil {
		return Loaded{}, err
	}
	rec, err := st.AddImage(ctx, store.NewImage{Manifest: m, Config: cfgRaw, Layers: layers, Names: e.RepoTags})
	if err != nil {
		return Loaded{}, err
	}
	return Loaded{ID: rec.ID, Names: normalize(e.RepoTags)}, nil
}

// dockerLayerDesc works out the blob descriptor of a layer member: its name
// gives the digest in 25+ archives; an uncompressed layer's digest is its
// diff ID; anything else is hashed once.
func dockerLayerDesc(idx *tarIndex, name string, diffID digest.Digest) (ocispec.Descriptor, error) {
	r, err := idx.open(name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	head := make([]byte, 8)
	n, _ := r.ReadAt(head, 0)
	comp := archive.DetectCompression(head[:n])
	desc := ocispec.Descriptor{Size: r.Size(), MediaType: layerMediaType(comp)}
	if d, ok := digestFromPath(name); ok {
		desc.Digest = d
		return desc, nil
	}
	if comp == archive.Uncompressed {
		desc.Digest = diffID
		return desc, nil
	}
	dg := digest.Canonical.Digester()
	if _, err := io.Copy(dg.Hash(), r); err != nil {
		return desc, fmt.Errorf("archive member %q: %w", name, err)
	}
	desc.Digest = dg.Digest()
	return desc, nil
}

func layerMediaType(c archive.Compression) string {
	switch c {
	case archive.Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case archive.Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// digestFromPath recognises "blobs/<alg>/<hex>" member names.
func digestFromPath(name string) (digest.Digest, bool) {
	parts := strings.Split(cleanMember(name), "/")
	if len(parts) != 3 || parts[0] != "blobs" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
	return d, d.Validate() == nil
}

func memberOpener(idx *tarIndex, name string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		r, err := idx.open(name)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(r), nil
	}
}

func normalize(names []string) []string {
	var out []string
	for _, n := range names {
		if full, err := image.NormalizeName(n); err == nil {
			out = append(out, full)
		}
	}
	return out
}

func blobPath(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}

// readBlob reads a small blob from an OCI layout and verifies it.
func readBlob(idx *tarIndex, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor digest %q: %w", desc.Digest, err)
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes is more than %d", desc.Digest, desc.Size, limit)
	}
	b, err := idx.readAll(blobPath(desc.Digest), limit)
	if err != nil {
		return nil, err
	}
	if desc.Digest.Algorithm().FromBytes(b) != desc.Digest || int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("blob %s: content does not match its descriptor", desc.Digest)
	}
	return b, nil
}

func loadOCI(ctx context.Context, st *store.Store, idx *tarIndex) ([]Loaded, error) {
	raw, err := idx.readAll("index.json", image.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	index, err := image.ParseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("archive index.json: %w", err)
	}
	var out []Loaded
	for _, desc := range index.Manifests {
		names := ociNames(desc)
		l, err := loadOCIManifest(ctx, st, idx, desc, names, 0)
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
	return out, nil
}

// ociNames reads the image name of an index entry from its annotations:
// containerd's full name first, then a ref.name that is a full reference
// (a bare tag names nothing).
func ociNames(desc ocispec.Descriptor) []string {
	if n := desc.Annotations["io.containerd.image.name"]; n != "" {
		return []string{n}
	}
	ref := desc.Annotations[ocispec.AnnotationRefName]
	if strings.ContainsAny(ref, ":/") {
		if _, err := image.NormalizeName(ref); err == nil {
			return []string{ref}
		}
	}
	return nil
}

func loadOCIManifest(ctx context.Context, st *store.Store, idx *tarIndex, desc ocispec.Descriptor, names []string, depth int) (Loaded, error) {
	if depth > 4 {
		return Loaded{}, fmt.Errorf("index %s: nested too deeply", desc.Digest)
	}
	raw, err := readBlob(idx, desc, image.MaxManifestSize)
	if err != nil {
		return Loaded{}, err
	}
	mt := desc.MediaType
	if mt == "" {
		if mt, err = image.DetectMediaType(raw); err != nil {
			return Loaded{}, fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
	}
	if image.IsIndex(mt) {
		sub, err := image.ParseIndex(raw)
		if err != nil {
			return Loaded{}, fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		chosen, err := image.SelectManifest(sub, image.Platform())
		if err != nil {
			return Loaded{}, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		return loadOCIManifest(ctx, st, idx, chosen, names, depth+1)
	}
	m, err := image.ParseManifest(raw)
	if err != nil {
		return Loaded{}, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	cfgRaw, err := readBlob(idx, m.Config, image.MaxConfigSize)
	if err != nil {
		return Loaded{}, err
	}
	layers := make([]store.Layer, len(m.Layers))
	for i, l := range m.Layers {
		if !image.IsLayer(l.MediaType) {
			return Loaded{}, fmt.Errorf("manifest %s: layer %s has media type %q", desc.Digest, l.Digest, l.MediaType)
		}
		layers[i] = store.Layer{Desc: l, Open: memberOpener(idx, blobPath(l.Digest))}
	}
	rec, err := st.AddImage(ctx, store.NewImage{Manifest: raw, Config: cfgRaw, Layers: layers, Names: names})
	if err != nil {
		return Loaded{}, err
	}
	return Loaded{ID: rec.ID, Names: normalize(names)}, nil
}

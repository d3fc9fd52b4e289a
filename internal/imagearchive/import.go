package imagearchive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// ImportOptions are the knobs of `import`.
type ImportOptions struct {
	// Name to tag the image with; empty leaves it untagged.
	Name string
	// Changes are Dockerfile instructions applied to the config.
	Changes []string
	// Message is the history comment; empty means "Imported from <Source>".
	Message string
	// Source names where the tarball came from ("-" for stdin).
	Source string
}

// Import turns a root filesystem tarball (plain or compressed) into a
// one-layer image, as `docker import` does. The layer is stored
// uncompressed, so its blob digest is its diff ID.
func Import(ctx context.Context, st *store.Store, r io.Reader, opts ImportOptions) (store.Image, error) {
	var cfg image.Config
	if err := image.ApplyChanges(&cfg, opts.Changes); err != nil {
		return store.Image{}, err
	}
	if opts.Name != "" {
		if _, err := image.NormalizeName(opts.Name); err != nil {
			return store.Image{}, err
		}
	}
	plain, _, err := archive.DecompressStream(r)
	if err != nil {
		return store.Image{}, err
	}
	defer plain.Close()
	w, err := st.Content.NewWriter("")
	if err != nil {
		return store.Image{}, err
	}
	defer w.Close()
	if _, err := io.Copy(w, plain); err != nil {
		return store.Image{}, fmt.Errorf("reading %s: %w", opts.Source, err)
	}
	layer, err := w.Commit("", -1)
	if err != nil {
		return store.Image{}, err
	}
	now := time.Now().UTC()
	comment := opts.Message
	if comment == "" {
		comment = "Imported from " + opts.Source
	}
	plat := image.Platform()
	doc := image.Image{
		Created:      &now,
		Architecture: plat.Architecture,
		Variant:      plat.Variant,
		OS:           plat.OS,
		Config:       cfg,
		Comment:      opts.Message,
		RootFS:       ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}},
		History:      []ocispec.History{{Created: &now, Comment: comment}},
	}
	cfgRaw, err := json.Marshal(doc)
	if err != nil {
		return store.Image{}, err
	}
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: layer.Digest, Size: layer.Size}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	m, err := image.NewManifest(cfgDesc, []ocispec.Descriptor{layerDesc})
	if err != nil {
		return store.Image{}, err
	}
	ni := store.NewImage{Manifest: m, Config: cfgRaw, Layers: []store.Layer{{Desc: layerDesc}}}
	if opts.Name != "" {
		ni.Names = []string{opts.Name}
	}
	rec, err := st.AddImage(ctx, ni)
	if err != nil {
		return store.Image{}, err
	}
	return st.Get(rec.ID.String())
}

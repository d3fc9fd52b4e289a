package build

import (
	"context"
	"encoding/json"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// export stores the target's state as an image, in the build's format.
func (b *builder) export(ctx context.Context, st *state) (store.Image, error) {
	step := b.prog.step("exporting to image")
	cfg := st.img
	cfg.Created = b.stamp(st)
	if cfg.Created == nil {
		t := time.Now().UTC()
		cfg.Created = &t
	}
	cfg.Container, cfg.DockerVersion, cfg.Parent, cfg.Comment = "", "", "", ""
	if len(b.opts.Labels) > 0 {
		cfg.Config.Labels = cloneMap(cfg.Config.Labels)
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		for k, v := range b.opts.Labels {
			cfg.Config.Labels[k] = v
		}
	}
	docker := b.opts.Format == "docker"
	if !docker {
		// The OCI config has no place for these.
		cfg.Config.Healthcheck, cfg.Config.OnBuild, cfg.Config.Shell = nil, nil, nil
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return store.Image{}, err
	}
	layers := make([]ocispec.Descriptor, len(st.layers))
	newLayers := make([]store.Layer, len(st.layers))
	for i, l := range st.layers {
		l.MediaType = layerType(l.MediaType, docker)
		l.Annotations, l.URLs, l.Platform = nil, nil, nil
		layers[i] = l
		newLayers[i] = store.Layer{Desc: l}
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	var manifest []byte
	if docker {
		cfgDesc.MediaType = image.MediaTypeDockerConfig
		manifest, err = json.Marshal(struct {
			SchemaVersion int                  `json:"schemaVersion"`
			MediaType     string               `json:"mediaType"`
			Config        ocispec.Descriptor   `json:"config"`
			Layers        []ocispec.Descriptor `json:"layers"`
		}{2, image.MediaTypeDockerManifest, cfgDesc, layers})
	} else {
		manifest, err = image.NewManifest(cfgDesc, layers)
	}
	if err != nil {
		return store.Image{}, err
	}
	rec, err := b.st.AddImage(ctx, store.NewImage{Manifest: manifest, Config: raw, Layers: newLayers})
	if err != nil {
		return store.Image{}, err
	}
	img, err := b.st.Get(rec.ID.String())
	if err != nil {
		return store.Image{}, err
	}
	step.done()
	b.prog.printf("#%d writing image %s done\n", step.n, img.ID)
	return img, nil
}

// layerType is a layer media type in the build's format (the bytes are
// the same).
func layerType(mt string, docker bool) string {
	type pair struct{ oci, docker string }
	for _, p := range []pair{
		{ocispec.MediaTypeImageLayer, image.MediaTypeDockerLayer},
		{ocispec.MediaTypeImageLayerGzip, image.MediaTypeDockerLayerGzip},
		{ocispec.MediaTypeImageLayerZstd, image.MediaTypeDockerLayerZstd},
	} {
		if mt == p.oci || mt == p.docker {
			if docker {
				return p.docker
			}
			return p.oci
		}
	}
	return mt
}

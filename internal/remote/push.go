package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// PushOptions are the knobs of `push`.
type PushOptions struct {
	Options
	// Compression for layers stored uncompressed: "gzip" (default) or "zstd".
	Compression string
}

// PushResult says what a push did.
type PushResult struct {
	Name   string
	Digest digest.Digest
	Size   int64
}

// Push uploads an image: blobs the registry lacks (layers stored
// uncompressed are compressed first, with a parallel gzip or zstd, and the
// compressed blob kept for the next push), then the manifest.
func Push(ctx context.Context, st *store.Store, ref string, opts PushOptions) (PushResult, error) {
	var res PushResult
	r, full, err := parseRef(ref, opts.Options)
	if err != nil {
		return res, err
	}
	res.Name = full
	tag, ok := r.(name.Tag)
	if !ok {
		return res, fmt.Errorf("push %s: a tag is needed, not a digest", ref)
	}
	img, err := st.Get(ref)
	if err != nil {
		return res, err
	}
	p := newProgress(opts.Out)
	p.line("The push refers to repository [%s]", r.Context().Name())
	layers := make([]ocispec.Descriptor, len(img.Manifest.Layers))
	for i, l := range img.Manifest.Layers {
		if layers[i], err = compressedLayer(st, l, opts.Compression); err != nil {
			return res, err
		}
		// The manifest is OCI: a layer pulled from a Docker manifest
		// takes its OCI type.
		layers[i].MediaType = image.OCILayerType(layers[i].MediaType)
	}
	manifest := img.Manifest
	manifest.MediaType = ocispec.MediaTypeImageManifest
	manifest.Layers = layers
	if manifest.Config.MediaType == image.MediaTypeDockerConfig {
		manifest.Config.MediaType = ocispec.MediaTypeImageConfig
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return res, err
	}
	sources := mountSources(img, r.Context())
	scopes := []string{r.Context().Scope(transport.PushScope)}
	for _, src := range sources {
		scopes = append(scopes, src.Scope(transport.PullScope))
	}
	c, err := newClient(ctx, r.Context(), opts.Options, scopes...)
	if err != nil {
		return res, err
	}
	for i := len(layers) - 1; i >= 0; i-- {
		short := image.ShortID(layers[i].Digest)
		switch from := c.existsOrMount(ctx, layers[i].Digest, sources); {
		case from == "":
			p.layer(short, "Preparing")
		case from == r.Context().RepositoryStr():
			p.layer(short, "Layer already exists")
		default:
			p.layer(short, "Mounted from "+from)
		}
	}
	core := &pushImage{st: st, manifest: raw, config: img.RawConfig, layers: layers, p: p}
	v1img, err := partial.CompressedToImage(core)
	if err != nil {
		return res, err
	}
	if err := ggcr.Write(tag, v1img, remoteOptions(ctx, r, opts.Options)...); err != nil {
		return res, fmt.Errorf("push %s: %w", ref, err)
	}
	res.Digest, res.Size = digest.FromBytes(raw), int64(len(raw))
	p.line("%s: digest: %s size: %d", tag.TagStr(), res.Digest, res.Size)
	if repo, err := image.Repository(full); err == nil {
		err = st.AddRepoDigest(img.ID, repo+"@"+res.Digest.String())
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// mountSources are the other repositories of the same registry the image
// is known in (from its repo digests): blobs can be mounted from them.
func mountSources(img store.Image, target name.Repository) []name.Repository {
	var out []name.Repository
	for _, rd := range img.RepoDigests {
		repo, _, _ := strings.Cut(rd, "@")
		src, err := name.NewRepository(repo)
		if err != nil || src.RegistryStr() != target.RegistryStr() || src.RepositoryStr() == target.RepositoryStr() {
			continue
		}
		out = append(out, src)
	}
	return out
}

// existsOrMount reports where the target repository gets blob d from: its
// own name when it has it, a source repository it was mounted from, or ""
// when it must be uploaded.
func (c *client) existsOrMount(ctx context.Context, d digest.Digest, sources []name.Repository) string {
	if c.hasBlob(ctx, d) {
		return c.repo.RepositoryStr()
	}
	for _, src := range sources {
		u := c.url("blobs/uploads/") + "?mount=" + url.QueryEscape(d.String()) + "&from=" + url.QueryEscape(src.RepositoryStr())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			continue
		}
		resp, err := c.http.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			return src.RepositoryStr()
		}
		if resp.StatusCode == http.StatusAccepted {
			// The registry opened an upload instead; cancel it.
			if loc := resp.Header.Get("Location"); loc != "" {
				c.cancelUpload(ctx, loc)
			}
		}
	}
	return ""
}

func (c *client) cancelUpload(ctx context.Context, loc string) {
	u, err := url.Parse(loc)
	if err != nil {
		return
	}
	if !u.IsAbs() {
		u.Scheme, u.Host = c.scheme, c.repo.RegistryStr()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return
	}
	if resp, err := c.http.Do(req); err == nil {
		resp.Body.Close()
	}
}

func (c *client) hasBlob(ctx context.Context, d digest.Digest) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("blobs/"+d.String()), nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// compressedLayer returns the descriptor of a compressed form of a layer
// blob, compressing and storing it once when the blob is plain.
func compressedLayer(st *store.Store, l ocispec.Descriptor, algo string) (ocispec.Descriptor, error) {
	if l.MediaType != ocispec.MediaTypeImageLayer && l.MediaType != image.MediaTypeDockerLayer {
		return l, nil
	}
	if algo == "" {
		algo = "gzip"
	}
	if d, ok, err := st.CompressedVariant(l.Digest, algo); err != nil || ok {
		return d, err
	}
	src, err := st.Content.Open(l.Digest)
	if err != nil {
		return l, err
	}
	defer src.Close()
	w, err := st.Content.NewWriter("")
	if err != nil {
		return l, err
	}
	defer w.Close()
	var enc io.WriteCloser
	mt := ocispec.MediaTypeImageLayerGzip
	switch algo {
	case "gzip":
		enc = pgzip.NewWriter(w)
	case "zstd":
		if enc, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault)); err != nil {
			return l, err
		}
		mt = ocispec.MediaTypeImageLayerZstd
	default:
		return l, fmt.Errorf("compression format %q: use gzip or zstd", algo)
	}
	if _, err := io.Copy(enc, src); err != nil {
		return l, fmt.Errorf("compressing layer %s: %w", l.Digest, err)
	}
	if err := enc.Close(); err != nil {
		return l, err
	}
	info, err := w.Commit("", -1)
	if err != nil {
		return l, err
	}
	d := ocispec.Descriptor{MediaType: mt, Digest: info.Digest, Size: info.Size}
	return d, st.SetCompressedVariant(l.Digest, algo, d)
}

// pushImage presents a stored image to go-containerregistry's writer.
type pushImage struct {
	st       *store.Store
	manifest []byte
	config   []byte
	layers   []ocispec.Descriptor
	p        *progress
}

func (i *pushImage) RawConfigFile() ([]byte, error) { return i.config, nil }
func (i *pushImage) MediaType() (types.MediaType, error) {
	return types.MediaType(ocispec.MediaTypeImageManifest), nil
}
func (i *pushImage) RawManifest() ([]byte, error) { return i.manifest, nil }

func (i *pushImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.layers {
		if l.Digest.String() == h.String() {
			return &pushLayer{st: i.st, desc: l, p: i.p}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not part of the image", h)
}

type pushLayer struct {
	st   *store.Store
	desc ocispec.Descriptor
	p    *progress
}

func (l *pushLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *pushLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *pushLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (l *pushLayer) Compressed() (io.ReadCloser, error) {
	f, err := l.st.Content.Open(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	short := image.ShortID(l.desc.Digest)
	l.p.layer(short, "Pushing")
	return &doneReader{ReadCloser: f,
		tick: func(n int64) { l.p.bytes(short, "Pushing", n, l.desc.Size) },
		done: func(int64) { l.p.layer(short, "Pushed") }}, nil
}

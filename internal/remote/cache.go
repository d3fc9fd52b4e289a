package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The media types of a build cache kept in a registry: an OCI manifest whose
// config is the cache's index and whose layers are the cached layers.
const (
	CacheArtifactType   = "application/vnd.berth.buildcache.v1"
	CacheIndexMediaType = "application/vnd.berth.buildcache.index.v1+json"
)

// maxCacheIndex bounds a cache index, as build.MaxCacheIndex does.
const maxCacheIndex = 64 << 20

// CacheRef is a build cache in a registry (--cache-to/--cache-from
// type=registry,ref=NAME:TAG).
type CacheRef struct {
	ref  name.Reference
	full string
	opts Options
}

// NewCacheRef names a registry build cache.
func NewCacheRef(ref string, opts Options) (*CacheRef, error) {
	r, full, err := parseRef(ref, opts)
	if err != nil {
		return nil, err
	}
	return &CacheRef{ref: r, full: full, opts: opts}, nil
}

func (c *CacheRef) String() string { return c.full }

// ReadIndex fetches the cache manifest and its index; nil when the
// reference does not exist yet.
func (c *CacheRef) ReadIndex(ctx context.Context) ([]byte, error) {
	opts := remoteOptions(ctx, c.ref, c.opts)
	desc, err := ggcr.Get(c.ref, opts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("cache manifest: %w", err)
	}
	if m.ArtifactType != CacheArtifactType || m.Config.MediaType != CacheIndexMediaType {
		return nil, fmt.Errorf("%s is not a berth build cache (artifactType %q)", c.full, m.ArtifactType)
	}
	if m.Config.Size < 0 || m.Config.Size > maxCacheIndex {
		return nil, fmt.Errorf("%s: cache index of %d bytes", c.full, m.Config.Size)
	}
	rc, err := c.OpenBlob(ctx, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readLimited(rc, m.Config.Size)
}

// readLimited reads exactly size bytes (a descriptor's) and no more.
func readLimited(r io.Reader, size int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("blob has %d bytes, its descriptor says %d", len(b), size)
	}
	return b, nil
}

// OpenBlob streams one blob of the cache's repository; go-containerregistry
// checks its digest as it is read.
func (c *CacheRef) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	l, err := ggcr.Layer(c.ref.Context().Digest(d.String()), remoteOptions(ctx, c.ref, c.opts)...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// Write uploads the layers the repository lacks and the index, then points
// the reference at a manifest listing them.
func (c *CacheRef) Write(ctx context.Context, index []byte, layers []ocispec.Descriptor, open func(digest.Digest) (io.ReadCloser, error)) error {
	opts := remoteOptions(ctx, c.ref, c.opts)
	repo := c.ref.Context()
	cfg := ocispec.Descriptor{MediaType: CacheIndexMediaType, Digest: digest.FromBytes(index), Size: int64(len(index))}
	blobs := append([]ocispec.Descriptor{cfg}, layers...)
	for _, b := range blobs {
		bl := &blob{desc: b, open: open}
		if b.Digest == cfg.Digest {
			bl.open = func(digest.Digest) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(index)), nil }
		}
		if err := ggcr.WriteLayer(repo, bl, opts...); err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
	}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: CacheArtifactType,
		Config:       cfg,
		Layers:       layers,
	}
	m.SchemaVersion = 2
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return ggcr.Put(c.ref, rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}, opts...)
}

// blob is a stored blob as go-containerregistry's v1.Layer, for upload.
type blob struct {
	desc ocispec.Descriptor
	open func(digest.Digest) (io.ReadCloser, error)
}

func (b *blob) Digest() (v1.Hash, error)             { return v1.NewHash(b.desc.Digest.String()) }
func (b *blob) DiffID() (v1.Hash, error)             { return b.Digest() }
func (b *blob) Compressed() (io.ReadCloser, error)   { return b.open(b.desc.Digest) }
func (b *blob) Uncompressed() (io.ReadCloser, error) { return b.open(b.desc.Digest) }
func (b *blob) Size() (int64, error)                 { return b.desc.Size, nil }
func (b *blob) MediaType() (types.MediaType, error)  { return types.MediaType(b.desc.MediaType), nil }

// rawManifest is a manifest to put as it is.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

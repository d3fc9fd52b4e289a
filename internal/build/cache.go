package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/meta"
)

// An external cache (--cache-to/--cache-from) holds the layers of build
// steps by their cache keys: an index maps each key to its layer
// descriptor and creation time, and the layers are blobs beside it. Keys
// chain from the base image's ID, so an entry only ever matches the same
// step on the same parents. A local directory keeps index.json and
// blobs/<alg>/<hex> as an OCI layout does; a registry keeps an artifact
// (internal/remote).
type cacheIndex struct {
	Entries map[string]cacheRecord `json:"entries"`
}

type cacheRecord struct {
	Layer   ocispec.Descriptor `json:"layer,omitempty"`
	Created string             `json:"created"`
}

// MaxCacheIndex bounds a cache's index.
const MaxCacheIndex = 64 << 20

// CacheStore is one external cache.
type CacheStore interface {
	// String names the cache in messages.
	String() string
	// ReadIndex returns the cache's index, or nil when it has none yet.
	ReadIndex(ctx context.Context) ([]byte, error)
	// OpenBlob opens a layer the index lists.
	OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
	// Write stores the index and those of layers the cache lacks, reading
	// them with open.
	Write(ctx context.Context, index []byte, layers []ocispec.Descriptor, open func(digest.Digest) (io.ReadCloser, error)) error
}

// externalCaches are the --cache-from caches, their indexes read once.
type externalCaches struct {
	once    sync.Once
	stores  []CacheStore
	indexes []cacheIndex
}

func readCacheIndex(ctx context.Context, c CacheStore) (cacheIndex, error) {
	idx := cacheIndex{Entries: map[string]cacheRecord{}}
	b, err := c.ReadIndex(ctx)
	if err != nil || b == nil {
		return idx, err
	}
	if len(b) > MaxCacheIndex {
		return idx, fmt.Errorf("cache %s: the index is larger than %d bytes", c, MaxCacheIndex)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("cache %s: index: %w", c, err)
	}
	if idx.Entries == nil {
		idx.Entries = map[string]cacheRecord{}
	}
	return idx, nil
}

// fromExternal looks k up in the --cache-from caches and, when one has
// it, imports its layer (verified against its digest) on top of st.
func (b *builder) fromExternal(st *state, k digest.Digest) (meta.CacheEntry, bool, error) {
	ec := &b.external
	ec.once.Do(func() {
		for _, c := range b.opts.CacheFrom {
			idx, err := readCacheIndex(b.ctx, c)
			if err != nil {
				b.prog.printf("WARNING: cache %s ignored: %v\n", c, err)
				continue
			}
			ec.stores = append(ec.stores, c)
			ec.indexes = append(ec.indexes, idx)
		}
	})
	for i, idx := range ec.indexes {
		rec, ok := idx.Entries[k.Encoded()]
		if !ok {
			continue
		}
		e := meta.CacheEntry{}
		if err := e.Created.UnmarshalText([]byte(rec.Created)); err != nil {
			continue
		}
		if rec.Layer.Digest == "" {
			return e, true, nil
		}
		if err := rec.Layer.Digest.Validate(); err != nil {
			continue
		}
		if !b.st.Content.Has(rec.Layer.Digest) {
			f, err := ec.stores[i].OpenBlob(b.ctx, rec.Layer.Digest)
			if err != nil {
				continue
			}
			_, err = b.st.Content.Put(f, rec.Layer.Digest, rec.Layer.Size)
			f.Close()
			if err != nil {
				return e, false, fmt.Errorf("cache %s: layer %s: %w", ec.stores[i], rec.Layer.Digest, err)
			}
		}
		e.Layer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: rec.Layer.Digest, Size: rec.Layer.Size}
		chain, err := b.st.AddLayer(b.ctx, st.layers, st.img.RootFS.DiffIDs, e.Layer, e.Layer.Digest)
		if err != nil {
			return e, false, fmt.Errorf("cache %s: layer %s: %w", ec.stores[i], rec.Layer.Digest, err)
		}
		e.ChainID = chain
		return e, true, nil
	}
	return meta.CacheEntry{}, false, nil
}

// exportCache writes the layers of the steps this build used into the
// --cache-to caches, merging with what they hold.
func (b *builder) exportCache() error {
	for _, c := range b.opts.CacheTo {
		idx, err := readCacheIndex(b.ctx, c)
		if err != nil {
			return err
		}
		var layers []ocispec.Descriptor
		for k, e := range b.usedSteps() {
			rec := cacheRecord{Layer: e.Layer}
			t, _ := e.Created.MarshalText()
			rec.Created = string(t)
			idx.Entries[k] = rec
		}
		seen := map[digest.Digest]bool{}
		for _, rec := range idx.Entries {
			if d := rec.Layer.Digest; d != "" && !seen[d] {
				seen[d] = true
				layers = append(layers, rec.Layer)
			}
		}
		raw, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		open := func(d digest.Digest) (io.ReadCloser, error) { return b.st.Content.Open(d) }
		if err := c.Write(b.ctx, raw, layers, open); err != nil {
			return fmt.Errorf("cache %s: %w", c, err)
		}
	}
	return nil
}

// DirCache is a cache in a local directory (type=local).
type DirCache string

func (d DirCache) String() string { return string(d) }

// ReadIndex reads DIR/index.json.
func (d DirCache) ReadIndex(context.Context) ([]byte, error) {
	f, err := os.Open(filepath.Join(string(d), "index.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxCacheIndex+1))
}

// OpenBlob opens DIR/blobs/<alg>/<hex>.
func (d DirCache) OpenBlob(_ context.Context, dg digest.Digest) (io.ReadCloser, error) {
	return os.Open(d.blobPath(dg))
}

func (d DirCache) blobPath(dg digest.Digest) string {
	return filepath.Join(string(d), "blobs", dg.Algorithm().String(), dg.Encoded())
}

// Write copies the missing layers, then replaces index.json.
func (d DirCache) Write(_ context.Context, index []byte, layers []ocispec.Descriptor, open func(digest.Digest) (io.ReadCloser, error)) error {
	for _, l := range layers {
		if err := d.writeBlob(l.Digest, open); err != nil {
			return err
		}
	}
	tmp := filepath.Join(string(d), ".index.json.tmp")
	if err := os.WriteFile(tmp, index, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(string(d), "index.json"))
}

func (d DirCache) writeBlob(dg digest.Digest, open func(digest.Digest) (io.ReadCloser, error)) error {
	p := d.blobPath(dg)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	src, err := open(dg)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".blob-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// useStep records a step's cache entry for --cache-to.
func (b *builder) useStep(k digest.Digest, e meta.CacheEntry) {
	b.usedMu.Lock()
	defer b.usedMu.Unlock()
	if b.used == nil {
		b.used = map[string]meta.CacheEntry{}
	}
	b.used[k.Encoded()] = e
}

func (b *builder) usedSteps() map[string]meta.CacheEntry {
	b.usedMu.Lock()
	defer b.usedMu.Unlock()
	out := make(map[string]meta.CacheEntry, len(b.used))
	for k, v := range b.used {
		out[k] = v
	}
	return out
}

package build

import (
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

// A cache directory (--cache-to/--cache-from type=local) holds the layers
// of build steps by their cache keys: index.json maps each key to its
// layer descriptor and creation time, and blobs/<alg>/<hex> holds the
// layers, as in an OCI layout. Keys chain from the base image's ID, so an
// entry only ever matches the same step on the same parents.
type cacheIndex struct {
	Entries map[string]cacheRecord `json:"entries"`
}

type cacheRecord struct {
	Layer   ocispec.Descriptor `json:"layer,omitempty"`
	Created string             `json:"created"`
}

// maxCacheIndex bounds a cache directory's index.
const maxCacheIndex = 64 << 20

// externalCaches are the --cache-from directories, their indexes read
// once.
type externalCaches struct {
	once    sync.Once
	dirs    []string
	indexes []cacheIndex
}

func readCacheIndex(dir string) (cacheIndex, error) {
	idx := cacheIndex{Entries: map[string]cacheRecord{}}
	f, err := os.Open(filepath.Join(dir, "index.json"))
	if os.IsNotExist(err) {
		return idx, nil
	}
	if err != nil {
		return idx, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCacheIndex+1))
	if err != nil {
		return idx, err
	}
	if len(b) > maxCacheIndex {
		return idx, fmt.Errorf("cache %s: index.json is larger than %d bytes", dir, maxCacheIndex)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("cache %s: index.json: %w", dir, err)
	}
	if idx.Entries == nil {
		idx.Entries = map[string]cacheRecord{}
	}
	return idx, nil
}

// fromExternal looks k up in the --cache-from directories and, when one
// has it, imports its layer (verified against its digest) on top of st.
func (b *builder) fromExternal(st *state, k digest.Digest) (meta.CacheEntry, bool, error) {
	ec := &b.external
	ec.once.Do(func() {
		for _, d := range b.opts.CacheFrom {
			idx, err := readCacheIndex(d)
			if err != nil {
				b.prog.printf("WARNING: cache %s ignored: %v\n", d, err)
				continue
			}
			ec.dirs = append(ec.dirs, d)
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
			f, err := os.Open(filepath.Join(ec.dirs[i], "blobs", rec.Layer.Digest.Algorithm().String(), rec.Layer.Digest.Encoded()))
			if err != nil {
				continue
			}
			_, err = b.st.Content.Put(f, rec.Layer.Digest, rec.Layer.Size)
			f.Close()
			if err != nil {
				return e, false, fmt.Errorf("cache %s: layer %s: %w", ec.dirs[i], rec.Layer.Digest, err)
			}
		}
		e.Layer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: rec.Layer.Digest, Size: rec.Layer.Size}
		chain, err := b.st.AddLayer(b.ctx, st.layers, st.img.RootFS.DiffIDs, e.Layer, e.Layer.Digest)
		if err != nil {
			return e, false, fmt.Errorf("cache %s: layer %s: %w", ec.dirs[i], rec.Layer.Digest, err)
		}
		e.ChainID = chain
		return e, true, nil
	}
	return meta.CacheEntry{}, false, nil
}

// exportCache writes the layers of the steps this build used into the
// --cache-to directories, merging with what they hold.
func (b *builder) exportCache() error {
	for _, dir := range b.opts.CacheTo {
		idx, err := readCacheIndex(dir)
		if err != nil {
			return err
		}
		for k, e := range b.usedSteps() {
			rec := cacheRecord{Layer: e.Layer}
			t, _ := e.Created.MarshalText()
			rec.Created = string(t)
			if e.Layer.Digest != "" {
				if err := b.exportBlob(dir, e.Layer.Digest); err != nil {
					return err
				}
			}
			idx.Entries[k] = rec
		}
		raw, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		tmp := filepath.Join(dir, ".index.json.tmp")
		if err := os.WriteFile(tmp, raw, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "index.json")); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) exportBlob(dir string, d digest.Digest) error {
	p := filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	src, err := b.st.Content.Open(d)
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

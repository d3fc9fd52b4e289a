package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// CacheGet returns the build cache entry under key, if there is one whose
// layer blob and snapshot are both still stored (an entry without a layer
// is a step that changed nothing), and marks it used.
func (s *Store) CacheGet(key string) (meta.CacheEntry, bool, error) {
	var e meta.CacheEntry
	found := false
	err := s.DB.Update(func(tx *meta.Tx) error {
		var err error
		e, err = tx.CacheEntry(key)
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Layer.Digest != "" {
			if _, err := tx.Snapshot(e.ChainID); err != nil || !s.Content.Has(e.Layer.Digest) {
				return tx.DeleteCacheEntry(key)
			}
		}
		found = true
		e.Used = now()
		return tx.PutCacheEntry(key, e)
	})
	return e, found, err
}

// CachePut records a build step's layer under key. The layer's blob must
// be stored and unpacked (see AddLayer).
func (s *Store) CachePut(key string, e meta.CacheEntry) error {
	e.Used = now()
	return s.DB.Update(func(tx *meta.Tx) error { return tx.PutCacheEntry(key, e) })
}

// CachePrune forgets build cache entries not used since before; GC then
// reclaims their layers. It returns how many entries it removed.
func (s *Store) CachePrune(before time.Time) (int, error) {
	n := 0
	err := s.DB.Update(func(tx *meta.Tx) error {
		var old []string
		err := tx.CacheEntries(func(k string, e meta.CacheEntry) error {
			if e.Used.Before(before) {
				old = append(old, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.DeleteCacheEntry(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}

// CacheUsage counts the build cache's entries and the unpacked size of the
// snapshots they keep.
func (s *Store) CacheUsage() (entries int, size int64, err error) {
	err = s.DB.View(func(tx *meta.Tx) error {
		return tx.CacheEntries(func(_ string, e meta.CacheEntry) error {
			entries++
			if sn, err := tx.Snapshot(e.ChainID); err == nil {
				size += sn.Size
			}
			return nil
		})
	})
	return entries, size, err
}

// AddLayer unpacks a stored layer blob as a snapshot on top of parents
// (the layers below it, bottom first, all unpacked already), verifying the
// blob and its diff ID, and returns the new snapshot's chain ID.
func (s *Store) AddLayer(ctx context.Context, parents []ocispec.Descriptor, parentDiffIDs []digest.Digest, layer ocispec.Descriptor, diffID digest.Digest) (digest.Digest, error) {
	layers := make([]Layer, 0, len(parents)+1)
	for _, p := range parents {
		layers = append(layers, Layer{Desc: p})
	}
	layers = append(layers, Layer{Desc: layer})
	diffIDs := append(append([]digest.Digest(nil), parentDiffIDs...), diffID)
	if err := s.unpack(ctx, layers, diffIDs, 1); err != nil {
		return "", err
	}
	chain := image.ChainIDs(diffIDs)
	return chain[len(chain)-1], nil
}

// LayerDirsOf returns the snapshot directories of a stack of layers given
// by their diff IDs (bottom first), top-most first.
func (s *Store) LayerDirsOf(diffIDs []digest.Digest) ([]string, error) {
	return s.LayerDirs(Image{Config: image.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}})
}

// AddLayerDir makes dir, a layer's files in overlayfs form (a build
// step's writable layer, unmounted), the snapshot of a stored layer blob
// on top of parents, by moving it: the blob was written from dir, so
// nothing is unpacked again. dir is consumed. It returns the new
// snapshot's chain ID.
func (s *Store) AddLayerDir(parentDiffIDs []digest.Digest, diffID digest.Digest, dir string, size int64) (digest.Digest, error) {
	defer os.RemoveAll(dir)
	diffIDs := append(append([]digest.Digest(nil), parentDiffIDs...), diffID)
	chain := image.ChainIDs(diffIDs)
	top := chain[len(chain)-1]
	var parent digest.Digest
	if len(chain) > 1 {
		parent = chain[len(chain)-2]
	}
	exists := false
	err := s.DB.View(func(tx *meta.Tx) error {
		if parent != "" {
			if _, err := tx.Snapshot(parent); err != nil {
				return fmt.Errorf("layer %s: parent snapshot %s: %w", diffID, parent, err)
			}
		}
		_, err := tx.Snapshot(top)
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		exists = err == nil
		return err
	})
	if err != nil || exists {
		return top, err
	}
	p, err := s.Snapshots.Prepare(top, parent, diffID)
	if err != nil {
		return "", err
	}
	if err := os.Remove(p.Dir()); err != nil {
		p.Abort()
		return "", err
	}
	if err := os.Rename(dir, p.Dir()); err != nil {
		p.Abort()
		return "", err
	}
	p.Snapshot.Size = size
	if err := s.Snapshots.Commit([]*snapshot.Pending{p}); err != nil {
		return "", err
	}
	return top, nil
}

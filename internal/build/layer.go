package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// layerStep is a step that changes the filesystem. Unless the cache holds
// k, fn runs with a fresh step directory and the state's layer
// directories (top-most first); it must leave its changes in overlay form
// in dir/diff. The result becomes the state's next layer (none when
// nothing changed) and the cache's entry under k.
func (s *stageRun) layerStep(ctx context.Context, st *state, k digest.Digest, createdBy string, prog *stepProgress,
	fn func(dir string, layers []string) error) (*state, error) {
	b := s.b
	if !b.opts.NoCache {
		e, ok, err := b.st.CacheGet(k.Encoded())
		if err != nil {
			return nil, err
		}
		if !ok && len(b.opts.CacheFrom) > 0 {
			if e, ok, err = b.fromExternal(st, k); err != nil {
				return nil, err
			}
			if ok {
				if err := b.st.CachePut(k.Encoded(), e); err != nil {
					return nil, err
				}
			}
		}
		if ok {
			prog.cached()
			b.useStep(k, e)
			return b.appendLayer(st, k, e, createdBy), nil
		}
	}
	dir, err := os.MkdirTemp(b.work, "step-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	layers, err := b.st.LayerDirsOf(st.img.RootFS.DiffIDs)
	if err != nil {
		return nil, err
	}
	if err := fn(dir, layers); err != nil {
		prog.fail(err)
		return nil, err
	}
	e, err := b.commitLayer(st, filepath.Join(dir, "diff"))
	if err != nil {
		prog.fail(err)
		return nil, err
	}
	if err := b.st.CachePut(k.Encoded(), e); err != nil {
		return nil, err
	}
	prog.done()
	b.useStep(k, e)
	return b.appendLayer(st, k, e, createdBy), nil
}

// appendLayer adds a step's layer and history entry to the state.
func (b *builder) appendLayer(st *state, k digest.Digest, e meta.CacheEntry, createdBy string) *state {
	if e.Created.After(st.created) {
		st.created = e.Created.UTC()
	}
	h := ocispec.History{Created: b.stamp(st), CreatedBy: createdBy, Comment: historyComment}
	if e.Layer.Digest == "" {
		h.EmptyLayer = true
	} else {
		st.layers = append(st.layers, e.Layer)
		st.img.RootFS.DiffIDs = append(st.img.RootFS.DiffIDs, e.Layer.Digest)
	}
	st.img.History = append(st.img.History, h)
	st.key = k
	return st
}

// commitLayer turns a step's writable layer into a stored, unpacked
// layer. An upper directory with nothing in it makes no layer.
func (b *builder) commitLayer(st *state, upper string) (meta.CacheEntry, error) {
	e := meta.CacheEntry{Created: time.Now().UTC()}
	entries, err := os.ReadDir(upper)
	if err != nil {
		return e, err
	}
	if len(entries) == 0 {
		return e, nil
	}
	w, err := b.st.Content.NewWriter("")
	if err != nil {
		return e, err
	}
	defer w.Close()
	var clamp time.Time
	if b.opts.SourceDateEpoch != nil {
		clamp = *b.opts.SourceDateEpoch
	}
	if err := archive.WriteDiffWith(w, upper, archive.DiffOptions{ClampTime: clamp}); err != nil {
		return e, err
	}
	info, err := w.Commit("", -1)
	if err != nil {
		return e, err
	}
	e.Layer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: info.Digest, Size: info.Size}
	// The upper directory, already in snapshot form, becomes the layer's
	// snapshot as it is.
	e.ChainID, err = b.st.AddLayerDir(st.img.RootFS.DiffIDs, info.Digest, upper, info.Size)
	if err != nil {
		return e, fmt.Errorf("layer %s: %w", info.Digest, err)
	}
	return e, nil
}

// rootOf mounts a state's root filesystem read-only (once per build) for
// COPY --from and RUN --mount=from, and returns its path.
func (b *builder) rootOf(st *state) (string, error) {
	b.mountMu.Lock()
	defer b.mountMu.Unlock()
	if dir, ok := b.mounted[st.key.String()]; ok {
		return dir, nil
	}
	dir := filepath.Join(b.work, "roots", st.key.Encoded()[:16])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if len(st.img.RootFS.DiffIDs) > 0 {
		layers, err := b.st.LayerDirsOf(st.img.RootFS.DiffIDs)
		if err != nil {
			return "", err
		}
		if err := snapshot.MountReadOnly(layers, dir); err != nil {
			return "", err
		}
	}
	b.mounted[st.key.String()] = dir
	return dir, nil
}

// unmountTree unmounts a read-only root mounted by rootOf.
func unmountTree(dir string) { snapshot.Unmount(dir) }

// overlay mounts lower layer directories (top-most first; none is an
// empty root) under dir/diff at dir/merged and returns the merged path
// and a function that unmounts it.
func overlay(dir string, layers []string) (string, func(), error) {
	if len(layers) == 0 {
		empty := filepath.Join(dir, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return "", nil, err
		}
		layers = []string{empty}
	}
	merged := filepath.Join(dir, "merged")
	for _, d := range []string{"diff", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", nil, err
		}
	}
	if err := snapshot.MountWritable(layers, filepath.Join(dir, "diff"), filepath.Join(dir, "work"), merged, true); err != nil {
		return "", nil, err
	}
	var once sync.Once
	return merged, func() { once.Do(func() { snapshot.Unmount(merged) }) }, nil
}

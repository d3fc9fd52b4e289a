package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

func now() time.Time { return time.Now().UTC() }

// created is the creation time shown for an image: its config's, else when
// it entered the store.
func created(img Image) time.Time {
	if img.Config.Created != nil {
		return *img.Config.Created
	}
	return img.Stored
}

// Layer is one layer of an image being added.
type Layer struct {
	// Desc is the layer blob as the manifest names it.
	Desc ocispec.Descriptor
	// Open returns the blob's bytes (compressed as Desc says). It is only
	// called when the blob or its snapshot is missing; nil means the blob
	// must already be in the content store.
	Open func() (io.ReadCloser, error)
}

// NewImage is an image to add: its documents, its layers and its names.
type NewImage struct {
	Manifest    []byte
	Config      []byte
	Layers      []Layer
	Names       []string
	RepoDigests []string
	// Jobs is how many layers are fetched and unpacked at once; 0 means
	// max(number of CPUs, 2).
	Jobs int
}

// AddImage stores an image: it ingests missing layer blobs (verifying their
// digests), unpacks missing snapshots (verifying diff IDs), stores config
// and manifest, and only then records the image and points the names at it.
// Layers are read, decompressed and unpacked concurrently. On error nothing
// becomes visible except verified blobs.
func (s *Store) AddImage(ctx context.Context, ni NewImage) (meta.Image, error) {
	var rec meta.Image
	m, err := image.ParseManifest(ni.Manifest)
	if err != nil {
		return rec, err
	}
	cfg, err := image.ParseConfig(ni.Config)
	if err != nil {
		return rec, err
	}
	if m.Config.Digest.Algorithm().FromBytes(ni.Config) != m.Config.Digest {
		return rec, fmt.Errorf("config %s: content does not match the manifest's digest", m.Config.Digest)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) || len(m.Layers) != len(ni.Layers) {
		return rec, fmt.Errorf("image %s: manifest has %d layers, config has %d diff IDs", m.Config.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range ni.Layers {
		if l.Desc.Digest != m.Layers[i].Digest {
			return rec, fmt.Errorf("layer %d: blob %s is not the manifest's %s", i, l.Desc.Digest, m.Layers[i].Digest)
		}
	}
	names := make([]string, 0, len(ni.Names))
	for _, n := range ni.Names {
		full, err := image.NormalizeName(n)
		if err != nil {
			return rec, err
		}
		names = append(names, full)
	}
	if err := s.unpack(ctx, ni.Layers, cfg.RootFS.DiffIDs, ni.Jobs); err != nil {
		return rec, err
	}
	if _, err := s.Content.Put(bytesReader(ni.Config), m.Config.Digest, int64(len(ni.Config))); err != nil {
		return rec, err
	}
	minfo, err := s.Content.PutBytes(ni.Manifest)
	if err != nil {
		return rec, err
	}
	mt := m.MediaType
	if mt == "" {
		mt = ocispec.MediaTypeImageManifest
	}
	rec = meta.Image{
		ID:          m.Config.Digest,
		Manifest:    ocispec.Descriptor{MediaType: mt, Digest: minfo.Digest, Size: minfo.Size},
		RepoDigests: ni.RepoDigests,
		Stored:      now(),
	}
	err = s.DB.Update(func(tx *meta.Tx) error {
		if old, err := tx.Image(rec.ID); err == nil {
			rec.Stored = old.Stored
			rec.LastTagTime = old.LastTagTime
			rec.RepoDigests = mergeStrings(old.RepoDigests, rec.RepoDigests)
		}
		if err := tx.PutImage(rec); err != nil {
			return err
		}
		for _, n := range names {
			if err := setName(tx, rec, n); err != nil {
				return err
			}
			rec.LastTagTime = now()
		}
		return nil
	})
	return rec, err
}

func mergeStrings(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// layerJob is the work for one layer.
type layerJob struct {
	layer     Layer
	diffID    digest.Digest
	needBlob  bool
	pending   *snapshot.Pending
	links     []archive.Link
	lowerDirs []string
}

// unpack makes sure every layer blob is stored and every chain is unpacked.
func (s *Store) unpack(ctx context.Context, layers []Layer, diffIDs []digest.Digest, workers int) error {
	chain := image.ChainIDs(diffIDs)
	var jobs []*layerJob
	// dirs[i] is the directory of layer i, committed or pending.
	dirs := make([]string, len(layers))
	err := s.DB.View(func(tx *meta.Tx) error {
		for i, l := range layers {
			j := &layerJob{layer: l, diffID: diffIDs[i], needBlob: !s.Content.Has(l.Desc.Digest)}
			if sn, err := tx.Snapshot(chain[i]); err == nil {
				dirs[i] = s.Snapshots.Dir(sn)
			} else {
				var parent digest.Digest
				if i > 0 {
					parent = chain[i-1]
				}
				p, err := s.Snapshots.Prepare(chain[i], parent, diffIDs[i])
				if err != nil {
					return err
				}
				j.pending = p
				dirs[i] = p.Dir()
			}
			if j.needBlob || j.pending != nil {
				if j.needBlob && l.Open == nil {
					return fmt.Errorf("layer %s: blob is not in the store", l.Desc.Digest)
				}
				jobs = append(jobs, j)
			}
			for k := i - 1; k >= 0; k-- {
				j.lowerDirs = append(j.lowerDirs, dirs[k])
			}
		}
		return nil
	})
	var pending []*snapshot.Pending
	for _, j := range jobs {
		if j.pending != nil {
			pending = append(pending, j.pending)
		}
	}
	if err != nil {
		for _, p := range pending {
			p.Abort()
		}
		return err
	}
	if workers <= 0 {
		workers = max(runtime.NumCPU(), 2)
	}
	if err := runJobs(ctx, jobs, workers, s.processLayer); err != nil {
		for _, p := range pending {
			p.Abort()
		}
		return err
	}
	for _, j := range jobs {
		if j.pending == nil {
			continue
		}
		err := archive.LinkFromLowers(j.pending.Dir(), j.links, j.lowerDirs)
		if err == nil {
			err = archive.PruneWhiteouts(j.pending.Dir(), j.lowerDirs)
		}
		if err != nil {
			for _, p := range pending {
				p.Abort()
			}
			return fmt.Errorf("layer %s: %w", j.diffID, err)
		}
	}
	return s.Snapshots.Commit(pending)
}

// runJobs runs fn over jobs with bounded concurrency, stopping at the first
// error.
func runJobs(ctx context.Context, jobs []*layerJob, workers int, fn func(context.Context, *layerJob) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan *layerJob)
	)
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if err := fn(ctx, j); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// processLayer reads one layer blob once: the bytes go to the content store
// (when missing) and, decompressed, to the snapshot directory (when
// missing); the blob digest, its size and the diff ID are all verified.
func (s *Store) processLayer(ctx context.Context, j *layerJob) error {
	desc := j.layer.Desc
	var (
		src  io.ReadCloser
		blob *content.Writer
		err  error
	)
	if j.needBlob {
		if blob, err = s.Content.NewWriter(desc.Digest.Algorithm()); err != nil {
			return err
		}
		defer blob.Close()
		src, err = j.layer.Open()
	} else {
		src, err = s.Content.Open(desc.Digest)
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer src.Close()
	var r io.Reader = &ctxReader{ctx: ctx, r: src}
	if desc.Size >= 0 {
		r = io.LimitReader(r, desc.Size+1)
	}
	if blob != nil {
		r = io.TeeReader(r, blob)
	}
	plain, comp, err := archive.DecompressStream(r)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer plain.Close()
	// An uncompressed layer's diff ID is its blob digest: hash it once. A
	// stored blob was verified when it was committed (and `system check`
	// re-verifies it).
	var diffDigest func() digest.Digest
	tr := io.Reader(plain)
	switch {
	case comp == archive.Uncompressed && blob != nil && blob.Digest().Algorithm() == j.diffID.Algorithm():
		diffDigest = blob.Digest
	case comp == archive.Uncompressed && blob == nil && desc.Digest == j.diffID:
		diffDigest = func() digest.Digest { return desc.Digest }
	default:
		d := j.diffID.Algorithm().Digester()
		diffDigest, tr = d.Digest, io.TeeReader(plain, d.Hash())
	}
	if j.pending != nil {
		res, err := archive.ApplyLayer(j.pending.Dir(), tr)
		if err != nil {
			return fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		j.pending.Snapshot.Size = res.Size
		j.links = res.Links
	} else if _, err := io.Copy(io.Discard, tr); err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	// Drain what the decompressor left unread (a gzip trailer, padding) so
	// the blob digest covers every byte.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if got := diffDigest(); got != j.diffID {
		if blob != nil && blob.Digest() != desc.Digest {
			return fmt.Errorf("layer %s: content digest is %s", desc.Digest, blob.Digest())
		}
		return fmt.Errorf("layer %s: uncompressed content is %s, config says diff ID %s", desc.Digest, got, j.diffID)
	}
	if blob != nil {
		if _, err := blob.Commit(desc.Digest, desc.Size); err != nil {
			return fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
	}
	return nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

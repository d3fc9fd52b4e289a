package registry

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/registry/metadata"
	"github.com/berth-dev/berth/internal/registry/storage"
	"github.com/opencontainers/go-digest"
)

// GCStats says what one collection removed.
type GCStats struct {
	Blobs    int // blobs no manifest references, past their grace period
	Orphans  int // stored bytes without a record (left by a crash)
	Uploads  int // uploads idle for longer than the upload TTL
	Chunks   int // upload chunks without an upload
	Duration time.Duration
}

func (s GCStats) attrs() []any {
	return []any{slog.Int("blobs", s.Blobs), slog.Int("orphans", s.Orphans), slog.Int("uploads", s.Uploads),
		slog.Int("chunks", s.Chunks), slog.Duration("duration", s.Duration)}
}

// GC collects garbage while the registry serves. It is safe against pushes
// by construction:
//   - a manifest is stored only if, in the same transaction, every blob it
//     references is live; the mark phase and the condemning of unmarked
//     blobs are one transaction too, so a blob referenced by any stored
//     manifest is never condemned;
//   - a blob uploaded, mounted or seen by a client (HEAD/GET) within the
//     grace period is spared, so a push whose manifest comes later keeps
//     its layers; a client sees a blob either before the condemn step
//     (and its touch is flushed into it) or after (and finds it gone);
//   - condemned blobs become invisible before their bytes are deleted; an
//     upload of a condemned blob waits until the deletion is over, and one
//     that wrote its bytes meanwhile is refused at commit (503, retry).
func (r *Registry) GC(ctx context.Context) (GCStats, error) {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	start := time.Now()
	var st GCStats
	before := start.Add(-r.cfg.GC.Grace)
	// Every blob a client has seen so far is touched before the condemn
	// step; any client after it finds condemned blobs gone.
	r.seenMu.Lock()
	r.flushTouches()
	condemned, err := r.db.Condemn(before)
	r.seenMu.Unlock()
	if err != nil {
		return st, err
	}
	var gone []digest.Digest
	for _, dg := range condemned {
		if err := r.driver.Delete(ctx, blobKey(dg)); err != nil {
			r.log.Warn("gc: deleting blob", "digest", dg, "err", err)
			continue
		}
		gone = append(gone, dg)
	}
	if err := r.db.Forget(gone); err != nil {
		return st, err
	}
	st.Blobs = len(gone)
	r.metrics.gcDeleted.Add(float64(len(gone)))

	// Bytes whose record was never written: a crash between the write and
	// the commit. A blob's bytes are committed right after they land, so
	// unrecorded bytes older than the grace period are garbage.
	err = r.driver.Walk(ctx, "blobs/", func(info storage.Info) error {
		dg := keyDigest(info.Key)
		if dg == "" || !info.ModTime.Before(before) || r.db.KnownBlob(dg) {
			return nil
		}
		if err := r.driver.Delete(ctx, info.Key); err != nil {
			return err
		}
		st.Orphans++
		return nil
	})
	if err != nil {
		return st, err
	}

	stale := start.Add(-r.cfg.GC.UploadTTL)
	live := map[string]bool{}
	var expired []string
	parts := map[string][]string{}
	if err := r.db.Uploads(func(id string, u metadata.Upload) {
		if u.Updated.Before(stale) {
			expired = append(expired, id)
			parts[id] = u.Parts
			return
		}
		live[id] = true
	}); err != nil {
		return st, err
	}
	for _, id := range expired {
		r.dropChunks(parts[id])
		if err := r.db.DeleteUpload(id); err != nil {
			return st, err
		}
		st.Uploads++
	}
	// Chunks are written before their upload's record is saved; those of
	// no live upload and older than the TTL were left behind.
	err = r.driver.Walk(ctx, "uploads/", func(info storage.Info) error {
		id, _, _ := strings.Cut(strings.TrimPrefix(info.Key, "uploads/"), "/")
		if live[id] || !info.ModTime.Before(stale) {
			return nil
		}
		if err := r.driver.Delete(ctx, info.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		st.Chunks++
		return nil
	})
	st.Duration = time.Since(start)
	r.metrics.gcRuns.Inc()
	return st, err
}

// keyDigest is the digest a blob key names, or "".
func keyDigest(key string) digest.Digest {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "blobs" {
		return ""
	}
	dg := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[3])
	if dg.Validate() != nil {
		return ""
	}
	return dg
}

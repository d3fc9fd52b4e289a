package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// Event is one line of what a removal did, as Docker prints it.
type Event struct {
	Untagged string // familiar name
	Deleted  digest.Digest
}

// Remove removes a reference the way `docker rmi` does: a name is untagged
// and the image is deleted once no name is left; an ID deletes the image,
// which needs force when several names point at it. A mounted image needs
// force too (it is unmounted).
//
// An image leased by a container keeps its record: removing its last name
// or its ID is a conflict, and with force only its names go.
func (s *Store) Remove(ref string, force bool) ([]Event, error) {
	leases, err := s.leases()
	if err != nil {
		return nil, err
	}
	var events []Event
	err = s.DB.Update(func(tx *meta.Tx) error {
		events = nil
		rec, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		names, err := tx.NamesOf(rec.ID)
		if err != nil {
			return err
		}
		holders := leases[rec.ID]
		byName := false
		if full, err := image.NormalizeName(ref); err == nil {
			for _, n := range names {
				if n == full {
					if len(names) == 1 && len(holders) > 0 && !force {
						return fmt.Errorf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, shortHolder(holders[0]), image.ShortID(rec.ID))
					}
					byName = true
					if err := tx.DeleteName(n); err != nil {
						return err
					}
					events = append(events, Event{Untagged: image.FamiliarName(n)})
					names = without(names, n)
				}
			}
		}
		if byName && len(names) > 0 {
			return nil
		}
		if !byName && len(names) > 1 && !force {
			return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", image.ShortID(rec.ID))
		}
		if len(holders) > 0 && !byName && !force {
			return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by container %s", image.ShortID(rec.ID), shortHolder(holders[0]))
		}
		if mounted, _ := snapshot.IsMountPoint(s.mountPath(rec.ID)); mounted {
			if !force {
				return fmt.Errorf("conflict: unable to delete %s (must be forced) - image is mounted at %s", image.ShortID(rec.ID), s.mountPath(rec.ID))
			}
			if err := s.unmount(rec.ID); err != nil {
				return err
			}
		}
		for _, n := range names {
			if err := tx.DeleteName(n); err != nil {
				return err
			}
			events = append(events, Event{Untagged: image.FamiliarName(n)})
		}
		if len(holders) > 0 {
			return nil
		}
		for _, rd := range rec.RepoDigests {
			events = append(events, Event{Untagged: image.FamiliarName(rd)})
		}
		if err := tx.DeleteImage(rec.ID); err != nil {
			return err
		}
		events = append(events, Event{Deleted: rec.ID})
		return nil
	})
	return events, err
}

// shortHolder shortens a lease holder that is a container ID as Docker
// prints IDs.
func shortHolder(h string) string {
	if len(h) == 64 {
		return h[:12]
	}
	return h
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Prune removes dangling images (no name), or with all every image, and
// returns what it did.
func (s *Store) Prune(all bool) ([]Event, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	leases, err := s.leases()
	if err != nil {
		return nil, err
	}
	var events []Event
	for _, img := range imgs {
		if len(img.Names) > 0 && !all || len(leases[img.ID]) > 0 {
			continue
		}
		if mounted, _ := snapshot.IsMountPoint(s.mountPath(img.ID)); mounted {
			continue
		}
		ev, err := s.Remove(img.ID.String(), true)
		if err != nil && !errors.Is(err, ErrNoSuchImage) {
			return events, err
		}
		events = append(events, ev...)
	}
	return events, nil
}

// GCResult says what a collection removed.
type GCResult struct {
	Blobs, Snapshots int
	Reclaimed        int64
	// Skipped is set when another berth process held the store, so nothing
	// was collected.
	Skipped bool
}

// GC deletes blobs and snapshots no image references, and leftovers of
// interrupted writes. It needs the store to itself: with wait false it
// gives up at once when another berth process is running.
func (s *Store) GC(wait bool) (GCResult, error) {
	var res GCResult
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(s.lock.Fd()), how); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			res.Skipped = true
			return res, unix.Flock(int(s.lock.Fd()), unix.LOCK_SH)
		}
		return res, err
	}
	defer unix.Flock(int(s.lock.Fd()), unix.LOCK_SH)

	liveBlobs := map[digest.Digest]bool{}
	liveChains := map[digest.Digest]bool{}
	variants := map[digest.Digest]bool{}
	var snaps []meta.Snapshot
	err := s.DB.View(func(tx *meta.Tx) error {
		recs, err := tx.Images()
		if err != nil {
			return err
		}
		for _, r := range recs {
			img, err := s.load(tx, r)
			liveBlobs[r.Manifest.Digest] = true
			liveBlobs[r.ID] = true
			if err != nil {
				// Keep what can be named; check reports the damage.
				continue
			}
			for _, l := range img.Manifest.Layers {
				liveBlobs[l.Digest] = true
			}
			for _, c := range image.ChainIDs(img.Config.RootFS.DiffIDs) {
				liveChains[c] = true
			}
		}
		err = tx.CacheEntries(func(_ string, e meta.CacheEntry) error {
			if e.Layer.Digest != "" {
				liveBlobs[e.Layer.Digest] = true
				liveChains[e.ChainID] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		snaps, err = tx.Snapshots()
		if err != nil {
			return err
		}
		return tx.Variants(func(src digest.Digest, d ocispec.Descriptor) error {
			if liveBlobs[src] {
				variants[d.Digest] = true
			}
			return nil
		})
	})
	for d := range variants {
		liveBlobs[d] = true
	}
	if err != nil {
		return res, err
	}
	// A live snapshot needs the snapshots below it.
	parentOf := map[digest.Digest]digest.Digest{}
	for _, sn := range snaps {
		parentOf[sn.ChainID] = sn.Parent
	}
	for c := range liveChains {
		for p := parentOf[c]; p != "" && !liveChains[p]; p = parentOf[p] {
			liveChains[p] = true
		}
	}
	var keep []meta.Snapshot
	for _, sn := range snaps {
		if liveChains[sn.ChainID] {
			keep = append(keep, sn)
			continue
		}
		if err := s.Snapshots.Remove(sn); err != nil {
			return res, err
		}
		res.Snapshots++
		res.Reclaimed += sn.Size
	}
	garbage, err := s.Snapshots.Garbage(keep)
	if err != nil {
		return res, err
	}
	for _, g := range garbage {
		if err := os.RemoveAll(g); err != nil {
			return res, err
		}
	}
	if err := s.Content.CleanIngest(); err != nil {
		return res, err
	}
	if err := os.RemoveAll(s.TempDir()); err != nil {
		return res, err
	}
	err = s.Content.Walk(func(info contentInfo, werr error) error {
		if werr != nil || liveBlobs[info.Digest] {
			return nil
		}
		res.Blobs++
		res.Reclaimed += info.Size
		return s.Content.Delete(info.Digest)
	})
	if err != nil {
		return res, err
	}
	return res, s.cleanMounts()
}

// cleanMounts removes mount directories of images that are not mounted.
func (s *Store) cleanMounts() error {
	entries, err := os.ReadDir(filepath.Join(s.Root, "mounts"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(s.Root, "mounts", e.Name())
		if mounted, err := snapshot.IsMountPoint(p); err == nil && !mounted {
			os.Remove(p)
		}
	}
	return nil
}

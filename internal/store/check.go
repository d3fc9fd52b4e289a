package store

import (
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
)

// Check verifies the whole store: every blob's bytes against its digest,
// every image's manifest, config and layers, every name, and every snapshot
// an image needs. It returns one line per problem; none means healthy.
// Leftovers of interrupted writes are not problems: GC removes them.
func (s *Store) Check() ([]string, error) {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	bad := map[digest.Digest]bool{}
	err := s.Content.Walk(func(info contentInfo, werr error) error {
		if werr != nil {
			report("%v", werr)
			return nil
		}
		if err := s.Content.Verify(info.Digest); err != nil {
			report("%v", err)
			bad[info.Digest] = true
		}
		return nil
	})
	if err != nil {
		return problems, err
	}
	blob := func(what string, id digest.Digest, d digest.Digest) bool {
		if bad[d] {
			return false
		}
		if !s.Content.Has(d) {
			report("image %s: %s blob %s is missing", id, what, d)
			return false
		}
		return true
	}
	err = s.DB.View(func(tx *meta.Tx) error {
		recs, err := tx.Images()
		if err != nil {
			return err
		}
		images := map[digest.Digest]bool{}
		for _, r := range recs {
			images[r.ID] = true
			if !blob("manifest", r.ID, r.Manifest.Digest) || !blob("config", r.ID, r.ID) {
				continue
			}
			img, err := s.load(tx, r)
			if err != nil {
				report("%v", err)
				continue
			}
			if img.Manifest.Config.Digest != r.ID {
				report("image %s: manifest %s names config %s", r.ID, r.Manifest.Digest, img.Manifest.Config.Digest)
			}
			if len(img.Manifest.Layers) != len(img.Config.RootFS.DiffIDs) {
				report("image %s: %d layers but %d diff IDs", r.ID, len(img.Manifest.Layers), len(img.Config.RootFS.DiffIDs))
			}
			for _, l := range img.Manifest.Layers {
				blob("layer", r.ID, l.Digest)
			}
			for i, c := range image.ChainIDs(img.Config.RootFS.DiffIDs) {
				sn, err := tx.Snapshot(c)
				if err != nil {
					report("image %s: layer %d is not unpacked (chain %s)", r.ID, i, c)
					continue
				}
				if _, err := os.Stat(s.Snapshots.Dir(sn)); err != nil {
					report("snapshot %s: directory: %v", c, err)
				}
			}
		}
		names, err := tx.Names()
		if err != nil {
			return err
		}
		for _, n := range names {
			if !images[n.ID] {
				report("name %s points at missing image %s", image.FamiliarName(n.Name), n.ID)
			}
		}
		snaps, err := tx.Snapshots()
		if err != nil {
			return err
		}
		for _, sn := range snaps {
			if sn.Parent == "" {
				continue
			}
			if _, err := tx.Snapshot(sn.Parent); err != nil {
				report("snapshot %s: parent %s is missing", sn.ChainID, sn.Parent)
			}
		}
		return nil
	})
	return problems, err
}

// Usage is what `system df` reports for images.
type Usage struct {
	Images, ActiveImages int
	// ImagesSize counts every unpacked layer once, however many images
	// share it.
	ImagesSize int64
	// Reclaimable is what removing every image not used by a container
	// would free.
	Reclaimable int64
}

// DiskUsage sums the unpacked size of the images in the store.
func (s *Store) DiskUsage() (Usage, error) {
	var u Usage
	err := s.DB.View(func(tx *meta.Tx) error {
		recs, err := tx.Images()
		if err != nil {
			return err
		}
		u.Images = len(recs)
		snaps, err := tx.Snapshots()
		for _, sn := range snaps {
			u.ImagesSize += sn.Size
		}
		return err
	})
	u.Reclaimable = u.ImagesSize
	return u, err
}

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

type contentInfo = content.Info

func (s *Store) mountPath(id digest.Digest) string {
	return filepath.Join(s.Root, "mounts", id.Encoded())
}

// LayerDirs returns the snapshot directories of an image, top-most first.
func (s *Store) LayerDirs(img Image) ([]string, error) {
	chain := image.ChainIDs(img.Config.RootFS.DiffIDs)
	dirs := make([]string, len(chain))
	err := s.DB.View(func(tx *meta.Tx) error {
		for i, c := range chain {
			sn, err := tx.Snapshot(c)
			if err != nil {
				return fmt.Errorf("image %s: layer %d (chain %s) is not unpacked: %w", img.ID, i, c, err)
			}
			dirs[len(chain)-1-i] = s.Snapshots.Dir(sn)
		}
		return nil
	})
	return dirs, err
}

// Mount mounts the image's root filesystem read-only and returns its path.
// Mounting a mounted image returns the same path.
func (s *Store) Mount(ref string) (string, error) {
	img, err := s.Get(ref)
	if err != nil {
		return "", err
	}
	target := s.mountPath(img.ID)
	if mounted, err := snapshot.IsMountPoint(target); err != nil || mounted {
		return target, err
	}
	dirs, err := s.LayerDirs(img)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return "", err
	}
	if err := snapshot.MountReadOnly(dirs, target); err != nil {
		os.Remove(target)
		return "", fmt.Errorf("image %s: %w", image.ShortID(img.ID), err)
	}
	return target, nil
}

// Unmount unmounts an image mounted by Mount.
func (s *Store) Unmount(ref string) error {
	img, err := s.Get(ref)
	if err != nil {
		return err
	}
	return s.unmount(img.ID)
}

func (s *Store) unmount(id digest.Digest) error {
	target := s.mountPath(id)
	if err := snapshot.Unmount(target); err != nil {
		return err
	}
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// LayerSizes returns the unpacked size of each layer of an image, bottom first.
func (s *Store) LayerSizes(img Image) ([]int64, error) {
	chain := image.ChainIDs(img.Config.RootFS.DiffIDs)
	sizes := make([]int64, len(chain))
	err := s.DB.View(func(tx *meta.Tx) error {
		for i, c := range chain {
			if sn, err := tx.Snapshot(c); err == nil {
				sizes[i] = sn.Size
			}
		}
		return nil
	})
	return sizes, err
}

// AddRepoDigest records a name@digest the image is known by in a registry.
func (s *Store) AddRepoDigest(id digest.Digest, repoDigest string) error {
	return s.DB.Update(func(tx *meta.Tx) error {
		rec, err := tx.Image(id)
		if err != nil {
			return err
		}
		rec.RepoDigests = mergeStrings(rec.RepoDigests, []string{repoDigest})
		return tx.PutImage(rec)
	})
}

// CompressedVariant returns the stored compressed form of blob src.
func (s *Store) CompressedVariant(src digest.Digest, algo string) (ocispec.Descriptor, bool, error) {
	var d ocispec.Descriptor
	err := s.DB.View(func(tx *meta.Tx) error {
		var err error
		d, err = tx.Variant(src, algo)
		return err
	})
	if errors.Is(err, meta.ErrNotFound) || (err == nil && !s.Content.Has(d.Digest)) {
		return d, false, nil
	}
	return d, err == nil, err
}

// SetCompressedVariant records that blob d holds src compressed with algo.
// GC keeps it as long as src is kept.
func (s *Store) SetCompressedVariant(src digest.Digest, algo string, d ocispec.Descriptor) error {
	return s.DB.Update(func(tx *meta.Tx) error { return tx.PutVariant(src, algo, d) })
}

// Package store is berth's local image store: it ties the content store,
// the metadata database and the snapshots together into images with names,
// and owns the rules that keep them consistent — what an image references
// is always present before the image is recorded, removal drops names
// before data, and garbage collection only runs when no other berth process
// is writing.
//
// store never parses archive formats or speaks to registries; those live in
// imagearchive and remote and hand images to AddImage.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
)

// ErrNoSuchImage is returned when a reference matches no image.
var ErrNoSuchImage = errors.New("No such image")

// Store is an opened state directory.
type Store struct {
	Root      string
	Content   *content.Store
	DB        *meta.DB
	Snapshots *snapshot.Store
	lock      *os.File
}

// Open opens (creating if needed) the state directory root and takes a
// shared lock on it for the life of the process.
func Open(root string) (*Store, error) {
	// Paths under the root go into mount options and runtime specs,
	// which must not depend on the working directory.
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %s: %w", root, err)
	}
	cs, err := content.New(filepath.Join(root, "content"))
	if err != nil {
		lock.Close()
		return nil, err
	}
	db := meta.Open(filepath.Join(root, "meta.db"))
	ss, err := snapshot.New(filepath.Join(root, "snapshots"), db)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &Store{Root: root, Content: cs, DB: db, Snapshots: ss, lock: lock}, nil
}

// TempDir is where commands spool data (such as a compressed archive being
// loaded), created on demand; GC removes it with whatever was left.
func (s *Store) TempDir() string { return filepath.Join(s.Root, "tmp") }

// Close releases the lock.
func (s *Store) Close() error { return s.lock.Close() }

// Image is an image record with everything it references, parsed.
type Image struct {
	meta.Image
	// Names are the full names pointing at the image, sorted.
	Names     []string
	Manifest  ocispec.Manifest
	Config    image.Image
	RawConfig []byte
	// Size is the unpacked size of all its layers.
	Size int64
}

// load reads an image's manifest and config from the content store.
func (s *Store) load(tx *meta.Tx, rec meta.Image) (Image, error) {
	img := Image{Image: rec}
	names, err := tx.NamesOf(rec.ID)
	if err != nil {
		return img, err
	}
	img.Names = names
	raw, err := s.Content.ReadAll(rec.Manifest.Digest, image.MaxManifestSize)
	if err != nil {
		return img, fmt.Errorf("image %s: manifest: %w", rec.ID, err)
	}
	if img.Manifest, err = image.ParseManifest(raw); err != nil {
		return img, fmt.Errorf("image %s: %w", rec.ID, err)
	}
	if img.RawConfig, err = s.Content.ReadAll(rec.ID, image.MaxConfigSize); err != nil {
		return img, fmt.Errorf("image %s: config: %w", rec.ID, err)
	}
	if img.Config, err = image.ParseConfig(img.RawConfig); err != nil {
		return img, fmt.Errorf("image %s: %w", rec.ID, err)
	}
	for _, c := range image.ChainIDs(img.Config.RootFS.DiffIDs) {
		if sn, err := tx.Snapshot(c); err == nil {
			img.Size += sn.Size
		}
	}
	return img, nil
}

// List returns every image, newest first.
func (s *Store) List() ([]Image, error) {
	var out []Image
	err := s.DB.View(func(tx *meta.Tx) error {
		recs, err := tx.Images()
		if err != nil {
			return err
		}
		for _, r := range recs {
			img, err := s.load(tx, r)
			if err != nil {
				return err
			}
			out = append(out, img)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		ci, cj := created(out[i]), created(out[j])
		if !ci.Equal(cj) {
			return ci.After(cj)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

var hexPrefix = regexp.MustCompile(`^[a-f0-9]{1,64}$`)

// Get resolves a user reference: a name ("busybox", "busybox:1"), a
// name@digest pinned by manifest digest, a full image ID with or without
// "sha256:", or an unambiguous prefix of an ID.
func (s *Store) Get(ref string) (Image, error) {
	var out Image
	err := s.DB.View(func(tx *meta.Tx) error {
		rec, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		out, err = s.load(tx, rec)
		return err
	})
	return out, err
}

func (s *Store) resolve(tx *meta.Tx, ref string) (meta.Image, error) {
	notFound := fmt.Errorf("%w: %s", ErrNoSuchImage, ref)
	if strings.HasPrefix(ref, "sha256:") || (len(ref) == 64 && hexPrefix.MatchString(ref)) {
		return s.byIDPrefix(tx, image.TrimID(ref), notFound)
	}
	if name, err := image.NormalizeName(ref); err == nil {
		if strings.Contains(name, "@") {
			if rec, ok, err := s.byRepoDigest(tx, name); err != nil || ok {
				return rec, err
			}
		} else if id, err := tx.Name(name); err == nil {
			return tx.Image(id)
		}
	}
	if hexPrefix.MatchString(ref) {
		return s.byIDPrefix(tx, ref, notFound)
	}
	return meta.Image{}, notFound
}

func (s *Store) byIDPrefix(tx *meta.Tx, prefix string, notFound error) (meta.Image, error) {
	if !hexPrefix.MatchString(prefix) {
		return meta.Image{}, notFound
	}
	recs, err := tx.Images()
	if err != nil {
		return meta.Image{}, err
	}
	var found []meta.Image
	for _, r := range recs {
		if strings.HasPrefix(r.ID.Encoded(), prefix) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return meta.Image{}, notFound
	case 1:
		return found[0], nil
	}
	return meta.Image{}, fmt.Errorf("image ID prefix %q is ambiguous: it matches %d images", prefix, len(found))
}

func (s *Store) byRepoDigest(tx *meta.Tx, name string) (meta.Image, bool, error) {
	repo, err := image.Repository(name)
	if err != nil {
		return meta.Image{}, false, nil
	}
	_, dgst, _ := strings.Cut(name, "@")
	recs, err := tx.Images()
	if err != nil {
		return meta.Image{}, false, err
	}
	for _, r := range recs {
		for _, rd := range r.RepoDigests {
			if rd == repo+"@"+dgst {
				return r, true, nil
			}
		}
	}
	return meta.Image{}, false, nil
}

// Tag points name at the image ref resolves to.
func (s *Store) Tag(ref, name string) error {
	full, err := image.NormalizeName(name)
	if err != nil {
		return err
	}
	if strings.Contains(full, "@") {
		return fmt.Errorf("refusing to create a tag with a digest reference: %s", name)
	}
	return s.DB.Update(func(tx *meta.Tx) error {
		rec, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		return setName(tx, rec, full)
	})
}

func setName(tx *meta.Tx, rec meta.Image, full string) error {
	if err := tx.SetName(full, rec.ID); err != nil {
		return err
	}
	rec.LastTagTime = now()
	return tx.PutImage(rec)
}

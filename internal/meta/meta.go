// Package meta is berth's embedded metadata database (bbolt): image records,
// the names that point at them and the unpacked-snapshot records. It owns
// every transaction; nothing else opens the database file.
//
// berth has no daemon, so the database is opened for each transaction and
// closed after it: concurrent berth processes queue on bbolt's file lock
// instead of failing. meta never touches blobs or directories.
package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketImages    = []byte("images")
	bucketNames     = []byte("names")
	bucketSnapshots = []byte("snapshots")
	bucketVariants  = []byte("variants")
	bucketCache     = []byte("buildcache")
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// Image is one stored image. Its ID is the digest of its config, as in Docker.
type Image struct {
	ID digest.Digest `json:"id"`
	// Manifest is the platform manifest the image was resolved to.
	Manifest ocispec.Descriptor `json:"manifest"`
	// RepoDigests are name@digest references the image was pulled by.
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Stored is when the image entered this store.
	Stored time.Time `json:"stored"`
	// LastTagTime is when a name was last pointed at the image.
	LastTagTime time.Time `json:"lastTagTime,omitempty"`
}

// Snapshot is the unpacked filesystem of one layer, stacked on its parent.
type Snapshot struct {
	ChainID digest.Digest `json:"chainID"`
	Parent  digest.Digest `json:"parent,omitempty"`
	DiffID  digest.Digest `json:"diffID"`
	// Dir is the numeric directory name of the snapshot (short, so that
	// overlayfs lowerdir options stay small).
	Dir     uint64    `json:"dir"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// CacheEntry is the result of one filesystem-changing build step, kept by
// the build cache under the step's key: the layer the step made.
type CacheEntry struct {
	// Layer is the uncompressed layer blob (its digest is the diff ID).
	Layer ocispec.Descriptor `json:"layer"`
	// ChainID names the snapshot of the layer on top of its parents.
	ChainID digest.Digest `json:"chainID"`
	// Created is when the step ran; the history entry carries it.
	Created time.Time `json:"created"`
	// Used is when the entry was last a cache hit or made.
	Used time.Time `json:"used"`
}

// DB is the metadata database file.
type DB struct {
	path string
}

// Open returns the database at path; the file is created on first update.
func Open(path string) *DB { return &DB{path: path} }

const lockTimeout = 2 * time.Minute

func (db *DB) open(readOnly bool) (*bolt.DB, error) {
	if readOnly {
		if _, err := os.Stat(db.path); errors.Is(err, os.ErrNotExist) {
			readOnly = false
		}
	}
	b, err := bolt.Open(db.path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", db.path, err)
	}
	return b, nil
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	b, err := db.open(true)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction; it commits only if fn
// returns nil.
func (db *DB) Update(fn func(*Tx) error) error {
	b, err := db.open(false)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketImages, bucketNames, bucketSnapshots, bucketVariants, bucketCache} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return fn(&Tx{tx: tx})
	})
}

// Tx is one transaction.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) get(bucket []byte, key string, v any) error {
	b := t.tx.Bucket(bucket)
	if b == nil {
		return ErrNotFound
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("metadata record %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t *Tx) put(bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucket).Put([]byte(key), raw)
}

func (t *Tx) del(bucket []byte, key string) error {
	b := t.tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

func each[T any](t *Tx, bucket []byte, fn func(string, T) error) error {
	b := t.tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("metadata record %s/%s: %w", bucket, k, err)
		}
		return fn(string(k), v)
	})
}

// Image returns the image with the given ID.
func (t *Tx) Image(id digest.Digest) (Image, error) {
	var img Image
	err := t.get(bucketImages, id.String(), &img)
	return img, err
}

// PutImage stores an image record.
func (t *Tx) PutImage(img Image) error { return t.put(bucketImages, img.ID.String(), img) }

// DeleteImage removes an image record (its names are left to the caller).
func (t *Tx) DeleteImage(id digest.Digest) error { return t.del(bucketImages, id.String()) }

// Images returns every image record, ordered by ID.
func (t *Tx) Images() ([]Image, error) {
	var out []Image
	err := each(t, bucketImages, func(_ string, img Image) error {
		out = append(out, img)
		return nil
	})
	return out, err
}

// Name returns the image ID a name points at.
func (t *Tx) Name(name string) (digest.Digest, error) {
	b := t.tx.Bucket(bucketNames)
	if b == nil {
		return "", ErrNotFound
	}
	v := b.Get([]byte(name))
	if v == nil {
		return "", ErrNotFound
	}
	return digest.Digest(v), nil
}

// SetName points name at an image ID, replacing what it pointed at.
func (t *Tx) SetName(name string, id digest.Digest) error {
	return t.tx.Bucket(bucketNames).Put([]byte(name), []byte(id))
}

// DeleteName removes a name.
func (t *Tx) DeleteName(name string) error { return t.del(bucketNames, name) }

// Names returns every name with its image ID, ordered by name.
func (t *Tx) Names() ([]NameRecord, error) {
	var out []NameRecord
	b := t.tx.Bucket(bucketNames)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		out = append(out, NameRecord{Name: string(k), ID: digest.Digest(v)})
		return nil
	})
	return out, err
}

// NameRecord is one name → image ID entry.
type NameRecord struct {
	Name string
	ID   digest.Digest
}

// NamesOf returns the names pointing at id, sorted.
func (t *Tx) NamesOf(id digest.Digest) ([]string, error) {
	all, err := t.Names()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range all {
		if n.ID == id {
			out = append(out, n.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Snapshot returns the snapshot record of a chain ID.
func (t *Tx) Snapshot(chainID digest.Digest) (Snapshot, error) {
	var s Snapshot
	err := t.get(bucketSnapshots, chainID.String(), &s)
	return s, err
}

// PutSnapshot stores a snapshot record.
func (t *Tx) PutSnapshot(s Snapshot) error { return t.put(bucketSnapshots, s.ChainID.String(), s) }

// DeleteSnapshot removes a snapshot record.
func (t *Tx) DeleteSnapshot(chainID digest.Digest) error {
	return t.del(bucketSnapshots, chainID.String())
}

// Snapshots returns every snapshot record.
func (t *Tx) Snapshots() ([]Snapshot, error) {
	var out []Snapshot
	err := each(t, bucketSnapshots, func(_ string, s Snapshot) error {
		out = append(out, s)
		return nil
	})
	return out, err
}

// NextSnapshotDir allocates a snapshot directory number. It is only
// consumed if the transaction commits.
func (t *Tx) NextSnapshotDir() (uint64, error) {
	return t.tx.Bucket(bucketSnapshots).NextSequence()
}

// Variant returns the blob that holds the content of blob src compressed
// with algo (as stored for pushing).
func (t *Tx) Variant(src digest.Digest, algo string) (ocispec.Descriptor, error) {
	var d ocispec.Descriptor
	err := t.get(bucketVariants, src.String()+" "+algo, &d)
	return d, err
}

// PutVariant records a compressed variant of blob src.
func (t *Tx) PutVariant(src digest.Digest, algo string, d ocispec.Descriptor) error {
	return t.put(bucketVariants, src.String()+" "+algo, d)
}

// Variants calls fn for every recorded variant.
func (t *Tx) Variants(fn func(src digest.Digest, d ocispec.Descriptor) error) error {
	return each(t, bucketVariants, func(k string, d ocispec.Descriptor) error {
		src, _, _ := strings.Cut(k, " ")
		return fn(digest.Digest(src), d)
	})
}

// DeleteVariant removes a variant record.
func (t *Tx) DeleteVariant(src digest.Digest, algo string) error {
	return t.del(bucketVariants, src.String()+" "+algo)
}

// CacheEntry returns the build cache entry under key.
func (t *Tx) CacheEntry(key string) (CacheEntry, error) {
	var e CacheEntry
	err := t.get(bucketCache, key, &e)
	return e, err
}

// PutCacheEntry records a build cache entry.
func (t *Tx) PutCacheEntry(key string, e CacheEntry) error { return t.put(bucketCache, key, e) }

// DeleteCacheEntry removes a build cache entry.
func (t *Tx) DeleteCacheEntry(key string) error { return t.del(bucketCache, key) }

// CacheEntries calls fn for every build cache entry.
func (t *Tx) CacheEntries(fn func(key string, e CacheEntry) error) error {
	return each(t, bucketCache, fn)
}

// Package metadata is the registry's embedded metadata store (bbolt): which
// blobs exist and in which repositories, manifests with what they reference,
// tags, referrers and upload sessions. It owns every transaction and never
// touches blob bytes.
//
// Its operations are the seam where a shared database (PostgreSQL) can later
// replace bbolt for several registry processes: each is one transaction and
// carries every check that must be atomic with its write (a manifest's blobs
// are live when it is stored; a blob is unreferenced when it is condemned).
package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketBlobs     = []byte("blobs")     // digest → Blob
	bucketManifests = []byte("manifests") // digest → manifest bytes, shared by repositories
	bucketRepos     = []byte("repos")     // name → repository bucket
	bucketUploads   = []byte("uploads")   // id → Upload

	repoBlobs     = []byte("blobs")     // digest → link time
	repoManifests = []byte("manifests") // digest → Manifest
	repoTags      = []byte("tags")      // tag → digest
	repoReferrers = []byte("referrers") // subject digest + "\x00" + digest → Descriptor
)

var (
	// ErrNotFound is returned for a repository, manifest, tag, blob or
	// upload the store does not hold.
	ErrNotFound = errors.New("not found")
	// ErrBusy is returned when a blob is being deleted by the collector;
	// the caller retries shortly.
	ErrBusy = errors.New("blob is being garbage-collected")
	// ErrConflict is returned when an upload moved on under the caller.
	ErrConflict = errors.New("upload changed concurrently")
)

// State is a blob's life-cycle state.
type State uint8

const (
	// Live: bytes are in storage and verified.
	Live State = iota
	// Deleting: condemned by the collector; bytes are going away.
	Deleting
)

// Blob is the record of one blob in storage.
type Blob struct {
	Size  int64 `json:"size"`
	State State `json:"state"`
	// Touched is when the blob was last written, linked or asked for;
	// the collector spares blobs touched within its grace period.
	Touched time.Time `json:"touched"`
}

// Descriptor is the part of an OCI descriptor the store keeps.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Manifest is the record of one manifest in a repository.
type Manifest struct {
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	// Blobs are the config and layers, which must be live and in the
	// repository; Children are the manifests an index lists, which must
	// be in the repository.
	Blobs    []Descriptor    `json:"blobs,omitempty"`
	Children []digest.Digest `json:"children,omitempty"`
	// Subject, when set, makes this manifest a referrer of it.
	Subject      digest.Digest     `json:"subject,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// MissingError names what a manifest references but the repository lacks.
type MissingError struct {
	Digest   digest.Digest
	Manifest bool // a child manifest rather than a blob
}

func (e *MissingError) Error() string {
	if e.Manifest {
		return fmt.Sprintf("manifest %s is not in the repository", e.Digest)
	}
	return fmt.Sprintf("blob %s is not in the repository", e.Digest)
}

// SizeError names a descriptor whose size is not its blob's.
type SizeError struct {
	Digest     digest.Digest
	Want, Have int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("blob %s has %d bytes, the manifest says %d", e.Digest, e.Have, e.Want)
}

// DB is an open metadata store.
type DB struct {
	db *bolt.DB
}

// Open opens (creating if needed) the store at path.
func Open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        5 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketBlobs, bucketManifests, bucketRepos, bucketUploads} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("metadata %s: %w", path, err)
	}
	// Blob commits and upload updates go through Batch: concurrent
	// requests share one fsync. A short delay keeps a lone push fast.
	b.MaxBatchDelay = time.Millisecond
	return &DB{db: b}, nil
}

// Close closes the store.
func (d *DB) Close() error { return d.db.Close() }

// Ping reads the store, for health checks.
func (d *DB) Ping() error {
	return d.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketBlobs) == nil {
			return errors.New("metadata: blobs bucket missing")
		}
		return nil
	})
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("metadata: record %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// repo returns the repository's bucket, or nil.
func repo(tx *bolt.Tx, name string) *bolt.Bucket {
	return tx.Bucket(bucketRepos).Bucket([]byte(name))
}

// repoSub returns one sub-bucket of a repository, or nil.
func repoSub(tx *bolt.Tx, name string, sub []byte) *bolt.Bucket {
	r := repo(tx, name)
	if r == nil {
		return nil
	}
	return r.Bucket(sub)
}

// createRepo returns the repository's bucket, creating it and its
// sub-buckets.
func createRepo(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	r, err := tx.Bucket(bucketRepos).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("metadata: repository %s: %w", name, err)
	}
	for _, sub := range [][]byte{repoBlobs, repoManifests, repoTags, repoReferrers} {
		if _, err := r.CreateBucketIfNotExists(sub); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func timeBytes(t time.Time) []byte {
	b, _ := t.UTC().MarshalBinary()
	return b
}

// page walks the keys of b in order after last, collecting at most n (all
// when n < 0) keys accepted by keep.
func page(b *bolt.Bucket, last string, n int, keep func(k []byte) bool) []string {
	out := []string{}
	if b == nil || n == 0 {
		return out
	}
	c := b.Cursor()
	var k []byte
	if last == "" {
		k, _ = c.First()
	} else {
		k, _ = c.Seek([]byte(last))
		if k != nil && bytes.Equal(k, []byte(last)) {
			k, _ = c.Next()
		}
	}
	for ; k != nil; k, _ = c.Next() {
		if keep != nil && !keep(k) {
			continue
		}
		out = append(out, string(k))
		if n > 0 && len(out) == n {
			break
		}
	}
	return out
}

func jsonUnmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("metadata: corrupt record: %w", err)
	}
	return nil
}

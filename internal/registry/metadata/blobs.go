package metadata

import (
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// RepoBlob returns the size of a blob that is live and in the repository.
func (d *DB) RepoBlob(repoName string, dg digest.Digest) (int64, error) {
	var size int64
	err := d.db.View(func(tx *bolt.Tx) error {
		links := repoSub(tx, repoName, repoBlobs)
		if links == nil || links.Get([]byte(dg)) == nil {
			return ErrNotFound
		}
		var b Blob
		ok, err := getJSON(tx.Bucket(bucketBlobs), []byte(dg), &b)
		if err != nil {
			return err
		}
		if !ok || b.State != Live {
			return ErrNotFound
		}
		size = b.Size
		return nil
	})
	return size, err
}

// BeginBlob announces that bytes for dg are about to be written. It reports
// whether the blob is already live (then nothing needs writing); otherwise
// the blob is recorded as pending, which keeps the collector away from it for
// its grace period. It fails with ErrBusy while the collector deletes dg.
func (d *DB) BeginBlob(dg digest.Digest, now time.Time) (live bool, err error) {
	err = d.db.Batch(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bucketBlobs)
		var b Blob
		ok, err := getJSON(blobs, []byte(dg), &b)
		if err != nil {
			return err
		}
		switch {
		case ok && b.State == Deleting:
			return ErrBusy
		case ok && b.State == Live:
			live = true
			return nil
		}
		live = false
		return putJSON(blobs, []byte(dg), Blob{Size: -1, State: Pending, Touched: now})
	})
	return live, err
}

// CommitBlob records dg as live with size bytes (its bytes are in storage
// and verified) and links it into the repository.
func (d *DB) CommitBlob(repoName string, dg digest.Digest, size int64, now time.Time) error {
	return d.db.Batch(func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketBlobs), []byte(dg), Blob{Size: size, State: Live, Touched: now}); err != nil {
			return err
		}
		r, err := createRepo(tx, repoName)
		if err != nil {
			return err
		}
		return r.Bucket(repoBlobs).Put([]byte(dg), timeBytes(now))
	})
}

// LinkBlob links a live blob into the repository (a cross-repository mount,
// or an upload of bytes the registry already holds) and touches it. It
// returns the blob's size, or ErrNotFound when dg is not live.
func (d *DB) LinkBlob(repoName string, dg digest.Digest, now time.Time) (int64, error) {
	var size int64
	err := d.db.Batch(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bucketBlobs)
		var b Blob
		ok, err := getJSON(blobs, []byte(dg), &b)
		if err != nil {
			return err
		}
		if !ok || b.State != Live {
			return ErrNotFound
		}
		b.Touched = now
		if err := putJSON(blobs, []byte(dg), b); err != nil {
			return err
		}
		r, err := createRepo(tx, repoName)
		if err != nil {
			return err
		}
		size = b.Size
		return r.Bucket(repoBlobs).Put([]byte(dg), timeBytes(now))
	})
	return size, err
}

// RepoHasBlob reports whether repository from holds live blob dg, for a
// mount from it.
func (d *DB) RepoHasBlob(from string, dg digest.Digest) bool {
	_, err := d.RepoBlob(from, dg)
	return err == nil
}

// UnlinkBlob removes a blob from the repository (its bytes stay until the
// collector finds no manifest referencing them).
func (d *DB) UnlinkBlob(repoName string, dg digest.Digest) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		links := repoSub(tx, repoName, repoBlobs)
		if links == nil || links.Get([]byte(dg)) == nil {
			return ErrNotFound
		}
		return links.Delete([]byte(dg))
	})
}

// Touch marks live blobs as asked for now, so that the collector spares
// them for its grace period (a client that saw a blob exist may reference
// it in a manifest it pushes next).
func (d *DB) Touch(dgs []digest.Digest, now time.Time) error {
	if len(dgs) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bucketBlobs)
		for _, dg := range dgs {
			var b Blob
			ok, err := getJSON(blobs, []byte(dg), &b)
			if err != nil {
				return err
			}
			if !ok || b.State != Live || !now.After(b.Touched) {
				continue
			}
			b.Touched = now
			if err := putJSON(blobs, []byte(dg), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// KnownBlob reports whether the store has any record of dg, for the sweep
// of bytes whose record was never written.
func (d *DB) KnownBlob(dg digest.Digest) bool {
	known := false
	_ = d.db.View(func(tx *bolt.Tx) error {
		known = tx.Bucket(bucketBlobs).Get([]byte(dg)) != nil
		return nil
	})
	return known
}

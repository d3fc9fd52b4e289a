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

// BlobState reports whether dg is live (then an upload needs to write
// nothing) and fails with ErrBusy while the collector deletes it. A blob
// with no record, or a pending one, may be written: the collector condemns
// only records untouched for its grace period and sweeps only unrecorded
// bytes older than it, and CommitBlob refuses a blob condemned meanwhile.
func (d *DB) BlobState(dg digest.Digest) (live bool, err error) {
	err = d.db.View(func(tx *bolt.Tx) error {
		var b Blob
		ok, err := getJSON(tx.Bucket(bucketBlobs), []byte(dg), &b)
		if err != nil {
			return err
		}
		if ok && b.State == Deleting {
			return ErrBusy
		}
		live = ok && b.State == Live
		return nil
	})
	return live, err
}

// CommitBlob records dg as live with size bytes (its bytes are in storage
// and verified), links it into the repository and closes the upload that
// brought it (if upload is not empty). It fails with ErrBusy when the
// collector condemned dg while its bytes were being written: they may be
// deleted, and the client must upload again.
func (d *DB) CommitBlob(repoName string, dg digest.Digest, size int64, now time.Time, upload string) error {
	return d.db.Batch(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bucketBlobs)
		var b Blob
		ok, err := getJSON(blobs, []byte(dg), &b)
		if err != nil {
			return err
		}
		if ok && b.State == Deleting {
			return ErrBusy
		}
		if err := putJSON(blobs, []byte(dg), Blob{Size: size, State: Live, Touched: now}); err != nil {
			return err
		}
		r, err := createRepo(tx, repoName)
		if err != nil {
			return err
		}
		if err := closeUpload(tx, upload, repoName, now); err != nil {
			return err
		}
		return r.Bucket(repoBlobs).Put([]byte(dg), timeBytes(now))
	})
}

// LinkBlob links a live blob into the repository (a cross-repository mount,
// or an upload of bytes the registry already holds, which it closes when
// upload is not empty) and touches it. It returns the blob's size, or
// ErrNotFound when dg is not live.
func (d *DB) LinkBlob(repoName string, dg digest.Digest, now time.Time, upload string) (int64, error) {
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
		if err := closeUpload(tx, upload, repoName, now); err != nil {
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

package metadata

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// Upload is the state of one chunked blob upload between requests. An
// upload that has received no bytes yet has no record.
type Upload struct {
	Repo string `json:"repo"`
	// Offset is how many bytes were received; Parts are the storage
	// keys of the chunks that hold them, in order.
	Offset int64    `json:"offset"`
	Parts  []string `json:"parts,omitempty"`
	// Hash is the marshalled state of the sha256 of the bytes so far.
	Hash    []byte    `json:"hash,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Closed marks an upload that was completed or cancelled: its id
	// stays unknown until the record is purged.
	Closed bool `json:"closed,omitempty"`
}

// Upload returns an upload's record, or ErrNotFound.
func (d *DB) Upload(id string) (Upload, error) {
	var u Upload
	err := d.db.View(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketUploads), []byte(id), &u)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		return nil
	})
	return u, err
}

// SaveUpload stores u if the upload's recorded offset is still from (a
// missing record counts as offset 0); otherwise ErrConflict. A closed
// upload gives ErrNotFound.
func (d *DB) SaveUpload(id string, from int64, u Upload) error {
	return d.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUploads)
		var cur Upload
		ok, err := getJSON(b, []byte(id), &cur)
		if err != nil {
			return err
		}
		if ok && cur.Closed {
			return ErrNotFound
		}
		if cur.Offset != from {
			return ErrConflict
		}
		return putJSON(b, []byte(id), u)
	})
}

// CloseUpload leaves a tombstone for an upload, so that it stays unknown.
func (d *DB) CloseUpload(id, repoName string, now time.Time) error {
	return d.db.Batch(func(tx *bolt.Tx) error {
		return closeUpload(tx, id, repoName, now)
	})
}

func closeUpload(tx *bolt.Tx, id, repoName string, now time.Time) error {
	if id == "" {
		return nil
	}
	return putJSON(tx.Bucket(bucketUploads), []byte(id), Upload{Repo: repoName, Started: now, Updated: now, Closed: true})
}

// DeleteUpload forgets an upload.
func (d *DB) DeleteUpload(id string) error {
	return d.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUploads).Delete([]byte(id))
	})
}

// Uploads calls fn for every upload record.
func (d *DB) Uploads(fn func(id string, u Upload)) error {
	return d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUploads).ForEach(func(k, v []byte) error {
			var u Upload
			if err := jsonUnmarshal(v, &u); err != nil {
				return err
			}
			fn(string(k), u)
			return nil
		})
	})
}

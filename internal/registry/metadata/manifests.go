package metadata

import (
	"bytes"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// PutManifest stores a manifest in the repository, and tags it when tag is
// not empty, after checking in the same transaction that every blob it
// references is live, in the repository and of the size it claims
// (*MissingError, *SizeError) and every child manifest is in the repository.
func (d *DB) PutManifest(repoName string, dg digest.Digest, m Manifest, content []byte, tag string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		r, err := createRepo(tx, repoName)
		if err != nil {
			return err
		}
		links, blobs := r.Bucket(repoBlobs), tx.Bucket(bucketBlobs)
		for _, ref := range m.Blobs {
			var b Blob
			ok, err := getJSON(blobs, []byte(ref.Digest), &b)
			if err != nil {
				return err
			}
			if !ok || b.State != Live || links.Get([]byte(ref.Digest)) == nil {
				return &MissingError{Digest: ref.Digest}
			}
			if b.Size != ref.Size {
				return &SizeError{Digest: ref.Digest, Want: ref.Size, Have: b.Size}
			}
		}
		manifests := r.Bucket(repoManifests)
		for _, child := range m.Children {
			if child != dg && manifests.Get([]byte(child)) == nil {
				return &MissingError{Digest: child, Manifest: true}
			}
		}
		if content != nil && tx.Bucket(bucketManifests).Get([]byte(dg)) == nil {
			if err := tx.Bucket(bucketManifests).Put([]byte(dg), content); err != nil {
				return err
			}
		}
		if err := putJSON(manifests, []byte(dg), m); err != nil {
			return err
		}
		if tag != "" {
			if err := r.Bucket(repoTags).Put([]byte(tag), []byte(dg)); err != nil {
				return err
			}
		}
		if m.Subject != "" {
			desc := Descriptor{MediaType: m.MediaType, Digest: dg, Size: m.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
			return putJSON(r.Bucket(repoReferrers), referrerKey(m.Subject, dg), desc)
		}
		return nil
	})
}

func referrerKey(subject, dg digest.Digest) []byte {
	return []byte(string(subject) + "\x00" + string(dg))
}

// GetManifest resolves ref (a tag or a digest) in the repository and returns
// the manifest's digest, record and bytes.
func (d *DB) GetManifest(repoName, ref string) (digest.Digest, Manifest, []byte, error) {
	var (
		dg      digest.Digest
		m       Manifest
		content []byte
	)
	err := d.db.View(func(tx *bolt.Tx) error {
		r := repo(tx, repoName)
		if r == nil {
			return ErrNotFound
		}
		if dgst, err := digest.Parse(ref); err == nil {
			dg = dgst
		} else {
			t := r.Bucket(repoTags).Get([]byte(ref))
			if t == nil {
				return ErrNotFound
			}
			dg = digest.Digest(t)
		}
		ok, err := getJSON(r.Bucket(repoManifests), []byte(dg), &m)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		raw := tx.Bucket(bucketManifests).Get([]byte(dg))
		if raw == nil {
			return ErrNotFound
		}
		content = bytes.Clone(raw)
		return nil
	})
	return dg, m, content, err
}

// DeleteManifest removes a manifest from the repository, with the tags that
// point at it and its referrer entry.
func (d *DB) DeleteManifest(repoName string, dg digest.Digest) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		r := repo(tx, repoName)
		if r == nil {
			return ErrNotFound
		}
		var m Manifest
		ok, err := getJSON(r.Bucket(repoManifests), []byte(dg), &m)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		if err := r.Bucket(repoManifests).Delete([]byte(dg)); err != nil {
			return err
		}
		tags := r.Bucket(repoTags)
		var drop [][]byte
		if err := tags.ForEach(func(k, v []byte) error {
			if string(v) == string(dg) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := tags.Delete(k); err != nil {
				return err
			}
		}
		if m.Subject != "" {
			return r.Bucket(repoReferrers).Delete(referrerKey(m.Subject, dg))
		}
		return nil
	})
}

// DeleteTag removes one tag from the repository.
func (d *DB) DeleteTag(repoName, tag string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		tags := repoSub(tx, repoName, repoTags)
		if tags == nil || tags.Get([]byte(tag)) == nil {
			return ErrNotFound
		}
		return tags.Delete([]byte(tag))
	})
}

// Tags lists the repository's tags in lexical order after last, at most n
// of them (all when n < 0).
func (d *DB) Tags(repoName, last string, n int) ([]string, error) {
	var out []string
	err := d.db.View(func(tx *bolt.Tx) error {
		r := repo(tx, repoName)
		if r == nil {
			return ErrNotFound
		}
		out = page(r.Bucket(repoTags), last, n, nil)
		return nil
	})
	return out, err
}

// Repositories lists repository names in lexical order after last, at most
// n of them (all when n < 0), keeping those keep accepts.
func (d *DB) Repositories(last string, n int, keep func(name string) bool) ([]string, error) {
	var out []string
	err := d.db.View(func(tx *bolt.Tx) error {
		out = page(tx.Bucket(bucketRepos), last, n, func(k []byte) bool {
			return keep == nil || keep(string(k))
		})
		return nil
	})
	return out, err
}

// Referrers lists the manifests in the repository whose subject is dg.
func (d *DB) Referrers(repoName string, subject digest.Digest) ([]Descriptor, error) {
	out := []Descriptor{}
	err := d.db.View(func(tx *bolt.Tx) error {
		refs := repoSub(tx, repoName, repoReferrers)
		if refs == nil {
			return nil
		}
		prefix := []byte(string(subject) + "\x00")
		c := refs.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var desc Descriptor
			if err := jsonUnmarshal(v, &desc); err != nil {
				return err
			}
			out = append(out, desc)
		}
		return nil
	})
	return out, err
}

// Condemn is the collector's mark phase and the first half of its sweep, in
// one transaction: every blob referenced by a manifest of any repository is
// marked; every other blob not touched since before is switched to
// Deleting and returned (with those a crashed collection left Deleting).
// Manifest bytes no repository holds any more are dropped.
func (d *DB) Condemn(before time.Time) ([]digest.Digest, error) {
	var condemned []digest.Digest
	err := d.db.Update(func(tx *bolt.Tx) error {
		marked := map[digest.Digest]bool{}
		held := map[string]bool{}
		err := tx.Bucket(bucketRepos).ForEachBucket(func(name []byte) error {
			return tx.Bucket(bucketRepos).Bucket(name).Bucket(repoManifests).ForEach(func(k, v []byte) error {
				held[string(k)] = true
				var m Manifest
				if err := jsonUnmarshal(v, &m); err != nil {
					return err
				}
				for _, b := range m.Blobs {
					marked[b.Digest] = true
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		var orphans [][]byte
		mc := tx.Bucket(bucketManifests)
		if err := mc.ForEach(func(k, _ []byte) error {
			if !held[string(k)] {
				orphans = append(orphans, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range orphans {
			if err := mc.Delete(k); err != nil {
				return err
			}
		}
		blobs := tx.Bucket(bucketBlobs)
		type update struct {
			key []byte
			b   Blob
		}
		var updates []update
		if err := blobs.ForEach(func(k, v []byte) error {
			dg := digest.Digest(k)
			if marked[dg] {
				return nil
			}
			var b Blob
			if err := jsonUnmarshal(v, &b); err != nil {
				return err
			}
			if b.State != Deleting && !b.Touched.Before(before) {
				return nil
			}
			condemned = append(condemned, dg)
			if b.State != Deleting {
				b.State = Deleting
				updates = append(updates, update{bytes.Clone(k), b})
			}
			return nil
		}); err != nil {
			return err
		}
		for _, u := range updates {
			if err := putJSON(blobs, u.key, u.b); err != nil {
				return err
			}
		}
		return nil
	})
	return condemned, err
}

// Forget drops the records of condemned blobs whose bytes are gone, and
// their links in every repository.
func (d *DB) Forget(dgs []digest.Digest) error {
	if len(dgs) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		blobs := tx.Bucket(bucketBlobs)
		var gone [][]byte
		for _, dg := range dgs {
			var b Blob
			ok, err := getJSON(blobs, []byte(dg), &b)
			if err != nil {
				return err
			}
			if !ok || b.State != Deleting {
				continue
			}
			if err := blobs.Delete([]byte(dg)); err != nil {
				return err
			}
			gone = append(gone, []byte(dg))
		}
		repos := tx.Bucket(bucketRepos)
		return repos.ForEachBucket(func(name []byte) error {
			links := repos.Bucket(name).Bucket(repoBlobs)
			for _, k := range gone {
				if err := links.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

package registry

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/metadata"
	"github.com/berth-dev/berth/internal/registry/storage"
	"github.com/opencontainers/go-digest"
)

// Upload ids are signed, so that starting an upload writes nothing: the id
// carries its start time and an HMAC over it and the repository, and the
// metadata store learns of an upload only when its first bytes arrive.

const uploadIDPayload = 16 + 8

func (r *Registry) newUploadID(repoName string) string {
	p := make([]byte, uploadIDPayload)
	_, _ = rand.Read(p[:16])
	binary.BigEndian.PutUint64(p[16:], uint64(time.Now().Unix()))
	return base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(r.uploadMAC(repoName, p))
}

func (r *Registry) uploadMAC(repoName string, payload []byte) []byte {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte(repoName))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:16]
}

// checkUploadID verifies that id was issued for the repository and returns
// when it was.
func (r *Registry) checkUploadID(repoName, id string) (time.Time, *apiError) {
	enc, sig, ok := strings.Cut(id, ".")
	if !ok {
		return time.Time{}, errUploadUnknown(id)
	}
	p, err1 := base64.RawURLEncoding.DecodeString(enc)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || len(p) != uploadIDPayload || !hmac.Equal(mac, r.uploadMAC(repoName, p)) {
		return time.Time{}, errUploadUnknown(id)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(p[16:])), 0), nil
}

// loadUpload returns the upload's state; one that has had no bytes yet has
// no record and starts empty. An upload idle for longer than the upload
// TTL, closed, or of another repository is unknown.
func (r *Registry) loadUpload(rt route) (metadata.Upload, *apiError) {
	started, aerr := r.checkUploadID(rt.name, rt.ref)
	if aerr != nil {
		return metadata.Upload{}, aerr
	}
	ttl := r.cfg.GC.UploadTTL
	u, err := r.db.Upload(rt.ref)
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		if time.Since(started) > ttl {
			return u, errUploadUnknown(rt.ref)
		}
		now := time.Now()
		return metadata.Upload{Repo: rt.name, Started: now, Updated: now}, nil
	case err != nil:
		return u, internalError(err)
	case u.Closed || u.Repo != rt.name || time.Since(u.Updated) > ttl:
		return u, errUploadUnknown(rt.ref)
	}
	return u, nil
}

func uploadHeaders(w http.ResponseWriter, rt route, offset int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/blobs/uploads/"+rt.ref)
	h.Set("Range", rangeHeader(offset))
	h.Set("Docker-Upload-UUID", rt.ref)
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, repoName string, dg digest.Digest) *apiError {
	h := w.Header()
	h.Set("Location", "/v2/"+repoName+"/blobs/"+dg.String())
	h.Set("Docker-Content-Digest", dg.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a mount, a whole blob
// in one request (?digest=), or a new upload session.
func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	q := req.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		dg, aerr := parseDigest(mount)
		if aerr != nil {
			return aerr
		}
		from := q.Get("from")
		var can bool
		if from != "" {
			// Without pull on the source, the mount falls back to an
			// upload, as it does when the source lacks the blob.
			pull := []auth.Access{{Type: "repository", Name: from, Actions: []string{"pull"}}}
			_, denied := r.authz.Authorize(req, pull)
			can = denied == nil && nameRE.MatchString(from) && r.db.RepoHasBlob(from, dg)
		} else {
			// An anonymous mount (spec v1.1) only where there is no auth:
			// with auth, knowing a digest must not open a blob of a
			// repository the user cannot pull.
			can = r.cfg.Auth.Mode == "" || r.cfg.Auth.Mode == "none"
		}
		if can {
			_, err := r.db.LinkBlob(rt.name, dg, time.Now(), "")
			if err == nil {
				return blobCreated(w, rt.name, dg)
			}
			if !errors.Is(err, metadata.ErrNotFound) {
				return internalError(err)
			}
		}
	}
	if d := q.Get("digest"); d != "" {
		dg, aerr := parseDigest(d)
		if aerr != nil {
			return aerr
		}
		if _, aerr := r.storeBlob(req.Context(), rt.name, dg, req.Body, req.ContentLength, ""); aerr != nil {
			return aerr
		}
		return blobCreated(w, rt.name, dg)
	}
	rt.ref = r.newUploadID(rt.name)
	uploadHeaders(w, rt, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (r *Registry) uploadStatus(w http.ResponseWriter, _ *http.Request, rt route) *apiError {
	u, aerr := r.loadUpload(rt)
	if aerr != nil {
		return aerr
	}
	uploadHeaders(w, rt, u.Offset)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	u, aerr := r.loadUpload(rt)
	if aerr != nil {
		return aerr
	}
	if u, aerr = r.appendChunk(req, rt, u); aerr != nil {
		return aerr
	}
	uploadHeaders(w, rt, u.Offset)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// appendChunk stores the request body as the upload's next chunk, after
// checking its Content-Range (if any) starts where the upload ends.
func (r *Registry) appendChunk(req *http.Request, rt route, u metadata.Upload) (metadata.Upload, *apiError) {
	size := req.ContentLength
	if cr := req.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok {
			return u, errUploadInvalid("invalid Content-Range %q", cr)
		}
		if start != u.Offset {
			return u, errRangeInvalid(u.Offset)
		}
		if size >= 0 && size != end-start+1 {
			return u, errSizeInvalid("Content-Range %q does not match Content-Length %d", cr, size)
		}
		size = end - start + 1
	}
	if size == 0 {
		return u, nil
	}
	h := sha256.New()
	if u.Hash != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.Hash); err != nil {
			return u, internalError(fmt.Errorf("upload %s: hash state: %w", rt.ref, err))
		}
	}
	body := io.Reader(req.Body)
	if lim := r.cfg.Limits.BlobSize; lim > 0 {
		body = http.MaxBytesReader(nil, req.Body, lim-u.Offset)
	}
	cw := &countWriter{}
	key := "uploads/" + rt.ref + "/" + strconv.FormatInt(u.Offset, 10) + "-" + randomSuffix()
	err := r.driver.Put(req.Context(), key, io.TeeReader(body, io.MultiWriter(h, cw)), size)
	if err != nil {
		_ = r.driver.Delete(req.Context(), key)
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &mb):
			return u, errTooLarge("blob", r.cfg.Limits.BlobSize)
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, storage.ErrSizeMismatch):
			return u, errSizeInvalid("upload %s: the chunk does not have the announced length", rt.ref)
		}
		return u, internalError(fmt.Errorf("upload %s: %w", rt.ref, err))
	}
	state, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	from := u.Offset
	u.Offset += cw.n
	u.Parts = append(u.Parts, key)
	u.Hash = state
	u.Updated = time.Now()
	switch err := r.db.SaveUpload(rt.ref, from, u); {
	case errors.Is(err, metadata.ErrConflict):
		_ = r.driver.Delete(req.Context(), key)
		cur, _ := r.db.Upload(rt.ref)
		return u, errRangeInvalid(cur.Offset)
	case errors.Is(err, metadata.ErrNotFound):
		_ = r.driver.Delete(req.Context(), key)
		return u, errUploadUnknown(rt.ref)
	case err != nil:
		_ = r.driver.Delete(req.Context(), key)
		return u, internalError(err)
	}
	return u, nil
}

// finishUpload answers PUT ?digest=: the last chunk (if any) is appended,
// the whole is verified and becomes the blob.
func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	u, aerr := r.loadUpload(rt)
	if aerr != nil {
		return aerr
	}
	d := req.URL.Query().Get("digest")
	if d == "" {
		return errDigestInvalid("the upload's digest parameter is missing")
	}
	dg, aerr := parseDigest(d)
	if aerr != nil {
		return aerr
	}
	ctx := req.Context()
	if len(u.Parts) == 0 {
		// The whole blob is in this request: stream it into place.
		if _, aerr := r.storeBlob(ctx, rt.name, dg, req.Body, req.ContentLength, rt.ref); aerr != nil {
			return aerr
		}
		return blobCreated(w, rt.name, dg)
	}
	if req.ContentLength != 0 {
		if u, aerr = r.appendChunk(req, rt, u); aerr != nil {
			return aerr
		}
	}
	// The chunks go whatever happens: the blob has its own copy, or the
	// upload is closed as failed.
	defer r.dropChunks(u.Parts)
	if got, err := r.uploadDigest(req, u, dg.Algorithm()); err != nil {
		return internalError(err)
	} else if got != dg {
		if err := r.db.CloseUpload(rt.ref, rt.name, time.Now()); err != nil {
			return internalError(err)
		}
		return errDigestInvalid("upload %s: the uploaded bytes have digest %s, not %s", rt.ref, got, dg)
	}
	live, aerr := r.beginBlob(ctx, dg)
	if aerr != nil {
		return aerr
	}
	if live {
		if _, err := r.db.LinkBlob(rt.name, dg, time.Now(), rt.ref); err != nil {
			return errUnavailable("blob %s is being garbage-collected; retry", dg)
		}
		return blobCreated(w, rt.name, dg)
	}
	if err := r.driver.Concat(ctx, blobKey(dg), u.Parts); err != nil {
		return internalError(fmt.Errorf("blob %s: %w", dg, err))
	}
	if aerr := r.commitBlob(rt.name, dg, u.Offset, rt.ref); aerr != nil {
		return aerr
	}
	return blobCreated(w, rt.name, dg)
}

// uploadDigest is the digest of everything uploaded: from the saved hash
// state for sha256, by reading the chunks back for other algorithms.
func (r *Registry) uploadDigest(req *http.Request, u metadata.Upload, alg digest.Algorithm) (digest.Digest, error) {
	if alg == digest.SHA256 {
		h := sha256.New()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.Hash); err != nil {
			return "", err
		}
		return digest.NewDigest(alg, h), nil
	}
	h := alg.Hash()
	for _, key := range u.Parts {
		rc, err := r.driver.Open(req.Context(), key, 0)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return "", err
		}
	}
	return digest.NewDigest(alg, h), nil
}

// dropChunks deletes an upload's chunks.
func (r *Registry) dropChunks(parts []string) {
	for _, key := range parts {
		if err := r.driver.Delete(context.Background(), key); err != nil {
			r.log.Warn("deleting upload chunk", "key", key, "err", err)
		}
	}
}

func (r *Registry) cancelUpload(w http.ResponseWriter, _ *http.Request, rt route) *apiError {
	u, aerr := r.loadUpload(rt)
	if aerr != nil {
		return aerr
	}
	if err := r.db.CloseUpload(rt.ref, rt.name, time.Now()); err != nil {
		return internalError(err)
	}
	r.dropChunks(u.Parts)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseContentRange reads a chunk's "start-end" (inclusive; "bytes="
// prefix tolerated).
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

package registry

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/registry/metadata"
	"github.com/berth-dev/berth/internal/registry/storage"
	"github.com/opencontainers/go-digest"
)

// blobKey is where a blob's bytes live in storage.
func blobKey(dg digest.Digest) string {
	enc := dg.Encoded()
	return "blobs/" + dg.Algorithm().String() + "/" + enc[:2] + "/" + enc
}

// parseDigest accepts the digests the registry stores: sha256 and sha512.
func parseDigest(s string) (digest.Digest, *apiError) {
	dg, err := digest.Parse(s)
	if err != nil {
		return "", errDigestInvalid("invalid digest %q: %v", s, err)
	}
	if dg.Algorithm() != digest.SHA256 && dg.Algorithm() != digest.SHA512 {
		return "", errDigestInvalid("unsupported digest algorithm in %q", s)
	}
	return dg, nil
}

func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	dg, aerr := parseDigest(rt.ref)
	if aerr != nil {
		return aerr
	}
	// Under seenMu, a blob found live is also recorded as seen before the
	// collector can condemn it (see GC).
	r.seenMu.RLock()
	size, err := r.db.RepoBlob(rt.name, dg)
	if err == nil {
		r.touch(dg)
	}
	r.seenMu.RUnlock()
	if errors.Is(err, metadata.ErrNotFound) {
		return errBlobUnknown(dg)
	}
	if err != nil {
		return internalError(err)
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", dg.String())
	h.Set("ETag", `"`+dg.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "max-age=31536000")
	if req.Method == http.MethodHead {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if r.redirect != nil {
		u, err := r.redirect.RedirectURL(req.Context(), blobKey(dg), 20*time.Minute)
		if err != nil {
			return internalError(err)
		}
		http.Redirect(w, req, u, http.StatusTemporaryRedirect)
		return nil
	}
	h.Set("Content-Type", "application/octet-stream")
	start, end, partial := int64(0), size-1, false
	if rg := req.Header.Get("Range"); rg != "" {
		var ok bool
		if start, end, ok = parseByteRange(rg, size); !ok {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			return errorf(http.StatusRequestedRangeNotSatisfiable, "BLOB_UNKNOWN", "range %q is not satisfiable for blob %s of %d bytes", rg, dg, size)
		}
		partial = true
	}
	f, err := r.driver.Open(req.Context(), blobKey(dg), start)
	if err != nil {
		return internalError(fmt.Errorf("blob %s: %w", dg, err))
	}
	defer f.Close()
	if rs, ok := f.(io.ReadSeeker); ok && start == 0 {
		// The filesystem driver's *os.File: ServeContent sends it with
		// sendfile, and handles Range itself.
		http.ServeContent(w, req, "", time.Time{}, rs)
		return nil
	}
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		w.WriteHeader(http.StatusPartialContent)
	}
	_, _ = io.Copy(w, io.LimitReader(f, end-start+1))
	return nil
}

// parseByteRange reads a single "bytes=a-b", "bytes=a-" or "bytes=-n"
// range of a blob of size bytes.
func parseByteRange(s string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false
		}
		return max(0, size-n), size - 1, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end = size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e, size-1)
	}
	return start, end, true
}

func (r *Registry) deleteBlob(w http.ResponseWriter, _ *http.Request, rt route) *apiError {
	dg, aerr := parseDigest(rt.ref)
	if aerr != nil {
		return aerr
	}
	err := r.db.UnlinkBlob(rt.name, dg)
	if errors.Is(err, metadata.ErrNotFound) {
		return errBlobUnknown(dg)
	}
	if err != nil {
		return internalError(err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func internalError(err error) *apiError {
	return errorf(http.StatusInternalServerError, "UNKNOWN", "%v", err)
}

// verifier passes a body through while hashing and counting it, and turns
// the end of the body into an error when the bytes are not dg's (or not
// size bytes when size ≥ 0): a driver's Put then stores nothing.
type verifier struct {
	r     io.Reader
	dg    digest.Digest
	h     hash.Hash
	size  int64
	limit int64 // 0: none
	n     int64
	bad   *apiError
}

func newVerifier(r io.Reader, dg digest.Digest, size, limit int64) *verifier {
	return &verifier{r: r, dg: dg, h: dg.Algorithm().Hash(), size: size, limit: limit}
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.limit > 0 && v.n > v.limit {
		v.bad = errTooLarge("blob "+v.dg.String(), v.limit)
		return n, v.bad
	}
	if v.size >= 0 && v.n > v.size {
		v.bad = errSizeInvalid("blob %s: body is longer than its Content-Length %d", v.dg, v.size)
		return n, v.bad
	}
	if err == io.EOF {
		if v.size >= 0 && v.n != v.size {
			v.bad = errSizeInvalid("blob %s: body has %d bytes, Content-Length says %d", v.dg, v.n, v.size)
			return n, v.bad
		}
		if got := digest.NewDigest(v.dg.Algorithm(), v.h); got != v.dg {
			v.bad = errDigestInvalid("blob %s: the uploaded bytes have digest %s", v.dg, got)
			return n, v.bad
		}
	}
	return n, err
}

// storeBlob writes body as blob dg, links it into the repository and closes
// the upload (if any) that brought it; the bytes become visible only once
// verified. A blob the registry already holds is verified against the body
// and linked without writing.
func (r *Registry) storeBlob(ctx context.Context, repoName string, dg digest.Digest, body io.Reader, size int64, upload string) (int64, *apiError) {
	live, aerr := r.beginBlob(ctx, dg)
	if aerr != nil {
		return 0, aerr
	}
	v := newVerifier(body, dg, size, r.cfg.Limits.BlobSize)
	if live {
		if _, err := io.Copy(io.Discard, v); err != nil {
			return 0, bodyError(v, err)
		}
		n, err := r.db.LinkBlob(repoName, dg, time.Now(), upload)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return 0, internalError(err)
		}
		return 0, errUnavailable("blob %s is being garbage-collected; retry", dg)
	}
	if err := r.driver.Put(ctx, blobKey(dg), v, size); err != nil {
		return 0, bodyError(v, err)
	}
	if v.bad != nil {
		return 0, v.bad
	}
	if aerr := r.commitBlob(repoName, dg, v.n, upload); aerr != nil {
		return 0, aerr
	}
	return v.n, nil
}

// bodyError is the client's fault when the verifier refused the body,
// the server's otherwise.
func bodyError(v *verifier, err error) *apiError {
	if v.bad != nil {
		return v.bad
	}
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return errTooLarge("request body", mb.Limit)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, storage.ErrSizeMismatch):
		return errSizeInvalid("blob %s: the body does not have the announced length: %v", v.dg, err)
	case errors.Is(err, context.Canceled):
		return errSizeInvalid("blob %s: the client went away mid-body", v.dg)
	}
	return internalError(err)
}

// beginBlob waits out a collection that is deleting dg and reports whether
// dg is live.
func (r *Registry) beginBlob(ctx context.Context, dg digest.Digest) (bool, *apiError) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		live, err := r.db.BlobState(dg)
		if err == nil {
			return live, nil
		}
		if !errors.Is(err, metadata.ErrBusy) {
			return false, internalError(err)
		}
		if time.Now().After(deadline) {
			return false, errUnavailable("blob %s is being garbage-collected; retry", dg)
		}
		select {
		case <-ctx.Done():
			return false, internalError(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// commitBlob makes dg's written bytes live in the repository and closes
// their upload.
func (r *Registry) commitBlob(repoName string, dg digest.Digest, size int64, upload string) *apiError {
	err := r.db.CommitBlob(repoName, dg, size, time.Now(), upload)
	if errors.Is(err, metadata.ErrBusy) {
		return errUnavailable("blob %s was garbage-collected during its upload; retry", dg)
	}
	if err != nil {
		return internalError(err)
	}
	r.metrics.blobsStored.Inc()
	return nil
}

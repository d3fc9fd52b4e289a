package registry_test

// Conformance suite for berth's registry server, written from the OCI
// distribution-spec v1.1 (spec.md) and, for auth, the Docker token spec
// (distribution/distribution docs/spec/auth/token.md and jwt.md). Every
// top-level test starts its own registry in a temporary directory.
//
// Run: go test ./internal/registry/ -run Conformance -count=1

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/registry"
	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/storage/s3/s3test"
)

// ---------------------------------------------------------------------------
// end-1: GET /v2/

func TestConformanceBase(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	r := newTestRegistry(t, st)
	c := r.client()

	resp := c.do(t, http.MethodGet, "/v2/", nil, nil)
	expectStatus(t, resp, http.StatusOK)
	expectHeader(t, resp, "Docker-Distribution-API-Version", "registry/2.0")

	// A path under /v2/ that names no endpoint. A 4xx body MAY be in any
	// format; a JSON one MUST use the spec's codes.
	resp = c.do(t, http.MethodGet, "/v2/foo/nothing/here", nil, nil)
	expectStatus(t, resp, http.StatusNotFound)
	expectSpecErrorBody(t, resp)
}

// ---------------------------------------------------------------------------
// Pull: end-2, end-3

func TestConformancePull(t *testing.T) { conformancePull(t, nil) }

func conformancePull(t *testing.T, st storageEnv) {
	r := newTestRegistry(t, st)
	c := r.client()
	const repo, other = "pull/app", "pull/other"

	img := newImage(2, 1000)
	c.pushImage(t, repo, "v1", img)
	otherImg := newImage(1, 100)
	c.pushImage(t, other, "v1", otherImg)
	layer := img.Blobs[1]
	layerDigest := digest.FromBytes(layer)

	t.Run("ManifestGet", func(t *testing.T) {
		for _, ref := range []string{"v1", img.Digest.String()} {
			resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, hdrs{"Accept": mtOCIManifest})
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, img.Manifest)
			expectHeader(t, resp, "Content-Type", mtOCIManifest)
			expectHeader(t, resp, "Docker-Content-Digest", img.Digest.String())
			expectHeader(t, resp, "Content-Length", strconv.Itoa(len(img.Manifest)))
		}
	})

	t.Run("ManifestHead", func(t *testing.T) {
		for _, ref := range []string{"v1", img.Digest.String()} {
			resp := c.do(t, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil, hdrs{"Accept": mtOCIManifest})
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, nil)
			expectHeader(t, resp, "Content-Type", mtOCIManifest)
			expectHeader(t, resp, "Docker-Content-Digest", img.Digest.String())
			expectHeader(t, resp, "Content-Length", strconv.Itoa(len(img.Manifest)))
		}
	})

	// Content negotiation is not done: whatever the Accept header, the
	// stored manifest comes back with its stored media type.
	t.Run("ManifestAcceptIgnored", func(t *testing.T) {
		for _, accept := range []string{"", "*/*", "application/json", mtOCIIndex, mtDockerManifest,
			mtDockerManifest + ", " + mtDockerList} {
			t.Run(strings.NewReplacer("/", "_", " ", "").Replace(accept), func(t *testing.T) {
				h := hdrs{}
				if accept != "" {
					h["Accept"] = accept
				}
				resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", nil, h)
				expectStatus(t, resp, http.StatusOK)
				expectHeader(t, resp, "Content-Type", mtOCIManifest)
				expectBody(t, resp, img.Manifest)
			})
		}
	})

	t.Run("ManifestUnknown", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			codes      []string
		}{
			{"Tag", "/v2/" + repo + "/manifests/nope", []string{"MANIFEST_UNKNOWN"}},
			{"Digest", "/v2/" + repo + "/manifests/" + randDigest().String(), []string{"MANIFEST_UNKNOWN"}},
			// Manifests are per repository: other's manifest is not in repo.
			{"OtherRepoDigest", "/v2/" + repo + "/manifests/" + otherImg.Digest.String(), []string{"MANIFEST_UNKNOWN"}},
			{"UnknownRepo", "/v2/pull/nosuchrepo/manifests/v1", []string{"NAME_UNKNOWN", "MANIFEST_UNKNOWN"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectError(t, c.do(t, http.MethodGet, tc.path, nil, nil), http.StatusNotFound, tc.codes...)
				expectError(t, c.do(t, http.MethodHead, tc.path, nil, nil), http.StatusNotFound)
			})
		}
	})

	t.Run("BlobGetHead", func(t *testing.T) {
		for _, b := range img.Blobs {
			d := digest.FromBytes(b)
			resp := c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, b)
			expectHeader(t, resp, "Docker-Content-Digest", d.String())
			expectHeader(t, resp, "Content-Length", strconv.Itoa(len(b)))

			resp = c.do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, nil)
			expectHeader(t, resp, "Docker-Content-Digest", d.String())
			expectHeader(t, resp, "Content-Length", strconv.Itoa(len(b)))
		}
	})

	t.Run("BlobRange", func(t *testing.T) {
		for _, tc := range []struct {
			rng          string
			status       int
			contentRange string
			from, to     int // expected body layer[from:to]
		}{
			{"bytes=0-99", http.StatusPartialContent, "bytes 0-99/1000", 0, 100},
			{"bytes=100-100", http.StatusPartialContent, "bytes 100-100/1000", 100, 101},
			{"bytes=900-", http.StatusPartialContent, "bytes 900-999/1000", 900, 1000},
			{"bytes=-10", http.StatusPartialContent, "bytes 990-999/1000", 990, 1000},
			{"bytes=500-5000", http.StatusPartialContent, "bytes 500-999/1000", 500, 1000},
			{"bytes=1000-1100", http.StatusRequestedRangeNotSatisfiable, "bytes */1000", 0, 0},
			{"bytes=5000-", http.StatusRequestedRangeNotSatisfiable, "bytes */1000", 0, 0},
		} {
			t.Run(tc.rng, func(t *testing.T) {
				resp := c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+layerDigest.String(), nil, hdrs{"Range": tc.rng})
				expectStatus(t, resp, tc.status)
				expectHeader(t, resp, "Content-Range", tc.contentRange)
				if tc.status == http.StatusPartialContent {
					expectBody(t, resp, layer[tc.from:tc.to])
					expectHeader(t, resp, "Content-Length", strconv.Itoa(tc.to-tc.from))
				}
			})
		}
	})

	t.Run("BlobUnknown", func(t *testing.T) {
		d := randDigest()
		expectError(t, c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
		expectError(t, c.do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil, nil), http.StatusNotFound)
		expectErrorIn(t, c.do(t, http.MethodGet, "/v2/pull/nosuchrepo/blobs/"+layerDigest.String(), nil, nil),
			[]int{http.StatusNotFound}, "BLOB_UNKNOWN", "NAME_UNKNOWN")
	})

	// A blob uploaded to one repository is not visible through another one.
	t.Run("BlobRepoIsolation", func(t *testing.T) {
		for _, b := range img.Blobs {
			d := digest.FromBytes(b)
			expectError(t, c.do(t, http.MethodGet, "/v2/"+other+"/blobs/"+d.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
			expectError(t, c.do(t, http.MethodHead, "/v2/"+other+"/blobs/"+d.String(), nil, nil), http.StatusNotFound)
		}
	})

	// A malformed digest in a blob URL is rejected, never a 200 or a 5xx.
	t.Run("BlobBadDigest", func(t *testing.T) {
		for _, d := range []string{"sha256:zzz", "sha256:" + strings.ToUpper(layerDigest.Encoded()), "nodigest"} {
			resp := c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d, nil, nil)
			expectErrorIn(t, resp, []int{http.StatusBadRequest, http.StatusNotFound}, "DIGEST_INVALID", "BLOB_UNKNOWN")
		}
	})
}

// ---------------------------------------------------------------------------
// Push blobs: end-4a, end-4b, end-5, end-6, end-13

func TestConformanceBlobPush(t *testing.T) { conformanceBlobPush(t, nil) }

func conformanceBlobPush(t *testing.T, st storageEnv) {
	r := newTestRegistry(t, st)
	c := r.client()
	const repo = "push/blobs"
	blobURL := func(d digest.Digest) string { return "/v2/" + repo + "/blobs/" + d.String() }
	expectBlob := func(t *testing.T, d digest.Digest, data []byte) {
		t.Helper()
		resp := c.do(t, http.MethodGet, blobURL(d), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
	}
	expectNoBlob := func(t *testing.T, d digest.Digest) {
		t.Helper()
		expectError(t, c.do(t, http.MethodHead, blobURL(d), nil, nil), http.StatusNotFound)
	}

	t.Run("PostThenPut", func(t *testing.T) {
		data := randBytes(4096)
		d := digest.FromBytes(data)
		resp := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
		expectStatus(t, resp, http.StatusAccepted)
		loc := c.location(t, resp)
		uuid := expectHeaderSet(t, resp, "Docker-Upload-UUID")
		if uuid != "" && !strings.Contains(loc, uuid) {
			t.Errorf("Location %q does not contain the upload's UUID %q", loc, uuid)
		}

		resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), data,
			hdrs{"Content-Type": "application/octet-stream"})
		expectStatus(t, resp, http.StatusCreated)
		expectHeader(t, resp, "Docker-Content-Digest", d.String())
		blobLoc := c.location(t, resp)

		resp = c.do(t, http.MethodGet, blobLoc, nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
		resp = c.do(t, http.MethodHead, blobURL(d), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectHeader(t, resp, "Content-Length", "4096")
	})

	t.Run("EmptyBlob", func(t *testing.T) {
		d := digest.FromBytes(nil)
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), nil, nil)
		expectStatus(t, resp, http.StatusCreated)
		resp = c.do(t, http.MethodHead, blobURL(d), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectHeader(t, resp, "Content-Length", "0")
	})

	t.Run("SinglePost", func(t *testing.T) {
		data := randBytes(2048)
		d := digest.FromBytes(data)
		resp := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
			hdrs{"Content-Type": "application/octet-stream"})
		expectStatus(t, resp, http.StatusCreated)
		expectHeader(t, resp, "Docker-Content-Digest", d.String())
		resp = c.do(t, http.MethodGet, c.location(t, resp), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
	})

	// Big enough for multi-part paths in drivers.
	t.Run("Large", func(t *testing.T) {
		if testing.Short() {
			t.Skip("large blobs")
		}
		const size = 24 << 20
		mono := randBytes(size)
		d := c.pushBlob(t, repo, mono)
		expectBlob(t, d, mono)

		chunked := randBytes(size)
		cd := digest.FromBytes(chunked)
		loc := c.startUpload(t, repo)
		for i := range 3 {
			from, to := i*(size/3), (i+1)*(size/3)
			resp := c.do(t, http.MethodPatch, loc, chunked[from:to], hdrs{"Content-Range": fmt.Sprintf("%d-%d", from, to-1)})
			expectStatus(t, resp, http.StatusAccepted)
			expectHeader(t, resp, "Range", fmt.Sprintf("0-%d", to-1))
			loc = c.location(t, resp)
		}
		resp := c.do(t, http.MethodPut, withQuery(loc, "digest", cd.String()), nil, nil)
		expectStatus(t, resp, http.StatusCreated)
		expectBlob(t, cd, chunked)
		resp = c.do(t, http.MethodGet, blobURL(cd), nil, hdrs{"Range": fmt.Sprintf("bytes=%d-", size-100)})
		expectStatus(t, resp, http.StatusPartialContent)
		expectBody(t, resp, chunked[size-100:])
	})

	t.Run("PushTwice", func(t *testing.T) {
		data := randBytes(100)
		d := c.pushBlob(t, repo, data)
		if d2 := c.pushBlob(t, repo, data); d2 != d {
			t.Fatal("digest changed")
		}
		expectBlob(t, d, data)
	})

	// POST, PATCH chunk 1, GET status, PATCH chunk 2, PUT with the final
	// chunk (finalInPut) or PATCH it too and PUT with no body.
	for _, finalInPut := range []bool{true, false} {
		t.Run(fmt.Sprintf("Chunked/finalInPut=%v", finalInPut), func(t *testing.T) {
			data := randBytes(3000)
			d := digest.FromBytes(data)
			resp := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, hdrs{"Content-Length": "0"})
			expectStatus(t, resp, http.StatusAccepted)
			loc := c.location(t, resp)
			uuid := expectHeaderSet(t, resp, "Docker-Upload-UUID")

			patch := func(from, to int) {
				t.Helper()
				resp := c.do(t, http.MethodPatch, loc, data[from:to], hdrs{
					"Content-Type":  "application/octet-stream",
					"Content-Range": fmt.Sprintf("%d-%d", from, to-1),
				})
				expectStatus(t, resp, http.StatusAccepted)
				expectHeader(t, resp, "Range", fmt.Sprintf("0-%d", to-1))
				expectHeader(t, resp, "Docker-Upload-UUID", uuid)
				loc = c.location(t, resp)
			}
			patch(0, 1000)

			resp = c.do(t, http.MethodGet, loc, nil, nil)
			expectStatus(t, resp, http.StatusNoContent)
			expectHeader(t, resp, "Range", "0-999")
			expectHeader(t, resp, "Docker-Upload-UUID", uuid)
			loc = c.location(t, resp)

			patch(1000, 2000)
			var body []byte
			h := hdrs{}
			if finalInPut {
				body = data[2000:]
				h = hdrs{"Content-Type": "application/octet-stream", "Content-Range": "2000-2999"}
			} else {
				patch(2000, 3000)
			}
			resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), body, h)
			expectStatus(t, resp, http.StatusCreated)
			expectHeader(t, resp, "Docker-Content-Digest", d.String())
			c.location(t, resp)
			expectBlob(t, d, data)
		})
	}

	// Once closed with a PUT, the session's URL is dead: status, more
	// chunks and a second close all answer 404 BLOB_UPLOAD_UNKNOWN.
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("ClosedSessionIsGone/chunked=%v", chunked), func(t *testing.T) {
			data := randBytes(100)
			d := digest.FromBytes(data)
			loc := c.startUpload(t, repo)
			var resp *response
			if chunked {
				resp = c.do(t, http.MethodPatch, loc, data, hdrs{"Content-Range": "0-99"})
				expectStatus(t, resp, http.StatusAccepted)
				loc = c.location(t, resp)
				resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), nil, nil)
			} else {
				resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), data, nil)
			}
			expectStatus(t, resp, http.StatusCreated)
			other := randBytes(10)
			expectError(t, c.do(t, http.MethodGet, loc, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
			expectError(t, c.do(t, http.MethodPatch, loc, other, hdrs{"Content-Range": "0-9"}), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
			expectError(t, c.do(t, http.MethodPut, withQuery(loc, "digest", digest.FromBytes(other).String()), other, nil),
				http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
			expectNoBlob(t, digest.FromBytes(other))
		})
	}

	// GC.UploadTTL ends uploads *idle* that long (config.go); an upload
	// that keeps receiving chunks lives on.
	t.Run("UploadTTL", func(t *testing.T) {
		r := newTestRegistry(t, st, func(cfg *registry.Config) { cfg.GC.UploadTTL = 3 * time.Second })
		c := r.client()
		idle := c.startUpload(t, repo)
		active := c.startUpload(t, repo)
		data := randBytes(700)
		for i := range 7 { // ~5s in all, never idle for more than ~1s
			resp := c.do(t, http.MethodPatch, active, data[i*100:(i+1)*100], hdrs{"Content-Range": fmt.Sprintf("%d-%d", i*100, i*100+99)})
			expectStatus(t, resp, http.StatusAccepted)
			active = c.location(t, resp)
			time.Sleep(700 * time.Millisecond)
		}
		resp := c.do(t, http.MethodPut, withQuery(active, "digest", digest.FromBytes(data).String()), nil, nil)
		expectStatus(t, resp, http.StatusCreated)
		expectError(t, c.do(t, http.MethodGet, idle, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})

	// Docker-style streamed upload: PATCH without Content-Range (and here
	// without Content-Length), then PUT with no body.
	t.Run("Streamed", func(t *testing.T) {
		data := randBytes(5000)
		d := digest.FromBytes(data)
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodPatch, loc, data, hdrs{"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"})
		expectStatus(t, resp, http.StatusAccepted)
		expectHeader(t, resp, "Range", "0-4999")
		loc = c.location(t, resp)
		resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), nil, nil)
		expectStatus(t, resp, http.StatusCreated)
		expectBlob(t, d, data)
	})

	t.Run("StatusOfNewUpload", func(t *testing.T) {
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodGet, loc, nil, nil)
		expectStatus(t, resp, http.StatusNoContent)
		c.location(t, resp)
		expectHeaderSet(t, resp, "Docker-Upload-UUID")
	})

	// Chunks must come in order; a 416 leaves the session usable.
	t.Run("OutOfOrderChunk", func(t *testing.T) {
		data := randBytes(3000)
		d := digest.FromBytes(data)
		loc := c.startUpload(t, repo)
		chunk := func(from, to int) *response {
			return c.do(t, http.MethodPatch, loc, data[from:to], hdrs{
				"Content-Type":  "application/octet-stream",
				"Content-Range": fmt.Sprintf("%d-%d", from, to-1),
			})
		}
		expectError(t, chunk(1000, 2000), http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
		resp := chunk(0, 1000)
		expectStatus(t, resp, http.StatusAccepted)
		expectHeader(t, resp, "Range", "0-999")
		loc = c.location(t, resp)

		expectError(t, chunk(2000, 3000), http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID") // gap
		expectError(t, chunk(0, 1000), http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")    // retry of chunk 1
		expectError(t, chunk(500, 1500), http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")  // overlap

		resp = c.do(t, http.MethodGet, loc, nil, nil)
		expectStatus(t, resp, http.StatusNoContent)
		expectHeader(t, resp, "Range", "0-999")
		loc = c.location(t, resp)

		resp = chunk(1000, 3000)
		expectStatus(t, resp, http.StatusAccepted)
		expectHeader(t, resp, "Range", "0-2999")
		loc = c.location(t, resp)
		resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), nil, nil)
		expectStatus(t, resp, http.StatusCreated)
		expectBlob(t, d, data)
	})

	t.Run("BadContentRange", func(t *testing.T) {
		data := randBytes(200)
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodPatch, loc, data[:100], hdrs{"Content-Range": "0-99"})
		expectStatus(t, resp, http.StatusAccepted)
		loc = c.location(t, resp)
		for _, cr := range []string{"abc", "199-100", "100-", "-100", "100-199-300", "100 199"} {
			resp := c.do(t, http.MethodPatch, loc, data[100:], hdrs{"Content-Range": cr})
			expectErrorIn(t, resp, []int{http.StatusBadRequest, http.StatusRequestedRangeNotSatisfiable}, "BLOB_UPLOAD_INVALID", "SIZE_INVALID")
		}
		resp = c.do(t, http.MethodGet, loc, nil, nil)
		expectStatus(t, resp, http.StatusNoContent)
		expectHeader(t, resp, "Range", "0-99")
	})

	// The same chunk sent many times at once: exactly one is appended, the
	// others are out of order (416).
	t.Run("ConcurrentChunks", func(t *testing.T) {
		for round := range 5 {
			data := randBytes(64 << 10)
			loc := c.startUpload(t, repo)
			if round%2 == 1 { // and once the upload already has bytes
				resp := c.do(t, http.MethodPatch, loc, data[:1000], hdrs{"Content-Range": "0-999"})
				expectStatus(t, resp, http.StatusAccepted)
				loc = c.location(t, resp)
				data = data[1000:]
			}
			start := 64<<10 - len(data)
			const n = 8
			statuses := make(chan int, n)
			for range n {
				go func() {
					resp, err := c.doErr(http.MethodPatch, loc, data, hdrs{"Content-Range": fmt.Sprintf("%d-%d", start, start+len(data)-1)})
					if err != nil {
						t.Error(err)
						statuses <- 0
						return
					}
					statuses <- resp.status
				}()
			}
			var ok, conflict int
			for range n {
				switch <-statuses {
				case http.StatusAccepted:
					ok++
				case http.StatusRequestedRangeNotSatisfiable:
					conflict++
				}
			}
			if ok != 1 || conflict != n-1 {
				t.Errorf("round %d: %d accepted and %d refused with 416 of %d identical chunks, want 1 and %d", round, ok, conflict, n, n-1)
			}
			resp := c.do(t, http.MethodGet, loc, nil, nil)
			expectStatus(t, resp, http.StatusNoContent)
			expectHeader(t, resp, "Range", fmt.Sprintf("0-%d", 64<<10-1))
		}
	})

	// Many clients pushing the same blob at once all succeed.
	t.Run("ConcurrentSameBlob", func(t *testing.T) {
		data := randBytes(256 << 10)
		d := digest.FromBytes(data)
		const n = 8
		statuses := make(chan string, n)
		for i := range n {
			go func() {
				target := "/v2/" + repo + "/blobs/uploads/?digest=" + d.String()
				if i%2 == 1 {
					target = "/v2/push/concurrent/blobs/uploads/?digest=" + d.String()
				}
				resp, err := c.doErr(http.MethodPost, target, data, nil)
				if err != nil {
					statuses <- err.Error()
					return
				}
				statuses <- resp.String()
			}()
		}
		for range n {
			if s := <-statuses; !strings.Contains(s, "-> 201") {
				t.Errorf("concurrent push: %s", s)
			}
		}
		expectBlob(t, d, data)
		resp := c.do(t, http.MethodGet, "/v2/push/concurrent/blobs/"+d.String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
	})

	// The declared Content-Range disagrees with the chunk's length.
	t.Run("ChunkLengthMismatch", func(t *testing.T) {
		data := randBytes(2000)
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodPatch, loc, data[:1000], hdrs{"Content-Type": "application/octet-stream", "Content-Range": "0-999"})
		expectStatus(t, resp, http.StatusAccepted)
		loc = c.location(t, resp)
		for _, tc := range []struct {
			name string
			body []byte
			h    hdrs
		}{
			{"Shorter", data[1000:1500], hdrs{"Content-Range": "1000-1999"}},
			{"Longer", data[1000:], hdrs{"Content-Range": "1000-1499"}},
			// Without a Content-Length only the range says how long the
			// chunk is; the body must still match it.
			{"StreamedShorter", data[1000:1500], hdrs{"Content-Range": "1000-1999", "Transfer-Encoding": "chunked"}},
			{"StreamedLonger", data[1000:], hdrs{"Content-Range": "1000-1499", "Transfer-Encoding": "chunked"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.h["Content-Type"] = "application/octet-stream"
				resp := c.do(t, http.MethodPatch, loc, tc.body, tc.h)
				expectErrorIn(t, resp, []int{http.StatusBadRequest, http.StatusRequestedRangeNotSatisfiable}, "SIZE_INVALID", "BLOB_UPLOAD_INVALID")
				resp = c.do(t, http.MethodGet, loc, nil, nil)
				expectStatus(t, resp, http.StatusNoContent)
				expectHeader(t, resp, "Range", "0-999")
			})
		}
		// The upload goes on from where it was.
		resp = c.do(t, http.MethodPut, withQuery(loc, "digest", digest.FromBytes(data).String()), data[1000:], hdrs{"Content-Range": "1000-1999"})
		expectStatus(t, resp, http.StatusCreated)
		expectBlob(t, digest.FromBytes(data), data)
	})

	// A body shorter than its Content-Length (the client hangs up) must not
	// store anything.
	t.Run("ContentLengthMismatch", func(t *testing.T) {
		data := randBytes(1000)
		d := digest.FromBytes(data)
		for _, tc := range []struct{ name, target string }{
			{"Put", withQuery(c.startUpload(t, repo), "digest", d.String())},
			{"SinglePost", "/v2/" + repo + "/blobs/uploads/?digest=" + d.String()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := c.resolve(t, tc.target)
				method := http.MethodPut
				if tc.name == "SinglePost" {
					method = http.MethodPost
				}
				head := fmt.Sprintf("%s %s HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: %d", method, u.RequestURI(), len(data))
				resp := c.rawRequest(t, head, data[:600], true)
				expectErrorIn(t, resp, []int{http.StatusBadRequest}, "SIZE_INVALID", "BLOB_UPLOAD_INVALID", "DIGEST_INVALID")
				expectNoBlob(t, d)
			})
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		data := randBytes(2000)
		d := digest.FromBytes(data)
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodPatch, loc, data[:1000], hdrs{"Content-Type": "application/octet-stream", "Content-Range": "0-999"})
		expectStatus(t, resp, http.StatusAccepted)
		loc = c.location(t, resp)

		resp = c.do(t, http.MethodDelete, loc, nil, nil)
		expectStatus(t, resp, http.StatusNoContent)

		expectError(t, c.do(t, http.MethodGet, loc, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodPatch, loc, data[1000:], hdrs{"Content-Type": "application/octet-stream", "Content-Range": "1000-1999"}),
			http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), data[1000:], nil),
			http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodDelete, loc, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectNoBlob(t, d)
	})

	t.Run("UnknownUpload", func(t *testing.T) {
		u := "/v2/" + repo + "/blobs/uploads/" + randHex(32)
		expectError(t, c.do(t, http.MethodGet, u, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodPatch, u, []byte("x"), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodPut, withQuery(u, "digest", digest.FromBytes([]byte("x")).String()), []byte("x"), nil),
			http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodDelete, u, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})

	// An upload session belongs to the repository it was opened in.
	t.Run("UploadSessionIsPerRepo", func(t *testing.T) {
		data := randBytes(500)
		d := digest.FromBytes(data)
		resp := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
		expectStatus(t, resp, http.StatusAccepted)
		loc := c.location(t, resp)
		uuid := expectHeaderSet(t, resp, "Docker-Upload-UUID")
		lu, _ := url.Parse(loc)
		foreign := "/v2/push/elsewhere/blobs/uploads/" + uuid
		if lu.RawQuery != "" {
			foreign += "?" + lu.RawQuery
		}
		expectError(t, c.do(t, http.MethodGet, foreign, nil, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodPut, withQuery(foreign, "digest", d.String()), data, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		expectError(t, c.do(t, http.MethodHead, "/v2/push/elsewhere/blobs/"+d.String(), nil, nil), http.StatusNotFound)
		// Still usable where it belongs.
		resp = c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), data, nil)
		expectStatus(t, resp, http.StatusCreated)
	})

	t.Run("DigestMismatch", func(t *testing.T) {
		data, wrong := randBytes(1000), randBytes(1000)
		d, wd := digest.FromBytes(data), digest.FromBytes(wrong)
		t.Run("PostThenPut", func(t *testing.T) {
			loc := c.startUpload(t, repo)
			expectError(t, c.do(t, http.MethodPut, withQuery(loc, "digest", wd.String()), data, nil), http.StatusBadRequest, "DIGEST_INVALID")
		})
		t.Run("SinglePost", func(t *testing.T) {
			expectError(t, c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+wd.String(), data, nil),
				http.StatusBadRequest, "DIGEST_INVALID")
		})
		t.Run("Chunked", func(t *testing.T) {
			loc := c.startUpload(t, repo)
			resp := c.do(t, http.MethodPatch, loc, data, hdrs{"Content-Type": "application/octet-stream", "Content-Range": "0-999"})
			expectStatus(t, resp, http.StatusAccepted)
			loc = c.location(t, resp)
			expectError(t, c.do(t, http.MethodPut, withQuery(loc, "digest", wd.String()), nil, nil), http.StatusBadRequest, "DIGEST_INVALID")
		})
		t.Run("Sha512", func(t *testing.T) {
			loc := c.startUpload(t, repo)
			expectError(t, c.do(t, http.MethodPut, withQuery(loc, "digest", digest.SHA512.FromBytes(wrong).String()), data, nil),
				http.StatusBadRequest, "DIGEST_INVALID")
		})
		expectNoBlob(t, d)
		expectNoBlob(t, wd)
		expectNoBlob(t, digest.SHA512.FromBytes(data))
		expectNoBlob(t, digest.SHA512.FromBytes(wrong))
	})

	t.Run("Sha512", func(t *testing.T) {
		for _, how := range []string{"PostThenPut", "SinglePost", "Chunked"} {
			t.Run(how, func(t *testing.T) {
				data := randBytes(777)
				d := digest.SHA512.FromBytes(data)
				var resp *response
				switch how {
				case "SinglePost":
					resp = c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data, nil)
				case "PostThenPut":
					resp = c.do(t, http.MethodPut, withQuery(c.startUpload(t, repo), "digest", d.String()), data, nil)
				case "Chunked":
					resp = c.do(t, http.MethodPatch, c.startUpload(t, repo), data[:500], hdrs{"Content-Range": "0-499"})
					expectStatus(t, resp, http.StatusAccepted)
					resp = c.do(t, http.MethodPut, withQuery(c.location(t, resp), "digest", d.String()), data[500:], hdrs{"Content-Range": "500-776"})
				}
				expectStatus(t, resp, http.StatusCreated)
				// The canonical digest MAY differ from the one given.
				if got := resp.header.Get("Docker-Content-Digest"); got != d.String() && got != digest.FromBytes(data).String() {
					t.Errorf("Docker-Content-Digest %q, want %s (or its sha256)", got, d)
				}
				resp = c.do(t, http.MethodGet, blobURL(d), nil, nil)
				expectStatus(t, resp, http.StatusOK)
				expectBody(t, resp, data)
				resp = c.do(t, http.MethodHead, blobURL(d), nil, nil)
				expectStatus(t, resp, http.StatusOK)
				expectHeader(t, resp, "Content-Length", "777")
			})
		}
	})

	t.Run("BadDigestString", func(t *testing.T) {
		data := randBytes(100)
		good := digest.FromBytes(data)
		for _, tc := range []struct {
			name, digest string
			codes        []string
		}{
			{"Empty", "", []string{"DIGEST_INVALID"}},
			{"NoAlgorithm", good.Encoded(), []string{"DIGEST_INVALID"}},
			{"NotHex", "sha256:" + strings.Repeat("z", 64), []string{"DIGEST_INVALID"}},
			{"Short", "sha256:abc", []string{"DIGEST_INVALID"}},
			{"Uppercase", "sha256:" + strings.ToUpper(good.Encoded()), []string{"DIGEST_INVALID"}},
			{"Sha512Short", "sha512:" + good.Encoded(), []string{"DIGEST_INVALID"}},
			{"UnknownAlgorithm", "md5:d41d8cd98f00b204e9800998ecf8427e", []string{"DIGEST_INVALID", "UNSUPPORTED"}},
			{"Garbage", "../../etc/passwd", []string{"DIGEST_INVALID"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				loc := c.startUpload(t, repo)
				target := loc
				if tc.name != "Empty" {
					target = withQuery(loc, "digest", tc.digest)
				}
				expectError(t, c.do(t, http.MethodPut, target, data, nil), http.StatusBadRequest, tc.codes...)
				if tc.name != "Empty" {
					expectError(t, c.do(t, http.MethodPost, withQuery("/v2/"+repo+"/blobs/uploads/", "digest", tc.digest), data, nil),
						http.StatusBadRequest, tc.codes...)
				}
			})
		}
		expectNoBlob(t, good)
	})

	t.Run("BlobSizeLimit", func(t *testing.T) {
		r := newTestRegistry(t, st, func(cfg *registry.Config) { cfg.Limits.BlobSize = 1024 })
		c := r.client()
		ok := randBytes(1024)
		c.pushBlob(t, repo, ok)
		big := randBytes(1025)
		d := digest.FromBytes(big)
		statuses := []int{http.StatusRequestEntityTooLarge, http.StatusBadRequest}
		codes := []string{"SIZE_INVALID", "BLOB_UPLOAD_INVALID", "DENIED"}
		expectErrorIn(t, c.do(t, http.MethodPut, withQuery(c.startUpload(t, repo), "digest", d.String()), big, nil), statuses, codes...)
		expectErrorIn(t, c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), big, nil), statuses, codes...)
		// Chunked: the chunk that crosses the limit is refused.
		loc := c.startUpload(t, repo)
		resp := c.do(t, http.MethodPatch, loc, big[:1000], hdrs{"Content-Range": "0-999"})
		expectStatus(t, resp, http.StatusAccepted)
		loc = c.location(t, resp)
		resp = c.do(t, http.MethodPatch, loc, big[1000:], hdrs{"Content-Range": "1000-1024"})
		if resp.status == http.StatusAccepted {
			resp = c.do(t, http.MethodPut, withQuery(c.location(t, resp), "digest", d.String()), nil, nil)
		}
		expectErrorIn(t, resp, statuses, codes...)
		expectError(t, c.do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil, nil), http.StatusNotFound)
	})
}

// ---------------------------------------------------------------------------
// Cross-repository mount: end-11

func TestConformanceMount(t *testing.T) { conformanceMount(t, nil) }

func conformanceMount(t *testing.T, st storageEnv) {
	r := newTestRegistry(t, st)
	c := r.client()
	data := randBytes(1500)
	d := c.pushBlob(t, "mount/src", data)
	elsewhere := randBytes(200)
	ed := c.pushBlob(t, "mount/elsewhere", elsewhere)

	mount := func(t *testing.T, to, q string) *response {
		return c.do(t, http.MethodPost, "/v2/"+to+"/blobs/uploads/?"+q, nil, nil)
	}

	t.Run("FromRepoWithBlob", func(t *testing.T) {
		resp := mount(t, "mount/dst", "mount="+d.String()+"&from=mount/src")
		expectStatus(t, resp, http.StatusCreated)
		expectHeader(t, resp, "Docker-Content-Digest", d.String())
		resp = c.do(t, http.MethodGet, c.location(t, resp), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
		resp = c.do(t, http.MethodHead, "/v2/mount/dst/blobs/"+d.String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectHeader(t, resp, "Content-Length", "1500")
	})

	// When the source repository lacks the blob the registry falls back to
	// an ordinary upload session (202), even if another repository has it.
	for _, tc := range []struct{ name, q string }{
		{"FromRepoWithoutBlob", "mount=" + ed.String() + "&from=mount/src"},
		{"FromUnknownRepo", "mount=" + ed.String() + "&from=mount/nosuchrepo"},
		{"UnknownDigest", "mount=" + randDigest().String() + "&from=mount/src"},
		{"UnknownDigestNoFrom", "mount=" + randDigest().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := "mount/fallback-" + strings.ToLower(tc.name)
			resp := mount(t, to, tc.q)
			expectStatus(t, resp, http.StatusAccepted)
			loc := c.location(t, resp)
			expectHeaderSet(t, resp, "Docker-Upload-UUID")
			expectError(t, c.do(t, http.MethodHead, "/v2/"+to+"/blobs/"+ed.String(), nil, nil), http.StatusNotFound)
			// The session works like any other.
			payload := randBytes(64)
			resp = c.do(t, http.MethodPut, withQuery(loc, "digest", digest.FromBytes(payload).String()), payload, nil)
			expectStatus(t, resp, http.StatusCreated)
		})
	}

	// Mount without from: the registry finds the blob itself.
	t.Run("Anonymous", func(t *testing.T) {
		resp := mount(t, "mount/anon", "mount="+ed.String())
		expectStatus(t, resp, http.StatusCreated)
		expectHeader(t, resp, "Docker-Content-Digest", ed.String())
		c.location(t, resp)
		resp = c.do(t, http.MethodGet, "/v2/mount/anon/blobs/"+ed.String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, elsewhere)
	})

	// A mounted blob is usable by manifests in the target repository.
	t.Run("ManifestOverMountedBlobs", func(t *testing.T) {
		img := newImage(1, 300)
		c.pushImage(t, "mount/imgsrc", "v1", img)
		for _, b := range img.Blobs {
			expectStatus(t, mount(t, "mount/imgdst", "mount="+digest.FromBytes(b).String()+"&from=mount/imgsrc"), http.StatusCreated)
		}
		c.pushManifest(t, "mount/imgdst", "v1", img.MediaType, img.Manifest)
	})
}

// ---------------------------------------------------------------------------
// Push manifests: end-7

func TestConformanceManifestPush(t *testing.T) { conformanceManifestPush(t, nil) }

func conformanceManifestPush(t *testing.T, st storageEnv) {
	r := newTestRegistry(t, st)
	c := r.client()

	noMediaType := buildImage("", mtOCIConfig, mtOCILayer, 1, 100, nil)
	noMediaType.MediaType = mtOCIManifest // sent as Content-Type only
	for _, tc := range []struct {
		name string
		img  *testImage
	}{
		{"OCIManifest", newImage(2, 200)},
		{"OCIManifestNoLayers", newImage(0, 0)},
		{"OCIManifestNoMediaTypeField", noMediaType},
		{"OCIIndex", newIndex(mtOCIIndex, newImage(1, 100), newImage(1, 100))},
		{"DockerManifest", newDockerImage(2, 200)},
		{"DockerManifestList", newIndex(mtDockerList, newDockerImage(1, 100), newDockerImage(1, 100))},
		{"OCIArtifact", newArtifact("application/vnd.example.thing.v1", v1.MediaTypeEmptyJSON, nil, map[string]string{"a": "b"})},
		{"NestedIndex", newIndex(mtOCIIndex, newIndex(mtOCIIndex, newImage(1, 10)), newImage(1, 10))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "manifests/" + strings.ToLower(tc.name)
			img := tc.img
			for _, ch := range img.Children {
				c.pushImage(t, repo, "", ch)
			}
			for _, b := range img.Blobs {
				c.pushBlob(t, repo, b)
			}
			// By tag.
			resp := c.pushManifest(t, repo, "latest", img.MediaType, img.Manifest)
			expectHeader(t, resp, "OCI-Subject", "") // none of these has a subject
			resp = c.do(t, http.MethodGet, c.location(t, resp), nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, img.Manifest)
			for _, ref := range []string{"latest", img.Digest.String()} {
				resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, nil)
				expectStatus(t, resp, http.StatusOK)
				expectBody(t, resp, img.Manifest)
				expectHeader(t, resp, "Content-Type", img.MediaType)
				expectHeader(t, resp, "Docker-Content-Digest", img.Digest.String())
			}
			// By digest, again (idempotent) and into a second repository.
			resp = c.pushManifest(t, repo, img.Digest.String(), img.MediaType, img.Manifest)
			c.location(t, resp)
			repo2 := repo + "/bydigest"
			for _, ch := range img.Children {
				c.pushImage(t, repo2, "", ch)
			}
			for _, b := range img.Blobs {
				c.pushBlob(t, repo2, b)
			}
			resp = c.pushManifest(t, repo2, img.Digest.String(), img.MediaType, img.Manifest)
			resp = c.do(t, http.MethodGet, c.location(t, resp), nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, img.Manifest)
			expectHeader(t, resp, "Content-Type", img.MediaType)
			var tl tagList
			resp = c.do(t, http.MethodGet, "/v2/"+repo2+"/tags/list", nil, nil)
			expectStatus(t, resp, http.StatusOK)
			decodeJSON(t, resp, &tl)
			if len(tl.Tags) != 0 {
				t.Errorf("push by digest created tags %v", tl.Tags)
			}
		})
	}

	// The registry stores the exact bytes, whitespace included.
	t.Run("ExactBytes", func(t *testing.T) {
		const repo = "manifests/exact"
		img := newImage(1, 10)
		for _, b := range img.Blobs {
			c.pushBlob(t, repo, b)
		}
		var v any
		_ = json.Unmarshal(img.Manifest, &v)
		pretty, _ := json.MarshalIndent(v, "", "   ")
		pretty = append(pretty, '\n')
		c.pushManifest(t, repo, "pretty", mtOCIManifest, pretty)
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+digest.FromBytes(pretty).String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, pretty)
	})

	// "The registry SHOULD ignore parameters on the Content-Type header"
	// and "SHOULD NOT include parameters" in its own.
	t.Run("ContentTypeParameters", func(t *testing.T) {
		const repo = "manifests/ctparams"
		img := newImage(1, 10)
		for _, b := range img.Blobs {
			c.pushBlob(t, repo, b)
		}
		c.pushManifest(t, repo, "v1", mtOCIManifest+"; charset=utf-8", img.Manifest)
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectHeader(t, resp, "Content-Type", mtOCIManifest)
	})

	// "Client and registry implementations SHOULD expect to be able to
	// support manifest pushes of at least 4 megabytes" (default limit).
	t.Run("FourMegabytes", func(t *testing.T) {
		const repo = "manifests/big"
		img := newImage(1, 10)
		for _, b := range img.Blobs {
			c.pushBlob(t, repo, b)
		}
		m0 := buildImageFrom(mtOCIManifest, mtOCIConfig, mtOCILayer, img.Blobs[0], img.Blobs[1:], "pad", "")
		big := buildImageFrom(mtOCIManifest, mtOCIConfig, mtOCILayer, img.Blobs[0], img.Blobs[1:], "pad", strings.Repeat("x", 4<<20-len(m0)))
		if len(big) != 4<<20 {
			t.Fatalf("built %d bytes", len(big))
		}
		c.pushManifest(t, repo, "big", mtOCIManifest, big)
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/big", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, big)
	})

	t.Run("MoveTag", func(t *testing.T) {
		const repo = "manifests/move"
		a, b := newImage(1, 10), newImage(1, 10)
		c.pushImage(t, repo, "t", a)
		c.pushImage(t, repo, "t", b)
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/t", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectHeader(t, resp, "Docker-Content-Digest", b.Digest.String())
		resp = c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+a.Digest.String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, a.Manifest)
	})

	t.Run("Sha512Reference", func(t *testing.T) {
		const repo = "manifests/sha512"
		img := newImage(1, 10)
		for _, b := range img.Blobs {
			c.pushBlob(t, repo, b)
		}
		d := digest.SHA512.FromBytes(img.Manifest)
		resp := c.putManifest(t, repo, d.String(), mtOCIManifest, img.Manifest)
		expectStatus(t, resp, http.StatusCreated)
		// "MUST be equal to the client provided digest".
		expectHeader(t, resp, "Docker-Content-Digest", d.String())
		resp = c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, img.Manifest)
	})

	t.Run("Invalid", func(t *testing.T) {
		const repo = "manifests/invalid"
		// Blobs that exist in repo.
		present := newImage(1, 50)
		c.pushImage(t, repo, "present", present)
		cfg, layer := present.Blobs[0], present.Blobs[1]
		// A blob that exists only in another repository.
		foreign := randBytes(60)
		c.pushBlob(t, "manifests/foreign", foreign)
		foreignImg := newImage(1, 10)
		c.pushImage(t, "manifests/foreign", "v1", foreignImg)

		manifest := func(config []byte, layers ...[]byte) []byte {
			return buildImageFrom(mtOCIManifest, mtOCIConfig, mtOCILayer, config, layers)
		}
		good := buildImageFrom(mtOCIManifest, mtOCIConfig, mtOCILayer, cfg, [][]byte{layer}, "kind", "good") // not stored
		missingIdx := newIndex(mtOCIIndex, present, newImage(1, 10))
		sv1 := strings.Replace(string(good), `"schemaVersion":2`, `"schemaVersion":1`, 1)

		for _, tc := range []struct {
			name, ref, ct string
			body          []byte
			status        []int
			codes         []string
		}{
			{"NotJSON", "bad", mtOCIManifest, []byte("{not json"), []int{400}, []string{"MANIFEST_INVALID"}},
			{"EmptyBody", "bad", mtOCIManifest, []byte{}, []int{400}, []string{"MANIFEST_INVALID"}},
			{"JSONArray", "bad", mtOCIManifest, []byte("[1,2]"), []int{400}, []string{"MANIFEST_INVALID"}},
			{"SchemaVersion1", "bad", mtOCIManifest, []byte(sv1), []int{400}, []string{"MANIFEST_INVALID"}},
			{"MissingConfig", "bad", mtOCIManifest, manifest(randBytes(10), layer), []int{400}, []string{"MANIFEST_BLOB_UNKNOWN"}},
			{"MissingLayer", "bad", mtOCIManifest, manifest(cfg, layer, randBytes(10)), []int{400}, []string{"MANIFEST_BLOB_UNKNOWN"}},
			{"LayerOnlyInOtherRepo", "bad", mtOCIManifest, manifest(cfg, foreign), []int{400}, []string{"MANIFEST_BLOB_UNKNOWN"}},
			{"DockerMissingLayer", "bad", mtDockerManifest, buildImageFrom(mtDockerManifest, mtDockerConfig, mtDockerLayer, cfg, [][]byte{randBytes(10)}),
				[]int{400}, []string{"MANIFEST_BLOB_UNKNOWN"}},
			{"IndexMissingManifest", "bad", mtOCIIndex, missingIdx.Manifest, []int{400}, []string{"MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"}},
			{"IndexChildOnlyInOtherRepo", "bad", mtOCIIndex, newIndex(mtOCIIndex, present, foreignImg).Manifest, []int{400}, []string{"MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"}},
			{"ContentTypeIndexBodyManifest", "bad", mtOCIIndex, good, []int{400}, []string{"MANIFEST_INVALID"}},
			{"ContentTypeManifestBodyIndex", "bad", mtOCIManifest, newIndex(mtOCIIndex, present).Manifest, []int{400}, []string{"MANIFEST_INVALID"}},
			{"ContentTypeDockerBodyOCI", "bad", mtDockerManifest, good, []int{400}, []string{"MANIFEST_INVALID"}},
			{"DigestMismatch", randDigest().String(), mtOCIManifest, good, []int{400}, []string{"DIGEST_INVALID"}},
			{"DigestMismatchSha512", digest.SHA512.FromBytes(randBytes(8)).String(), mtOCIManifest, good, []int{400}, []string{"DIGEST_INVALID"}},
			{"DigestMalformed", "sha256:" + strings.Repeat("z", 64), mtOCIManifest, good, []int{400}, []string{"DIGEST_INVALID", "TAG_INVALID", "MANIFEST_INVALID"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp := c.putManifest(t, repo, tc.ref, tc.ct, tc.body)
				expectErrorIn(t, resp, tc.status, tc.codes...)
				if tc.ref == "bad" {
					expectError(t, c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/bad", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
				}
				if len(tc.body) > 0 {
					expectError(t, c.do(t, http.MethodHead, "/v2/"+repo+"/manifests/"+digest.FromBytes(tc.body).String(), nil, nil), http.StatusNotFound)
				}
			})
		}
	})

	// "A registry MUST initially accept an otherwise valid manifest with a
	// subject field that references a manifest that does not exist".
	t.Run("SubjectMissingAccepted", func(t *testing.T) {
		const repo = "manifests/subject"
		subj := v1.Descriptor{MediaType: mtOCIManifest, Digest: randDigest(), Size: 1234}
		a := newArtifact("application/vnd.example.sig.v1", v1.MediaTypeEmptyJSON, &subj, nil)
		for _, b := range a.Blobs {
			c.pushBlob(t, repo, b)
		}
		resp := c.pushManifest(t, repo, a.Digest.String(), mtOCIManifest, a.Manifest)
		expectHeader(t, resp, "OCI-Subject", subj.Digest.String())
	})

	t.Run("SizeLimit", func(t *testing.T) {
		const limit = 2048
		r := newTestRegistry(t, st, func(cfg *registry.Config) { cfg.Limits.ManifestSize = limit })
		c := r.client()
		const repo = "manifests/limit"
		base := newImage(1, 10)
		for _, b := range base.Blobs {
			c.pushBlob(t, repo, b)
		}
		sized := func(n int) []byte {
			m := func(pad int) []byte {
				return buildImageFrom(mtOCIManifest, mtOCIConfig, mtOCILayer, base.Blobs[0], base.Blobs[1:], "pad", strings.Repeat("x", pad))
			}
			b := m(n - len(m(0)))
			if len(b) != n {
				t.Fatalf("built %d bytes, want %d", len(b), n)
			}
			return b
		}
		c.pushManifest(t, repo, "atlimit", mtOCIManifest, sized(limit))
		over := sized(limit + 1)
		resp := c.putManifest(t, repo, "overlimit", mtOCIManifest, over)
		expectError(t, resp, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "MANIFEST_INVALID")
		expectError(t, c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/overlimit", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		// Far over the limit (the server must not buffer it all first).
		resp = c.putManifest(t, repo, "wayover", mtOCIManifest, sized(64<<10))
		expectError(t, resp, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "MANIFEST_INVALID")
	})

	t.Run("Tags", func(t *testing.T) {
		const repo = "manifests/tags"
		img := newImage(1, 10)
		for _, b := range img.Blobs {
			c.pushBlob(t, repo, b)
		}
		for _, tag := range []string{"a", "A", "0", "_", "_x", "v1.2.3", "1.0-rc.1_build", "UPPER_lower.9-x", strings.Repeat("t", 128)} {
			t.Run("valid/"+tag[:min(len(tag), 20)], func(t *testing.T) {
				c.pushManifest(t, repo, tag, mtOCIManifest, img.Manifest)
				resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil, nil)
				expectStatus(t, resp, http.StatusOK)
				expectBody(t, resp, img.Manifest)
			})
		}
		for _, tag := range []string{"-bad", ".bad", strings.Repeat("t", 129), "a+b", "a~b", "a%21b", "a%20b"} {
			t.Run("invalid/"+tag[:min(len(tag), 20)], func(t *testing.T) {
				resp := c.putManifest(t, repo, tag, mtOCIManifest, img.Manifest)
				expectError(t, resp, http.StatusBadRequest, "TAG_INVALID", "MANIFEST_INVALID")
			})
		}
		var tl tagList
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/tags/list", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		decodeJSON(t, resp, &tl)
		for _, tag := range tl.Tags {
			if strings.HasPrefix(tag, "-") || strings.HasPrefix(tag, ".") || len(tag) > 128 || strings.ContainsAny(tag, "+~! ") {
				t.Errorf("invalid tag %q was stored", tag)
			}
		}
	})
}

// buildImageFrom builds a manifest of type mt over the given config and
// layer bytes; kv adds annotations.
func buildImageFrom(mt, configMT, layerMT string, config []byte, layers [][]byte, kv ...string) []byte {
	m := v1.Manifest{
		MediaType: mt,
		Config:    blobDesc(configMT, config),
		Layers:    []v1.Descriptor{},
	}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, blobDesc(layerMT, l))
	}
	if len(kv) > 0 {
		m.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Annotations[kv[i]] = kv[i+1]
		}
	}
	return mustJSON(m)
}

// ---------------------------------------------------------------------------
// Content discovery: end-8a, end-8b, _catalog

func TestConformanceTags(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	r := newTestRegistry(t, st)
	c := r.client()
	const repo = "tags/app"
	img := newImage(1, 10)
	c.pushImage(t, repo, "latest", img)
	// Pushed out of order; byte order and case-insensitive order agree on
	// these (all lower case).
	for _, tag := range []string{"v1.9", "b", "1.10", "a_b", "a.b", "1.0", "a", "a-b", "1.9", "v1.10"} {
		c.pushManifest(t, repo, tag, mtOCIManifest, img.Manifest)
	}
	all := []string{"1.0", "1.10", "1.9", "a", "a-b", "a.b", "a_b", "b", "latest", "v1.10", "v1.9"}

	list := func(t *testing.T, query string) (tagList, *response) {
		t.Helper()
		path := "/v2/" + repo + "/tags/list"
		if query != "" {
			path += "?" + query
		}
		resp := c.do(t, http.MethodGet, path, nil, nil)
		expectStatus(t, resp, http.StatusOK)
		if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%v: Content-Type %q, want application/json", resp, ct)
		}
		var tl tagList
		decodeJSON(t, resp, &tl)
		if tl.Name != repo {
			t.Errorf("%v: name %q, want %q", resp, tl.Name, repo)
		}
		return tl, resp
	}

	t.Run("All", func(t *testing.T) {
		tl, resp := list(t, "")
		if !slices.Equal(tl.Tags, all) {
			t.Errorf("tags %q, want %q", tl.Tags, all)
		}
		expectHeader(t, resp, "Link", "")
	})

	for _, tc := range []struct {
		query string
		want  []string
		link  bool
	}{
		{"n=0", []string{}, false},
		{"n=1", all[:1], true},
		{"n=3", all[:3], true},
		{"n=11", all, false},
		{"n=100", all, false},
		{"last=a", all[4:], false},
		{"last=a0", all[6:], false}, // not a tag: still lexical ("a-b" < "a.b" < "a0" < "a_b")
		{"last=v1.9", []string{}, false},
		{"n=2&last=a-b", []string{"a.b", "a_b"}, true},
		{"n=3&last=b", []string{"latest", "v1.10", "v1.9"}, false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			tl, resp := list(t, tc.query)
			if len(tl.Tags) != len(tc.want) || (len(tc.want) > 0 && !slices.Equal(tl.Tags, tc.want)) {
				t.Errorf("tags %q, want %q", tl.Tags, tc.want)
			}
			// A Link when (and only when) more tags follow.
			if got := nextLink(t, resp) != ""; got != tc.link {
				t.Errorf("%v: Link present = %v, want %v", resp, got, tc.link)
			}
		})
	}

	// Follow Link headers from n=2 to the end.
	t.Run("Pagination", func(t *testing.T) {
		var got []string
		next := "n=2"
		pages := 0
		for next != "" {
			pages++
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			tl, resp := list(t, next)
			if len(tl.Tags) > 2 {
				t.Fatalf("page of %d tags for n=2", len(tl.Tags))
			}
			got = append(got, tl.Tags...)
			link := nextLink(t, resp)
			if link == "" {
				break
			}
			u, err := url.Parse(link)
			if err != nil {
				t.Fatalf("Link %q: %v", link, err)
			}
			if u.Path != "/v2/"+repo+"/tags/list" {
				t.Errorf("Link %q: path %q, want /v2/%s/tags/list", link, u.Path, repo)
			}
			if n := u.Query().Get("n"); n != "2" {
				t.Errorf("Link %q: n=%q, want 2", link, n)
			}
			if last := u.Query().Get("last"); len(tl.Tags) == 0 || last != tl.Tags[len(tl.Tags)-1] {
				t.Errorf("Link %q: last=%q, want the page's last tag (page %q)", link, last, tl.Tags)
			}
			next = u.RawQuery
		}
		if !slices.Equal(got, all) {
			t.Errorf("paginated tags %q, want %q", got, all)
		}
		if pages != 6 {
			t.Errorf("%d pages, want 6", pages)
		}
	})

	t.Run("UnknownRepo", func(t *testing.T) {
		expectError(t, c.do(t, http.MethodGet, "/v2/tags/nosuchrepo/tags/list", nil, nil), http.StatusNotFound, "NAME_UNKNOWN")
	})

	// The spec does not say how to answer a bad n; whatever the answer, it
	// is no 5xx and a JSON error body uses the spec's codes.
	t.Run("BadN", func(t *testing.T) {
		for _, q := range []string{"n=-1", "n=abc", "n=99999999999999999999"} {
			resp := c.do(t, http.MethodGet, "/v2/"+repo+"/tags/list?"+q, nil, nil)
			if resp.status >= 500 {
				t.Errorf("%v: server error", resp)
			}
			expectSpecErrorBody(t, resp)
		}
	})
}

func TestConformanceCatalog(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	r := newTestRegistry(t, st)
	c := r.client()
	resp := c.do(t, http.MethodGet, "/v2/_catalog", nil, nil)
	expectStatus(t, resp, http.StatusOK)
	var empty catalog
	decodeJSON(t, resp, &empty)
	if len(empty.Repositories) != 0 {
		t.Errorf("empty registry lists %q", empty.Repositories)
	}

	repos := []string{"zeta", "alpha/one", "mid/x/y", "beta", "alpha/two"}
	for _, repo := range repos {
		c.pushImage(t, repo, "v1", newImage(1, 10))
	}
	all := []string{"alpha/one", "alpha/two", "beta", "mid/x/y", "zeta"}

	get := func(t *testing.T, query string) (catalog, *response) {
		t.Helper()
		path := "/v2/_catalog"
		if query != "" {
			path += "?" + query
		}
		resp := c.do(t, http.MethodGet, path, nil, nil)
		expectStatus(t, resp, http.StatusOK)
		var cat catalog
		decodeJSON(t, resp, &cat)
		return cat, resp
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", all},
		{"n=0", []string{}},
		{"n=2", all[:2]},
		{"n=10", all},
		{"last=beta", all[3:]},
		{"n=1&last=alpha/two", []string{"beta"}},
	} {
		t.Run("q="+tc.query, func(t *testing.T) {
			cat, _ := get(t, tc.query)
			if len(cat.Repositories) != len(tc.want) || (len(tc.want) > 0 && !slices.Equal(cat.Repositories, tc.want)) {
				t.Errorf("repositories %q, want %q", cat.Repositories, tc.want)
			}
		})
	}

	t.Run("Pagination", func(t *testing.T) {
		var got []string
		next := "n=2"
		for range 10 {
			cat, resp := get(t, next)
			if len(cat.Repositories) > 2 {
				t.Fatalf("page of %d for n=2", len(cat.Repositories))
			}
			got = append(got, cat.Repositories...)
			link := nextLink(t, resp)
			if link == "" {
				next = ""
				break
			}
			u, err := url.Parse(link)
			if err != nil {
				t.Fatal(err)
			}
			if u.Path != "/v2/_catalog" || u.Query().Get("n") != "2" || len(cat.Repositories) == 0 ||
				u.Query().Get("last") != cat.Repositories[len(cat.Repositories)-1] {
				t.Errorf("Link %q, want </v2/_catalog?n=2&last=%s>", link, cat.Repositories[len(cat.Repositories)-1])
			}
			next = u.RawQuery
		}
		if next != "" {
			t.Fatal("pagination does not end")
		}
		if !slices.Equal(got, all) {
			t.Errorf("paginated %q, want %q", got, all)
		}
	})
}

// ---------------------------------------------------------------------------
// Content management: end-9, end-10

func TestConformanceDelete(t *testing.T) { conformanceDelete(t, nil) }

func conformanceDelete(t *testing.T, st storageEnv) {
	r := newTestRegistry(t, st)
	c := r.client()
	const repo = "del/app"
	keep := newImage(1, 10)
	c.pushImage(t, repo, "keep", keep)

	tags := func(t *testing.T) []string {
		t.Helper()
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/tags/list", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		var tl tagList
		decodeJSON(t, resp, &tl)
		return tl.Tags
	}

	t.Run("ManifestByDigest", func(t *testing.T) {
		img := newImage(1, 10)
		c.pushImage(t, repo, "t1", img)
		c.pushManifest(t, repo, "t2", img.MediaType, img.Manifest)
		resp := c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+img.Digest.String(), nil, nil)
		expectStatus(t, resp, http.StatusAccepted)
		for _, ref := range []string{img.Digest.String(), "t1", "t2"} {
			expectError(t, c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
			expectError(t, c.do(t, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil, nil), http.StatusNotFound)
		}
		if got := tags(t); !slices.Equal(got, []string{"keep"}) {
			t.Errorf("tags after delete %q, want [keep]", got)
		}
		expectError(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+img.Digest.String(), nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	})

	t.Run("Tag", func(t *testing.T) {
		img := newImage(1, 10)
		c.pushImage(t, repo, "x", img)
		c.pushManifest(t, repo, "y", img.MediaType, img.Manifest)
		resp := c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/x", nil, nil)
		expectStatus(t, resp, http.StatusAccepted)
		expectError(t, c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/x", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		for _, ref := range []string{"y", img.Digest.String()} {
			resp := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, img.Manifest)
		}
		if got := tags(t); !slices.Equal(got, []string{"keep", "y"}) {
			t.Errorf("tags after delete %q, want [keep y]", got)
		}
		expectError(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/x", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	})

	t.Run("ManifestUnknown", func(t *testing.T) {
		expectError(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+randDigest().String(), nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		expectError(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/nosuchtag", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		expectErrorIn(t, c.do(t, http.MethodDelete, "/v2/del/nosuchrepo/manifests/"+keep.Digest.String(), nil, nil),
			[]int{http.StatusNotFound}, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")
	})

	// Deleting a manifest in one repository leaves the same manifest in
	// another one alone.
	t.Run("ManifestOtherRepoUntouched", func(t *testing.T) {
		img := newImage(1, 10)
		c.pushImage(t, repo, "shared", img)
		c.pushImage(t, "del/other", "shared", img)
		expectStatus(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+img.Digest.String(), nil, nil), http.StatusAccepted)
		resp := c.do(t, http.MethodGet, "/v2/del/other/manifests/shared", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, img.Manifest)
	})

	t.Run("Blob", func(t *testing.T) {
		data := randBytes(300)
		d := c.pushBlob(t, repo, data)
		c.pushBlob(t, "del/other", data)
		resp := c.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
		expectStatus(t, resp, http.StatusAccepted)
		expectError(t, c.do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil, nil), http.StatusNotFound)
		expectError(t, c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
		expectError(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+d.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
		// Other repositories keep theirs.
		resp = c.do(t, http.MethodGet, "/v2/del/other/blobs/"+d.String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
		// Nor can it be mounted from there.
		resp = c.do(t, http.MethodPost, "/v2/del/mounted/blobs/uploads/?mount="+d.String()+"&from="+repo, nil, nil)
		expectStatus(t, resp, http.StatusAccepted)
		// A manifest in repo may no longer reference it ...
		m := buildImageFrom(mtOCIManifest, mtOCIConfig, mtOCILayer, keep.Blobs[0], [][]byte{data})
		expectError(t, c.putManifest(t, repo, "usesdeleted", mtOCIManifest, m), http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
		// ... until it is uploaded again.
		c.pushBlob(t, repo, data)
		c.pushManifest(t, repo, "usesdeleted", mtOCIManifest, m)
	})

	t.Run("BlobUnknown", func(t *testing.T) {
		expectError(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+randDigest().String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
	})
}

// ---------------------------------------------------------------------------
// Referrers: end-12a, end-12b

func TestConformanceReferrers(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	r := newTestRegistry(t, st)
	c := r.client()
	const repo = "ref/app"
	const sbomType = "application/vnd.example.sbom.v1"
	const sigConfigType = "application/vnd.example.signature.config.v1+json"

	subject := newImage(1, 100)
	c.pushImage(t, repo, "v1", subject)
	sd := subject.desc()

	pushReferrer := func(t *testing.T, repo string, a *testImage, ociSubject digest.Digest) {
		t.Helper()
		for _, ch := range a.Children {
			c.pushImage(t, repo, "", ch)
		}
		for _, b := range a.Blobs {
			c.pushBlob(t, repo, b)
		}
		resp := c.pushManifest(t, repo, a.Digest.String(), a.MediaType, a.Manifest)
		if a.MediaType == mtOCIManifest {
			expectHeader(t, resp, "OCI-Subject", ociSubject.String())
		} else if got := resp.header.Get("OCI-Subject"); got != "" && got != ociSubject.String() {
			t.Errorf("OCI-Subject %q, want %s", got, ociSubject)
		}
	}

	sbom := newArtifact(sbomType, v1.MediaTypeEmptyJSON, &sd, map[string]string{
		"org.opencontainers.image.created": "2024-01-01T00:00:00Z",
		"org.example.sbom.format":          "json",
	})
	// No artifactType: the descriptor takes the config's media type.
	sig := newArtifact("", sigConfigType, &sd, map[string]string{"org.example.signature.fingerprint": "abcd"})
	// An index with a subject and artifactType, and one without.
	idxTyped := buildIndex(mtOCIIndex, func(ix *v1.Index) {
		ix.Subject = &sd
		ix.ArtifactType = "application/vnd.example.bundle.v1"
		ix.Annotations = map[string]string{"k": "v"}
	}, newImage(1, 10))
	idxUntyped := buildIndex(mtOCIIndex, func(ix *v1.Index) {
		ix.Subject = &sd
		ix.Annotations = map[string]string{"org.opencontainers.image.created": "2023-01-01T07:21:33Z"}
	}, newImage(1, 10))
	// Unrelated: no subject; and a referrer in another repository.
	c.pushImage(t, repo, "unrelated", newImage(1, 10))

	for _, a := range []*testImage{sbom, sig, idxTyped, idxUntyped} {
		pushReferrer(t, repo, a, subject.Digest)
	}
	foreign := newArtifact(sbomType, v1.MediaTypeEmptyJSON, &sd, nil)
	pushReferrer(t, "ref/other", foreign, subject.Digest)

	want := map[digest.Digest]v1.Descriptor{
		sbom.Digest: {MediaType: mtOCIManifest, Digest: sbom.Digest, Size: int64(len(sbom.Manifest)), ArtifactType: sbomType,
			Annotations: map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.sbom.format": "json"}},
		sig.Digest: {MediaType: mtOCIManifest, Digest: sig.Digest, Size: int64(len(sig.Manifest)), ArtifactType: sigConfigType,
			Annotations: map[string]string{"org.example.signature.fingerprint": "abcd"}},
		idxTyped.Digest: {MediaType: mtOCIIndex, Digest: idxTyped.Digest, Size: int64(len(idxTyped.Manifest)),
			ArtifactType: "application/vnd.example.bundle.v1", Annotations: map[string]string{"k": "v"}},
		idxUntyped.Digest: {MediaType: mtOCIIndex, Digest: idxUntyped.Digest, Size: int64(len(idxUntyped.Manifest)),
			Annotations: map[string]string{"org.opencontainers.image.created": "2023-01-01T07:21:33Z"}},
	}

	referrers := func(t *testing.T, repo string, d digest.Digest, query string) (v1.Index, *response) {
		t.Helper()
		path := "/v2/" + repo + "/referrers/" + d.String()
		if query != "" {
			path += "?" + query
		}
		resp := c.do(t, http.MethodGet, path, nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectHeader(t, resp, "Content-Type", mtOCIIndex)
		var raw struct {
			Manifests json.RawMessage `json:"manifests"`
		}
		decodeJSON(t, resp, &raw)
		if s := strings.TrimSpace(string(raw.Manifests)); !strings.HasPrefix(s, "[") {
			t.Errorf("%v: manifests is %s, want a JSON array", resp, s)
		}
		var idx v1.Index
		decodeJSON(t, resp, &idx)
		if idx.SchemaVersion != 2 || idx.MediaType != mtOCIIndex {
			t.Errorf("%v: schemaVersion %d mediaType %q, want 2 %q", resp, idx.SchemaVersion, idx.MediaType, mtOCIIndex)
		}
		return idx, resp
	}
	// The descriptors of a raw referrers body, with "artifactType" present
	// or not, keyed by digest.
	rawHasArtifactType := func(t *testing.T, resp *response) map[string]bool {
		var raw struct {
			Manifests []map[string]json.RawMessage `json:"manifests"`
		}
		decodeJSON(t, resp, &raw)
		m := map[string]bool{}
		for _, d := range raw.Manifests {
			var dg string
			_ = json.Unmarshal(d["digest"], &dg)
			_, m[dg] = d["artifactType"]
		}
		return m
	}
	checkDescs := func(t *testing.T, got []v1.Descriptor, want map[digest.Digest]v1.Descriptor) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%d referrers, want %d: %+v", len(got), len(want), got)
		}
		for _, g := range got {
			w, ok := want[g.Digest]
			if !ok {
				t.Errorf("unexpected referrer %+v", g)
				continue
			}
			if g.MediaType != w.MediaType || g.Size != w.Size || g.ArtifactType != w.ArtifactType || !mapsEqual(g.Annotations, w.Annotations) {
				t.Errorf("referrer descriptor\n got %+v\nwant %+v", g, w)
			}
		}
	}

	t.Run("List", func(t *testing.T) {
		idx, resp := referrers(t, repo, subject.Digest, "")
		checkDescs(t, idx.Manifests, want)
		expectHeader(t, resp, "OCI-Filters-Applied", "")
		if has := rawHasArtifactType(t, resp); has[idxUntyped.Digest.String()] {
			t.Errorf("index without artifactType listed with an artifactType field")
		}
	})

	t.Run("FilterArtifactType", func(t *testing.T) {
		idx, resp := referrers(t, repo, subject.Digest, "artifactType="+url.QueryEscape(sbomType))
		expectHeader(t, resp, "OCI-Filters-Applied", "artifactType")
		checkDescs(t, idx.Manifests, map[digest.Digest]v1.Descriptor{sbom.Digest: want[sbom.Digest]})

		idx, resp = referrers(t, repo, subject.Digest, "artifactType="+url.QueryEscape(sigConfigType))
		expectHeader(t, resp, "OCI-Filters-Applied", "artifactType")
		checkDescs(t, idx.Manifests, map[digest.Digest]v1.Descriptor{sig.Digest: want[sig.Digest]})

		idx, resp = referrers(t, repo, subject.Digest, "artifactType=application/vnd.example.none")
		expectHeader(t, resp, "OCI-Filters-Applied", "artifactType")
		checkDescs(t, idx.Manifests, nil)
	})

	t.Run("UnknownDigest", func(t *testing.T) {
		idx, _ := referrers(t, repo, randDigest(), "")
		checkDescs(t, idx.Manifests, nil)
	})

	t.Run("OtherRepo", func(t *testing.T) {
		idx, _ := referrers(t, "ref/other", subject.Digest, "")
		checkDescs(t, idx.Manifests, map[digest.Digest]v1.Descriptor{foreign.Digest: {
			MediaType: mtOCIManifest, Digest: foreign.Digest, Size: int64(len(foreign.Manifest)), ArtifactType: sbomType}})
	})

	t.Run("InvalidDigest", func(t *testing.T) {
		resp := c.do(t, http.MethodGet, "/v2/"+repo+"/referrers/sha256:nothex", nil, nil)
		expectError(t, resp, http.StatusBadRequest, "DIGEST_INVALID")
	})

	// Referrer first, subject later.
	t.Run("SubjectPushedLater", func(t *testing.T) {
		later := newImage(1, 10)
		ld := later.desc()
		a := newArtifact(sbomType, v1.MediaTypeEmptyJSON, &ld, nil)
		pushReferrer(t, repo, a, later.Digest)
		w := map[digest.Digest]v1.Descriptor{a.Digest: {MediaType: mtOCIManifest, Digest: a.Digest, Size: int64(len(a.Manifest)), ArtifactType: sbomType}}
		idx, _ := referrers(t, repo, later.Digest, "")
		checkDescs(t, idx.Manifests, w)
		c.pushImage(t, repo, "later", later)
		idx, _ = referrers(t, repo, later.Digest, "")
		checkDescs(t, idx.Manifests, w)
	})

	t.Run("DeletedReferrerDisappears", func(t *testing.T) {
		a := newArtifact("application/vnd.example.temp.v1", v1.MediaTypeEmptyJSON, &sd, nil)
		pushReferrer(t, repo, a, subject.Digest)
		idx, _ := referrers(t, repo, subject.Digest, "")
		if len(idx.Manifests) != len(want)+1 {
			t.Fatalf("%d referrers after push, want %d", len(idx.Manifests), len(want)+1)
		}
		expectStatus(t, c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+a.Digest.String(), nil, nil), http.StatusAccepted)
		idx, _ = referrers(t, repo, subject.Digest, "")
		checkDescs(t, idx.Manifests, want)
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// Repository names

func TestConformanceNames(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	r := newTestRegistry(t, st)
	c := r.client()

	for _, name := range []string{"a/b/c", "x/y/z/w/v", "a__b", "a-b", "a---b", "a.b", "a_b", "0", "a/0", "a0.b1_c2-d3",
		// Path words of the API inside names.
		"n/blobs", "n/blobs/uploads", "n/manifests", "n/tags", "n/tags/list", "n/referrers", "v2", "n/v2/blobs/x"} {
		t.Run("valid/"+name, func(t *testing.T) {
			img := newImage(1, 10)
			c.pushImage(t, name, "v1", img)
			resp := c.do(t, http.MethodGet, "/v2/"+name+"/manifests/v1", nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, img.Manifest)
			resp = c.do(t, http.MethodGet, "/v2/"+name+"/blobs/"+digest.FromBytes(img.Blobs[1]).String(), nil, nil)
			expectStatus(t, resp, http.StatusOK)
			var tl tagList
			resp = c.do(t, http.MethodGet, "/v2/"+name+"/tags/list", nil, nil)
			expectStatus(t, resp, http.StatusOK)
			decodeJSON(t, resp, &tl)
			if tl.Name != name || !slices.Equal(tl.Tags, []string{"v1"}) {
				t.Errorf("tags list %+v, want name %q tags [v1]", tl, name)
			}
		})
	}
	// "a/b" is not visible as "a" or "a/b/c" (nesting is just naming).
	expectError(t, c.do(t, http.MethodGet, "/v2/a/b/manifests/v1", nil, nil), http.StatusNotFound, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")

	img := newImage(1, 10)
	c.pushImage(t, "valid/repo", "v1", img)
	d := digest.FromBytes(img.Blobs[1])

	for _, tc := range []struct{ label, name string }{
		{"uppercase", "Upper/case"},
		{"uppercase2", "valid/Repo"},
		{"dotdot", "valid/../valid/repo"},
		{"dotdot-leading", "../valid/repo"},
		{"dotdot-encoded", "valid/%2e%2e/valid/repo"},
		{"dotdot-encoded-upper", "valid/%2E%2E/valid/repo"},
		{"dot-segment", "valid/./repo"},
		{"leading-slash", "/valid/repo"},
		{"trailing-slash", "valid/repo/"},
		{"double-slash", "valid//repo"},
		{"double-dot", "valid/re..po"},
		{"triple-underscore", "valid/re___po"},
		{"leading-dash", "-valid/repo"},
		{"trailing-dash", "valid/repo-"},
		{"trailing-dot", "valid/repo."},
		{"nul", "valid/re%00po"},
		{"space", "valid/re%20po"},
	} {
		t.Run("invalid/"+tc.label, func(t *testing.T) {
			statuses := []int{http.StatusBadRequest, http.StatusNotFound}
			base := "/v2/" + tc.name
			expectErrorIn(t, c.do(t, http.MethodGet, base+"/tags/list", nil, nil), statuses, "NAME_INVALID")
			expectErrorIn(t, c.do(t, http.MethodGet, base+"/manifests/v1", nil, nil), statuses, "NAME_INVALID")
			expectErrorIn(t, c.do(t, http.MethodGet, base+"/blobs/"+d.String(), nil, nil), statuses, "NAME_INVALID")
			expectErrorIn(t, c.do(t, http.MethodPost, base+"/blobs/uploads/", nil, nil), statuses, "NAME_INVALID")
			expectErrorIn(t, c.do(t, http.MethodPut, base+"/manifests/v2", img.Manifest, hdrs{"Content-Type": mtOCIManifest}), statuses, "NAME_INVALID")
			expectErrorIn(t, c.do(t, http.MethodGet, base+"/referrers/"+img.Digest.String(), nil, nil), statuses, "NAME_INVALID")
		})
	}

	// Nothing above created a repository.
	resp := c.do(t, http.MethodGet, "/v2/_catalog", nil, nil)
	expectStatus(t, resp, http.StatusOK)
	var cat catalog
	decodeJSON(t, resp, &cat)
	for _, n := range cat.Repositories {
		if strings.Contains(n, "..") || strings.ToLower(n) != n || strings.Contains(n, "//") || n != strings.Trim(n, "/") {
			t.Errorf("catalog lists invalid name %q", n)
		}
	}
	resp = c.do(t, http.MethodGet, "/v2/valid/repo/tags/list", nil, nil)
	expectStatus(t, resp, http.StatusOK)
	var tl tagList
	decodeJSON(t, resp, &tl)
	if !slices.Equal(tl.Tags, []string{"v1"}) {
		t.Errorf("valid/repo tags %q, want [v1]", tl.Tags)
	}
}

// ---------------------------------------------------------------------------
// Auth: htpasswd

var testUsers = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

func testRules() []auth.Rule {
	return []auth.Rule{
		{Users: []string{"alice"}, Repos: []string{"alice/**"}, Actions: []string{"pull", "push", "delete"}},
		{Users: []string{"bob"}, Repos: []string{"alice/**"}, Actions: []string{"pull"}},
		{Groups: []string{"devs"}, Repos: []string{"carol/**"}, Actions: []string{"pull", "push"}},
	}
}

func TestConformanceAuthHtpasswd(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	htpasswd := writeHtpasswd(t, testUsers)
	r := newTestRegistry(t, st, func(cfg *registry.Config) {
		cfg.Auth = auth.Config{
			Mode:     "htpasswd",
			Htpasswd: htpasswd,
			Groups:   map[string][]string{"devs": {"carol"}},
			Access:   testRules(),
		}
	})
	anon := r.client()
	alice := anon.withBasic("alice", "alice-pw")
	bob := anon.withBasic("bob", "bob-pw")
	carol := anon.withBasic("carol", "carol-pw")
	denied := []int{http.StatusUnauthorized, http.StatusForbidden}

	expectBasicChallenge := func(t *testing.T, resp *response) {
		t.Helper()
		expectError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		scheme, params := parseChallenge(resp.header.Get("WWW-Authenticate"))
		if scheme != "Basic" || params["realm"] == "" {
			t.Errorf("%v: WWW-Authenticate %q, want Basic realm=\"...\"", resp, resp.header.Get("WWW-Authenticate"))
		}
	}

	t.Run("PingAnonymous", func(t *testing.T) {
		resp := anon.do(t, http.MethodGet, "/v2/", nil, nil)
		expectBasicChallenge(t, resp)
		expectHeader(t, resp, "Docker-Distribution-API-Version", "registry/2.0")
	})
	t.Run("PingAuthenticated", func(t *testing.T) {
		for _, c := range []*client{alice, bob, carol} {
			resp := c.do(t, http.MethodGet, "/v2/", nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectHeader(t, resp, "Docker-Distribution-API-Version", "registry/2.0")
		}
	})
	t.Run("BadCredentials", func(t *testing.T) {
		for _, c := range []*client{
			anon.withBasic("alice", "wrong"),
			anon.withBasic("alice", ""),
			anon.withBasic("alice", "bob-pw"),
			anon.withBasic("mallory", "alice-pw"),
			anon.withBasic("", ""),
		} {
			expectBasicChallenge(t, c.do(t, http.MethodGet, "/v2/", nil, nil))
			expectBasicChallenge(t, c.do(t, http.MethodPost, "/v2/alice/app/blobs/uploads/", nil, nil))
		}
	})

	img := newImage(2, 100)
	t.Run("AlicePushPull", func(t *testing.T) {
		alice.pushImage(t, "alice/app", "v1", img)
		resp := alice.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, img.Manifest)
		for _, b := range img.Blobs {
			resp := alice.do(t, http.MethodGet, "/v2/alice/app/blobs/"+digest.FromBytes(b).String(), nil, nil)
			expectStatus(t, resp, http.StatusOK)
			expectBody(t, resp, b)
		}
		alice.pushImage(t, "alice/nested/repo", "v1", newImage(1, 10))
		// Delete is granted to alice.
		extra := newImage(1, 10)
		alice.pushImage(t, "alice/app", "extra", extra)
		expectStatus(t, alice.do(t, http.MethodDelete, "/v2/alice/app/manifests/extra", nil, nil), http.StatusAccepted)
	})
	t.Run("AnonymousDenied", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{http.MethodGet, "/v2/alice/app/manifests/v1"},
			{http.MethodGet, "/v2/alice/app/blobs/" + digest.FromBytes(img.Blobs[1]).String()},
			{http.MethodGet, "/v2/alice/app/tags/list"},
			{http.MethodPost, "/v2/alice/app/blobs/uploads/"},
			{http.MethodDelete, "/v2/alice/app/manifests/v1"},
			{http.MethodGet, "/v2/_catalog"},
		} {
			expectBasicChallenge(t, anon.do(t, tc.method, tc.path, nil, nil))
		}
		expectError(t, anon.do(t, http.MethodHead, "/v2/alice/app/manifests/v1", nil, nil), http.StatusUnauthorized)
	})
	t.Run("BobPullOnly", func(t *testing.T) {
		resp := bob.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, img.Manifest)
		resp = bob.do(t, http.MethodGet, "/v2/alice/app/blobs/"+digest.FromBytes(img.Blobs[1]).String(), nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectStatus(t, bob.do(t, http.MethodGet, "/v2/alice/app/tags/list", nil, nil), http.StatusOK)

		data := randBytes(10)
		d := digest.FromBytes(data)
		expectErrorIn(t, bob.do(t, http.MethodPost, "/v2/alice/app/blobs/uploads/", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, bob.do(t, http.MethodPost, "/v2/alice/app/blobs/uploads/?digest="+d.String(), data, nil), denied, "DENIED", "UNAUTHORIZED")
		other := newImage(0, 0)
		alice.pushBlob(t, "alice/app", other.Blobs[0])
		expectErrorIn(t, bob.putManifest(t, "alice/app", "bobs", mtOCIManifest, other.Manifest), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, bob.do(t, http.MethodDelete, "/v2/alice/app/manifests/v1", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, bob.do(t, http.MethodDelete, "/v2/alice/app/blobs/"+digest.FromBytes(img.Blobs[1]).String(), nil, nil), denied, "DENIED", "UNAUTHORIZED")
		// Nothing changed.
		expectError(t, alice.do(t, http.MethodHead, "/v2/alice/app/blobs/"+d.String(), nil, nil), http.StatusNotFound)
		expectError(t, alice.do(t, http.MethodGet, "/v2/alice/app/manifests/bobs", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		expectStatus(t, alice.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), http.StatusOK)
		expectStatus(t, alice.do(t, http.MethodHead, "/v2/alice/app/blobs/"+digest.FromBytes(img.Blobs[1]).String(), nil, nil), http.StatusOK)
	})
	// An upload session opened by alice cannot be driven by bob.
	t.Run("BobCannotUseAlicesUpload", func(t *testing.T) {
		loc := alice.startUpload(t, "alice/app")
		data := randBytes(10)
		expectErrorIn(t, bob.do(t, http.MethodPut, withQuery(loc, "digest", digest.FromBytes(data).String()), data, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, bob.do(t, http.MethodPatch, loc, data, nil), denied, "DENIED", "UNAUTHORIZED")
		expectError(t, alice.do(t, http.MethodHead, "/v2/alice/app/blobs/"+digest.FromBytes(data).String(), nil, nil), http.StatusNotFound)
	})

	carolImg := newImage(1, 50)
	t.Run("GroupMember", func(t *testing.T) {
		carol.pushImage(t, "carol/app", "v1", carolImg)
		expectErrorIn(t, carol.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, carol.do(t, http.MethodPost, "/v2/alice/app/blobs/uploads/", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, alice.do(t, http.MethodGet, "/v2/carol/app/manifests/v1", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, bob.do(t, http.MethodGet, "/v2/carol/app/tags/list", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, bob.do(t, http.MethodGet, "/v2/carol/app/blobs/"+digest.FromBytes(carolImg.Blobs[1]).String(), nil, nil), denied, "DENIED", "UNAUTHORIZED")
		// A repository bob may not see answers the same whether it exists
		// or not.
		a := bob.do(t, http.MethodGet, "/v2/carol/app/tags/list", nil, nil)
		b := bob.do(t, http.MethodGet, "/v2/carol/nosuchrepo/tags/list", nil, nil)
		if a.status != b.status {
			t.Errorf("existing %v vs missing %v: the status tells whether the repository exists", a, b)
		}
	})

	// "alice/**" is alice's namespace, not every name starting with alice.
	t.Run("GlobBoundaries", func(t *testing.T) {
		for _, repo := range []string{"alicex/app", "xalice/app", "other/alice/app", "carol/alice"} {
			expectErrorIn(t, alice.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		}
	})

	// Mounting needs pull on the source: alice may not lift carol's blob
	// into her repository, whether she names carol/app or not.
	t.Run("MountNeedsPullOnSource", func(t *testing.T) {
		d := digest.FromBytes(carolImg.Blobs[1])
		for _, q := range []string{"mount=" + d.String() + "&from=carol/app", "mount=" + d.String()} {
			resp := alice.do(t, http.MethodPost, "/v2/alice/app/blobs/uploads/?"+q, nil, nil)
			if resp.status != http.StatusAccepted {
				expectErrorIn(t, resp, denied, "DENIED", "UNAUTHORIZED")
			}
			expectError(t, alice.do(t, http.MethodHead, "/v2/alice/app/blobs/"+d.String(), nil, nil), http.StatusNotFound)
		}
		// With pull on the source (and push on the target) it works.
		ad := digest.FromBytes(img.Blobs[1])
		resp := alice.do(t, http.MethodPost, "/v2/alice/copy/blobs/uploads/?mount="+ad.String()+"&from=alice/app", nil, nil)
		expectStatus(t, resp, http.StatusCreated)
	})

	t.Run("CatalogFiltered", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			c    *client
			want []string
		}{
			{"alice", alice, []string{"alice/app", "alice/copy", "alice/nested/repo"}},
			{"bob", bob, []string{"alice/app", "alice/copy", "alice/nested/repo"}},
			{"carol", carol, []string{"carol/app"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp := tc.c.do(t, http.MethodGet, "/v2/_catalog", nil, nil)
				expectStatus(t, resp, http.StatusOK)
				var cat catalog
				decodeJSON(t, resp, &cat)
				if !slices.Equal(cat.Repositories, tc.want) {
					t.Errorf("catalog for %s %q, want %q", tc.name, cat.Repositories, tc.want)
				}
			})
		}
	})

	t.Run("CatalogPagesFiltered", func(t *testing.T) {
		var got []string
		next := "n=1"
		for range 10 {
			resp := alice.do(t, http.MethodGet, "/v2/_catalog?"+next, nil, nil)
			expectStatus(t, resp, http.StatusOK)
			var cat catalog
			decodeJSON(t, resp, &cat)
			if len(cat.Repositories) > 1 {
				t.Fatalf("page of %d for n=1", len(cat.Repositories))
			}
			got = append(got, cat.Repositories...)
			link := nextLink(t, resp)
			if link == "" {
				break
			}
			u, err := url.Parse(link)
			if err != nil {
				t.Fatal(err)
			}
			next = u.RawQuery
		}
		if want := []string{"alice/app", "alice/copy", "alice/nested/repo"}; !slices.Equal(got, want) {
			t.Errorf("alice's catalog pages %q, want %q", got, want)
		}
	})

	t.Run("NoRulesMeansAllForAuthenticated", func(t *testing.T) {
		r := newTestRegistry(t, st, func(cfg *registry.Config) {
			cfg.Auth = auth.Config{Mode: "htpasswd", Htpasswd: htpasswd}
		})
		anon := r.client()
		bob := anon.withBasic("bob", "bob-pw")
		img := newImage(1, 10)
		bob.pushImage(t, "anything/at/all", "v1", img)
		expectStatus(t, anon.withBasic("carol", "carol-pw").do(t, http.MethodDelete, "/v2/anything/at/all/manifests/v1", nil, nil), http.StatusAccepted)
		expectBasicChallenge(t, anon.do(t, http.MethodGet, "/v2/anything/at/all/tags/list", nil, nil))
		expectBasicChallenge(t, anon.do(t, http.MethodPost, "/v2/anything/at/all/blobs/uploads/", nil, nil))
	})

	t.Run("AnonymousRule", func(t *testing.T) {
		r := newTestRegistry(t, st, func(cfg *registry.Config) {
			cfg.Auth = auth.Config{Mode: "htpasswd", Htpasswd: htpasswd, Access: []auth.Rule{
				{Anonymous: true, Repos: []string{"public/**"}, Actions: []string{"pull"}},
				{Users: []string{"alice"}, Repos: []string{"public/**"}, Actions: []string{"pull", "push"}},
			}}
		})
		anon := r.client()
		img := newImage(1, 10)
		anon.withBasic("alice", "alice-pw").pushImage(t, "public/app", "v1", img)
		resp := anon.do(t, http.MethodGet, "/v2/public/app/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, img.Manifest)
		expectStatus(t, anon.do(t, http.MethodGet, "/v2/public/app/blobs/"+digest.FromBytes(img.Blobs[1]).String(), nil, nil), http.StatusOK)
		// Authenticated users get what anonymous clients get.
		expectStatus(t, anon.withBasic("bob", "bob-pw").do(t, http.MethodGet, "/v2/public/app/manifests/v1", nil, nil), http.StatusOK)
		// But no more.
		expectBasicChallenge(t, anon.do(t, http.MethodPost, "/v2/public/app/blobs/uploads/", nil, nil))
		expectErrorIn(t, anon.withBasic("bob", "bob-pw").do(t, http.MethodPost, "/v2/public/app/blobs/uploads/", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		expectErrorIn(t, anon.do(t, http.MethodDelete, "/v2/public/app/manifests/v1", nil, nil), denied, "DENIED", "UNAUTHORIZED")
		// The catalog shows each client what it may pull.
		for _, tc := range []struct {
			name string
			c    *client
		}{{"anonymous", anon}, {"bob", anon.withBasic("bob", "bob-pw")}} {
			resp := tc.c.do(t, http.MethodGet, "/v2/_catalog", nil, nil)
			expectStatus(t, resp, http.StatusOK)
			var cat catalog
			decodeJSON(t, resp, &cat)
			if !slices.Equal(cat.Repositories, []string{"public/app"}) {
				t.Errorf("catalog for %s %q, want [public/app]", tc.name, cat.Repositories)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Auth: Docker token spec

func TestConformanceAuthToken(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	htpasswd := writeHtpasswd(t, testUsers)
	const service, issuer = "test-registry", "test-issuer"
	// The signing key is given, so that other registries can share it and
	// the tests can sign tokens of their own.
	signingKey, keyFile := writeECKey(t)
	tokenConfig := func(service, issuer string) func(*registry.Config) {
		return func(cfg *registry.Config) {
			cfg.Auth = auth.Config{
				Mode:     "token",
				Htpasswd: htpasswd,
				Service:  service,
				Issuer:   issuer,
				Key:      keyFile,
				Groups:   map[string][]string{"devs": {"carol"}},
				Access:   testRules(),
			}
		}
	}
	r := newTestRegistry(t, st, tokenConfig(service, issuer))
	anon := r.client()

	resp := anon.do(t, http.MethodGet, "/v2/", nil, nil)
	expectError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	expectHeader(t, resp, "Docker-Distribution-API-Version", "registry/2.0")
	scheme, params := parseChallenge(resp.header.Get("WWW-Authenticate"))
	if scheme != "Bearer" || params["realm"] == "" || params["service"] != service {
		t.Fatalf("WWW-Authenticate %q, want Bearer realm=\"...\",service=%q", resp.header.Get("WWW-Authenticate"), service)
	}
	realm := params["realm"]
	t.Run("DefaultRealm", func(t *testing.T) {
		if realm != r.srv.URL+"/token" {
			t.Errorf("realm %q, want %q (the documented default)", realm, r.srv.URL+"/token")
		}
	})

	getToken := func(t *testing.T, user, pass string, scopes ...string) (tokenResponse, *response) {
		t.Helper()
		q := url.Values{"service": {service}}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		c := anon
		if user != "" || pass != "" {
			c = anon.withBasic(user, pass)
		}
		resp := c.do(t, http.MethodGet, realm+"?"+q.Encode(), nil, nil)
		var tr tokenResponse
		if resp.status == http.StatusOK {
			decodeJSON(t, resp, &tr)
			if tr.token() == "" {
				t.Fatalf("%v: no token in response", resp)
			}
			if tr.Token != "" && tr.AccessToken != "" && tr.Token != tr.AccessToken {
				t.Errorf("token and access_token differ")
			}
			if tr.ExpiresIn != 0 && tr.ExpiresIn < 60 {
				t.Errorf("expires_in %d < 60", tr.ExpiresIn)
			}
		}
		return tr, resp
	}
	mustToken := func(t *testing.T, user, pass string, scopes ...string) (string, tokenClaims) {
		t.Helper()
		tr, resp := getToken(t, user, pass, scopes...)
		expectStatus(t, resp, http.StatusOK)
		hdr, claims := decodeJWT(t, tr.token())
		if hdr["alg"] != "ES256" {
			t.Errorf("token alg %v, want ES256", hdr["alg"])
		}
		return tr.token(), claims
	}
	// expectInsufficientScope checks a 401 whose Bearer challenge names the
	// scope the request needed.
	expectInsufficientScope := func(t *testing.T, resp *response, repo, action string) {
		t.Helper()
		expectError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED", "DENIED")
		scheme, p := parseChallenge(resp.header.Get("WWW-Authenticate"))
		if scheme != "Bearer" || p["realm"] != realm || p["service"] != service {
			t.Errorf("%v: challenge %q, want Bearer with realm %q service %q", resp, resp.header.Get("WWW-Authenticate"), realm, service)
		}
		if p["error"] != "insufficient_scope" {
			t.Errorf("%v: challenge %q lacks error=\"insufficient_scope\"", resp, resp.header.Get("WWW-Authenticate"))
		}
		typ, rest, _ := strings.Cut(p["scope"], ":")
		i := strings.LastIndex(rest, ":")
		if typ != "repository" || i < 0 || rest[:i] != repo || !slices.Contains(strings.Split(rest[i+1:], ","), action) {
			t.Errorf("%v: challenge scope %q, want repository:%s:...%s...", resp, p["scope"], repo, action)
		}
	}

	t.Run("ChallengeScope", func(t *testing.T) {
		resp := anon.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		scheme, p := parseChallenge(resp.header.Get("WWW-Authenticate"))
		if scheme != "Bearer" || p["realm"] != realm || p["service"] != service || p["scope"] != "repository:alice/app:pull" {
			t.Errorf("challenge %q, want Bearer realm=%q,service=%q,scope=\"repository:alice/app:pull\"", resp.header.Get("WWW-Authenticate"), realm, service)
		}
	})

	t.Run("TokenBadCredentials", func(t *testing.T) {
		for _, up := range [][2]string{{"alice", "wrong"}, {"mallory", "x"}, {"alice", ""}} {
			_, resp := getToken(t, up[0], up[1], "repository:alice/app:pull")
			expectStatus(t, resp, http.StatusUnauthorized)
		}
	})

	img := newImage(2, 100)
	t.Run("AliceFlow", func(t *testing.T) {
		tok, claims := mustToken(t, "alice", "alice-pw", "repository:alice/app:pull,push")
		if claims.Iss != issuer || claims.Sub != "alice" || !slices.Contains(claims.audiences(), service) {
			t.Errorf("claims iss=%q sub=%q aud=%q, want %q alice %q", claims.Iss, claims.Sub, claims.audiences(), issuer, service)
		}
		now := time.Now().Unix()
		if claims.Exp <= now || claims.Exp > now+300+60 || claims.Nbf > now+5 {
			t.Errorf("claims exp=%d nbf=%d, now %d (default TTL 5m)", claims.Exp, claims.Nbf, now)
		}
		if len(claims.Access) != 1 || claims.Access[0].Type != "repository" || claims.Access[0].Name != "alice/app" ||
			!sameSet(claims.Access[0].Actions, []string{"pull", "push"}) {
			t.Errorf("access %+v, want [repository alice/app [pull push]]", claims.Access)
		}
		c := anon.withToken(tok)
		expectStatus(t, c.do(t, http.MethodGet, "/v2/", nil, nil), http.StatusOK)
		c.pushImage(t, "alice/app", "v1", img)
		resp := c.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, img.Manifest)
	})

	t.Run("MultipleScopes", func(t *testing.T) {
		tok, claims := mustToken(t, "alice", "alice-pw", "repository:alice/app:pull", "repository:alice/second:pull,push")
		if len(claims.Access) != 2 {
			t.Errorf("access %+v, want two entries", claims.Access)
		}
		c := anon.withToken(tok)
		c.pushImage(t, "alice/second", "v1", newImage(1, 10))
		expectStatus(t, c.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), http.StatusOK)
	})

	t.Run("TokenIsPerRepo", func(t *testing.T) {
		tok, _ := mustToken(t, "alice", "alice-pw", "repository:alice/app:pull,push")
		c := anon.withToken(tok)
		expectInsufficientScope(t, c.do(t, http.MethodGet, "/v2/alice/second/manifests/v1", nil, nil), "alice/second", "pull")
		expectInsufficientScope(t, c.do(t, http.MethodPost, "/v2/alice/second/blobs/uploads/", nil, nil), "alice/second", "push")
	})

	t.Run("PullOnlyToken", func(t *testing.T) {
		// bob asks for push too; the token server grants the intersection.
		tok, claims := mustToken(t, "bob", "bob-pw", "repository:alice/app:pull,push")
		if claims.Sub != "bob" || len(claims.Access) != 1 || claims.Access[0].Name != "alice/app" ||
			!sameSet(claims.Access[0].Actions, []string{"pull"}) {
			t.Errorf("claims sub=%q access=%+v, want bob with [repository alice/app [pull]]", claims.Sub, claims.Access)
		}
		c := anon.withToken(tok)
		resp := c.do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectInsufficientScope(t, c.do(t, http.MethodPost, "/v2/alice/app/blobs/uploads/", nil, nil), "alice/app", "push")
		other := newImage(0, 0)
		expectInsufficientScope(t, c.putManifest(t, "alice/app", "bobs", mtOCIManifest, other.Manifest), "alice/app", "push")
		expectInsufficientScope(t, c.do(t, http.MethodDelete, "/v2/alice/app/manifests/v1", nil, nil), "alice/app", "delete")
	})

	t.Run("NoAccessToken", func(t *testing.T) {
		// carol has nothing on alice/app: a token, but with no access.
		tok, claims := mustToken(t, "carol", "carol-pw", "repository:alice/app:pull")
		for _, a := range claims.Access {
			if a.Name == "alice/app" && len(a.Actions) > 0 {
				t.Errorf("carol granted %+v", a)
			}
		}
		expectInsufficientScope(t, anon.withToken(tok).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), "alice/app", "pull")
	})

	t.Run("AnonymousToken", func(t *testing.T) {
		tr, resp := getToken(t, "", "", "repository:alice/app:pull")
		if resp.status == http.StatusOK {
			_, claims := decodeJWT(t, tr.token())
			for _, a := range claims.Access {
				if len(a.Actions) > 0 {
					t.Errorf("anonymous granted %+v", a)
				}
			}
			expectStatus(t, anon.withToken(tr.token()).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), http.StatusUnauthorized)
		} else {
			expectStatus(t, resp, http.StatusUnauthorized)
		}
	})

	t.Run("BasicNotAcceptedOnV2", func(t *testing.T) {
		resp := anon.withBasic("alice", "alice-pw").do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		if scheme, _ := parseChallenge(resp.header.Get("WWW-Authenticate")); scheme != "Bearer" {
			t.Errorf("challenge %q, want Bearer", resp.header.Get("WWW-Authenticate"))
		}
	})

	t.Run("ForgedTokens", func(t *testing.T) {
		tok, claims := mustToken(t, "bob", "bob-pw", "repository:alice/app:pull")
		parts := strings.Split(tok, ".")
		// bob's claims widened to push, signature kept.
		wide := claims
		wide.Access = []accessEntry{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}}
		hdr, _ := decodeJWT(t, tok)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		noneHdr := map[string]any{"typ": "JWT", "alg": "none"}
		expired := claims
		expired.Exp, expired.Nbf, expired.Iat = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
		otherAud := wide
		otherAud.Aud = json.RawMessage(`"another-service"`)
		flip := []byte(parts[2])
		if flip[5] == 'A' {
			flip[5] = 'B'
		} else {
			flip[5] = 'A'
		}
		for _, tc := range []struct{ name, tok string }{
			{"Garbage", "not-a-token"},
			{"SignatureTampered", parts[0] + "." + parts[1] + "." + string(flip)},
			{"ClaimsWidened", parts[0] + "." + b64JSON(wide) + "." + parts[2]},
			{"AlgNone", b64JSON(noneHdr) + "." + b64JSON(wide) + "."},
			{"OtherKey", es256Sign(key, hdr, wide)},
			{"OtherKeyOtherAudience", es256Sign(key, hdr, otherAud)},
			{"ExpiredOtherKey", es256Sign(key, hdr, expired)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := anon.withToken(tc.tok)
				for _, req := range []struct{ method, path string }{
					{http.MethodGet, "/v2/alice/app/manifests/v1"},
					{http.MethodPost, "/v2/alice/app/blobs/uploads/"},
				} {
					resp := c.do(t, req.method, req.path, nil, nil)
					expectErrorIn(t, resp, []int{http.StatusUnauthorized, http.StatusForbidden}, "UNAUTHORIZED", "DENIED")
				}
			})
		}
	})

	// The OAuth 2 variant of the token endpoint (distribution's
	// docs/spec/auth/oauth.md): POST with grant_type=password.
	t.Run("OAuthPost", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "service": {service}, "client_id": {"conformance"},
			"username": {"alice"}, "password": {"alice-pw"}, "scope": {"repository:alice/app:pull"}}
		resp := anon.do(t, http.MethodPost, realm, []byte(form.Encode()), hdrs{"Content-Type": "application/x-www-form-urlencoded"})
		expectStatus(t, resp, http.StatusOK)
		var tr tokenResponse
		decodeJSON(t, resp, &tr)
		if tr.AccessToken == "" {
			t.Fatalf("%v: no access_token", resp)
		}
		expectStatus(t, anon.withToken(tr.AccessToken).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), http.StatusOK)
		form.Set("password", "wrong")
		resp = anon.do(t, http.MethodPost, realm, []byte(form.Encode()), hdrs{"Content-Type": "application/x-www-form-urlencoded"})
		expectStatus(t, resp, http.StatusUnauthorized, http.StatusBadRequest)
	})

	// Tokens signed with the registry's own key but otherwise wrong: the
	// registry checks issuer, audience, times and algorithm (jwt.md,
	// "Verifying the token").
	t.Run("SignedWithRegistryKey", func(t *testing.T) {
		tok, _ := mustToken(t, "alice", "alice-pw", "repository:alice/app:pull")
		hdr, _ := decodeJWT(t, tok)
		now := time.Now().Unix()
		base := func() map[string]any {
			return map[string]any{
				"iss": issuer, "sub": "alice", "aud": service, "exp": now + 300, "nbf": now - 5, "iat": now - 5,
				"jti": randHex(16), "access": []accessEntry{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}},
			}
		}
		with := func(k string, v any) map[string]any {
			m := base()
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
			return m
		}
		pubDER, _ := x509.MarshalPKIXPublicKey(&signingKey.PublicKey)
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		hsHdr := map[string]any{"typ": "JWT", "alg": "HS256", "kid": hdr["kid"]}
		hsIn := b64JSON(hsHdr) + "." + b64JSON(base())
		mac := hmac.New(sha256.New, pubPEM)
		mac.Write([]byte(hsIn))
		hs256 := hsIn + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

		// The harness itself: a well-formed token is accepted.
		resp := anon.withToken(es256Sign(signingKey, hdr, base())).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
		expectStatus(t, resp, http.StatusOK)
		for _, tc := range []struct{ name, tok string }{
			{"Expired", es256Sign(signingKey, hdr, with("exp", now-600))},
			{"NotYetValid", es256Sign(signingKey, hdr, with("nbf", now+600))},
			{"NoExpiry", es256Sign(signingKey, hdr, with("exp", nil))},
			{"OtherAudience", es256Sign(signingKey, hdr, with("aud", "another-registry"))},
			{"NoAudience", es256Sign(signingKey, hdr, with("aud", nil))},
			{"OtherIssuer", es256Sign(signingKey, hdr, with("iss", "someone-else"))},
			{"HS256WithPublicKey", hs256},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp := anon.withToken(tc.tok).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
				expectErrorIn(t, resp, []int{http.StatusUnauthorized, http.StatusForbidden}, "UNAUTHORIZED", "DENIED")
			})
		}
	})

	// Registries sharing a key but not a service (or issuer) do not accept
	// each other's tokens.
	t.Run("TokenOfAnotherRegistry", func(t *testing.T) {
		for _, tc := range []struct{ name, service, issuer string }{
			{"OtherService", "other-registry", issuer},
			{"OtherIssuer", service, "other-issuer"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				other := newTestRegistry(t, st, tokenConfig(tc.service, tc.issuer))
				oc := other.client()
				q := url.Values{"service": {tc.service}, "scope": {"repository:alice/app:pull,push"}}
				resp := oc.withBasic("alice", "alice-pw").do(t, http.MethodGet, other.srv.URL+"/token?"+q.Encode(), nil, nil)
				expectStatus(t, resp, http.StatusOK)
				var tr tokenResponse
				decodeJSON(t, resp, &tr)
				// Good there ...
				expectError(t, oc.withToken(tr.token()).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
				// ... not here.
				resp = anon.withToken(tr.token()).do(t, http.MethodGet, "/v2/alice/app/manifests/v1", nil, nil)
				expectErrorIn(t, resp, []int{http.StatusUnauthorized, http.StatusForbidden}, "UNAUTHORIZED", "DENIED")
			})
		}
	})

	t.Run("CatalogFiltered", func(t *testing.T) {
		carolTok, _ := mustToken(t, "carol", "carol-pw", "repository:carol/app:pull,push")
		anon.withToken(carolTok).pushImage(t, "carol/app", "v1", newImage(1, 10))
		for _, tc := range []struct {
			user string
			want []string
		}{
			{"alice", []string{"alice/app", "alice/second"}},
			{"bob", []string{"alice/app", "alice/second"}},
			{"carol", []string{"carol/app"}},
		} {
			t.Run(tc.user, func(t *testing.T) {
				tok, _ := mustToken(t, tc.user, testUsers[tc.user], "registry:catalog:*")
				resp := anon.withToken(tok).do(t, http.MethodGet, "/v2/_catalog", nil, nil)
				expectStatus(t, resp, http.StatusOK)
				var cat catalog
				decodeJSON(t, resp, &cat)
				if !slices.Equal(cat.Repositories, tc.want) {
					t.Errorf("catalog for %s %q, want %q", tc.user, cat.Repositories, tc.want)
				}
			})
		}
		// A repository token does not open the catalog.
		tok, _ := mustToken(t, "alice", "alice-pw", "repository:alice/app:pull")
		expectError(t, anon.withToken(tok).do(t, http.MethodGet, "/v2/_catalog", nil, nil), http.StatusUnauthorized, "UNAUTHORIZED", "DENIED")
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// ---------------------------------------------------------------------------
// Rate limit: TOOMANYREQUESTS

func TestConformanceRateLimit(t *testing.T) {
	var st storageEnv // metadata only: the filesystem driver will do
	r := newTestRegistry(t, st, func(cfg *registry.Config) {
		cfg.Limits.Rate = 0.001 // effectively no refill during the test
		cfg.Limits.Burst = 3
	})
	c := r.client()
	for i := range 3 {
		resp := c.do(t, http.MethodGet, "/v2/", nil, nil)
		if resp.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %v", i+1, resp)
		}
	}
	expectError(t, c.do(t, http.MethodGet, "/v2/", nil, nil), http.StatusTooManyRequests, "TOOMANYREQUESTS")
}

// ---------------------------------------------------------------------------
// The same, over the S3 driver

// TestConformanceS3 runs the storage-dependent parts of the suite over the
// S3 driver against a real MinIO (skipped when there is none; see
// s3test.StartMinIO), and checks blob GETs redirected to presigned URLs.
func TestConformanceS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	srv := s3test.StartMinIO(t)
	var buckets atomic.Int64
	st := func(t *testing.T, cfg *registry.Config) {
		cfg.Storage.Driver = "s3"
		cfg.Storage.S3 = registry.S3Config{
			Endpoint:  srv.Endpoint,
			AccessKey: srv.AccessKey,
			SecretKey: srv.SecretKey,
			Bucket:    fmt.Sprintf("conformance-%d", buckets.Add(1)),
			Prefix:    "registry/",
		}
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, storageEnv)
	}{
		{"Pull", conformancePull},
		{"BlobPush", conformanceBlobPush},
		{"Mount", conformanceMount},
		{"ManifestPush", conformanceManifestPush},
		{"Delete", conformanceDelete},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, st) })
	}

	// "This location does not necessarily have to be served by your
	// registry, for example, in the case of a signed URL from some cloud
	// storage provider".
	t.Run("Redirect", func(t *testing.T) {
		r := newTestRegistry(t, st, func(cfg *registry.Config) { cfg.Storage.S3.Redirect = true })
		c := r.client()
		data := randBytes(5000)
		d := c.pushBlob(t, "redirect/app", data)
		c.pushBlob(t, "redirect/other", randBytes(10))

		resp := c.do(t, http.MethodGet, "/v2/redirect/app/blobs/"+d.String(), nil, nil)
		expectStatus(t, resp, http.StatusTemporaryRedirect, http.StatusFound, http.StatusSeeOther)
		loc := c.location(t, resp)
		if u, _ := url.Parse(loc); u.Host == c.base.Host {
			t.Errorf("redirected to the registry itself: %s", loc)
		}
		resp = c.do(t, http.MethodGet, loc, nil, nil)
		expectStatus(t, resp, http.StatusOK)
		expectBody(t, resp, data)
		resp = c.do(t, http.MethodGet, loc, nil, hdrs{"Range": "bytes=10-19"})
		expectStatus(t, resp, http.StatusPartialContent)
		expectBody(t, resp, data[10:20])

		resp = c.do(t, http.MethodHead, "/v2/redirect/app/blobs/"+d.String(), nil, nil)
		if resp.status == http.StatusOK {
			expectHeader(t, resp, "Content-Length", "5000")
			expectHeader(t, resp, "Docker-Content-Digest", d.String())
		} else {
			expectStatus(t, resp, http.StatusTemporaryRedirect, http.StatusFound, http.StatusSeeOther)
		}
		// No redirect for what the repository does not hold.
		expectError(t, c.do(t, http.MethodGet, "/v2/redirect/other/blobs/"+d.String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
		expectError(t, c.do(t, http.MethodGet, "/v2/redirect/app/blobs/"+randDigest().String(), nil, nil), http.StatusNotFound, "BLOB_UNKNOWN")
	})
}

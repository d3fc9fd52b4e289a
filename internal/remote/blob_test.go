package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// faultyRegistry serves one blob and misbehaves on the first requests as
// fault says; it counts blob requests.
func faultyRegistry(t *testing.T, blob []byte, fault func(n int, w http.ResponseWriter, r *http.Request) bool) (*client, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		n := int(requests.Add(1))
		if fault != nil && fault(n, w, r) {
			return
		}
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			if err != nil {
				http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
				return
			}
			start = v
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(blob)-1, len(blob)))
			w.WriteHeader(http.StatusPartialContent)
		}
		w.Write(blob[start:])
	}))
	t.Cleanup(srv.Close)
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/test/blob", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newClient(context.Background(), repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c, &requests
}

func TestBlobReaderFaults(t *testing.T) {
	blob := make([]byte, 3<<20)
	rand.Read(blob)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	truncate := func(after int) func(int, http.ResponseWriter, *http.Request) bool {
		return func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n > 1 {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
			w.Write(blob[:after])
			return true
		}
	}
	tests := []struct {
		name         string
		fault        func(int, http.ResponseWriter, *http.Request) bool
		wantErr      string
		wantRequests int32
	}{
		{"clean", nil, "", 1},
		{"truncated body resumes with Range", truncate(1 << 20), "", 2},
		{"two 500s then success", func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n <= 2 {
				w.WriteHeader(http.StatusInternalServerError)
				return true
			}
			return false
		}, "", 3},
		{"404 is not retried", func(n int, w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusNotFound)
			return true
		}, "404", 1},
		{"always 500 gives up", func(n int, w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}, "500", int32(maxAttempts)},
		{"Range ignored after a cut", func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				return truncate(100)(n, w, r)
			}
			w.Write(blob)
			return true
		}, "Range", 0},
		{"stall then resume", func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n > 1 {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
			w.Write(blob[:4096])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return true
		}, "", 2},
	}
	defer func(old time.Duration) { stallTimeout = old }(stallTimeout)
	stallTimeout = 300 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, requests := faultyRegistry(t, blob, tt.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []byte
			rc, err := c.openBlob(ctx, desc)
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if !bytes.Equal(got, blob) {
				t.Fatalf("got %d bytes that differ from the blob", len(got))
			}
			if tt.wantRequests > 0 && requests.Load() != tt.wantRequests {
				t.Errorf("%d blob requests, want %d", requests.Load(), tt.wantRequests)
			}
		})
	}
}

func TestFetchSmallVerifies(t *testing.T) {
	blob := []byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`)
	c, _ := faultyRegistry(t, []byte(`{"evil":true}`+strings.Repeat(" ", len(blob)-13)), nil)
	_, err := c.fetchSmall(context.Background(), ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a wrong config was accepted: %v", err)
	}
	if _, err := c.fetchSmall(context.Background(), ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: 1 << 30}, 1<<20); err == nil {
		t.Fatal("an oversized config was fetched")
	}
}

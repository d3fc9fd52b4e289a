package content

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPut(t *testing.T) {
	data := []byte("hello blob")
	good := digest.FromBytes(data)
	sha512 := digest.SHA512.FromBytes(data)
	tests := []struct {
		name     string
		expected digest.Digest
		size     int64
		wantErr  string
	}{
		{"verified sha256", good, int64(len(data)), ""},
		{"verified sha512", sha512, int64(len(data)), ""},
		{"unknown digest", "", -1, ""},
		{"wrong digest", digest.FromString("other"), int64(len(data)), "content digest is"},
		{"short size", good, int64(len(data)) + 5, "size is"},
		{"long size", good, 3, "content digest is"},
		{"invalid digest", "sha256:xyz", 1, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Put(bytes.NewReader(data), tt.expected, tt.size)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if n := countBlobs(t, s); n != 0 {
					t.Fatalf("%d blobs visible after a failed put", n)
				}
				assertIngestEmpty(t, s)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(len(data)) {
				t.Fatalf("size %d", info.Size)
			}
			got, err := s.ReadAll(info.Digest, 1<<10)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %q, %v", got, err)
			}
			if err := s.Verify(info.Digest); err != nil {
				t.Fatal(err)
			}
			assertIngestEmpty(t, s)
		})
	}
}

func countBlobs(t *testing.T, s *Store) int {
	n := 0
	if err := s.Walk(func(Info, error) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func assertIngestEmpty(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(s.root + "/ingest")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("ingest not empty: %v", entries)
	}
}

func TestConcurrentWritersOfOneBlob(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 1<<20)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.NewWriter("")
			if err != nil {
				errs <- err
				return
			}
			defer w.Close()
			if _, err := w.Write(data); err != nil {
				errs <- err
				return
			}
			_, err = w.Commit(d, int64(len(data)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
	if n := countBlobs(t, s); n != 1 {
		t.Fatalf("%d blobs", n)
	}
	assertIngestEmpty(t, s)
}

func TestVerifyDetectsCorruption(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.PutBytes([]byte("original"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(info.Digest)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(info.Digest); err == nil {
		t.Fatal("corruption not detected")
	}
	if _, err := s.Open(digest.FromString("missing")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := s.ReadAll(info.Digest, 2); err == nil {
		t.Fatal("limit not enforced")
	}
}

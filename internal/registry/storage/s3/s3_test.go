package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/registry/storage"
	"github.com/berth-dev/berth/internal/registry/storage/s3"
	"github.com/berth-dev/berth/internal/registry/storage/s3/s3test"
	"github.com/berth-dev/berth/internal/registry/storage/storagetest"
)

func newDriver(t *testing.T, cfg s3.Config) *s3.Driver {
	t.Helper()
	d, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriver(t *testing.T) {
	server := s3test.StartMinIO(t)

	t.Run("Conformance", func(t *testing.T) {
		cfg := server
		cfg.Bucket = "conformance"
		run := 0
		storagetest.Run(t, func(t *testing.T) storage.Driver {
			if strings.HasSuffix(t.Name(), "/ConcurrentPutDelete") {
				// MinIO's own single-drive backend fails this: a PUT racing
				// with a DELETE that prunes the (on-disk) parent directory
				// gets 403 AccessDenied, as its renameAll retries only once.
				// S3 proper has no directories to race on.
				t.Skip("MinIO answers 403 to PUTs racing with DELETEs in the same prefix")
			}
			run++
			cfg.Prefix = fmt.Sprintf("run%d", run)
			return newDriver(t, cfg)
		})
	})

	t.Run("Prefix", func(t *testing.T) {
		cfg := server
		cfg.Bucket = "prefix"
		cfg.Prefix = "/a/b/"
		d := newDriver(t, cfg)
		if err := d.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
		cfg.Prefix = ""
		var got []string
		err := newDriver(t, cfg).Walk(t.Context(), "", func(i storage.Info) error {
			got = append(got, i.Key)
			return nil
		})
		if err != nil || !slices.Equal(got, []string{"a/b/k"}) {
			t.Errorf("bucket holds %q (%v), want [a/b/k]", got, err)
		}

		for _, p := range []string{"a//b", "../a", "a b"} {
			cfg.Prefix = p
			if _, err := s3.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("New with prefix %q: %v, want an error naming it", p, err)
			}
		}
	})

	t.Run("ExistingBucket", func(t *testing.T) {
		cfg := server
		cfg.Bucket = "existing"
		if err := newDriver(t, cfg).Put(t.Context(), "k", strings.NewReader("kept"), 4); err != nil {
			t.Fatal(err)
		}
		rc, err := newDriver(t, cfg).Open(t.Context(), "k", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(rc); err != nil || b.String() != "kept" {
			t.Errorf("read %q, %v; want kept", b.String(), err)
		}
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		cfg := server
		cfg.Bucket = "creds"
		cfg.SecretKey = "wrong-secret"
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if _, err := s3.New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "creds") {
			t.Errorf("New with a wrong secret: %v, want an error naming the bucket", err)
		}
	})
}

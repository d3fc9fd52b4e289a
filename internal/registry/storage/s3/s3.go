// Package s3 is the registry's storage driver for an S3-compatible bucket
// (AWS S3, MinIO, Ceph RGW, ...): one object per key, under an optional key
// prefix. S3 itself makes every write atomic; Concat copies on the server
// (CopyObject, ComposeObject) when S3's part-size rules allow it, and
// Redirector hands out presigned GET URLs.
package s3

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/berth-dev/berth/internal/registry/storage"
)

// S3's limits on server-side copies.
const (
	maxCopySize     = 5 << 30 // CopyObject's largest source
	minComposePart  = 5 << 20 // every ComposeObject source but the last
	maxComposeParts = 10000
)

// partSize is the multipart upload part size: the memory a Put of unknown
// size buffers, and 10000 parts of it (156 GiB) the largest such Put.
const partSize = 16 << 20

// Config points the driver at a bucket.
type Config struct {
	Endpoint  string // host[:port], no scheme
	Region    string // empty: ask the endpoint
	Bucket    string // created if missing
	Prefix    string // prepended (with a "/") to every key
	AccessKey string
	SecretKey string
	Secure    bool // https to the endpoint
}

// Driver is a storage.Driver over an S3 bucket. It is safe for concurrent
// use.
type Driver struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
}

var (
	_ storage.Driver     = (*Driver)(nil)
	_ storage.Redirector = (*Driver)(nil)
)

// New connects to the endpoint and creates the bucket if it is missing.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := storage.ValidKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 storage: prefix: %w", err)
		}
		prefix += "/"
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 storage: %s: %w", cfg.Endpoint, err)
	}
	exists, err := client.BucketExists(ctx, cfg.Bucket)
	if err == nil && !exists {
		err = client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if code(err) == minio.BucketAlreadyOwnedByYou { // made meanwhile
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("s3 storage: bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	return &Driver{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Put implements storage.Driver.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := storage.ValidKey(key); err != nil {
		return err
	}
	if err := d.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("s3 storage: put %s: %w", key, err)
	}
	return nil
}

func (d *Driver) put(ctx context.Context, key string, r io.Reader, size int64) error {
	switch {
	case size < 0:
		size = -1
	case size == 0:
		// PutObject never reads past a size of 0: check that r is empty.
		if _, err := io.Copy(io.Discard, storage.ExactReader(r, 0)); err != nil {
			return err
		}
		r = strings.NewReader("")
	default:
		r = storage.ExactReader(r, size)
	}
	_, err := d.client.PutObject(ctx, d.bucket, d.prefix+key, r, size, minio.PutObjectOptions{PartSize: partSize})
	return err
}

// Open implements storage.Driver. Unlike minio-go's GetObject, it asks the
// server at once, so a missing key fails here and not at the first Read.
func (d *Driver) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := storage.ValidKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3 storage: open %s: negative offset %d", key, offset)
	}
	var opts minio.GetObjectOptions
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, fmt.Errorf("s3 storage: open %s: %w", key, err)
		}
	}
	rc, _, _, err := minio.Core{Client: d.client}.GetObject(ctx, d.bucket, d.prefix+key, opts)
	if code(err) == minio.InvalidRange {
		// S3 refuses a range starting at the end; storage.Driver allows it.
		info, serr := d.Stat(ctx, key)
		if serr != nil {
			return nil, serr
		}
		if info.Size == offset {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, fmt.Errorf("s3 storage: open %s: offset %d outside its %d bytes", key, offset, info.Size)
	}
	if err != nil {
		return nil, fmt.Errorf("s3 storage: open %s: %w", key, notFound(err))
	}
	return rc, nil
}

// Stat implements storage.Driver.
func (d *Driver) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := storage.ValidKey(key); err != nil {
		return storage.Info{}, err
	}
	oi, err := d.client.StatObject(ctx, d.bucket, d.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return storage.Info{}, fmt.Errorf("s3 storage: stat %s: %w", key, notFound(err))
	}
	return storage.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete implements storage.Driver.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := storage.ValidKey(key); err != nil {
		return err
	}
	err := d.client.RemoveObject(ctx, d.bucket, d.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && code(err) != minio.NoSuchKey {
		return fmt.Errorf("s3 storage: delete %s: %w", key, err)
	}
	return nil
}

// Walk implements storage.Driver.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if prefix != "" {
		if err := storage.ValidKey(strings.TrimSuffix(prefix, "/")); err != nil {
			return err
		}
	}
	// Canceling stops the listing when we stop early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: d.prefix + prefix, Recursive: true}
	for oi := range d.client.ListObjectsIter(ctx, d.bucket, opts) {
		err := oi.Err
		if err == nil {
			err = fn(storage.Info{Key: strings.TrimPrefix(oi.Key, d.prefix), Size: oi.Size, ModTime: oi.LastModified})
		}
		if err != nil {
			return fmt.Errorf("s3 storage: walk %s: %w", prefix, err)
		}
	}
	return nil
}

// part is a non-empty Concat source.
type part struct {
	key  string
	size int64
	etag string
}

// Concat implements storage.Driver. Empty sources are skipped; one is copied
// with CopyObject; several are composed on the server if every one but the
// last meets S3's minimum part size, else streamed through this process.
// Every way checks that the sources did not change since Concat looked.
func (d *Driver) Concat(ctx context.Context, dst string, srcs []string) error {
	for _, k := range append([]string{dst}, srcs...) {
		if err := storage.ValidKey(k); err != nil {
			return err
		}
	}
	if err := d.concat(ctx, dst, srcs); err != nil {
		return fmt.Errorf("s3 storage: concat %s: %w", dst, err)
	}
	return nil
}

func (d *Driver) concat(ctx context.Context, dst string, srcs []string) error {
	var parts []part
	var total int64
	for _, src := range srcs {
		oi, err := d.client.StatObject(ctx, d.bucket, d.prefix+src, minio.StatObjectOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", src, notFound(err))
		}
		if oi.Size > 0 {
			parts = append(parts, part{key: src, size: oi.Size, etag: oi.ETag})
			total += oi.Size
		}
	}
	to := minio.CopyDestOptions{Bucket: d.bucket, Object: d.prefix + dst}
	switch {
	case len(parts) == 0:
		return d.put(ctx, dst, strings.NewReader(""), 0)
	case len(parts) == 1 && parts[0].key == dst:
		return nil // S3 refuses to copy an object onto itself
	case len(parts) == 1 && parts[0].size <= maxCopySize:
		_, err := d.client.CopyObject(ctx, to, d.copySrc(parts[0]))
		return err
	case composable(parts):
		from := make([]minio.CopySrcOptions, len(parts))
		for i, p := range parts {
			from[i] = d.copySrc(p)
		}
		_, err := d.client.ComposeObject(ctx, to, from...)
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(d.copyParts(ctx, pw, parts))
	}()
	err := d.put(ctx, dst, pr, total)
	pr.Close() // stops copyParts if put gave up early
	<-done
	return err
}

func (d *Driver) copySrc(p part) minio.CopySrcOptions {
	return minio.CopySrcOptions{Bucket: d.bucket, Object: d.prefix + p.key, MatchETag: p.etag}
}

// composable reports whether ComposeObject takes parts: all but the last
// at least 5 MiB, and at most 10000 of them.
func composable(parts []part) bool {
	if len(parts) > maxComposeParts {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if p.size < minComposePart {
			return false
		}
	}
	return true
}

// copyParts writes the parts to w one after another.
func (d *Driver) copyParts(ctx context.Context, w io.Writer, parts []part) error {
	for _, p := range parts {
		var opts minio.GetObjectOptions
		if err := opts.SetMatchETag(p.etag); err != nil {
			return err
		}
		rc, _, _, err := minio.Core{Client: d.client}.GetObject(ctx, d.bucket, d.prefix+p.key, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, notFound(err))
		}
		_, err = io.Copy(w, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
	}
	return nil
}

// RedirectURL implements storage.Redirector with a presigned GET URL.
func (d *Driver) RedirectURL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := storage.ValidKey(key); err != nil {
		return "", err
	}
	u, err := d.client.PresignedGetObject(ctx, d.bucket, d.prefix+key, expiry, nil)
	if err != nil {
		return "", fmt.Errorf("s3 storage: redirect %s: %w", key, err)
	}
	return u.String(), nil
}

// code is the S3 error code of err, or "".
func code(err error) string {
	if err == nil {
		return ""
	}
	return minio.ToErrorResponse(err).Code
}

// notFound is err, or storage.ErrNotFound wrapping it if S3 says there is no
// such key.
func notFound(err error) error {
	if code(err) == minio.NoSuchKey {
		return fmt.Errorf("%w (%w)", storage.ErrNotFound, err)
	}
	return err
}

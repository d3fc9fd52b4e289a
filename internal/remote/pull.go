package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// PullOptions are the knobs of `pull`.
type PullOptions struct {
	Options
	Platform ocispec.Platform
	// Jobs is how many layers download at once (0: the store's default).
	Jobs int
}

// PullResult says what a pull did.
type PullResult struct {
	Image  store.Image
	Name   string // full name pulled
	Digest digest.Digest
	// UpToDate is set when the name already pointed at the pulled image.
	UpToDate   bool
	Downloaded int64
}

// Pull fetches an image into the store: the manifest (resolved through an
// index for the platform), its config and its layers, which are
// downloaded in parallel and verified and unpacked while they stream. A
// short name is tried at each search registry and every registry through
// its mirrors first, as the registries configuration says.
func Pull(ctx context.Context, st *store.Store, ref string, opts PullOptions) (PullResult, error) {
	var errs []error
	for _, c := range opts.Registries.Candidates(ref) {
		res, err := pullFrom(ctx, st, c, opts)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return res, err
		}
		errs = append(errs, err)
	}
	return PullResult{}, errors.Join(errs...)
}

func pullFrom(ctx context.Context, st *store.Store, c Candidate, opts PullOptions) (PullResult, error) {
	var res PullResult
	ref := c.Source
	r, _, err := parseRef(ref, opts.Options)
	if err != nil {
		return res, err
	}
	full, err := image.NormalizeName(c.Name)
	if err != nil {
		return res, err
	}
	res.Name = full
	p := newProgress(opts.Out)
	if t, ok := r.(name.Tag); ok {
		p.line("%s: Pulling from %s", t.TagStr(), familiarRepo(full))
	}
	desc, err := ggcr.Get(r, remoteOptions(ctx, r, opts.Options)...)
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	res.Digest = digest.Digest(desc.Digest.String())
	manifestRaw, mt := desc.Manifest, string(desc.MediaType)
	if image.IsIndex(mt) {
		idx, err := image.ParseIndex(manifestRaw)
		if err != nil {
			return res, fmt.Errorf("index %s: %w", res.Digest, err)
		}
		chosen, err := image.SelectManifest(idx, opts.Platform)
		if err != nil {
			return res, fmt.Errorf("index %s: %w", res.Digest, err)
		}
		md, err := ggcr.Get(r.Context().Digest(chosen.Digest.String()), remoteOptions(ctx, r, opts.Options)...)
		if err != nil {
			return res, fmt.Errorf("manifest %s: %w", chosen.Digest, err)
		}
		manifestRaw, mt = md.Manifest, string(md.MediaType)
		if digest.Digest(md.Digest.String()) != chosen.Digest {
			return res, fmt.Errorf("manifest %s: registry sent %s", chosen.Digest, md.Digest)
		}
	}
	if !image.IsManifest(mt) {
		return res, fmt.Errorf("pull %s: unsupported media type %q", ref, mt)
	}
	m, err := image.ParseManifest(manifestRaw)
	if err != nil {
		return res, err
	}
	cl, err := newClient(ctx, r.Context(), opts.Options, r.Context().Scope(transport.PullScope))
	if err != nil {
		return res, err
	}
	cfg, err := cl.fetchSmall(ctx, m.Config, image.MaxConfigSize)
	if err != nil {
		return res, err
	}
	if old, err := st.Get(full); err == nil && old.ID == m.Config.Digest {
		res.UpToDate = true
	}
	var downloaded atomic.Int64
	layers := make([]store.Layer, len(m.Layers))
	for i, l := range m.Layers {
		if !image.IsLayer(l.MediaType) {
			return res, fmt.Errorf("manifest: layer %s has media type %q", l.Digest, l.MediaType)
		}
		short := image.ShortID(l.Digest)
		switch {
		case res.UpToDate:
		case st.Content.Has(l.Digest):
			p.layer(short, "Already exists")
		default:
			p.layer(short, "Pulling fs layer")
		}
		layers[i] = store.Layer{Desc: l, Open: func() (io.ReadCloser, error) {
			rc, err := cl.openBlob(ctx, l)
			if err != nil {
				return nil, err
			}
			return &doneReader{ReadCloser: rc,
				tick: func(n int64) { p.bytes(short, "Downloading", n, l.Size) },
				done: func(n int64) {
					downloaded.Add(n)
					p.layer(short, "Pull complete")
				}}, nil
		}}
	}
	var names, repoDigests []string
	if _, ok := r.(name.Tag); ok {
		names = []string{full}
	}
	if repo, err := image.Repository(full); err == nil {
		repoDigests = []string{repo + "@" + res.Digest.String()}
	}
	if _, err := st.AddImage(ctx, store.NewImage{Manifest: manifestRaw, Config: cfg, Layers: layers, Names: names, RepoDigests: repoDigests, Jobs: opts.Jobs}); err != nil {
		return res, err
	}
	res.Downloaded = downloaded.Load()
	res.Image, err = st.Get(m.Config.Digest.String())
	return res, err
}

func familiarRepo(full string) string {
	repo, _ := image.SplitName(full)
	return repo
}

// doneReader reports the bytes read so far to tick (if set) and calls done
// with the total once, at EOF.
type doneReader struct {
	io.ReadCloser
	n    int64
	tick func(int64)
	done func(int64)
}

func (d *doneReader) Read(p []byte) (int, error) {
	n, err := d.ReadCloser.Read(p)
	d.n += int64(n)
	if n > 0 && d.tick != nil {
		d.tick(d.n)
	}
	if errors.Is(err, io.EOF) && d.done != nil {
		d.done(d.n)
		d.done = nil
	}
	return n, err
}

// fetchSmall downloads a small blob and verifies it.
func (c *client) fetchSmall(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes is more than %d", desc.Digest, desc.Size, limit)
	}
	rc, err := c.openBlob(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("blob %s: content does not match its digest", desc.Digest)
	}
	return b, nil
}

// Retry and stall limits for blob downloads (variables so tests can
// shorten the stall).
var (
	maxAttempts  = 5
	stallTimeout = 30 * time.Second
)

// openBlob returns the bytes of a blob. A transfer that fails or stalls is
// resumed with a Range request from the last byte received; the caller
// verifies the digest of the whole.
func (c *client) openBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b := &blobReader{c: c, ctx: ctx, desc: desc}
	if err := b.connect(); err != nil {
		return nil, err
	}
	return b, nil
}

type blobReader struct {
	c        *client
	ctx      context.Context
	desc     ocispec.Descriptor
	body     io.ReadCloser
	cancel   context.CancelFunc
	timer    *time.Timer
	off      int64
	attempts int
}

func (b *blobReader) connect() error {
	for {
		b.attempts++
		err := b.request()
		if err == nil {
			return nil
		}
		if b.attempts >= maxAttempts || !retryable(err) || b.ctx.Err() != nil {
			return fmt.Errorf("blob %s: %w", b.desc.Digest, err)
		}
		select {
		case <-time.After(time.Duration(b.attempts*b.attempts) * 100 * time.Millisecond):
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// statusError is a registry answer berth did not expect.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("registry answered %d", e.code) }

func retryable(err error) bool {
	var se statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	}
	return true
}

func (b *blobReader) request() error {
	ctx, cancel := context.WithCancel(b.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.c.url("blobs/"+b.desc.Digest.String()), nil)
	if err != nil {
		cancel()
		return err
	}
	if b.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	}
	timer := time.AfterFunc(stallTimeout, cancel)
	resp, err := b.c.http.Do(req)
	if err != nil {
		timer.Stop()
		cancel()
		return err
	}
	want := http.StatusOK
	if b.off > 0 {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want {
		resp.Body.Close()
		timer.Stop()
		cancel()
		if resp.StatusCode == http.StatusOK && b.off > 0 {
			return fmt.Errorf("registry ignored the Range request: %w", errNoResume)
		}
		return statusError{resp.StatusCode}
	}
	b.body, b.cancel, b.timer = resp.Body, cancel, timer
	return nil
}

var errNoResume = errors.New("cannot resume")

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.desc.Size >= 0 && b.off >= b.desc.Size {
			return 0, io.EOF
		}
		if b.desc.Size >= 0 && int64(len(p)) > b.desc.Size-b.off {
			p = p[:b.desc.Size-b.off]
		}
		n, err := b.body.Read(p)
		if n > 0 {
			b.off += int64(n)
			b.timer.Reset(stallTimeout)
			return n, nil
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) && b.desc.Size >= 0 && b.off < b.desc.Size {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		b.close()
		if b.attempts >= maxAttempts || b.ctx.Err() != nil {
			return 0, fmt.Errorf("blob %s: %w after %d bytes", b.desc.Digest, err, b.off)
		}
		if cerr := b.connect(); cerr != nil {
			return 0, cerr
		}
	}
}

func (b *blobReader) close() {
	if b.body != nil {
		b.body.Close()
		b.timer.Stop()
		b.cancel()
		b.body = nil
	}
}

// Close ends the transfer.
func (b *blobReader) Close() error {
	b.close()
	return nil
}

// ManifestInspect returns the manifest or index a reference names, as the
// registry serves it.
func ManifestInspect(ctx context.Context, ref string, opts Options) ([]byte, error) {
	r, _, err := parseRef(ref, opts)
	if err != nil {
		return nil, err
	}
	desc, err := ggcr.Get(r, remoteOptions(ctx, r, opts)...)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", ref, err)
	}
	return desc.Manifest, nil
}

// Tags lists the tags of the repository ref names (ref must carry no tag
// or digest), sorted as the registry returns them.
func Tags(ctx context.Context, ref string, opts Options) ([]string, error) {
	if strings.ContainsAny(ref, "@") || strings.LastIndex(ref, ":") > strings.LastIndex(ref, "/") {
		return nil, fmt.Errorf("tag can't be used with --all-tags/-a: %s", ref)
	}
	r, full, err := parseRef(ref, opts)
	if err != nil {
		return nil, err
	}
	tags, err := ggcr.List(r.Context(), remoteOptions(ctx, r, opts)...)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", full, err)
	}
	return tags, nil
}

// Package remote moves images between the local store and registries: pull,
// push, login and manifest inspection. The protocol and the token dance are
// go-containerregistry's (remote, transport, authn); credentials come from
// Docker's config file (~/.docker/config.json: auths, credsStore,
// credHelpers). Plain HTTP is used for localhost and 127.0.0.0/8 as Docker
// does, or everywhere with TLS verification off.
//
// remote never writes to the store except through store.AddImage, so every
// byte it brings is verified against its digest before it becomes visible.
// It shares image and content with the registry server but not its code.
package remote

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berth-dev/berth/internal/image"
)

// Options are shared by pull and push.
type Options struct {
	// Out receives progress lines; nil prints nothing.
	Out io.Writer
	// TLSVerify false allows plain HTTP and unverified TLS for any registry.
	TLSVerify bool
	// Registries holds insecure registries, mirrors and the short-name
	// search list.
	Registries Registries
}

// forHost returns the options for one registry: TLS verification is off
// for a registry the configuration marks insecure.
func (o Options) forHost(host string) Options {
	if o.Registries.Insecure(host) {
		o.TLSVerify = false
	}
	return o
}

// parseRef turns a user reference into go-containerregistry's, keeping
// Docker's normalisation (busybox → docker.io/library/busybox:latest).
func parseRef(ref string, opts Options) (name.Reference, string, error) {
	full, err := image.NormalizeName(ref)
	if err != nil {
		return nil, "", err
	}
	var nopts []name.Option
	host, _, _ := strings.Cut(full, "/")
	if !opts.forHost(host).TLSVerify {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(full, nopts...)
	if err != nil {
		return nil, "", fmt.Errorf("invalid reference %q: %w", ref, err)
	}
	return r, full, nil
}

func baseTransport(opts Options) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	if !opts.TLSVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user turned verification off
	}
	return t
}

// remoteOptions configures go-containerregistry for a reference's registry.
func remoteOptions(ctx context.Context, r name.Reference, opts Options) []ggcr.Option {
	return []ggcr.Option{
		ggcr.WithContext(ctx),
		ggcr.WithAuthFromKeychain(authn.DefaultKeychain),
		ggcr.WithTransport(baseTransport(opts.forHost(r.Context().RegistryStr()))),
		ggcr.WithUserAgent("berth"),
	}
}

// client is an authenticated HTTP client for one repository.
type client struct {
	http   *http.Client
	scheme string
	repo   name.Repository
}

func newClient(ctx context.Context, repo name.Repository, opts Options, scopes ...string) (*client, error) {
	auth, err := authn.Resolve(ctx, authn.DefaultKeychain, repo)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, baseTransport(opts.forHost(repo.RegistryStr())), scopes)
	if err != nil {
		return nil, err
	}
	return &client{http: &http.Client{Transport: rt}, scheme: repo.Registry.Scheme(), repo: repo}, nil
}

func (c *client) url(path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", c.scheme, c.repo.RegistryStr(), c.repo.RepositoryStr(), path)
}

// progress prints Docker-style per-layer status. On a terminal each layer
// keeps one line that is redrawn in place (with a bar while bytes move);
// elsewhere every status change is a plain line.
type progress struct {
	mu     sync.Mutex
	out    io.Writer
	tty    bool
	order  []string
	status map[string]string
	drawn  int
	last   time.Time
}

func newProgress(out io.Writer) *progress {
	p := &progress{out: out, status: map[string]string{}}
	if f, ok := out.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

// line prints a line that belongs to no layer.
func (p *progress) line(format string, args ...any) {
	if p == nil || p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
	p.order, p.drawn = nil, 0
	clear(p.status)
}

// layer sets the status of one layer ("Pull complete", "Pushed", …).
func (p *progress) layer(id, status string) {
	if p == nil || p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		fmt.Fprintf(p.out, "%s: %s\n", id, status)
		return
	}
	p.set(id, status)
	p.redraw()
}

// bytes reports transfer progress of a layer; only terminals show it, at
// most ten times a second.
func (p *progress) bytes(id, verb string, done, total int64) {
	if p == nil || p.out == nil || !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(id, fmt.Sprintf("%-11s %s %s/%s", verb, bar(done, total), units.HumanSize(float64(done)), units.HumanSize(float64(total))))
	if time.Since(p.last) >= 100*time.Millisecond {
		p.redraw()
	}
}

func (p *progress) set(id, status string) {
	if _, ok := p.status[id]; !ok {
		p.order = append(p.order, id)
	}
	p.status[id] = status
}

func (p *progress) redraw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, id := range p.order {
		fmt.Fprintf(&b, "\x1b[2K%s: %s\n", id, p.status[id])
	}
	p.drawn = len(p.order)
	p.last = time.Now()
	io.WriteString(p.out, b.String())
}

// bar draws Docker's [=====>     ] for done out of total.
func bar(done, total int64) string {
	const width = 50
	n := 0
	if total > 0 {
		n = int(done * width / total)
	}
	n = min(max(n, 0), width)
	arrow := ">"
	if n == width {
		arrow = ""
	}
	return "[" + strings.Repeat("=", n) + arrow + strings.Repeat(" ", width-n-len(arrow)) + "]"
}

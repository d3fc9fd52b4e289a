//go:build linux

package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// a fault-injecting proxy in front of a registry

// Proxy modes: how blob GETs for the targeted digests misbehave.
const (
	modePass           = "pass"            // forward unchanged
	modeWrongBytes     = "wrong-bytes"     // flip byte 4 (in the gzip header's MTIME: decompression cannot notice)
	modeWrongBytesMid  = "wrong-bytes-mid" // flip the byte in the middle of the blob
	modeTruncateOnce   = "truncate-once"   // first request: full Content-Length, half the body, then close
	modeTruncateAlways = "truncate-always" // every request cut like that
	modeEndless        = "endless"         // chunked: the real bytes, then garbage forever
	mode500Twice       = "500-twice"       // first two requests answer 500
	mode500Always      = "500-always"      // every request answers 500
	mode429Twice       = "429-twice"       // first two requests answer 429
	mode404            = "404"             // every request answers 404 BLOB_UNKNOWN
	modeStallOnce      = "stall-once"      // first request: full Content-Length, a few KiB, then nothing
)

// stallBytes is how much a stalled response sends before it stops.
const stallBytes = 4 << 10

var blobPathRE = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)

// blobRequest is one blob GET the proxy answered.
type blobRequest struct {
	at      time.Time
	rng     string // the request's Range header
	status  int    // what the proxy answered (0 while the answer is under way)
	sent    int64  // body bytes the proxy wrote (including garbage)
	cut     bool   // the body was cut short on purpose
	flipped bool   // a byte was flipped in this response
}

// faultProxy is a reverse proxy on 127.0.0.1 in front of a registry. It
// rewrites nothing; blob GETs for the target digests misbehave as the mode
// says, and every blob GET is recorded.
type faultProxy struct {
	host     string // "127.0.0.1:PORT"
	upstream string
	srv      *http.Server
	rp       *httputil.ReverseProxy
	tr       *http.Transport
	closed   chan struct{}
	handlers sync.WaitGroup

	mu      sync.Mutex
	mode    string
	targets map[string]bool // nil: every blob
	limit   *rateLimiter    // nil: full speed
	reqs    map[string][]*blobRequest
}

func startFaultProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		host:     l.Addr().String(),
		upstream: upstream,
		tr:       &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32},
		closed:   make(chan struct{}),
		mode:     modePass,
		reqs:     map[string][]*blobRequest{},
	}
	quiet := log.New(io.Discard, "", 0)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = upstream
			pr.Out.Host = pr.In.Host // rewrite nothing the client sent
		},
		Transport: p.tr,
		ErrorLog:  quiet,
	}
	p.srv = &http.Server{Handler: p, ErrorLog: quiet, ReadHeaderTimeout: time.Minute}
	go p.srv.Serve(l)
	t.Cleanup(func() {
		close(p.closed)
		p.srv.Close()
		p.tr.CloseIdleConnections()
		waited := make(chan struct{})
		go func() { p.handlers.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Errorf("fault proxy: handlers still running 10s after it was closed")
		}
	})
	return p
}

// set switches the mode (for targets only; none means every blob) and
// forgets the recorded requests.
func (p *faultProxy) set(mode string, limit *rateLimiter, targets ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.limit, p.targets = mode, limit, nil
	if len(targets) > 0 {
		p.targets = map[string]bool{}
		for _, d := range targets {
			p.targets[d] = true
		}
	}
	p.reqs = map[string][]*blobRequest{}
}

// requests returns a copy of what the proxy recorded for digest d.
func (p *faultProxy) requests(d string) []blobRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []blobRequest
	for _, r := range p.reqs[d] {
		out = append(out, *r)
	}
	return out
}

func (p *faultProxy) describe(d string) string {
	var parts []string
	for _, r := range p.requests(d) {
		s := fmt.Sprintf("[status %d, sent %d", r.status, r.sent)
		if r.rng != "" {
			s += ", Range " + r.rng
		}
		if r.cut {
			s += ", cut"
		}
		if r.flipped {
			s += ", flipped"
		}
		parts = append(parts, s+"]")
	}
	return fmt.Sprintf("%d requests %s", len(parts), strings.Join(parts, " "))
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handlers.Add(1)
	defer p.handlers.Done()
	m := blobPathRE.FindStringSubmatch(r.URL.Path)
	if m == nil || r.Method != http.MethodGet {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.serveBlob(w, r, m[2])
}

func (p *faultProxy) serveBlob(w http.ResponseWriter, r *http.Request, dgst string) {
	p.mu.Lock()
	mode, limit := p.mode, p.limit
	if p.targets != nil && !p.targets[dgst] {
		mode = modePass
	}
	n := len(p.reqs[dgst])
	rec := &blobRequest{at: time.Now(), rng: r.Header.Get("Range")}
	p.reqs[dgst] = append(p.reqs[dgst], rec)
	p.mu.Unlock()
	done := func(status int, sent int64, cut bool) {
		p.mu.Lock()
		rec.status, rec.sent, rec.cut = status, sent, cut
		p.mu.Unlock()
	}

	switch {
	case mode == mode500Always, mode == mode500Twice && n < 2:
		http.Error(w, "injected failure", http.StatusInternalServerError)
		done(http.StatusInternalServerError, 0, false)
		return
	case mode == mode429Twice && n < 2:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "injected: slow down", http.StatusTooManyRequests)
		done(http.StatusTooManyRequests, 0, false)
		return
	case mode == mode404:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":%q}]}`+"\n", dgst)
		done(http.StatusNotFound, 0, false)
		return
	}

	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+p.upstream+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		done(http.StatusBadGateway, 0, false)
		return
	}
	req.Header = r.Header.Clone()
	req.Host = r.Host
	up, err := p.tr.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		done(http.StatusBadGateway, 0, false)
		return
	}
	defer up.Body.Close()
	body, err := io.ReadAll(up.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		done(http.StatusBadGateway, 0, false)
		return
	}
	for k, vs := range up.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive":
			continue
		}
		w.Header()[k] = vs
	}
	status := up.StatusCode
	if status != http.StatusOK && status != http.StatusPartialContent {
		mode = modePass
	}
	// start is the offset of body in the blob.
	var start int64
	if status == http.StatusPartialContent {
		fmt.Sscanf(up.Header.Get("Content-Range"), "bytes %d-", &start)
	}
	setLength := func(n int) { w.Header().Set("Content-Length", strconv.Itoa(n)) }
	flusher, _ := w.(http.Flusher)

	switch {
	case mode == modeWrongBytes || mode == modeWrongBytesMid:
		total := start + int64(len(body))
		if cr := up.Header.Get("Content-Range"); cr != "" {
			if i := strings.LastIndex(cr, "/"); i >= 0 {
				if v, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
					total = v
				}
			}
		}
		at := int64(4)
		if mode == modeWrongBytesMid {
			at = total / 2
		}
		if at >= start && at < start+int64(len(body)) {
			body[at-start] ^= 0xff
			p.mu.Lock()
			rec.flipped = true
			p.mu.Unlock()
		}
		setLength(len(body))
		w.WriteHeader(status)
		sent, _ := p.write(w, r, limit, body)
		done(status, sent, false)

	case mode == modeTruncateAlways, mode == modeTruncateOnce && n == 0:
		setLength(len(body))
		w.WriteHeader(status)
		sent, _ := p.write(w, r, limit, body[:len(body)/2])
		if flusher != nil {
			flusher.Flush()
		}
		done(status, sent, true)
		panic(http.ErrAbortHandler) // the server closes the connection

	case mode == modeStallOnce && n == 0:
		setLength(len(body))
		w.WriteHeader(status)
		sent, _ := p.write(w, r, limit, body[:min(stallBytes, len(body)/2)])
		if flusher != nil {
			flusher.Flush()
		}
		done(status, sent, true)
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}

	case mode == modeEndless:
		w.Header().Del("Content-Length")
		w.WriteHeader(status) // no length: chunked
		sent, err := p.write(w, r, limit, body)
		garbage := make([]byte, 32<<10)
		for i := range garbage {
			garbage[i] = byte(i*131 + 7)
		}
		for err == nil {
			select {
			case <-r.Context().Done():
				err = r.Context().Err()
			case <-p.closed:
				err = errors.New("proxy closed")
			default:
				var k int
				k, err = w.Write(garbage)
				sent += int64(k)
				if flusher != nil {
					flusher.Flush()
				}
			}
		}
		done(status, sent, false)

	default:
		setLength(len(body))
		w.WriteHeader(status)
		sent, _ := p.write(w, r, limit, body)
		done(status, sent, false)
	}
}

// write sends b in chunks, throttled by limit when it is set.
func (p *faultProxy) write(w http.ResponseWriter, r *http.Request, limit *rateLimiter, b []byte) (int64, error) {
	var sent int64
	const chunk = 64 << 10
	for len(b) > 0 {
		c := b[:min(chunk, len(b))]
		if limit != nil {
			if err := limit.wait(r.Context(), p.closed, len(c)); err != nil {
				return sent, err
			}
		}
		k, err := w.Write(c)
		sent += int64(k)
		if err != nil {
			return sent, err
		}
		b = b[len(c):]
	}
	return sent, nil
}

// rateLimiter spreads writes of all connections over time at a fixed
// number of bytes per second.
type rateLimiter struct {
	mu   sync.Mutex
	rate float64
	next time.Time
}

func newRateLimiter(bytesPerSecond float64) *rateLimiter {
	return &rateLimiter{rate: bytesPerSecond}
}

func (l *rateLimiter) wait(ctx context.Context, closed <-chan struct{}, n int) error {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	until := l.next
	l.mu.Unlock()
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return errors.New("proxy closed")
	}
}

// ---------------------------------------------------------------------------
// the image behind the proxy

// pullFixture is an image pushed to a private registry, and what the tests
// need to know about it.
type pullFixture struct {
	reg    *registry
	env    []string
	path   string // repository path in the registry
	id     string // image ID (config digest)
	m      ociManifest
	blobs  []string          // config and layer digests
	files  map[string]string // sample files of the generated layers
	target string            // the largest layer: the one single-blob faults hit
}

// newPullFixture generates a busybox + 3 layer image of about 20 MiB,
// loads it into a seed root and pushes it to a fresh registry.
func newPullFixture(t *testing.T) *pullFixture {
	t.Helper()
	needBerth(t)
	f := &pullFixture{reg: startRegistry(t, false)}
	f.env, _ = clientEnv(t)
	// No machine-wide registries.conf (mirrors!) may route around the proxy.
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.env = append(f.env, "BERTH_REGISTRIES_CONF="+conf)
	archive := filepath.Join(t.TempDir(), "pullfault.tar")
	const tag = "pullfault/image:latest"
	const layers = 3
	genImage(t, archive, tag, layers, 20, 400)
	f.files = sampleGeneratedFiles(t, archive, layers)

	seed := newRoot(t)
	assertLoaded(t, berth(t, seed, "load", "-i", archive), tag)
	f.id = berthID(t, seed, tag)
	f.path = uniqueRepo(t, "pullfault")
	direct := f.reg.host + "/" + f.path + ":1"
	berth(t, seed, "tag", tag, direct)
	berthEnvOK(t, f.env, seed, "push", direct)
	f.m = f.reg.checkStored(t, f.path, "1", f.id)
	if len(f.m.Layers) != layers+1 {
		t.Fatalf("registry: %d layers, want %d", len(f.m.Layers), layers+1)
	}
	f.blobs = []string{f.m.Config.Digest}
	var biggest int64
	for _, l := range f.m.Layers {
		if l.MediaType != mtOCILayerGzip && l.MediaType != mtDockerLayer {
			t.Fatalf("registry: layer %s has media type %s, want gzip", l.Digest, l.MediaType)
		}
		f.blobs = append(f.blobs, l.Digest)
		if l.Size > biggest {
			biggest, f.target = l.Size, l.Digest
		}
	}
	// The wrong-bytes mode relies on byte 4 being in the gzip header.
	head, _ := f.reg.get(t, f.path+"/blobs/"+f.target)
	if len(head) < 10 || head[0] != 0x1f || head[1] != 0x8b {
		t.Fatalf("registry: layer %s does not start with a gzip header", f.target)
	}
	return f
}

func (f *pullFixture) size(d string) int64 {
	if d == f.m.Config.Digest {
		return f.m.Config.Size
	}
	for _, l := range f.m.Layers {
		if l.Digest == d {
			return l.Size
		}
	}
	return -1
}

// sampleGeneratedFiles reads a few small files of every generated layer
// (opt/layer<N>/...) out of an imagegen archive.
func sampleGeneratedFiles(t testing.TB, archive string, layers int) map[string]string {
	t.Helper()
	files := tarFiles(t, archive)
	entries := dockerManifest(t, files)
	if len(entries) != 1 || len(entries[0].Layers) != layers+1 {
		t.Fatalf("imagegen archive: manifest.json %+v, want one image with %d layers", entries, layers+1)
	}
	out := map[string]string{}
	for n := range layers {
		names, contents := imagegenSamples(t, files[entries[0].Layers[n+1]], n)
		if len(names) < 2 {
			t.Fatalf("imagegen layer %d: only %d small files", n, len(names))
		}
		for _, p := range []string{names[0], names[len(names)-1]} {
			out[p] = contents[p]
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// running berth with a bound

type berthRun struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
	killed         bool   // SIGKILLed by us (the limit passed) while it ran
	signal         string // the signal that ended it, if one did
}

func (r berthRun) String() string {
	state := fmt.Sprintf("exit %d", r.code)
	switch {
	case r.killed:
		state = "killed by the test"
	case r.signal != "":
		state = "died of " + r.signal + " (not sent by the test)"
	}
	return fmt.Sprintf("%s after %v\n--- stdout\n%s\n--- stderr\n%s", state, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// berthWithin runs berth with extra environment and SIGKILLs it (only the
// process started here) if it is still running after limit.
func berthWithin(t testing.TB, env []string, root string, limit time.Duration, args ...string) berthRun {
	t.Helper()
	needBerth(t)
	cmd := exec.Command(berthBin, berthArgs(root, args)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start berth %s: %v", strings.Join(args, " "), err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var err error
	sentKill := false
	select {
	case err = <-waited:
	case <-timer.C:
		sentKill = true
		if serr := cmd.Process.Signal(syscall.SIGKILL); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
			t.Fatalf("SIGKILL berth: %v", serr)
		}
		select {
		case err = <-waited:
		case <-time.After(time.Minute):
			t.Fatalf("berth %s did not die after SIGKILL", strings.Join(args, " "))
		}
	}
	res := berthRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.code = -1
			res.signal = ws.Signal().String()
			res.killed = sentKill && ws.Signal() == syscall.SIGKILL
		} else {
			res.code = ee.ExitCode()
		}
	default:
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// assertCleanFailure checks what a failed (not killed) pull left: a plain
// error (exit 1, no panic) naming wantDigest when set, no image, a store
// that passes `system check`, and no in-flight files.
func assertCleanFailure(t *testing.T, root string, r berthRun, wantDigest string) {
	t.Helper()
	if r.killed {
		t.Fatalf("berth pull did not end within the bound: %s", r)
	}
	if r.code == 0 {
		t.Fatalf("berth pull: exit 0, want a failure\n%s", r)
	}
	if r.code != 1 || strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("berth pull: want exit 1 with an error message, got %s", r)
	}
	if wantDigest != "" && !strings.Contains(r.stderr, wantDigest) {
		t.Errorf("berth pull: stderr does not name the faulty blob %s:\n%s", wantDigest, r.stderr)
	}
	assertNoImages(t, root)
	checkAfterCrash(t, root, "after the failed pull")
	for _, d := range []string{"content/ingest", "snapshots/tmp"} {
		if left := dirEntries(t, filepath.Join(root, d)); len(left) > 0 {
			t.Errorf("after the failed pull: %s holds %q, want nothing left in flight", d, left)
		}
	}
	if isMountPointBelow(root) {
		t.Errorf("after the failed pull: something is mounted below %s", root)
	}
}

func isMountPointBelow(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			if mp := unescapeMountinfo(f[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
				return true
			}
		}
	}
	return false
}

// assertGoodPull checks a pull that succeeded: its output (that of a pull
// into an empty store when fresh), the image ID, a sound store and the
// files of every layer.
func assertGoodPull(t *testing.T, f *pullFixture, root, name string, r berthRun, fresh bool) {
	t.Helper()
	if r.killed || r.code != 0 {
		t.Fatalf("berth pull %s: want success, got %s", name, r)
	}
	if fresh {
		checkFreshPull(t, r.stdout, name, f.m)
	} else if rep := parsePull(t, r.stdout, name); rep.status != "Downloaded newer image for "+name {
		t.Errorf("berth pull %s: Status %q, want Downloaded newer image", name, rep.status)
	}
	if got := berthID(t, root, name); got != f.id {
		t.Fatalf("berth pull %s: Id %s, want the seed's %s", name, got, f.id)
	}
	checkLoaded(t, root, name, f.files)
}

// ---------------------------------------------------------------------------
// tests

// TestPullFault pulls through a proxy that corrupts, truncates, stretches,
// fails or stalls blob downloads: a pull either gets the exact image
// (resuming with Range and retrying 5xx/429 as it should) or fails cleanly
// in bounded time, leaving no image and a store that passes `system check`.
func TestPullFault(t *testing.T) {
	f := newPullFixture(t)
	p := startFaultProxy(t, f.reg.host)
	name := p.host + "/" + f.path + ":1"
	t.Logf("image %s: %d layers, fault target %s (%d bytes); pulling %s", f.id, len(f.m.Layers), f.target, f.size(f.target), name)

	type faultCase struct {
		name   string // the subtest; the mode when empty
		mode   string
		single bool          // only the largest layer misbehaves (else every blob)
		bound  time.Duration // the pull must end within this
		// outcome: "ok", "fail" or "either"
		outcome string
		// check looks at the proxy's records after the pull.
		check func(t *testing.T, r berthRun)
	}
	perBlob := func(t *testing.T, fn func(t *testing.T, d string, reqs []blobRequest)) {
		for _, d := range f.blobs {
			fn(t, d, p.requests(d))
		}
	}
	cases := []faultCase{
		{mode: modePass, bound: 90 * time.Second, outcome: "ok", check: func(t *testing.T, r berthRun) {
			perBlob(t, func(t *testing.T, d string, reqs []blobRequest) {
				if len(reqs) != 1 || reqs[0].rng != "" || reqs[0].sent != f.size(d) {
					t.Errorf("blob %s: %s; want one plain GET of %d bytes", d, p.describe(d), f.size(d))
				}
			})
		}},
		{mode: modeWrongBytes, single: true, bound: 90 * time.Second, outcome: "fail"},
		{mode: modeWrongBytesMid, single: true, bound: 90 * time.Second, outcome: "fail"},
		{mode: modeTruncateOnce, bound: 90 * time.Second, outcome: "ok", check: func(t *testing.T, r berthRun) {
			perBlob(t, func(t *testing.T, d string, reqs []blobRequest) {
				if len(reqs) < 2 || !reqs[0].cut {
					t.Errorf("blob %s: %s; want a cut first response and a resumed one", d, p.describe(d))
					return
				}
				var off int64
				if _, err := fmt.Sscanf(reqs[1].rng, "bytes=%d-", &off); err != nil || off <= 0 || off > reqs[0].sent {
					t.Errorf("blob %s: %s; want the second request to resume with Range: bytes=N- (0 < N <= %d)", d, p.describe(d), reqs[0].sent)
				}
				if len(reqs) != 2 {
					t.Errorf("blob %s: %s; want exactly two requests", d, p.describe(d))
				}
			})
		}},
		{mode: modeTruncateAlways, single: true, bound: 60 * time.Second, outcome: "fail", check: func(t *testing.T, r berthRun) {
			reqs := p.requests(f.target)
			if len(reqs) < 2 || len(reqs) > 5 {
				t.Errorf("blob %s: %s; want 2 to 5 attempts (resumes), at most 5", f.target, p.describe(f.target))
			}
			for i, q := range reqs[1:] {
				if !strings.HasPrefix(q.rng, "bytes=") {
					t.Errorf("blob %s: attempt %d had no Range header: %s", f.target, i+2, p.describe(f.target))
				}
			}
		}},
		{name: "truncate-always-all", mode: modeTruncateAlways, bound: 60 * time.Second, outcome: "fail", check: func(t *testing.T, r berthRun) {
			if reqs := p.requests(f.m.Config.Digest); len(reqs) < 2 || len(reqs) > 5 {
				t.Errorf("config %s: %s; want 2 to 5 attempts, at most 5", f.m.Config.Digest, p.describe(f.m.Config.Digest))
			}
		}},
		{mode: modeEndless, bound: 90 * time.Second, outcome: "either", check: func(t *testing.T, r berthRun) {
			perBlob(t, func(t *testing.T, d string, reqs []blobRequest) {
				t.Logf("blob %s (%d bytes): %s", d, f.size(d), p.describe(d))
			})
		}},
		{mode: mode500Twice, bound: 90 * time.Second, outcome: "ok", check: func(t *testing.T, r berthRun) {
			perBlob(t, func(t *testing.T, d string, reqs []blobRequest) {
				if len(reqs) != 3 || reqs[0].status != 500 || reqs[1].status != 500 || reqs[2].status != 200 {
					t.Errorf("blob %s: %s; want 500, 500, 200", d, p.describe(d))
				}
			})
		}},
		{mode: mode500Always, single: true, bound: 60 * time.Second, outcome: "fail", check: func(t *testing.T, r berthRun) {
			reqs := p.requests(f.target)
			if len(reqs) < 2 || len(reqs) > 5 {
				t.Errorf("blob %s: %s; want it retried, at most 5 attempts", f.target, p.describe(f.target))
			}
			// Backoff before attempt k+1: 100ms·k².
			for k := 1; k < len(reqs); k++ {
				gap := reqs[k].at.Sub(reqs[k-1].at)
				want := time.Duration(k*k) * 100 * time.Millisecond
				t.Logf("attempt %d after %v (backoff %v)", k+1, gap.Round(time.Millisecond), want)
				if gap < want*95/100 {
					t.Errorf("blob %s: attempt %d came %v after the previous one, want a backoff of at least %v", f.target, k+1, gap, want)
				}
			}
		}},
		{name: "500-always-all", mode: mode500Always, bound: 60 * time.Second, outcome: "fail", check: func(t *testing.T, r berthRun) {
			// The config comes first: it is the blob that fails.
			if reqs := p.requests(f.m.Config.Digest); len(reqs) < 2 || len(reqs) > 5 {
				t.Errorf("config %s: %s; want it retried, at most 5 attempts", f.m.Config.Digest, p.describe(f.m.Config.Digest))
			}
		}},
		{mode: mode429Twice, bound: 90 * time.Second, outcome: "ok", check: func(t *testing.T, r berthRun) {
			perBlob(t, func(t *testing.T, d string, reqs []blobRequest) {
				if len(reqs) != 3 || reqs[0].status != 429 || reqs[1].status != 429 || reqs[2].status != 200 {
					t.Errorf("blob %s: %s; want 429, 429, 200", d, p.describe(d))
				}
			})
		}},
		{mode: mode404, single: true, bound: 60 * time.Second, outcome: "fail", check: func(t *testing.T, r berthRun) {
			if reqs := p.requests(f.target); len(reqs) != 1 {
				t.Errorf("blob %s: %s; a 404 must not be retried", f.target, p.describe(f.target))
			}
		}},
		{mode: modeStallOnce, single: true, bound: 90 * time.Second, outcome: "ok", check: func(t *testing.T, r berthRun) {
			reqs := p.requests(f.target)
			if len(reqs) != 2 || !reqs[0].cut || reqs[1].rng != fmt.Sprintf("bytes=%d-", reqs[0].sent) {
				t.Errorf("blob %s: %s; want a stalled first response and one resumed from byte %d", f.target, p.describe(f.target), stallBytes)
			}
		}},
	}

	var summary []string
	for _, c := range cases {
		if c.name == "" {
			c.name = c.mode
		}
		// failBlob is the blob a failing pull must name.
		failBlob := ""
		switch {
		case c.single:
			failBlob = f.target
		case c.outcome == "fail":
			failBlob = f.m.Config.Digest
		}
		t.Run(c.name, func(t *testing.T) {
			if c.mode == modeStallOnce {
				// Berth gives up on a stalled transfer after 30s.
				if dl, ok := t.Deadline(); ok && time.Until(dl) < 2*time.Minute {
					t.Skipf("stall-once needs ~35s and only %v of the test timeout is left", time.Until(dl).Round(time.Second))
				}
			}
			var targets []string
			if c.single {
				targets = []string{f.target}
			}
			p.set(c.mode, nil, targets...)
			root := newRoot(t)
			r := berthWithin(t, f.env, root, c.bound, "pull", name)
			outcome := "ok"
			switch {
			case r.killed:
				outcome = "hung"
			case r.signal != "":
				outcome = "died"
			case r.code != 0:
				outcome = "failed"
			}
			defer func() {
				verdict := "PASS"
				if t.Failed() {
					verdict = "FAIL"
				}
				summary = append(summary, fmt.Sprintf("%-20s %s  (want %s) pull %-6s in %v", c.name, verdict, c.outcome, outcome, r.elapsed.Round(time.Millisecond)))
			}()
			t.Logf("berth pull: %s", r)
			if r.killed {
				t.Fatalf("berth pull %s (%s) still ran after %v: killed", name, c.mode, c.bound)
			}
			if c.check != nil {
				c.check(t, r)
			}
			switch {
			case c.outcome == "ok" || c.outcome == "either" && r.code == 0:
				assertGoodPull(t, f, root, name, r, true)
			default:
				assertCleanFailure(t, root, r, failBlob)
				if failBlob != "" {
					hex := strings.TrimPrefix(failBlob, "sha256:")
					if _, err := os.Lstat(filepath.Join(root, "content", "blobs", "sha256", hex)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("after the failed pull: content/blobs/sha256/%s exists (%v); the bad blob must not be stored", hex, err)
					}
				}
				if c.mode == modeWrongBytes || c.mode == modeWrongBytesMid {
					flipped := false
					for _, q := range p.requests(f.target) {
						flipped = flipped || q.flipped
					}
					if !flipped {
						t.Errorf("the proxy never flipped a byte of %s: %s", f.target, p.describe(f.target))
					}
				}
				// The same root takes a good pull afterwards.
				p.set(modePass, nil)
				again := berthWithin(t, f.env, root, 90*time.Second, "pull", name)
				assertGoodPull(t, f, root, name, again, false)
			}
		})
	}
	t.Logf("summary:\n%s", strings.Join(summary, "\n"))
}

// pullKillRounds is how many pulls TestPullKill SIGKILLs.
const pullKillRounds = 12

// TestPullKill SIGKILLs berth pull at random moments while the proxy
// throttles blobs to ~20 MiB/s: after every kill the store passes `system
// check`, a later pull gets the right image, and GC collects what the
// killed pulls left behind.
func TestPullKill(t *testing.T) {
	f := newPullFixture(t)
	p := startFaultProxy(t, f.reg.host)
	name := p.host + "/" + f.path + ":1"
	p.set(modePass, newRateLimiter(20<<20))

	scratch := newRoot(t)
	first := berthWithin(t, f.env, scratch, 90*time.Second, "pull", name)
	if first.killed || first.code != 0 {
		t.Fatalf("uninterrupted berth pull: %s", first)
	}
	cold := first.elapsed
	warmRun := berthWithin(t, f.env, scratch, 90*time.Second, "pull", name)
	if warmRun.killed || warmRun.code != 0 {
		t.Fatalf("second berth pull: %s", warmRun)
	}
	warm := warmRun.elapsed
	t.Logf("one throttled pull takes %v cold, %v with the image present", cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	seed := crashSeed(t)
	t.Logf("kill delays: seed %d (BERTH_CRASH_SEED=%d replays them)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9011))

	root := newRoot(t)
	var killed, leftovers int
	for i := range pullKillRounds {
		// cold: from an empty store; resume: from what the last kill left
		// (without the image); warm: with the image there.
		mode := [...]string{"cold", "resume", "resume", "warm"}[i%4]
		switch mode {
		case "cold":
			berth(t, root, "image", "prune", "-a", "-f")
		case "resume":
			if hasImage(t, root, f.id) {
				berth(t, root, "rmi", "-f", f.id)
			}
		case "warm":
			if !hasImage(t, root, f.id) {
				if r := berthWithin(t, f.env, root, 90*time.Second, "pull", name); r.killed || r.code != 0 {
					t.Fatalf("round %d: preparing a warm round: berth pull: %s", i, r)
				}
			}
		}
		d := cold
		if mode == "warm" {
			d = warm
		}
		delay := randDelay(rng, d)
		r := berthWithin(t, f.env, root, delay, "pull", name)
		round := fmt.Sprintf("round %d (%s), SIGKILL after %v", i, mode, delay.Round(time.Microsecond))
		if !r.killed && r.code != 0 {
			t.Fatalf("%s: berth pull was not killed but failed: %s", round, r)
		}
		if r.killed {
			killed++
		}
		checkAfterCrash(t, root, round)
		ingest := dirEntries(t, filepath.Join(root, "content", "ingest"))
		tmp := dirEntries(t, filepath.Join(root, "snapshots", "tmp"))
		if len(ingest)+len(tmp) > 0 {
			leftovers++
		}
		present := hasImage(t, root, f.id)
		state := "finished"
		if r.killed {
			state = "killed"
		}
		t.Logf("%s: %s after %v; left %d ingest, %d snapshots/tmp entries; image listed: %v", round, state, r.elapsed.Round(time.Millisecond), len(ingest), len(tmp), present)
		if present {
			if got := berthID(t, root, name); got != f.id {
				t.Fatalf("%s: %s is %s, want %s", round, name, got, f.id)
			}
			checkLoaded(t, root, name, f.files)
		}
	}
	t.Logf("%d of %d pulls were killed mid-way; %d rounds ended with in-flight files in the store", killed, pullKillRounds, leftovers)
	if killed < pullKillRounds/3 {
		t.Errorf("only %d of %d pulls were killed while running: the kills did not exercise pull", killed, pullKillRounds)
	}

	// One more, uninterrupted pull gives the whole image.
	if hasImage(t, root, f.id) {
		berth(t, root, "rmi", "-f", f.id)
	}
	final := berthWithin(t, f.env, root, 90*time.Second, "pull", name)
	assertGoodPull(t, f, root, name, final, false)
	t.Logf("final pull: %v", final.elapsed.Round(time.Millisecond))

	// GC collects what the killed pulls left behind.
	assertPrunedEmpty(t, root)
	checkAfterCrash(t, root, "after image prune -a -f")
}

// Command regload is the load generator of bench/registry.sh: it drives an
// OCI distribution registry (berth's `registry serve`, CNCF Distribution)
// over keep-alive HTTP/1.1 and prints one result line.
//
// Usage:
//
//	regload -url http://127.0.0.1:PORT -test TEST [-c CONCURRENCY] [-d DURATION] [-pid PID]
//
// It first seeds what the test needs into the repository bench/app (a
// gzipped tar layer of about 1 KiB, its image config and an OCI image
// manifest tagged v1; for blob-get also a 64 MiB blob of random bytes,
// pushed once and checked by digest), lets each of the CONCURRENCY
// workers make one untimed request (which opens its connection), and then
// runs the workers for DURATION. The tests:
//
//	manifest-get  GET /v2/bench/app/manifests/v1 with the Accept headers a
//	              docker client sends; prints "manifest-get req/s=N"
//	blob-head     HEAD of the layer blob; prints "blob-head req/s=N"
//	blob-get      GET of the 64 MiB blob, the body read and discarded;
//	              prints "blob-get MiB/s=N" (bytes read in DURATION,
//	              requests cut off at the end count for what they read)
//	blob-push     a monolithic upload of a fresh random 1-4 KiB blob:
//	              POST /v2/bench/app/blobs/uploads/ and PUT ?digest= with
//	              the body; prints "blob-push pushes/s=N"
//
// Every response is checked (status, lengths, Docker-Content-Digest, the
// manifest's bytes; the 64 MiB blob's digest before the run, and the first
// full body each worker reads), so a broken server cannot look fast: any
// failure ends regload with status 1 and no result line. With -pid (the
// server's process, on Linux) the line goes on with the CPU the server and
// regload itself used in the timed phase, in % of one CPU:
// "server-cpu=P% client-cpu=Q%". Only standard
// library HTTP; the client is a single http.Transport with
// MaxIdleConnsPerHost=CONCURRENCY and no HTTP/2.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	repo    = "bench/app"
	tag     = "v1"
	bigSize = 64 << 20

	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// dockerAccept is what docker pull (20.10+) sends when it fetches a
// manifest by tag, one Accept header per media type.
var dockerAccept = []string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
}

type loader struct {
	base   *url.URL
	client *http.Client

	manifest       []byte
	manifestDigest string
	layer          []byte
	layerDigest    string
	bigDigest      string
}

func main() {
	rawURL := flag.String("url", "", "registry base URL, e.g. http://127.0.0.1:5000")
	test := flag.String("test", "", "manifest-get, blob-head, blob-get or blob-push")
	conc := flag.Int("c", 32, "concurrent workers (and keep-alive connections)")
	dur := flag.Duration("d", 10*time.Second, "how long to run")
	serverPID := flag.Int("pid", 0, "the server's process ID: also report its CPU use and regload's")
	flag.Parse()
	if *rawURL == "" || *test == "" || *conc < 1 || *dur <= 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	base, err := url.Parse(strings.TrimSuffix(*rawURL, "/"))
	if err != nil || base.Host == "" {
		fatalf("bad -url %q", *rawURL)
	}
	l := &loader{
		base: base,
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        *conc * 2,
			MaxIdleConnsPerHost: *conc,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
			WriteBufferSize:     64 << 10,
			ReadBufferSize:      64 << 10,
		}},
	}
	switch *test {
	case "manifest-get", "blob-head", "blob-get", "blob-push":
	default:
		fatalf("unknown -test %q", *test)
	}
	ctx := context.Background()
	if err := l.seedImage(ctx); err != nil {
		fatalf("seeding the image: %v", err)
	}

	var op func(ctx context.Context, w *worker) error
	unit := "req/s"
	switch *test {
	case "manifest-get":
		op = l.manifestGet
	case "blob-head":
		op = l.blobHead
	case "blob-get":
		if err := l.seedBig(ctx); err != nil {
			fatalf("seeding the 64 MiB blob: %v", err)
		}
		op = l.blobGet
		unit = "MiB/s"
	case "blob-push":
		op = l.blobPush
		unit = "pushes/s"
	default:
		fatalf("unknown -test %q", *test)
	}

	ops, bytesRead, elapsed, cpu, err := run(ctx, op, *conc, *dur, *serverPID)
	if err != nil {
		fatalf("%s: %v", *test, err)
	}
	if ops == 0 && bytesRead == 0 {
		fatalf("%s: no request completed in %v", *test, *dur)
	}
	if *test == "blob-push" {
		// The pushed blobs must really be there.
		if err := l.checkPushed(ctx); err != nil {
			fatalf("%s: %v", *test, err)
		}
	}
	secs := elapsed.Seconds()
	rate := float64(ops) / secs
	if unit == "MiB/s" {
		rate = float64(bytesRead) / (1 << 20) / secs
	}
	line := fmt.Sprintf("%s %s=%.1f", *test, unit, rate)
	if *serverPID > 0 {
		line += fmt.Sprintf(" server-cpu=%.0f%% client-cpu=%.0f%%", cpu.server.Seconds()/secs*100, cpu.client.Seconds()/secs*100)
	}
	fmt.Println(line)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "regload: "+format+"\n", args...)
	os.Exit(1)
}

// worker is one goroutine's state.
type worker struct {
	id       int
	rng      *rand.Rand
	buf      []byte
	read     int64 // body bytes read (blob-get)
	verified bool  // a full blob-get body was hashed
	pushed   []pushedBlob
}

type pushedBlob struct {
	digest string
	size   int
}

var (
	pushedMu  sync.Mutex
	allPushed []pushedBlob
)

// cpuUse is the CPU time the server and regload used in the timed phase.
type cpuUse struct{ server, client time.Duration }

// run makes one untimed call of op per worker, then runs all workers for
// d; it returns the ops completed in time, the body bytes read, the time
// taken and, if pid > 0, the CPU time used.
func run(ctx context.Context, op func(context.Context, *worker) error, conc int, d time.Duration, pid int) (int64, int64, time.Duration, cpuUse, error) {
	var cpu cpuUse
	workers := make([]*worker, conc)
	seed := uint64(time.Now().UnixNano())
	for i := range workers {
		workers[i] = &worker{
			id:  i,
			rng: rand.New(rand.NewPCG(seed, uint64(i))),
			buf: make([]byte, 256<<10),
		}
	}
	// Warm-up: one op per worker, concurrently, so every connection is
	// open before the clock starts.
	var wg sync.WaitGroup
	errs := make([]error, conc)
	for i, w := range workers {
		wg.Go(func() { errs[i] = op(ctx, w) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, 0, cpu, fmt.Errorf("warm-up: %w", err)
	}
	for _, w := range workers {
		w.read = 0
	}

	var ops atomic.Int64
	var firstErr atomic.Value
	var server0, client0 time.Duration
	if pid > 0 {
		var err error
		if server0, err = processCPU(pid); err != nil {
			return 0, 0, 0, cpu, err
		}
		client0 = selfCPU()
	}
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for _, w := range workers {
		wg.Go(func() {
			for runCtx.Err() == nil {
				err := op(runCtx, w)
				if runCtx.Err() != nil {
					return // cut off at the end: not counted, not an error
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					cancel()
					return
				}
				ops.Add(1)
			}
		})
	}
	<-runCtx.Done()
	elapsed := time.Since(start)
	if pid > 0 {
		server1, err := processCPU(pid)
		if err != nil {
			return 0, 0, 0, cpu, err
		}
		cpu = cpuUse{server: server1 - server0, client: selfCPU() - client0}
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, 0, 0, cpu, err
	}
	var read int64
	for _, w := range workers {
		read += w.read
		pushedMu.Lock()
		allPushed = append(allPushed, w.pushed...)
		pushedMu.Unlock()
	}
	return ops.Load(), read, elapsed, cpu, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTick = 100

// processCPU returns the user+system CPU time of process pid (all its
// threads), from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis, from field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// selfCPU returns regload's own user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (l *loader) url(path string) string {
	return l.base.String() + path
}

// do sends req and checks the status; on a mismatch it returns an error
// with the start of the body.
func (l *loader) do(req *http.Request, want int) (*http.Response, error) {
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, bytes.TrimSpace(b))
	}
	return resp, nil
}

// drain reads the rest of a body and closes it so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func (l *loader) manifestGet(ctx context.Context, w *worker) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url("/v2/"+repo+"/manifests/"+tag), nil)
	if err != nil {
		return err
	}
	for _, a := range dockerAccept {
		req.Header.Add("Accept", a)
	}
	resp, err := l.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, w.buf[:len(l.manifest)+1])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("manifest GET body: %w", err)
	}
	if !bytes.Equal(w.buf[:n], l.manifest) {
		return fmt.Errorf("manifest GET: got %d bytes, not the %d pushed", n, len(l.manifest))
	}
	if ct := resp.Header.Get("Content-Type"); ct != mtManifest {
		return fmt.Errorf("manifest GET: Content-Type %q, want %q", ct, mtManifest)
	}
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != l.manifestDigest {
		return fmt.Errorf("manifest GET: Docker-Content-Digest %q, want %q", dg, l.manifestDigest)
	}
	drain(resp)
	return nil
}

func (l *loader) blobHead(ctx context.Context, w *worker) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, l.url("/v2/"+repo+"/blobs/"+l.layerDigest), nil)
	if err != nil {
		return err
	}
	resp, err := l.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.ContentLength != int64(len(l.layer)) {
		return fmt.Errorf("blob HEAD: Content-Length %d, want %d", resp.ContentLength, len(l.layer))
	}
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != l.layerDigest {
		return fmt.Errorf("blob HEAD: Docker-Content-Digest %q, want %q", dg, l.layerDigest)
	}
	return nil
}

// countingWriter discards what it is given and counts it into *n.
type countingWriter struct {
	n *int64
	h hash.Hash // nil but for the verified read
}

func (c countingWriter) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	if c.h != nil {
		c.h.Write(p)
	}
	return len(p), nil
}

func (l *loader) blobGet(ctx context.Context, w *worker) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url("/v2/"+repo+"/blobs/"+l.bigDigest), nil)
	if err != nil {
		return err
	}
	resp, err := l.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength != bigSize {
		return fmt.Errorf("blob GET: Content-Length %d, want %d", resp.ContentLength, bigSize)
	}
	var n int64
	cw := countingWriter{n: &n}
	if !w.verified {
		cw.h = sha256.New()
	}
	_, err = io.CopyBuffer(cw, resp.Body, w.buf)
	w.read += n
	if err != nil {
		return fmt.Errorf("blob GET body: %w", err)
	}
	if n != bigSize {
		return fmt.Errorf("blob GET: read %d bytes, want %d", n, bigSize)
	}
	if cw.h != nil {
		if dg := "sha256:" + hex.EncodeToString(cw.h.Sum(nil)); dg != l.bigDigest {
			return fmt.Errorf("blob GET: body digest %s, want %s", dg, l.bigDigest)
		}
		w.verified = true
	}
	return nil
}

func (l *loader) blobPush(ctx context.Context, w *worker) error {
	size := 1024 + w.rng.IntN(3*1024+1)
	data := w.buf[:size]
	for i := 0; i < size; i += 8 {
		v := w.rng.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	dg, err := l.pushBlob(ctx, data)
	if err != nil {
		return err
	}
	// Keep a few per worker to check after the run.
	if len(w.pushed) < 4 {
		w.pushed = append(w.pushed, pushedBlob{dg, size})
	}
	return nil
}

// checkPushed HEADs some of the blobs blob-push uploaded.
func (l *loader) checkPushed(ctx context.Context) error {
	pushedMu.Lock()
	defer pushedMu.Unlock()
	if len(allPushed) == 0 {
		return errors.New("no pushed blob to check")
	}
	for _, b := range allPushed {
		ok, size, err := l.blobExists(ctx, b.digest)
		if err != nil {
			return err
		}
		if !ok || size != int64(b.size) {
			return fmt.Errorf("pushed blob %s (%d bytes) is not in the registry (found=%v, size %d)", b.digest, b.size, ok, size)
		}
	}
	return nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushBlob uploads data monolithically: POST to open an upload, then PUT
// ?digest= with the whole body. It returns the digest.
func (l *loader) pushBlob(ctx context.Context, data []byte) (string, error) {
	dg := digestOf(data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url("/v2/"+repo+"/blobs/uploads/"), nil)
	if err != nil {
		return "", err
	}
	resp, err := l.do(req, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	drain(resp)
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("upload POST: no Location")
	}
	u, err := l.base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload POST: Location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, u.String(), bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = l.do(req, http.StatusCreated)
	if err != nil {
		return "", err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != dg {
		return "", fmt.Errorf("upload PUT: Docker-Content-Digest %q, want %q", got, dg)
	}
	return dg, nil
}

// blobExists HEADs a blob and returns whether it is there and its size.
func (l *loader) blobExists(ctx context.Context, dg string) (bool, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, l.url("/v2/"+repo+"/blobs/"+dg), nil)
	if err != nil {
		return false, 0, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return false, 0, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, resp.ContentLength, nil
	case http.StatusNotFound:
		return false, 0, nil
	}
	return false, 0, fmt.Errorf("HEAD %s: status %d", req.URL.Path, resp.StatusCode)
}

// ensureBlob pushes data unless the registry has it already.
func (l *loader) ensureBlob(ctx context.Context, data []byte) (string, error) {
	dg := digestOf(data)
	ok, size, err := l.blobExists(ctx, dg)
	if err != nil {
		return "", err
	}
	if ok && size == int64(len(data)) {
		return dg, nil
	}
	return l.pushBlob(ctx, data)
}

// seedImage pushes bench/app:v1: a one-file gzipped tar layer of about
// 1 KiB, its image config and the OCI manifest. The content is the same
// every time (fixed seed, fixed times), so a second run reuses it.
func (l *loader) seedImage(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755, ModTime: mtime},
		{Typeflag: tar.TypeReg, Name: "app/data.bin", Mode: 0o644, Size: int64(len(payload)), ModTime: mtime},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if _, err := tw.Write(payload); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	var gzBuf bytes.Buffer
	zw := gzip.NewWriter(&gzBuf)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	l.layer = gzBuf.Bytes()

	config, err := json.Marshal(map[string]any{
		"created":      mtime.Format(time.RFC3339),
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd":        []string{"/app/data.bin"},
			"WorkingDir": "/app",
		},
		"rootfs": map[string]any{
			"type":     "layers",
			"diff_ids": []string{digestOf(tarBuf.Bytes())},
		},
		"history": []map[string]any{
			{"created": mtime.Format(time.RFC3339), "created_by": "COPY data.bin /app/ # regload"},
		},
	})
	if err != nil {
		return err
	}
	configDigest, err := l.ensureBlob(ctx, config)
	if err != nil {
		return fmt.Errorf("config blob: %w", err)
	}
	if l.layerDigest, err = l.ensureBlob(ctx, l.layer); err != nil {
		return fmt.Errorf("layer blob: %w", err)
	}

	l.manifest, err = json.MarshalIndent(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtManifest,
		"config":        map[string]any{"mediaType": mtConfig, "digest": configDigest, "size": len(config)},
		"layers": []map[string]any{
			{"mediaType": mtLayer, "digest": l.layerDigest, "size": len(l.layer)},
		},
		"annotations": map[string]string{"org.opencontainers.image.title": "regload"},
	}, "", "   ")
	if err != nil {
		return err
	}
	l.manifestDigest = digestOf(l.manifest)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, l.url("/v2/"+repo+"/manifests/"+tag), bytes.NewReader(l.manifest))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mtManifest)
	resp, err := l.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != l.manifestDigest {
		return fmt.Errorf("manifest PUT: Docker-Content-Digest %q, want %q", got, l.manifestDigest)
	}
	// Read it back once, as the test will.
	return l.manifestGet(ctx, &worker{buf: make([]byte, len(l.manifest)+1)})
}

// seedBig pushes the 64 MiB random blob (fixed seed) unless it is there,
// then reads it back once and checks its digest.
func (l *loader) seedBig(ctx context.Context) error {
	data := make([]byte, bigSize)
	_, _ = rand.NewChaCha8([32]byte{'r', 'e', 'g', 'l', 'o', 'a', 'd'}).Read(data) // never fails
	dg, err := l.ensureBlob(ctx, data)
	if err != nil {
		return err
	}
	l.bigDigest = dg
	w := &worker{buf: make([]byte, 256<<10)}
	if err := l.blobGet(ctx, w); err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	return nil
}

package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/metadata"
	"github.com/berth-dev/berth/internal/registry/storage"
	"github.com/berth-dev/berth/internal/registry/storage/filesystem"
	"github.com/berth-dev/berth/internal/registry/storage/s3"
	"github.com/opencontainers/go-digest"
)

// Defaults for the configuration's zero values.
const (
	DefaultAddr         = "127.0.0.1:5000"
	defaultManifestSize = 4 << 20
	defaultGrace        = time.Hour
	defaultUploadTTL    = 24 * time.Hour
	maxFormBody         = 64 << 10 // the token endpoint's POST form
)

// Registry is one registry server: an http.Handler plus its background
// work (scheduled GC, flushing blob touches).
type Registry struct {
	cfg      Config
	log      *slog.Logger
	db       *metadata.DB
	driver   storage.Driver
	redirect storage.Redirector // nil unless configured
	authz    auth.Authorizer
	secret   []byte // signs upload ids
	metrics  *metrics
	limiter  *limiter

	touchMu sync.Mutex
	touched map[digest.Digest]struct{}
	// seenMu orders "a client saw blob X live" before or after a
	// collection's condemn step, never across it.
	seenMu sync.RWMutex

	gcMu   sync.Mutex // one collection at a time
	stop   chan struct{}
	done   sync.WaitGroup
	closer sync.Once
}

// New opens the registry's storage and metadata under cfg and returns the
// server. Close releases them.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Root == "" {
		return nil, errors.New("registry: no root directory")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if cfg.Limits.ManifestSize <= 0 {
		cfg.Limits.ManifestSize = defaultManifestSize
	}
	if cfg.GC.Grace <= 0 {
		cfg.GC.Grace = defaultGrace
	}
	if cfg.GC.UploadTTL <= 0 {
		cfg.GC.UploadTTL = defaultUploadTTL
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("registry root: %w", err)
	}
	r := &Registry{cfg: cfg, log: log, touched: map[digest.Digest]struct{}{}, stop: make(chan struct{})}
	if r.secret, err = loadSecret(filepath.Join(root, "upload-secret")); err != nil {
		return nil, err
	}
	if r.driver, err = openDriver(ctx, cfg); err != nil {
		return nil, err
	}
	if rd, ok := r.driver.(storage.Redirector); ok && cfg.Storage.S3.Redirect {
		r.redirect = rd
	}
	cfg.Auth.Log = log
	if r.authz, err = auth.New(cfg.Auth, root); err != nil {
		return nil, fmt.Errorf("registry auth: %w", err)
	}
	if r.db, err = metadata.Open(filepath.Join(root, "metadata.db")); err != nil {
		return nil, err
	}
	r.metrics = newMetrics()
	if cfg.Limits.Rate > 0 {
		r.limiter = newLimiter(cfg.Limits.Rate, cfg.Limits.Burst)
	}
	r.done.Add(1)
	go r.background()
	return r, nil
}

func openDriver(ctx context.Context, cfg Config) (storage.Driver, error) {
	switch cfg.Storage.Driver {
	case "", "filesystem":
		return filesystem.New(filepath.Join(cfg.Root, "storage"))
	case "s3":
		c := cfg.Storage.S3
		return s3.New(ctx, s3.Config{Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix,
			AccessKey: c.AccessKey, SecretKey: c.SecretKey, Secure: c.Secure})
	}
	return nil, fmt.Errorf("registry: unknown storage driver %q", cfg.Storage.Driver)
}

// loadSecret returns the key that signs upload ids, made on first use.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, err
	}
	return b, os.Rename(tmp, path)
}

// background flushes blob touches every second and runs scheduled GC.
func (r *Registry) background() {
	defer r.done.Done()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	var gcTick <-chan time.Time
	if r.cfg.GC.Interval > 0 {
		t := time.NewTicker(r.cfg.GC.Interval)
		defer t.Stop()
		gcTick = t.C
	}
	for {
		select {
		case <-r.stop:
			r.flushTouches()
			return
		case <-flush.C:
			r.flushTouches()
		case <-gcTick:
			stats, err := r.GC(context.Background())
			if err != nil {
				r.log.Error("gc", "err", err)
			} else {
				r.log.Info("gc", stats.attrs()...)
			}
		}
	}
}

// touch records that a client saw blob dg exist.
func (r *Registry) touch(dg digest.Digest) {
	r.touchMu.Lock()
	r.touched[dg] = struct{}{}
	r.touchMu.Unlock()
}

func (r *Registry) flushTouches() {
	r.touchMu.Lock()
	batch := make([]digest.Digest, 0, len(r.touched))
	for dg := range r.touched {
		batch = append(batch, dg)
	}
	r.touched = map[digest.Digest]struct{}{}
	r.touchMu.Unlock()
	if err := r.db.Touch(batch, time.Now()); err != nil {
		r.log.Error("touching blobs", "err", err)
	}
}

// Close stops background work and closes the metadata store.
func (r *Registry) Close() error {
	var err error
	r.closer.Do(func() {
		close(r.stop)
		r.done.Wait()
		err = r.db.Close()
	})
	return err
}

// ServeHTTP answers /v2/, the token endpoint, /metrics and /healthz.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
	rt, isAPI, rerr := parseRoute(req.URL.Path)
	label := "other"
	if isAPI {
		label = routeNames[rt.kind]
	}
	user := ""
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("panic", "method", req.Method, "path", req.URL.Path, "panic", p)
			if !rw.wrote {
				writeError(rw, errorf(http.StatusInternalServerError, "UNKNOWN", "internal error"))
			}
		}
		r.metrics.observe(req.Method, label, rw.status, time.Since(start), rw.bytes)
		r.log.LogAttrs(req.Context(), slog.LevelInfo, "request",
			slog.String("method", req.Method), slog.String("path", req.URL.Path),
			slog.Int("status", rw.status), slog.Int64("bytes", rw.bytes),
			slog.Duration("duration", time.Since(start)), slog.String("remote", req.RemoteAddr),
			slog.String("user", user))
	}()
	if r.limiter != nil && !r.limiter.allow(clientIP(req)) {
		writeError(rw, errTooManyRequests())
		return
	}
	switch {
	case req.URL.Path == "/healthz":
		r.health(rw, req)
		return
	case req.URL.Path == "/metrics":
		r.metrics.handler.ServeHTTP(rw, req)
		return
	case req.URL.Path == "/token":
		if h := r.authz.TokenHandler(); h != nil {
			label = "token"
			req.Body = http.MaxBytesReader(rw, req.Body, maxFormBody)
			h.ServeHTTP(rw, req)
			return
		}
	}
	if !isAPI {
		writeError(rw, errorf(http.StatusNotFound, "UNSUPPORTED", "no such endpoint: %s", req.URL.Path))
		return
	}
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if rerr != nil {
		writeError(rw, rerr)
		return
	}
	if rt.kind != routeUploads && rt.kind != routeUpload {
		// Only blob bodies may be large; manifests are bounded by their
		// own limit, everything else sends none.
		req.Body = http.MaxBytesReader(rw, req.Body, r.cfg.Limits.ManifestSize+1)
	}
	var err error
	user, err = r.authz.Authorize(req, rt.access(req.Method))
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			r.log.Error("checking credentials", "err", err)
			writeError(rw, errorf(http.StatusInternalServerError, "UNKNOWN", "credentials cannot be checked"))
			return
		}
		if ae.Challenge != "" {
			rw.Header().Set("WWW-Authenticate", ae.Challenge)
		}
		writeError(rw, &apiError{Status: ae.Status, Code: ae.Code, Message: ae.Message})
		return
	}
	if aerr := r.dispatch(rw, req, rt, user); aerr != nil {
		writeError(rw, aerr)
	}
}

func (r *Registry) dispatch(w http.ResponseWriter, req *http.Request, rt route, user string) *apiError {
	m := req.Method
	switch rt.kind {
	case routeBase:
		if m == "GET" || m == "HEAD" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "2")
			if m == "GET" {
				_, _ = w.Write([]byte("{}"))
			}
			return nil
		}
	case routeCatalog:
		if m == "GET" {
			return r.catalog(w, req, user)
		}
	case routeTags:
		if m == "GET" {
			return r.tags(w, req, rt)
		}
	case routeReferrers:
		if m == "GET" {
			return r.referrers(w, req, rt)
		}
	case routeManifest:
		switch m {
		case "GET", "HEAD":
			return r.getManifest(w, req, rt)
		case "PUT":
			return r.putManifest(w, req, rt)
		case "DELETE":
			return r.deleteManifest(w, req, rt)
		}
	case routeBlob:
		switch m {
		case "GET", "HEAD":
			return r.getBlob(w, req, rt)
		case "DELETE":
			return r.deleteBlob(w, req, rt)
		}
	case routeUploads:
		if m == "POST" {
			return r.startUpload(w, req, rt)
		}
	case routeUpload:
		switch m {
		case "GET":
			return r.uploadStatus(w, req, rt)
		case "PATCH":
			return r.patchUpload(w, req, rt)
		case "PUT":
			return r.finishUpload(w, req, rt)
		case "DELETE":
			return r.cancelUpload(w, req, rt)
		}
	}
	return errUnsupported("%s is not supported on %s", m, req.URL.Path)
}

// responseWriter records the status and body size for logs and metrics.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's sendfile path for blob bodies.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	w.wrote = true
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	n, err := rf.ReadFrom(src)
	w.bytes += n
	return n, err
}

// clientIP is the remote address without its port.
func clientIP(req *http.Request) string {
	host := req.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return host
}

func (r *Registry) health(w http.ResponseWriter, req *http.Request) {
	if err := r.db.Ping(); err != nil {
		http.Error(w, "metadata: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

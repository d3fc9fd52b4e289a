//go:build linux

package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Tests of berth's own registry server (`berth registry serve`) with real
// clients — skopeo, podman, docker, crane, regctl and berth — and its fault
// tests: SIGKILL in the middle of 100 uploads, and garbage collection
// through the admin socket while images are pushed and deleted.

// ---------------------------------------------------------------------------
// clients that Debian does not package: crane and regctl

var rsGoToolsOnce, rsHtpasswdOnce once

// rsGoToolsDir is where hack/install-gotools.sh puts crane and regctl.
func rsGoToolsDir() string {
	if d := os.Getenv("GOTOOLS_BIN"); d != "" {
		return d
	}
	return "/usr/local/lib/berth/bin"
}

// needGoTools builds crane and regctl with hack/install-gotools.sh (quick
// and quiet when they are in place) and returns their paths.
func needGoTools(t testing.TB) (crane, regctl string) {
	t.Helper()
	needRoot(t)
	rsGoToolsOnce.Do(func() {
		rsGoToolsOnce.err = hackScript("install-gotools.sh")
	})
	if rsGoToolsOnce.err != nil {
		t.Fatal(rsGoToolsOnce.err)
	}
	return filepath.Join(rsGoToolsDir(), "crane"), filepath.Join(rsGoToolsDir(), "regctl")
}

// needHtpasswd installs apache2-utils if htpasswd is missing.
func needHtpasswd(t testing.TB) {
	t.Helper()
	needRoot(t)
	rsHtpasswdOnce.Do(func() {
		if !haveCommand("htpasswd", "/usr/bin/htpasswd") {
			rsHtpasswdOnce.err = hackScript("install-deps.sh", "apache2-utils")
		}
	})
	if rsHtpasswdOnce.err != nil {
		t.Fatal(rsHtpasswdOnce.err)
	}
}

// ---------------------------------------------------------------------------
// one `berth registry serve` process

// rsServer is a running `berth registry serve`.
type rsServer struct {
	host    string // 127.0.0.1:PORT
	root    string // its --root
	logFile string
	cmd     *exec.Cmd
	exited  chan struct{}
	gone    bool // stopped or killed by the test
}

// startBerthRegistry runs `berth registry serve` on a free 127.0.0.1 port
// with root as its data directory (a fresh temporary one when empty) and,
// unless config is empty, that YAML as its --config file. It waits until
// the server holds the port and GET /v2/ answers (with any status), and
// stops it with SIGTERM when the test ends, failing the test unless it
// exits 0 within 10 s.
func startBerthRegistry(t *testing.T, root, config string) *rsServer {
	t.Helper()
	needBerth(t)
	dir := t.TempDir()
	if root == "" {
		root = filepath.Join(dir, "root")
	}
	args := []string{"registry", "serve", "--root", root}
	if config != "" {
		file := filepath.Join(dir, "registry.yaml")
		if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", file)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		srv := &rsServer{
			host:    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			root:    root,
			logFile: filepath.Join(dir, fmt.Sprintf("serve-%d.log", attempt)),
		}
		lastErr = srv.launch(append(slices.Clone(args), "--addr", srv.host))
		if lastErr == nil {
			t.Cleanup(func() {
				srv.stop(t)
				if t.Failed() {
					t.Logf("berth registry serve on %s, log (all but request lines, then the last lines):\n%s", srv.host, srv.logTail(20))
				}
			})
			return srv
		}
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
	}
	t.Fatalf("berth registry serve: %v", lastErr)
	return nil
}

func (s *rsServer) launch(args []string) error {
	log, err := os.Create(s.logFile)
	if err != nil {
		return err
	}
	cmd := exec.Command(berthBin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	log.Close()
	if err != nil {
		return err
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.exited:
			data, _ := os.ReadFile(s.logFile)
			if bytes.Contains(data, []byte("address already in use")) {
				return errPortTaken
			}
			return fmt.Errorf("berth %s: exited (%v) before answering on %s:\n%s", strings.Join(args, " "), cmd.ProcessState, s.host, data)
		default:
		}
		// An answer counts once our process holds the listening socket;
		// before that it could come from someone else's server.
		resp, err := client.Get("http://" + s.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if rsOwnsListener(cmd.Process.Pid, s.host) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-s.exited
			data, _ := os.ReadFile(s.logFile)
			return fmt.Errorf("berth %s: no answer on %s within 30s (%v):\n%s", strings.Join(args, " "), s.host, err, data)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// rsOwnsListener reports whether process pid holds the TCP socket
// listening on host (127.0.0.1:PORT): its inode in /proc/net/tcp is one of
// the process's file descriptors.
func rsOwnsListener(pid int, host string) bool {
	_, portStr, _ := strings.Cut(host, ":")
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return false
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	inode := ""
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == want && f[3] == "0A" { // 0A: LISTEN
			inode = f[9]
		}
	}
	if inode == "" {
		return false
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// stop sends SIGTERM and fails the test unless the server exits 0 within
// 10 s (then it is killed).
func (s *rsServer) stop(t testing.TB) {
	t.Helper()
	if s.gone {
		return
	}
	s.gone = true
	select {
	case <-s.exited:
		t.Errorf("berth registry serve on %s exited (%v) before the test stopped it", s.host, s.cmd.ProcessState)
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if !s.cmd.ProcessState.Success() {
			t.Errorf("berth registry serve on %s: %v after SIGTERM, want a graceful exit 0", s.host, s.cmd.ProcessState)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("berth registry serve on %s did not exit within 10s of SIGTERM; killing it", s.host)
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *rsServer) kill(t testing.TB) {
	t.Helper()
	if s.gone {
		t.Fatalf("berth registry serve on %s: already stopped", s.host)
	}
	s.gone = true
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("berth registry serve on %s did not die within 10s of SIGKILL", s.host)
	}
}

// logTail is the server's log without request lines (at most 40 of
// them), then its last n lines.
func (s *rsServer) logTail(n int) string {
	data, _ := os.ReadFile(s.logFile)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var other []string
	for _, l := range lines {
		if !strings.Contains(l, " msg=request ") {
			other = append(other, l)
		}
	}
	if len(other) > 40 {
		other = other[len(other)-40:]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(other, "\n") + "\n---\n" + strings.Join(lines, "\n")
}

// rsGC runs `berth registry gc --root ROOT [--config FILE]` and returns its
// output and the N of its "deleted N blobs".
func rsGC(root, configFile string) (out string, deleted int, err error) {
	args := []string{"registry", "gc", "--root", root}
	if configFile != "" {
		args = append(args, "--config", configFile)
	}
	r, err := execute(nil, nil, berthBin, args...)
	if err != nil {
		return "", 0, err
	}
	if r.code != 0 {
		return r.stdout, 0, fmt.Errorf("berth %s: %s", strings.Join(args, " "), r)
	}
	m := rsGCDeletedRE.FindStringSubmatch(r.stdout)
	if m == nil {
		return r.stdout, 0, fmt.Errorf("berth %s printed %q, want \"deleted N blobs, ...\"", strings.Join(args, " "), r.stdout)
	}
	deleted, _ = strconv.Atoi(m[1])
	return r.stdout, deleted, nil
}

var rsGCDeletedRE = regexp.MustCompile(`(?m)^deleted ([0-9]+) blobs, ([0-9]+) orphaned blobs, ([0-9]+) stale uploads, ([0-9]+) upload chunks in `)

// ---------------------------------------------------------------------------
// a distribution API client of our own

// rsClient speaks the distribution API to one registry. With a user it
// sends basic credentials, and it answers a Bearer challenge by fetching a
// token from the realm (with the credentials, if any).
type rsClient struct {
	base       string // http://HOST
	hc         *http.Client
	user, pass string

	found, uploaded atomic.Int64 // blobs pushBlob found in place, uploaded
}

func newRSClient(host, user, pass string) *rsClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
	return &rsClient{base: "http://" + host, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}, user: user, pass: pass}
}

// rsResp is an answer, body read.
type rsResp struct {
	method, url string
	status      int
	header      http.Header
	body        []byte
}

func (r rsResp) String() string {
	b := r.body
	if len(b) > 400 {
		b = append(b[:400:400], "…"...)
	}
	return fmt.Sprintf("%s %s -> %d %q", r.method, r.url, r.status, b)
}

// errorCode is the first error code of a distribution-spec error body.
func (r rsResp) errorCode() string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func (c *rsClient) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return c.base + path
}

// do sends a request with a body held in memory (nil for none).
func (c *rsClient) do(method, path string, body []byte, hdr map[string]string) (rsResp, error) {
	r, err := c.send(method, path, bytes.NewReader(body), int64(len(body)), hdr, c.basic())
	if err != nil || r.status != http.StatusUnauthorized {
		return r, err
	}
	ch := r.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, "Bearer ") {
		return r, nil
	}
	token, err := c.token(ch)
	if err != nil {
		return r, err
	}
	return c.send(method, path, bytes.NewReader(body), int64(len(body)), hdr, "Bearer "+token)
}

// stream sends a request whose body is read from r (size bytes), without
// answering challenges.
func (c *rsClient) stream(method, path string, r io.Reader, size int64, hdr map[string]string) (rsResp, error) {
	return c.send(method, path, r, size, hdr, c.basic())
}

func (c *rsClient) basic() string {
	if c.user == "" {
		return ""
	}
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(c.user, c.pass)
	return req.Header.Get("Authorization")
}

func (c *rsClient) send(method, path string, body io.Reader, size int64, hdr map[string]string, auth string) (rsResp, error) {
	u := c.url(path)
	res := rsResp{method: method, url: u}
	if size == 0 {
		body = nil
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return res, err
	}
	if body != nil {
		req.Body = io.NopCloser(body) // the size below, not the reader's type, decides
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	res.status, res.header = resp.StatusCode, resp.Header
	res.body, err = io.ReadAll(resp.Body)
	if err != nil {
		return res, fmt.Errorf("%s %s: reading the answer (%d): %w", method, u, resp.StatusCode, err)
	}
	return res, nil
}

var rsChallengeParamRE = regexp.MustCompile(`([a-z]+)="([^"]*)"`)

// token asks the challenge's realm for a token.
func (c *rsClient) token(challenge string) (string, error) {
	params := map[string]string{}
	for _, m := range rsChallengeParamRE.FindAllStringSubmatch(challenge, -1) {
		params[m[1]] = m[2]
	}
	if params["realm"] == "" {
		return "", fmt.Errorf("bearer challenge %q has no realm", challenge)
	}
	q := url.Values{}
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	for _, s := range strings.Fields(params["scope"]) {
		q.Add("scope", s)
	}
	r, err := c.send(http.MethodGet, params["realm"]+"?"+q.Encode(), nil, 0, nil, c.basic())
	if err != nil {
		return "", err
	}
	if r.status != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %s", r)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || (tok.Token == "" && tok.AccessToken == "") {
		return "", fmt.Errorf("token endpoint: no token in %s", r)
	}
	if tok.Token != "" {
		return tok.Token, nil
	}
	return tok.AccessToken, nil
}

// rsWant returns a check that passes an answer through, or an error
// unless it has one of the statuses: rsWant(200)(c.do(...)).
func rsWant(status ...int) func(rsResp, error) (rsResp, error) {
	return func(r rsResp, err error) (rsResp, error) {
		if err != nil {
			return r, err
		}
		if !slices.Contains(status, r.status) {
			return r, fmt.Errorf("%s, want status %v", r, status)
		}
		return r, nil
	}
}

// rsMode is how a blob is uploaded.
type rsMode int

const (
	rsSingle  rsMode = iota // POST ?digest= with the bytes
	rsPostPut               // POST, then PUT ?digest= with the bytes
	rsChunked               // POST, PATCH ×3, PUT ?digest= without bytes
	rsMount                 // POST ?mount=&from=, else (202) PUT with the bytes
)

func (m rsMode) String() string {
	return [...]string{"single POST", "POST+PUT", "chunked", "mount"}[m]
}

// rsRetries counts 503 answers the clients retried.
var rsRetries atomic.Int64

// doRetry is do, retrying a few times while the registry answers 503 (a
// blob it is collecting: the spec's transient error).
func (c *rsClient) doRetry(method, path string, body []byte, hdr map[string]string) (rsResp, error) {
	for i := 0; ; i++ {
		r, err := c.do(method, path, body, hdr)
		if err != nil || r.status != http.StatusServiceUnavailable || i == 20 {
			return r, err
		}
		rsRetries.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
}

func withDigest(location, dg string) string {
	sep := "?"
	if strings.Contains(location, "?") {
		sep = "&"
	}
	return location + sep + "digest=" + url.QueryEscape(dg)
}

var octet = map[string]string{"Content-Type": "application/octet-stream"}

// pushBlob uploads data into repo the way mode says, unless HEAD finds it
// there already; from is the repository a mount is tried from.
func (c *rsClient) pushBlob(repo string, data []byte, mode rsMode, from string) error {
	dg := digestOf(data)
	r, err := rsWant(http.StatusOK, http.StatusNotFound)(c.doRetry(http.MethodHead, "/v2/"+repo+"/blobs/"+dg, nil, nil))
	if err != nil {
		return err
	}
	if r.status == http.StatusOK {
		if n := r.header.Get("Content-Length"); n != strconv.Itoa(len(data)) {
			return fmt.Errorf("HEAD blob %s in %s: Content-Length %s, want %d", dg, repo, n, len(data))
		}
		c.found.Add(1)
		return nil
	}
	c.uploaded.Add(1)
	start := "/v2/" + repo + "/blobs/uploads/"
	switch mode {
	case rsSingle:
		_, err := rsWant(http.StatusCreated)(c.doRetry(http.MethodPost, start+"?digest="+url.QueryEscape(dg), data, octet))
		return err
	case rsMount:
		r, err := rsWant(http.StatusCreated, http.StatusAccepted)(c.doRetry(http.MethodPost, start+"?mount="+url.QueryEscape(dg)+"&from="+url.QueryEscape(from), nil, nil))
		if err != nil || r.status == http.StatusCreated {
			return err
		}
		_, err = rsWant(http.StatusCreated)(c.doRetry(http.MethodPut, withDigest(r.header.Get("Location"), dg), data, octet))
		return err
	}
	r, err = rsWant(http.StatusAccepted)(c.doRetry(http.MethodPost, start, nil, nil))
	if err != nil {
		return err
	}
	loc := r.header.Get("Location")
	if mode == rsChunked {
		parts := rsSplit(data, 3)
		off := 0
		for _, p := range parts {
			r, err = rsWant(http.StatusAccepted)(c.doRetry(http.MethodPatch, loc, p, map[string]string{
				"Content-Type":  "application/octet-stream",
				"Content-Range": fmt.Sprintf("%d-%d", off, off+len(p)-1),
			}))
			if err != nil {
				return err
			}
			off += len(p)
			if got, want := r.header.Get("Range"), fmt.Sprintf("0-%d", off-1); got != want {
				return fmt.Errorf("%s: Range %q, want %q", r, got, want)
			}
			loc = r.header.Get("Location")
		}
		data = nil
	}
	_, err = rsWant(http.StatusCreated)(c.doRetry(http.MethodPut, withDigest(loc, dg), data, octet))
	return err
}

// rsSplit cuts data into n non-empty parts (fewer if it is shorter).
func rsSplit(data []byte, n int) [][]byte {
	var parts [][]byte
	for i := 0; i < n; i++ {
		a, b := len(data)*i/n, len(data)*(i+1)/n
		if b > a {
			parts = append(parts, data[a:b])
		}
	}
	return parts
}

// getBlob fetches a blob and checks its bytes against its digest and the
// answer's Content-Length.
func (c *rsClient) getBlob(repo, dg string) ([]byte, error) {
	r, err := rsWant(http.StatusOK)(c.do(http.MethodGet, "/v2/"+repo+"/blobs/"+dg, nil, nil))
	if err != nil {
		return nil, err
	}
	if got := digestOf(r.body); got != dg {
		return nil, fmt.Errorf("GET blob %s in %s: %d bytes with digest %s", dg, repo, len(r.body), got)
	}
	if n := r.header.Get("Content-Length"); n != strconv.Itoa(len(r.body)) {
		return nil, fmt.Errorf("GET blob %s in %s: Content-Length %s, body %d bytes", dg, repo, n, len(r.body))
	}
	return r.body, nil
}

var rsManifestAccept = map[string]string{"Accept": strings.Join([]string{mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList}, ", ")}

// getManifest fetches a manifest by tag or digest and checks its bytes
// against Docker-Content-Digest (and against ref, for a digest).
func (c *rsClient) getManifest(repo, ref string) ([]byte, string, error) {
	r, err := rsWant(http.StatusOK)(c.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, rsManifestAccept))
	if err != nil {
		return nil, "", err
	}
	dg := digestOf(r.body)
	if h := r.header.Get("Docker-Content-Digest"); h != dg {
		return nil, "", fmt.Errorf("GET manifest %s:%s: body digest %s, Docker-Content-Digest %s", repo, ref, dg, h)
	}
	if strings.HasPrefix(ref, "sha256:") && ref != dg {
		return nil, "", fmt.Errorf("GET manifest %s@%s: body has digest %s", repo, ref, dg)
	}
	return r.body, dg, nil
}

// checkImage fetches the manifest at ref and every blob it names, checking
// digests and sizes. It returns the manifest and its digest.
func (c *rsClient) checkImage(repo, ref string) (ociManifest, string, error) {
	var m ociManifest
	raw, dg, err := c.getManifest(repo, ref)
	if err != nil {
		return m, "", err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, "", fmt.Errorf("manifest %s:%s: %v", repo, ref, err)
	}
	for _, d := range append([]ociDescriptor{m.Config}, m.Layers...) {
		b, err := c.getBlob(repo, d.Digest)
		if err != nil {
			return m, "", fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
		}
		if int64(len(b)) != d.Size {
			return m, "", fmt.Errorf("manifest %s:%s: blob %s has %d bytes, the manifest says %d", repo, ref, d.Digest, len(b), d.Size)
		}
	}
	return m, dg, nil
}

// rsImage is an image made here: a config and layers of any bytes (the
// registry does not look into them), and its OCI manifest.
type rsImage struct {
	manifest []byte
	digest   string
	config   []byte
	layers   [][]byte
}

func newRSImage(t testing.TB, label string, layers ...[]byte) rsImage {
	t.Helper()
	img := rsImage{layers: layers}
	var diffIDs []string
	for _, l := range layers {
		diffIDs = append(diffIDs, digestOf(l))
	}
	var err error
	img.config, err = json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"test": label}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := ociManifest{SchemaVersion: 2, MediaType: mtOCIManifest,
		Config: ociDescriptor{MediaType: mtOCIConfig, Digest: digestOf(img.config), Size: int64(len(img.config))}}
	for _, l := range layers {
		m.Layers = append(m.Layers, ociDescriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digestOf(l), Size: int64(len(l))})
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img.digest = digestOf(img.manifest)
	return img
}

func (img rsImage) blobs() [][]byte { return append([][]byte{img.config}, img.layers...) }

// push uploads the image's blobs (mode for the layers, single POSTs for
// the config) and puts its manifest under tag.
func (c *rsClient) push(repo, tag string, img rsImage, mode rsMode, from string) error {
	for i, b := range img.blobs() {
		m := mode
		if i == 0 && mode == rsMount {
			m = rsSingle
		}
		if err := c.pushBlob(repo, b, m, from); err != nil {
			return err
		}
	}
	r, err := rsWant(http.StatusCreated)(c.doRetry(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, img.manifest,
		map[string]string{"Content-Type": mtOCIManifest}))
	if err != nil {
		return err
	}
	if got := r.header.Get("Docker-Content-Digest"); got != img.digest {
		return fmt.Errorf("%s: Docker-Content-Digest %s, want %s", r, got, img.digest)
	}
	return nil
}

func rsRandom(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// rsStorageFiles lists the files under dir (relative paths); a missing dir
// has none.
func rsStorageFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// rsStoredBlobs is the set of blob digests the filesystem driver holds
// under root (its blobs/ALG/XX/HEX files).
func rsStoredBlobs(t testing.TB, root string) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	for _, f := range rsStorageFiles(t, filepath.Join(root, "storage", "blobs")) {
		parts := strings.Split(f, "/")
		if len(parts) != 3 {
			t.Errorf("unexpected file storage/blobs/%s", f)
			continue
		}
		set[parts[0]+":"+parts[2]] = true
	}
	return set
}

// ---------------------------------------------------------------------------
// a real image for the clients: busybox plus a marker file unique to the run

type rsMarked struct {
	archive string // a docker-archive (Docker ≤24 layout, uncompressed layer)
	local   string // its RepoTags[0]
	id      string // its config digest: every client must give it this ID
	marker  string // the content of /berth-marker
}

func newRSMarked(t *testing.T) rsMarked {
	t.Helper()
	dir := t.TempDir()
	img := rsMarked{
		marker: "berth registry server test " + randomHex(t, 8) + "\n",
		local:  uniqueRepo(t, "marked") + ":1",
	}
	in, err := os.Open(busyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	prefix := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(h.Name, "./") {
			prefix = "./"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: prefix + "berth-marker", Mode: 0o644, Size: int64(len(img.marker)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(img.marker))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(rootfs, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img.archive = filepath.Join(dir, "image.tar")
	img.id = writeDockerArchive(t, img.archive, rootfs, img.local)
	return img
}

// checkServed checks what the registry holds at repo:tag against a push
// of img a client reported: the manifest has digest wantDigest, its config
// is img's, and every layer has its digest and size and unpacks (gzip,
// zstd or plain) to a tar with the marker file.
func (img rsMarked) checkServed(t testing.TB, c *rsClient, repo, tag, wantDigest string) {
	t.Helper()
	m, dg, err := c.checkImage(repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	if dg != wantDigest {
		t.Fatalf("registry serves %s:%s with digest %s, the client reported %s", repo, tag, dg, wantDigest)
	}
	if m.Config.Digest != img.id {
		t.Fatalf("registry: %s:%s has config %s, want the image ID %s", repo, tag, m.Config.Digest, img.id)
	}
	// An OCI manifest names OCI media types, a Docker one Docker's.
	family := func(mt string) string {
		switch {
		case strings.HasPrefix(mt, "application/vnd.oci.image."):
			return "OCI"
		case strings.HasPrefix(mt, "application/vnd.docker."):
			return "Docker"
		}
		return mt
	}
	for _, d := range append([]ociDescriptor{m.Config}, m.Layers...) {
		if family(d.MediaType) != family(m.MediaType) {
			t.Errorf("registry: %s:%s (pushed with digest %s): the manifest's media type is %s's (%s) but it names %s with %s's media type %s",
				repo, tag, wantDigest, family(m.MediaType), m.MediaType, d.Digest, family(d.MediaType), d.MediaType)
		}
	}
	found := false
	for _, l := range m.Layers {
		b, err := c.getBlob(repo, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(b)
		switch {
		case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			r = zr
		case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zr, err := zstd.NewReader(r)
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			defer zr.Close()
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("registry: layer %s of %s:%s (%s): %v", l.Digest, repo, tag, l.MediaType, err)
			}
			if strings.TrimPrefix(h.Name, "./") == "berth-marker" {
				got, _ := io.ReadAll(tr)
				if string(got) != img.marker {
					t.Fatalf("registry: %s:%s: /berth-marker holds %q, want %q", repo, tag, got, img.marker)
				}
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("registry: %s:%s: no layer holds /berth-marker", repo, tag)
	}
}

// rsOut runs a command with env and returns its trimmed standard output,
// failing the test unless it exits 0.
func rsOut(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(peerEnv(t, env, "", name, args...))
}

func rsReadTrim(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// ---------------------------------------------------------------------------
// TestRegistryServerClients

// TestRegistryServerClients: without auth, one image goes into berth's
// registry through skopeo, crane, regctl, podman, docker and berth; every
// push resolves to the same manifest digest with every client, and every
// client pulls it with the same image ID and files.
func TestRegistryServerClients(t *testing.T) {
	needDocker(t)
	needPodman(t)
	needSkopeo(t)
	crane, regctl := needGoTools(t)
	srv := startBerthRegistry(t, "", "")
	api := newRSClient(srv.host, "", "")
	img := newRSMarked(t)
	env := rsEnv(t)
	prefix := uniqueRepo(t, "clients")
	path := func(client string) string { return prefix + "/" + client }
	name := func(client string) string { return srv.host + "/" + path(client) + ":1" }
	rsOut(t, env, regctl, "registry", "set", "--tls", "disabled", srv.host)

	type pushed struct{ client, path, digest string }
	var pushes []pushed
	record := func(client, digest string) {
		t.Helper()
		img.checkServed(t, api, path(client), "1", digest)
		pushes = append(pushes, pushed{client, path(client), digest})
	}
	tmp := t.TempDir()

	// skopeo, from the docker-archive.
	digestFile := filepath.Join(tmp, "skopeo.digest")
	rsOut(t, env, "skopeo", "copy", "-q", "--dest-tls-verify=false", "--digestfile", digestFile,
		"docker-archive:"+img.archive, "docker://"+name("skopeo"))
	dSkopeo := rsReadTrim(t, digestFile)
	record("skopeo", dSkopeo)

	// crane: pull into an OCI layout and push that; copy. Both keep the
	// manifest's bytes.
	layout := filepath.Join(tmp, "layout")
	rsOut(t, env, crane, "pull", "--insecure", "--format", "oci", name("skopeo"), layout)
	out := rsOut(t, env, crane, "push", "--insecure", layout, name("crane"))
	if want := srv.host + "/" + path("crane") + "@" + dSkopeo; out != want {
		t.Errorf("crane push printed %q, want %q", out, want)
	}
	record("crane", dSkopeo)
	rsOut(t, env, crane, "copy", "--insecure", name("skopeo"), name("crane-copy"))
	img.checkServed(t, api, path("crane-copy"), "1", dSkopeo)

	// regctl: import the docker-archive (it compresses the layer).
	rsOut(t, env, regctl, "image", "import", name("regctl"), img.archive)
	record("regctl", rsOut(t, env, regctl, "image", "digest", name("regctl")))

	// podman: pull skopeo's push and push it again.
	podmanCleanup(t, name("skopeo"))
	rsOut(t, env, "podman", "pull", "-q", "--tls-verify=false", name("skopeo"))
	digestFile = filepath.Join(tmp, "podman.digest")
	rsOut(t, env, "podman", "push", "-q", "--tls-verify=false", "--digestfile", digestFile, name("skopeo"), "docker://"+name("podman"))
	record("podman", rsReadTrim(t, digestFile))

	// docker: pull podman's push, tag and push.
	dockerCleanup(t, name("podman"), name("docker"))
	rsOut(t, env, "docker", "pull", "-q", name("podman"))
	rsOut(t, env, "docker", "tag", name("podman"), name("docker"))
	record("docker", pushedDigest(t, peerEnv(t, env, "", "docker", "push", name("docker")), "1"))

	// berth: pull docker's push, tag and push.
	root := newRoot(t)
	berthEnvOK(t, env, root, "pull", "-q", name("docker"))
	berth(t, root, "tag", name("docker"), name("berth"))
	// (berth mounts the layer from docker's repository: "Mounted from",
	// which parsePush does not expect.)
	record("berth", pushedDigest(t, berthEnvOK(t, env, root, "push", name("berth")), "1"))

	// Every push, resolved and pulled by every client.
	for _, p := range pushes {
		t.Run("pushed-by-"+p.client, func(t *testing.T) {
			repo := srv.host + "/" + p.path
			ref := repo + ":1"
			for _, c := range []struct {
				client string
				args   []string
			}{
				{crane, []string{"digest", "--insecure", ref}},
				{regctl, []string{"image", "digest", ref}},
				{"skopeo", []string{"inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://" + ref}},
			} {
				if got := rsOut(t, env, c.client, c.args...); got != p.digest {
					t.Errorf("%s %s: %q, want the pushed digest %s", filepath.Base(c.client), strings.Join(c.args, " "), got, p.digest)
				}
			}
			raw, _, err := api.getManifest(p.path, "1")
			if err != nil {
				t.Fatal(err)
			}
			var fromBerth, fromReg any
			if err := json.Unmarshal([]byte(berthEnvOK(t, env, newRoot(t), "manifest", "inspect", ref)), &fromBerth); err != nil {
				t.Errorf("berth manifest inspect %s: %v", ref, err)
			}
			json.Unmarshal(raw, &fromReg)
			if !reflect.DeepEqual(fromBerth, fromReg) {
				t.Errorf("berth manifest inspect %s: %v\nthe registry serves %s", ref, fromBerth, raw)
			}
			if got := rsOut(t, env, regctl, "manifest", "get", "--format", "raw-body", ref); digestOf([]byte(got)) != p.digest {
				t.Errorf("regctl manifest get --format raw-body %s: digest %s, want %s", ref, digestOf([]byte(got)), p.digest)
			}

			// docker
			dockerCleanup(t, ref)
			rsOut(t, env, "docker", "pull", "-q", ref)
			if got := dockerID(t, ref); got != img.id {
				t.Errorf("docker pull %s: Id %s, want %s", ref, got, img.id)
			}
			var ds []string
			json.Unmarshal([]byte(rsOut(t, env, "docker", "inspect", "-f", "{{json .RepoDigests}}", ref)), &ds)
			if !slices.Contains(ds, repo+"@"+p.digest) {
				t.Errorf("docker inspect %s: RepoDigests %q, want %s", ref, ds, repo+"@"+p.digest)
			}
			if got := peerEnv(t, env, "", "docker", "run", "--rm", "--network", "none", ref, "cat", "/berth-marker"); got != img.marker {
				t.Errorf("docker run %s cat /berth-marker: %q, want %q", ref, got, img.marker)
			}

			// podman
			podmanCleanup(t, ref)
			rsOut(t, env, "podman", "pull", "-q", "--tls-verify=false", ref)
			if got := podmanID(t, ref); got != img.id {
				t.Errorf("podman pull %s: Id %s, want %s", ref, got, img.id)
			}
			if got := peerEnv(t, env, "", "podman", "run", "--rm", "--network", "none", ref, "cat", "/berth-marker"); got != img.marker {
				t.Errorf("podman run %s cat /berth-marker: %q, want %q", ref, got, img.marker)
			}

			// berth
			root := newRoot(t)
			berthEnvOK(t, env, root, "pull", "-q", ref)
			if got := berthID(t, root, ref); got != img.id {
				t.Errorf("berth pull %s: Id %s, want %s", ref, got, img.id)
			}
			assertRepoDigest(t, root, ref, repo+"@"+p.digest)
			checkLoaded(t, root, ref, map[string]string{"berth-marker": img.marker})

			// crane: the flattened file system.
			export := filepath.Join(t.TempDir(), "export.tar")
			rsOut(t, env, crane, "export", "--insecure", ref, export)
			if got := string(tarFiles(t, export)["berth-marker"]); got != img.marker {
				t.Errorf("crane export %s: /berth-marker %q, want %q", ref, got, img.marker)
			}

			// regctl: one file from the layers.
			if got := peerEnv(t, env, "", regctl, "image", "get-file", ref, "berth-marker"); got != img.marker {
				t.Errorf("regctl image get-file %s berth-marker: %q, want %q", ref, got, img.marker)
			}

			// skopeo: a docker-archive with the same config.
			archive := filepath.Join(t.TempDir(), "skopeo.tar")
			rsOut(t, env, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "docker-archive:"+archive)
			files := tarFiles(t, archive)
			if entries := dockerManifest(t, files); len(entries) != 1 || digestOf(files[entries[0].Config]) != img.id {
				t.Errorf("skopeo copy %s to a docker-archive: manifest.json %+v, want one image with config %s", ref, entries, img.id)
			}
		})
	}

	// Listing, raw reads and deletion.
	t.Run("catalog-tags-delete", func(t *testing.T) {
		wantRepos := []string{path("crane-copy")}
		for _, p := range pushes {
			wantRepos = append(wantRepos, p.path)
		}
		for _, c := range []struct {
			client string
			args   []string
		}{
			{crane, []string{"catalog", "--insecure", srv.host}},
			{regctl, []string{"repo", "ls", srv.host}},
		} {
			got := strings.Fields(rsOut(t, env, c.client, c.args...))
			for _, r := range wantRepos {
				if !slices.Contains(got, r) {
					t.Errorf("%s %s: %q lacks %s", filepath.Base(c.client), strings.Join(c.args, " "), got, r)
				}
			}
		}
		skopeoRepo := srv.host + "/" + path("skopeo")
		if got := rsOut(t, env, crane, "ls", "--insecure", skopeoRepo); got != "1" {
			t.Errorf("crane ls %s: %q, want the one tag 1", skopeoRepo, got)
		}
		if got := rsOut(t, env, regctl, "tag", "ls", skopeoRepo); got != "1" {
			t.Errorf("regctl tag ls %s: %q, want the one tag 1", skopeoRepo, got)
		}
		cfg := peerEnv(t, env, "", regctl, "blob", "get", skopeoRepo, img.id)
		if digestOf([]byte(cfg)) != img.id {
			t.Errorf("regctl blob get %s %s: %d bytes with digest %s", skopeoRepo, img.id, len(cfg), digestOf([]byte(cfg)))
		}

		// Deleting crane-copy's manifest leaves the same manifest in the
		// other repositories alone.
		copyRepo := srv.host + "/" + path("crane-copy")
		rsOut(t, env, crane, "delete", "--insecure", copyRepo+"@"+dSkopeo)
		if r, err := execute(nil, env, crane, "digest", "--insecure", copyRepo+":1"); err != nil || r.code == 0 {
			t.Errorf("crane digest %s:1 after crane delete: %v %s; want a failure", copyRepo, err, r)
		}
		if r, err := rsWant(http.StatusNotFound)(api.do(http.MethodGet, "/v2/"+path("crane-copy")+"/manifests/"+dSkopeo, nil, rsManifestAccept)); err != nil {
			t.Errorf("after crane delete: %v", err)
		} else if r.errorCode() != "MANIFEST_UNKNOWN" {
			t.Errorf("after crane delete: %s, want MANIFEST_UNKNOWN", r)
		}
		if got := rsOut(t, env, crane, "ls", "--insecure", copyRepo); got != "" {
			t.Errorf("crane ls %s after crane delete: %q, want no tags", copyRepo, got)
		}
		for _, c := range []string{"skopeo", "crane"} {
			if got := rsOut(t, env, crane, "digest", "--insecure", name(c)); got != dSkopeo {
				t.Errorf("crane digest %s after deleting the same manifest from %s: %q, want %s", name(c), copyRepo, got, dSkopeo)
			}
		}
		img.checkServed(t, api, path("skopeo"), "1", dSkopeo)
	})
}

// ---------------------------------------------------------------------------
// TestRegistryServerAuth

// rsRefusedRE is what a client says when the registry refuses it.
var rsRefusedRE = regexp.MustCompile(`(?i)denied|unauthori[sz]ed|forbidden|\b401\b|\b403\b|authentication required|insufficient.scope|invalid username|credentials`)

// rsRefused runs a client command that the registry must refuse.
func rsRefused(t testing.TB, what string, env []string, stdin, name string, args ...string) {
	t.Helper()
	r, err := execute(strings.NewReader(stdin), env, name, args...)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", what, name, strings.Join(args, " "), err)
	}
	if r.code == 0 {
		t.Errorf("%s: %s %s succeeded, want the registry to refuse it\n%s", what, filepath.Base(name), strings.Join(args, " "), r)
	} else if !rsRefusedRE.MatchString(r.stdout + r.stderr) {
		t.Errorf("%s: %s %s failed, but not saying it was refused access:\n%s", what, filepath.Base(name), strings.Join(args, " "), r)
	} else {
		for _, l := range strings.Split(r.stdout+r.stderr, "\n") {
			if rsRefusedRE.MatchString(l) {
				t.Logf("%s: refused: %s", what, strings.TrimSpace(l))
				break
			}
		}
	}
}

// envHome is the HOME a clientEnv set.
func envHome(env []string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "HOME="); ok {
			return v
		}
	}
	return ""
}

// TestRegistryServerAuth: htpasswd logins with an ACL (alice may push and
// pull alice/**, bob only pull, anonymous clients nothing), then the same
// users through the built-in token issuer; every client logs in its own way
// and is allowed exactly that.
func TestRegistryServerAuth(t *testing.T) {
	needDocker(t)
	needPodman(t)
	needSkopeo(t)
	needHtpasswd(t)
	needGoTools(t)
	img := newRSMarked(t)
	dir := t.TempDir()
	alicePW, bobPW := "alice-"+randomHex(t, 8), "bob-"+randomHex(t, 8)
	var users []string
	for _, u := range [][2]string{{"alice", alicePW}, {"bob", bobPW}} {
		line := strings.TrimSpace(run(t, "htpasswd", "-Bbn", u[0], u[1]))
		if !strings.HasPrefix(line, u[0]+":$2") {
			t.Fatalf("htpasswd -Bbn printed %q, want a bcrypt entry for %s", line, u[0])
		}
		users = append(users, line)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(strings.Join(users, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"htpasswd", "token"} {
		t.Run(mode, func(t *testing.T) {
			config := fmt.Sprintf(`auth:
  mode: %s
  htpasswd: %s
  access:
    - users: [alice]
      repos: ["alice/**"]
      actions: [pull, push]
    - users: [bob]
      repos: ["alice/**"]
      actions: [pull]
`, mode, htpasswd)
			rsAuthScenario(t, startBerthRegistry(t, "", config), mode, img, alicePW, bobPW)
		})
	}
}

func rsAuthScenario(t *testing.T, srv *rsServer, mode string, img rsMarked, alicePW, bobPW string) {
	crane, regctl := needGoTools(t)
	host := srv.host
	ref := func(repo string) string { return host + "/alice/" + repo + ":1" }
	alice := newRSClient(host, "alice", alicePW)
	anon := newRSClient(host, "", "")
	tmp := t.TempDir()

	// The API itself: a challenge of the mode's kind for anonymous clients
	// and wrong passwords.
	wantChallenge := map[string]string{"htpasswd": "Basic realm=", "token": "Bearer realm="}[mode]
	for _, c := range []*rsClient{anon, newRSClient(host, "alice", "wrong-"+alicePW)} {
		r, err := rsWant(http.StatusUnauthorized)(c.send(http.MethodGet, "/v2/", nil, 0, nil, c.basic()))
		if err != nil {
			t.Errorf("user %q: %v", c.user, err)
		} else if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, wantChallenge) {
			t.Errorf("user %q: %s: WWW-Authenticate %q, want %s…", c.user, r, ch, wantChallenge)
		}
	}
	if mode == "token" {
		if _, err := newRSClient(host, "alice", "wrong-"+alicePW).token(`Bearer realm="http://` + host + `/token",service="berth-registry",scope="repository:alice/x:pull"`); err == nil {
			t.Error("the token endpoint issued a token for a wrong password")
		}
	}
	if _, err := rsWant(http.StatusOK)(alice.do(http.MethodGet, "/v2/", nil, nil)); err != nil {
		t.Errorf("alice: %v", err)
	}

	var denied []string // repositories bob tried to push to
	var dAlice string   // what alice pushed with skopeo

	t.Run("docker", func(t *testing.T) {
		envA, envB, envN := rsEnv(t), rsEnv(t), rsEnv(t)
		rsRefused(t, "docker login with a wrong password", envA, "wrong-"+alicePW+"\n", "docker", "login", "-u", "alice", "--password-stdin", host)
		if out := peerEnv(t, envA, alicePW+"\n", "docker", "login", "-u", "alice", "--password-stdin", host); !strings.Contains(out, "Login Succeeded") {
			t.Errorf("docker login as alice: %q", out)
		}
		dockerCleanup(t, img.local, ref("docker"), ref("docker-bob"))
		rsOut(t, envA, "docker", "load", "-q", "-i", img.archive)
		rsOut(t, envA, "docker", "tag", img.local, ref("docker"))
		d := pushedDigest(t, peerEnv(t, envA, "", "docker", "push", ref("docker")), "1")
		img.checkServed(t, alice, "alice/docker", "1", d)

		peerEnv(t, envB, bobPW+"\n", "docker", "login", "-u", "bob", "--password-stdin", host)
		rsOut(t, envB, "docker", "tag", img.local, ref("docker-bob"))
		rsRefused(t, "bob's docker push", envB, "", "docker", "push", ref("docker-bob"))
		denied = append(denied, "alice/docker-bob")

		rsOut(t, envA, "docker", "rmi", ref("docker"))
		rsOut(t, envB, "docker", "pull", "-q", ref("docker"))
		if got := dockerID(t, ref("docker")); got != img.id {
			t.Errorf("bob's docker pull %s: Id %s, want %s", ref("docker"), got, img.id)
		}
		rsOut(t, envA, "docker", "rmi", ref("docker"))
		rsRefused(t, "anonymous docker pull", envN, "", "docker", "pull", ref("docker"))
	})

	t.Run("podman", func(t *testing.T) {
		home := envHome(rsEnv(t))
		authA, authB, authN := filepath.Join(home, "alice.json"), filepath.Join(home, "bob.json"), filepath.Join(home, "none.json")
		if err := os.WriteFile(authN, []byte(`{"auths":{}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"REGISTRY_AUTH_FILE=" + authN}
		podmanCleanup(t, ref("skopeo-src"), ref("podman"))
		rsRefused(t, "podman login with a wrong password", env, "", "podman", "login", "--tls-verify=false", "--authfile", authA, "-u", "alice", "-p", "wrong-"+alicePW, host)
		rsOut(t, env, "podman", "login", "--tls-verify=false", "--authfile", authA, "-u", "alice", "-p", alicePW, host)
		rsOut(t, env, "podman", "login", "--tls-verify=false", "--authfile", authB, "-u", "bob", "-p", bobPW, host)

		// alice pushes (from the archive, through podman's store).
		rsOut(t, env, "skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "alice:"+alicePW,
			"docker-archive:"+img.archive, "docker://"+ref("skopeo-src"))
		rsOut(t, env, "podman", "pull", "-q", "--tls-verify=false", "--authfile", authA, ref("skopeo-src"))
		digestFile := filepath.Join(tmp, "podman.digest")
		rsOut(t, env, "podman", "push", "-q", "--tls-verify=false", "--authfile", authA, "--digestfile", digestFile, ref("skopeo-src"), "docker://"+ref("podman"))
		img.checkServed(t, alice, "alice/podman", "1", rsReadTrim(t, digestFile))

		rsRefused(t, "bob's podman push", env, "", "podman", "push", "--tls-verify=false", "--authfile", authB, ref("skopeo-src"), "docker://"+ref("podman-bob"))
		denied = append(denied, "alice/podman-bob")
		rsOut(t, env, "podman", "pull", "-q", "--tls-verify=false", "--authfile", authB, ref("podman"))
		if got := podmanID(t, ref("podman")); got != img.id {
			t.Errorf("bob's podman pull %s: Id %s, want %s", ref("podman"), got, img.id)
		}
		rsOut(t, env, "podman", "rmi", ref("podman"))
		rsRefused(t, "anonymous podman pull", env, "", "podman", "pull", "--tls-verify=false", "--authfile", authN, ref("podman"))
	})

	t.Run("skopeo", func(t *testing.T) {
		env := rsEnv(t)
		digestFile := filepath.Join(tmp, "skopeo.digest")
		rsOut(t, env, "skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "alice:"+alicePW, "--digestfile", digestFile,
			"docker-archive:"+img.archive, "docker://"+ref("skopeo"))
		dAlice = rsReadTrim(t, digestFile)
		img.checkServed(t, alice, "alice/skopeo", "1", dAlice)
		rsRefused(t, "bob's skopeo copy", env, "", "skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bob:"+bobPW,
			"docker-archive:"+img.archive, "docker://"+ref("skopeo-bob"))
		denied = append(denied, "alice/skopeo-bob")
		if got := rsOut(t, env, "skopeo", "inspect", "--tls-verify=false", "--creds", "bob:"+bobPW, "--format", "{{.Digest}}", "docker://"+ref("skopeo")); got != dAlice {
			t.Errorf("skopeo inspect as bob: digest %q, want %s", got, dAlice)
		}
		rsRefused(t, "skopeo inspect with a wrong password", env, "", "skopeo", "inspect", "--tls-verify=false", "--creds", "bob:wrong-"+bobPW, "docker://"+ref("skopeo"))
		rsRefused(t, "anonymous skopeo inspect", env, "", "skopeo", "inspect", "--tls-verify=false", "--no-creds", "docker://"+ref("skopeo"))
	})
	if dAlice == "" {
		t.Fatal("alice's skopeo push failed: the clients below copy it")
	}

	t.Run("crane", func(t *testing.T) {
		envA, envB, envN := rsEnv(t), rsEnv(t), rsEnv(t)
		rsOut(t, envA, crane, "auth", "login", host, "-u", "alice", "-p", alicePW)
		rsOut(t, envB, crane, "auth", "login", host, "-u", "bob", "-p", bobPW)
		rsOut(t, envA, crane, "copy", "--insecure", ref("skopeo"), ref("crane"))
		layout := filepath.Join(t.TempDir(), "layout")
		rsOut(t, envA, crane, "pull", "--insecure", "--format", "oci", ref("skopeo"), layout)
		rsOut(t, envA, crane, "push", "--insecure", layout, ref("crane-push"))
		for _, r := range []string{"crane", "crane-push"} {
			img.checkServed(t, alice, "alice/"+r, "1", dAlice)
		}
		rsRefused(t, "alice's crane delete (alice may not delete)", envA, "", crane, "delete", "--insecure", host+"/alice/crane@"+dAlice)
		rsRefused(t, "bob's crane copy", envB, "", crane, "copy", "--insecure", ref("skopeo"), ref("crane-bob"))
		denied = append(denied, "alice/crane-bob")
		if got := rsOut(t, envB, crane, "digest", "--insecure", ref("crane")); got != dAlice {
			t.Errorf("crane digest as bob: %q, want %s", got, dAlice)
		}
		rsRefused(t, "anonymous crane digest", envN, "", crane, "digest", "--insecure", ref("crane"))
	})

	t.Run("regctl", func(t *testing.T) {
		envA, envB, envN := rsEnv(t), rsEnv(t), rsEnv(t)
		for _, env := range [][]string{envA, envB, envN} {
			// (--skip-check: without credentials its ping is refused.)
			rsOut(t, env, regctl, "registry", "set", "--skip-check", "--tls", "disabled", host)
		}
		rsRefused(t, "regctl registry login with a wrong password", envN, "wrong-"+alicePW+"\n", regctl, "registry", "login", host, "-u", "alice", "--pass-stdin")
		peerEnv(t, envA, alicePW+"\n", regctl, "registry", "login", host, "-u", "alice", "--pass-stdin")
		peerEnv(t, envB, bobPW+"\n", regctl, "registry", "login", host, "-u", "bob", "--pass-stdin")
		rsOut(t, envA, regctl, "image", "copy", ref("skopeo"), ref("regctl"))
		img.checkServed(t, alice, "alice/regctl", "1", dAlice)
		rsRefused(t, "bob's regctl image copy", envB, "", regctl, "image", "copy", ref("skopeo"), ref("regctl-bob"))
		denied = append(denied, "alice/regctl-bob")
		if got := rsOut(t, envB, regctl, "image", "digest", ref("regctl")); got != dAlice {
			t.Errorf("regctl image digest as bob: %q, want %s", got, dAlice)
		}
		if got := peerEnv(t, envB, "", regctl, "image", "get-file", ref("regctl"), "berth-marker"); got != img.marker {
			t.Errorf("regctl image get-file as bob: %q, want %q", got, img.marker)
		}
		rsRefused(t, "anonymous regctl image digest", envN, "", regctl, "image", "digest", ref("regctl"))
	})

	t.Run("berth", func(t *testing.T) {
		envA, envB, envN := rsEnv(t), rsEnv(t), rsEnv(t)
		root := newRoot(t)
		if r := berthEnv(t, envA, root, alicePW+"\n", "login", "-u", "alice", "--password-stdin", host); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
			t.Fatalf("berth login as alice: %s", r)
		}
		if r := berthEnv(t, envB, root, bobPW+"\n", "login", "-u", "bob", "--password-stdin", host); r.code != 0 {
			t.Fatalf("berth login as bob: %s", r)
		}
		berthEnvOK(t, envA, root, "pull", "-q", ref("skopeo"))
		berth(t, root, "tag", ref("skopeo"), ref("berth"))
		berth(t, root, "tag", ref("skopeo"), ref("berth-bob"))
		img.checkServed(t, alice, "alice/berth", "1", pushedDigest(t, berthEnvOK(t, envA, root, "push", ref("berth")), "1"))
		r := berthEnv(t, envB, root, "", "push", ref("berth-bob"))
		if r.code == 0 || !rsRefusedRE.MatchString(r.stderr) {
			t.Errorf("bob's berth push %s: want a refusal, got %s", ref("berth-bob"), r)
		}
		denied = append(denied, "alice/berth-bob")
		other := newRoot(t)
		berthEnvOK(t, envB, other, "pull", "-q", ref("berth"))
		if got := berthID(t, other, ref("berth")); got != img.id {
			t.Errorf("bob's berth pull %s: Id %s, want %s", ref("berth"), got, img.id)
		}
		r = berthEnv(t, envN, newRoot(t), "", "pull", ref("berth"))
		if r.code == 0 || !rsRefusedRE.MatchString(r.stderr) {
			t.Errorf("anonymous berth pull %s: want a refusal, got %s", ref("berth"), r)
		}
	})

	// Refused pushes left nothing behind; the catalog shows users what they
	// may pull, and anonymous clients nothing.
	t.Run("aftermath", func(t *testing.T) {
		r, err := rsWant(http.StatusOK)(alice.do(http.MethodGet, "/v2/_catalog", nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		var cat struct{ Repositories []string }
		json.Unmarshal(r.body, &cat)
		for _, repo := range denied {
			if slices.Contains(cat.Repositories, repo) {
				t.Errorf("catalog lists %s, where only refused pushes went: %q", repo, cat.Repositories)
			}
			r, err := alice.do(http.MethodGet, "/v2/"+repo+"/manifests/1", nil, rsManifestAccept)
			if err != nil || r.status != http.StatusNotFound {
				t.Errorf("after a refused push to %s: %v %v, want 404", repo, r, err)
			}
		}
		for _, repo := range []string{"alice/skopeo", "alice/crane", "alice/regctl"} {
			if !slices.Contains(cat.Repositories, repo) {
				t.Errorf("alice's catalog %q lacks %s", cat.Repositories, repo)
			}
		}
		r, err = newRSClient(host, "bob", bobPW).do(http.MethodGet, "/v2/_catalog", nil, nil)
		if err != nil || r.status != http.StatusOK || !strings.Contains(string(r.body), `"alice/skopeo"`) {
			t.Errorf("bob's catalog: %v %v, want alice/skopeo listed", r, err)
		}
		if r, err := anon.do(http.MethodGet, "/v2/_catalog", nil, nil); err != nil || r.status != http.StatusUnauthorized {
			t.Errorf("anonymous catalog: %v %v, want 401", r, err)
		}
		if r, err := anon.do(http.MethodGet, "/v2/alice/skopeo/manifests/1", nil, rsManifestAccept); err != nil || r.status != http.StatusUnauthorized {
			t.Errorf("anonymous manifest GET: %v %v, want 401", r, err)
		}
	})
}

// rsEnv is a private client environment (HOME, DOCKER_CONFIG, ...) with an
// empty Docker config.json (podman fails when DOCKER_CONFIG names a
// directory without one).
func rsEnv(t testing.TB) []string {
	t.Helper()
	env, config := clientEnv(t)
	if err := os.MkdirAll(filepath.Dir(config), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range env {
		if dir, ok := strings.CutPrefix(e, "XDG_RUNTIME_DIR="); ok {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	return env
}

// ---------------------------------------------------------------------------
// TestRegistryServerKill

// rsThrottled hands out data a piece at a time, sleeping before each piece
// but the first, so that an upload stays in flight for a while.
type rsThrottled struct {
	data  []byte
	off   int
	piece int
	delay time.Duration
}

func (r *rsThrottled) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.off > 0 {
		time.Sleep(r.delay)
	}
	n := min(len(p), r.piece, len(r.data)-r.off)
	copy(p, r.data[r.off:r.off+n])
	r.off += n
	return n, nil
}

// rsKillUpload is one upload of TestRegistryServerKill and what its client
// saw.
type rsKillUpload struct {
	repo, digest string
	data         []byte
	mode         rsMode        // rsSingle, rsPostPut or rsChunked
	delay        time.Duration // between 32 KiB pieces of a body

	started, finished atomic.Bool

	location  string // the upload session, once the POST answered
	confirmed int64  // bytes the session's Range confirmed
	inflight  int64  // body bytes of the request that got no answer
	completed bool   // 201 Created
	failure   string // a wrong answer (not a dropped connection)
	lastErr   error  // the transport error that ended the upload
}

func (u *rsKillUpload) String() string {
	state := "completed"
	switch {
	case u.failure != "":
		state = "failed: " + u.failure
	case !u.completed && u.lastErr == nil:
		state = "never started"
	case !u.completed:
		state = fmt.Sprintf("interrupted with %d bytes confirmed, %d in flight (%v)", u.confirmed, u.inflight, u.lastErr)
	}
	return fmt.Sprintf("%s upload of %s (%d bytes) into %s, %s", u.mode, u.digest, len(u.data), u.repo, state)
}

func (u *rsKillUpload) run(c *rsClient) {
	u.started.Store(true)
	defer u.finished.Store(true)
	send := func(method, path string, body []byte, hdr map[string]string, want int) (rsResp, bool) {
		u.inflight = int64(len(body))
		r, err := c.stream(method, path, &rsThrottled{data: body, piece: 32 << 10, delay: u.delay}, int64(len(body)), hdr)
		if err != nil {
			u.lastErr = err
			return r, false
		}
		u.inflight = 0
		if r.status != want {
			u.failure = fmt.Sprintf("%s, want %d", r, want)
			return r, false
		}
		return r, true
	}
	start := "/v2/" + u.repo + "/blobs/uploads/"
	if u.mode == rsSingle {
		_, u.completed = send(http.MethodPost, start+"?digest="+url.QueryEscape(u.digest), u.data, octet, http.StatusCreated)
		return
	}
	r, ok := send(http.MethodPost, start, nil, nil, http.StatusAccepted)
	if !ok {
		return
	}
	u.location = r.header.Get("Location")
	if u.location == "" {
		u.failure = fmt.Sprintf("%s: no Location", r)
		return
	}
	body := u.data
	if u.mode == rsChunked {
		off := 0
		for _, p := range rsSplit(u.data, 3) {
			r, ok = send(http.MethodPatch, u.location, p, map[string]string{
				"Content-Type":  "application/octet-stream",
				"Content-Range": fmt.Sprintf("%d-%d", off, off+len(p)-1),
			}, http.StatusAccepted)
			if !ok {
				return
			}
			off += len(p)
			if got, want := r.header.Get("Range"), fmt.Sprintf("0-%d", off-1); got != want {
				u.failure = fmt.Sprintf("%s: Range %q, want %q", r, got, want)
				return
			}
			u.confirmed = int64(off)
			if loc := r.header.Get("Location"); loc != "" {
				u.location = loc
			}
		}
		body = nil
	}
	_, u.completed = send(http.MethodPut, withDigest(u.location, u.digest), body, octet, http.StatusCreated)
}

// rsRangeEnd reads an upload's Range header "0-N" as the number of bytes
// it holds (N+1; "0-0" counts as 0: these uploads never hold just 1 byte).
func rsRangeEnd(h string) (int64, bool) {
	end, ok := strings.CutPrefix(h, "0-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n == 0 {
		return 0, true
	}
	return n + 1, true
}

// TestRegistryServerKill: 100 uploads (single POSTs, POST+PUT, chunked),
// throttled so that many are mid-flight when the server is SIGKILLed after
// about half of them completed. After a restart on the same root every
// blob is whole or absent, every acknowledged one present, every upload
// session consistent with what its client was told (and resumable); GC then
// leaves no upload chunk or temporary file, and exactly the blobs manifests
// reference.
func TestRegistryServerKill(t *testing.T) {
	srv := startBerthRegistry(t, "", "")
	root := srv.root
	api := newRSClient(srv.host, "", "")
	keep := newRSImage(t, "pushed before the kill", rsRandom(t, 256<<10), rsRandom(t, 64<<10))
	if err := api.push("kill/keep", "1", keep, rsChunked, ""); err != nil {
		t.Fatal(err)
	}

	const n = 100
	uploads := make([]*rsKillUpload, n)
	for i := range uploads {
		data := rsRandom(t, 64<<10+mrand.IntN(4<<20-64<<10+1))
		uploads[i] = &rsKillUpload{
			repo:   fmt.Sprintf("kill/r%d", i%4),
			data:   data,
			digest: digestOf(data),
			mode:   []rsMode{rsSingle, rsPostPut, rsChunked}[i%3],
			delay:  time.Duration(4+mrand.IntN(27)) * time.Millisecond, // 1–8 MiB/s
		}
	}
	var completed atomic.Int32
	var wg sync.WaitGroup
	for i, u := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 15 * time.Millisecond)
			u.run(api)
			if u.completed {
				completed.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for completed.Load() < n/2 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	done, midflight := completed.Load(), 0
	for _, u := range uploads {
		if u.started.Load() && !u.finished.Load() {
			midflight++
		}
	}
	srv.kill(t)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Minute):
		t.Fatal("uploads still running 2 minutes after the SIGKILL")
	}
	t.Logf("SIGKILL with %d of %d uploads complete and %d mid-flight", done, n, midflight)
	if done < n/2 {
		t.Fatalf("only %d of %d uploads completed within 2 minutes", done, n)
	}
	if midflight < 10 {
		t.Fatalf("only %d uploads were mid-flight at the SIGKILL: too few to test anything", midflight)
	}
	for _, u := range uploads {
		if u.failure != "" {
			t.Errorf("before the SIGKILL: %v", u)
		}
	}

	// Restart on the same root.
	srv2 := startBerthRegistry(t, root, "")
	api2 := newRSClient(srv2.host, "", "")
	present := map[*rsKillUpload]bool{}
	for _, u := range uploads {
		r, err := api2.do(http.MethodHead, "/v2/"+u.repo+"/blobs/"+u.digest, nil, nil)
		switch {
		case err != nil:
			t.Errorf("%v: after the restart: %v", u, err)
		case r.status == http.StatusOK:
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(u.data)) {
				t.Errorf("%v: after the restart HEAD says Content-Length %s (a partial blob?)", u, cl)
			}
			if _, err := api2.getBlob(u.repo, u.digest); err != nil {
				t.Errorf("%v: after the restart HEAD answers 200, but: %v", u, err)
			}
			present[u] = true
		case r.status == http.StatusNotFound:
			if u.completed {
				t.Errorf("%v: the client had 201 Created before the SIGKILL, but after the restart HEAD answers 404", u)
			}
			if r, err := api2.do(http.MethodGet, "/v2/"+u.repo+"/blobs/"+u.digest, nil, nil); err != nil || r.status != http.StatusNotFound || r.errorCode() != "BLOB_UNKNOWN" {
				t.Errorf("%v: HEAD answers 404, GET %v %v; want 404 BLOB_UNKNOWN", u, r, err)
			}
		default:
			t.Errorf("%v: after the restart: %s, want 200 or 404", u, r)
		}
	}

	// Upload sessions: closed ones are gone; interrupted ones are gone or
	// hold what their client was told (or that plus the chunk whose answer
	// was lost), and can be finished.
	// Half of the interrupted sessions are resumed, the others left for GC.
	resumed, left := 0, 0
	var closedOpen []string
	for i, u := range uploads {
		if u.location == "" {
			continue
		}
		r, err := api2.do(http.MethodGet, u.location, nil, nil)
		if err != nil {
			t.Errorf("%v: GET its session after the restart: %v", u, err)
			continue
		}
		if u.completed || present[u] {
			// The session's PUT stored the blob: the session is closed
			// (a crash between storing and cleaning up may leave it
			// showing every byte).
			off, _ := rsRangeEnd(r.header.Get("Range"))
			if !(r.status == http.StatusNotFound && r.errorCode() == "BLOB_UPLOAD_UNKNOWN") &&
				!(r.status == http.StatusNoContent && !u.completed && off == int64(len(u.data))) {
				closedOpen = append(closedOpen, fmt.Sprintf("%v: %s (Range %q)", u, r, r.header.Get("Range")))
			}
			continue
		}
		switch r.status {
		case http.StatusNotFound:
			if r.errorCode() != "BLOB_UPLOAD_UNKNOWN" {
				t.Errorf("%v: GET its session: %s, want BLOB_UPLOAD_UNKNOWN", u, r)
			}
			continue
		case http.StatusNoContent:
		default:
			t.Errorf("%v: GET its session: %s, want 204 or 404", u, r)
			continue
		}
		off, ok := rsRangeEnd(r.header.Get("Range"))
		if !ok || (off != u.confirmed && off != u.confirmed+u.inflight) {
			t.Errorf("%v: after the restart its session has Range %q, want 0-%d (what was confirmed) or 0-%d (with the chunk in flight)",
				u, r.header.Get("Range"), u.confirmed-1, u.confirmed+u.inflight-1)
			continue
		}
		if i%2 == 1 {
			left++
			continue
		}
		if rest := u.data[off:]; len(rest) > 0 {
			r, err = rsWant(http.StatusAccepted)(api2.do(http.MethodPatch, u.location, rest, map[string]string{
				"Content-Type":  "application/octet-stream",
				"Content-Range": fmt.Sprintf("%d-%d", off, len(u.data)-1),
			}))
			if err != nil {
				t.Errorf("%v: resuming at %d: %v", u, off, err)
				continue
			}
		}
		if _, err := rsWant(http.StatusCreated)(api2.do(http.MethodPut, withDigest(u.location, u.digest), nil, octet)); err != nil {
			t.Errorf("%v: finishing the resumed upload: %v", u, err)
			continue
		}
		if _, err := api2.getBlob(u.repo, u.digest); err != nil {
			t.Errorf("%v: resumed and finished: %v", u, err)
			continue
		}
		present[u] = true
		resumed++
	}
	if len(closedOpen) > 0 {
		t.Errorf("%d upload sessions whose blob is stored still answer GET as open; want 404 BLOB_UPLOAD_UNKNOWN (the spec: the upload URL is invalid once the upload completed); the first:\n%s",
			len(closedOpen), strings.Join(closedOpen[:min(len(closedOpen), 3)], "\n"))
	}
	t.Logf("after the restart: %d blobs present, %d interrupted uploads resumed, %d left for GC", len(present), resumed, left)

	// Manifests that reference half of the blobs now present.
	referenced := map[string]bool{}
	for _, b := range keep.blobs() {
		referenced[digestOf(b)] = true
	}
	after := map[string]rsImage{}
	for r := 0; r < 4; r++ {
		repo := fmt.Sprintf("kill/r%d", r)
		var layers [][]byte
		for i, u := range uploads {
			if u.repo == repo && present[u] && i%2 == 0 {
				layers = append(layers, u.data)
			}
		}
		if len(layers) == 0 {
			continue
		}
		img := newRSImage(t, "after the restart: "+repo, layers...)
		if err := api2.push(repo, "after", img, rsSingle, ""); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		after[repo] = img
		for _, b := range img.blobs() {
			referenced[digestOf(b)] = true
		}
	}
	unreferenced := 0
	for u := range present {
		if !referenced[u.digest] {
			unreferenced++
		}
	}

	// Collect, directly (no server), once everything is past a 1s grace.
	srv2.stop(t)
	time.Sleep(1500 * time.Millisecond)
	gcConfig := filepath.Join(t.TempDir(), "gc.yaml")
	if err := os.WriteFile(gcConfig, []byte("gc:\n  grace: 1s\n  uploadTTL: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chunks := len(rsStorageFiles(t, filepath.Join(root, "storage", "uploads")))
	out, deleted, err := rsGC(root, gcConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("berth registry gc (%d upload chunk files before): %s", chunks, strings.TrimSpace(out))
	if deleted < unreferenced {
		t.Errorf("berth registry gc deleted %d blobs, but %d stored blobs no manifest references are past their grace", deleted, unreferenced)
	}
	if m := rsGCDeletedRE.FindStringSubmatch(out); left > 0 && m != nil && m[3] == "0" && m[4] == "0" {
		t.Errorf("berth registry gc (uploadTTL 1s) reported no stale uploads and no chunks, but %d interrupted uploads were left", left)
	}
	for _, d := range []string{"uploads", "_tmp"} {
		if left := rsStorageFiles(t, filepath.Join(root, "storage", d)); len(left) > 0 {
			t.Errorf("after berth registry gc (uploadTTL 1s): storage/%s still holds %d files: %q", d, len(left), left[:min(len(left), 10)])
		}
	}
	stored := rsStoredBlobs(t, root)
	for dg := range referenced {
		if !stored[dg] {
			t.Errorf("berth registry gc deleted blob %s, which a manifest references", dg)
		}
	}
	for dg := range stored {
		if !referenced[dg] {
			t.Errorf("berth registry gc left blob %s, which no manifest references, past its grace", dg)
		}
	}

	// The referenced images are whole; the other blobs are gone.
	srv3 := startBerthRegistry(t, root, "")
	api3 := newRSClient(srv3.host, "", "")
	if _, dg, err := api3.checkImage("kill/keep", "1"); err != nil || dg != keep.digest {
		t.Errorf("the image pushed before the SIGKILL, after GC: digest %s (%v), want %s", dg, err, keep.digest)
	}
	for repo, img := range after {
		if _, dg, err := api3.checkImage(repo, "after"); err != nil || dg != img.digest {
			t.Errorf("%s:after, after GC: digest %s (%v), want %s", repo, dg, err, img.digest)
		}
	}
	for u := range present {
		if referenced[u.digest] {
			continue
		}
		if r, err := api3.do(http.MethodHead, "/v2/"+u.repo+"/blobs/"+u.digest, nil, nil); err != nil || r.status != http.StatusNotFound {
			t.Errorf("%v: unreferenced and collected, but HEAD answers %v %v, want 404", u, r, err)
		}
	}
}

// ---------------------------------------------------------------------------
// TestRegistryServerGCUnderPushes

// rsSoakDuration is how long TestRegistryServerGCUnderPushes pushes:
// $BERTH_GC_SOAK (a Go duration or seconds), 60s by default.
func rsSoakDuration(t testing.TB) time.Duration {
	s := os.Getenv("BERTH_GC_SOAK")
	if s == "" {
		return 60 * time.Second
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	t.Fatalf("BERTH_GC_SOAK=%q: want a duration such as 20s, or seconds", s)
	return 0
}

// TestRegistryServerGCUnderPushes: 8 workers push images (a shared base
// layer, a unique layer, a config) in every upload flavour while half of
// them delete their older images and `berth registry gc` runs in a loop
// through the admin socket, with a 2s grace. Every push must succeed, GC
// must delete something, and afterwards every image not deleted is whole
// while a last collection leaves exactly the blobs they reference.
func TestRegistryServerGCUnderPushes(t *testing.T) {
	soak := rsSoakDuration(t)
	const grace = 2 * time.Second
	config := fmt.Sprintf("gc:\n  grace: %v\n", grace)
	srv := startBerthRegistry(t, "", config)
	confFile := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(confFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	api := newRSClient(srv.host, "", "")
	repush := newRSClient(srv.host, "", "") // for images pushed again after their deletion
	var repushes atomic.Int64
	base := rsRandom(t, 512<<10)

	type soakImage struct {
		repo, tag string
		img       rsImage
		deleted   bool
	}
	var (
		mu       sync.Mutex
		images   []*soakImage
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	rsRetries.Store(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("soak/w%d", w)
			var mine []*soakImage
			type gone struct {
				si *soakImage
				at time.Time
			}
			var deleted []gone
			for it := 0; ; it++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(mrand.IntN(60)) * time.Millisecond):
				}
				mode := []rsMode{rsSingle, rsPostPut, rsChunked, rsMount}[(w+it)%4]
				// Every fourth push of an even worker brings back one of
				// its images deleted about a grace period ago, whose own
				// blobs the collector is about to take (or just took).
				if w%2 == 0 && it%4 == 3 && len(deleted) > 0 && time.Since(deleted[0].at) > grace/2 {
					d := deleted[0]
					deleted = deleted[1:]
					si := &soakImage{repo: repo, tag: fmt.Sprintf("re%d", it), img: d.si.img}
					repushes.Add(1)
					if err := repush.push(repo, si.tag, si.img, mode, "soak/w0"); err != nil {
						fail("worker %d, pushing image %s again as %s %v after deleting it (%s): %v", w, d.si.tag, si.tag, time.Since(d.at).Round(time.Millisecond), mode, err)
						continue
					}
					mu.Lock()
					images = append(images, si)
					mu.Unlock()
					continue
				}
				unique := make([]byte, 4<<10+mrand.IntN(60<<10))
				rand.Read(unique)
				si := &soakImage{repo: repo, tag: fmt.Sprintf("i%d", it),
					img: newRSImage(t, fmt.Sprintf("worker %d image %d", w, it), base, unique)}
				if err := api.push(repo, si.tag, si.img, mode, "soak/w0"); err != nil {
					fail("worker %d, image %d (%s): %v", w, it, mode, err)
					continue
				}
				mine = append(mine, si)
				mu.Lock()
				images = append(images, si)
				mu.Unlock()
				// Even workers keep only their two newest images.
				if w%2 == 0 && len(mine) >= 3 {
					old := mine[len(mine)-3]
					if _, err := rsWant(http.StatusAccepted)(api.doRetry(http.MethodDelete, "/v2/"+repo+"/manifests/"+old.img.digest, nil, nil)); err != nil {
						fail("worker %d, deleting image %s: %v", w, old.tag, err)
						continue
					}
					mu.Lock()
					old.deleted = true
					mu.Unlock()
					deleted = append(deleted, gone{old, time.Now()})
				}
			}
		}()
	}
	var gcRuns, gcDeleted, gcMax int
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			_, n, err := rsGC(srv.root, confFile)
			if err != nil {
				fail("%v", err)
				continue
			}
			gcRuns++
			gcDeleted += n
			gcMax = max(gcMax, n)
		}
	}()
	time.Sleep(soak)
	close(stop)
	wg.Wait()
	<-gcDone

	deletedImages := 0
	for _, si := range images {
		if si.deleted {
			deletedImages++
		}
	}
	t.Logf("%v: %d images pushed, %d deleted, %d pushed again after their deletion (their blobs: %d found, %d collected and uploaded again); %d collections deleted %d blobs (at most %d at once); %d answers 503 retried",
		soak, len(images), deletedImages, repushes.Load(), repush.found.Load(), repush.uploaded.Load(), gcRuns, gcDeleted, gcMax, rsRetries.Load())
	if len(failures) > 0 {
		t.Errorf("%d pushes, deletes or collections failed; the first:\n%s", len(failures), strings.Join(failures[:min(len(failures), 20)], "\n"))
	}
	if len(images) < 16 {
		t.Errorf("only %d images were pushed in %v", len(images), soak)
	}
	if gcRuns == 0 {
		t.Fatal("berth registry gc never succeeded")
	}
	// The server did the collecting (a gc of its own would have found the
	// metadata store locked): it logs each one.
	if logged, _ := os.ReadFile(srv.logFile); bytes.Count(logged, []byte(`msg="gc on demand"`)) < gcRuns {
		t.Errorf("berth registry gc succeeded %d times, but the server logged only %d collections on demand (through %s)",
			gcRuns, bytes.Count(logged, []byte(`msg="gc on demand"`)), filepath.Join(srv.root, "admin.sock"))
	}
	if gcDeleted == 0 {
		t.Errorf("berth registry gc ran %d times and never reported deleting a blob, though %d images were deleted with %v grace", gcRuns, deletedImages, grace)
	}

	// A last collection, once every unreferenced blob is past its grace.
	time.Sleep(grace + time.Second)
	out, _, err := rsGC(srv.root, confFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("last collection: %s", strings.TrimSpace(out))
	referenced := map[string]string{} // digest -> an image holding it
	held := map[string]bool{}         // repo@digest of the manifests not deleted
	for _, si := range images {
		if !si.deleted {
			held[si.repo+"@"+si.img.digest] = true
			for _, b := range si.img.blobs() {
				referenced[digestOf(b)] = si.repo + ":" + si.tag
			}
		}
	}
	stored := rsStoredBlobs(t, srv.root)
	for dg, by := range referenced {
		if !stored[dg] {
			t.Errorf("blob %s of %s is not in storage after GC", dg, by)
		}
	}
	extra := 0
	for dg := range stored {
		if _, ok := referenced[dg]; !ok {
			extra++
			if extra <= 10 {
				t.Errorf("blob %s, which no manifest references, is still stored after a collection past its grace", dg)
			}
		}
	}
	if left := rsStorageFiles(t, filepath.Join(srv.root, "storage", "_tmp")); len(left) > 0 {
		t.Errorf("storage/_tmp holds %q after the pushes", left)
	}

	// Every image not deleted is whole; the deleted ones and their own
	// blobs are gone.
	checked := map[string]bool{} // repo + digest of blobs already fetched
	bad := 0
	for _, si := range images {
		if bad > 10 {
			t.Fatal("too many broken images")
		}
		if si.deleted {
			if held[si.repo+"@"+si.img.digest] {
				continue // pushed again under another tag
			}
			r, err := api.do(http.MethodGet, "/v2/"+si.repo+"/manifests/"+si.img.digest, nil, rsManifestAccept)
			if err != nil || r.status != http.StatusNotFound {
				t.Errorf("deleted image %s:%s: %v %v, want 404", si.repo, si.tag, r, err)
				bad++
			}
			for _, b := range [][]byte{si.img.config, si.img.layers[1]} { // its own blobs
				r, err := api.do(http.MethodHead, "/v2/"+si.repo+"/blobs/"+digestOf(b), nil, nil)
				if err != nil || r.status != http.StatusNotFound {
					t.Errorf("blob %s of the deleted image %s:%s, after GC: %v %v, want 404", digestOf(b), si.repo, si.tag, r, err)
					bad++
				}
			}
			continue
		}
		raw, dg, err := api.getManifest(si.repo, si.img.digest)
		if err == nil && !bytes.Equal(raw, si.img.manifest) {
			err = fmt.Errorf("manifest %s:%s: the registry serves other bytes than were pushed", si.repo, si.tag)
		}
		if err == nil {
			_, dg, err = api.getManifest(si.repo, si.tag)
			if err == nil && dg != si.img.digest {
				err = fmt.Errorf("tag %s:%s resolves to %s, want %s", si.repo, si.tag, dg, si.img.digest)
			}
		}
		for _, b := range si.img.blobs() {
			if key := si.repo + "@" + digestOf(b); err == nil && !checked[key] {
				_, err = api.getBlob(si.repo, digestOf(b))
				checked[key] = true
			}
		}
		if err != nil {
			t.Errorf("image %s:%s, pushed and not deleted: %v", si.repo, si.tag, err)
			bad++
		}
	}
}

// ---------------------------------------------------------------------------
// TestRegistryServerGCSlowUpload

// TestRegistryServerGCSlowUpload: a blob whose upload outlasts the grace
// period ends while a collection is deleting garbage. Whatever the
// collector decides about it, the registry must not acknowledge the upload
// (201) and then lose the bytes: after a 201 the blob is readable.
func TestRegistryServerGCSlowUpload(t *testing.T) {
	const grace = time.Second
	srv := startBerthRegistry(t, "", fmt.Sprintf("gc:\n  grace: %v\n", grace))
	api := newRSClient(srv.host, "", "")
	blobFile := func(dg string) string {
		hex := strings.TrimPrefix(dg, "sha256:")
		return filepath.Join(srv.root, "storage", "blobs", "sha256", hex[:2], hex)
	}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }

	for attempt := 1; attempt <= 3; attempt++ {
		// Garbage: unreferenced blobs whose digests all sort before the
		// slow blob's, which the collector therefore deletes last.
		const garbage = 3000
		digests := make([]string, garbage)
		var wg sync.WaitGroup
		var failed atomic.Value
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < garbage; i += 16 {
					b := make([]byte, 1024)
					for {
						rand.Read(b)
						if digests[i] = digestOf(b); !strings.HasPrefix(digests[i], "sha256:f") {
							break
						}
					}
					if err := api.pushBlob("slow/garbage", b, rsSingle, ""); err != nil {
						failed.Store(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}
		first, last := slices.Min(digests), slices.Max(digests)
		var slow []byte
		for slow == nil || !strings.HasPrefix(digestOf(slow), "sha256:ff") {
			slow = rsRandom(t, 256<<10)
		}
		slowDigest := digestOf(slow)

		// The slow upload: all but its last byte now.
		pr, pw := io.Pipe()
		answer := make(chan rsResp, 1)
		go func() {
			r, err := api.stream(http.MethodPost, "/v2/slow/blob/blobs/uploads/?digest="+url.QueryEscape(slowDigest), pr, int64(len(slow)), octet)
			if err != nil {
				r.status, r.body = -1, []byte(err.Error())
			}
			pr.Close()
			answer <- r
		}()
		if _, err := pw.Write(slow[:len(slow)-1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(grace + 500*time.Millisecond)

		// A collection; once it deletes the first garbage blob, the rest
		// of the upload.
		type gcResult struct {
			out     string
			deleted int
			err     error
		}
		gcDone := make(chan gcResult, 1)
		go func() {
			out, n, err := rsGC(srv.root, "")
			gcDone <- gcResult{out, n, err}
		}()
		deadline := time.Now().Add(30 * time.Second)
		for exists(blobFile(first)) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
		pw.Write(slow[len(slow)-1:])
		pw.Close()
		inWindow := false
		for time.Now().Before(deadline) {
			if exists(blobFile(slowDigest)) {
				inWindow = exists(blobFile(last))
				break
			}
			if len(answer) > 0 {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		r := <-answer
		g := <-gcDone
		if g.err != nil {
			t.Fatal(g.err)
		}
		t.Logf("attempt %d: the upload answered %d; its bytes landed while the collection was still deleting: %v; %s", attempt, r.status, inWindow, strings.TrimSpace(g.out))
		if g.deleted < garbage {
			t.Errorf("the collection deleted %d blobs, want at least the %d unreferenced ones", g.deleted, garbage)
		}

		h, err := api.do(http.MethodHead, "/v2/slow/blob/blobs/"+slowDigest, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.status == http.StatusCreated && h.status != http.StatusOK:
			t.Errorf("POST of blob %s answered 201 Created, but HEAD right after answers %s: the collection deleted an acknowledged blob", slowDigest, h)
		case h.status == http.StatusOK:
			if _, err := api.getBlob("slow/blob", slowDigest); err != nil {
				t.Errorf("upload answered %s; HEAD %s answers 200, but the bytes are gone: %v (storage file present: %v)",
					r, slowDigest, err, exists(blobFile(slowDigest)))
			}
		case h.status != http.StatusNotFound:
			t.Errorf("HEAD %s: %s, want 200 or 404", slowDigest, h)
		}
		if inWindow || t.Failed() {
			return
		}
	}
	t.Log("the upload never finished inside the collection's window; nothing was tested beyond the outcome checks")
}

// ---------------------------------------------------------------------------
// TestRegistryServerGCSeenBlobs

// TestRegistryServerGCSeenBlobs: the collector spares a blob a client saw
// (HEAD 200) within the grace period — that is what lets a client skip
// uploading a layer the registry has and push a manifest naming it. Blobs
// unreferenced and untouched for longer than the grace period are each
// HEADed once, at staggered moments around the start of a collection: every
// blob whose HEAD answered 200 must still be there afterwards, and a
// manifest may name it.
func TestRegistryServerGCSeenBlobs(t *testing.T) {
	const grace = time.Second
	srv := startBerthRegistry(t, "", fmt.Sprintf("gc:\n  grace: %v\n", grace))
	api := newRSClient(srv.host, "", "")
	const targets, garbage = 300, 3000
	blobs := make([][]byte, targets+garbage)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(blobs); i += 16 {
				b := make([]byte, 512)
				rand.Read(b)
				blobs[i] = b
				if err := api.pushBlob("seen/blobs", b, rsSingle, ""); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	time.Sleep(grace + 500*time.Millisecond)

	gcDone := make(chan error, 1)
	go func() {
		_, _, err := rsGC(srv.root, "")
		gcDone <- err
	}()
	seen := make([]int, targets) // HEAD status per target
	start := time.Now()
	for i := range targets {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Millisecond)))
		r, err := api.do(http.MethodHead, "/v2/seen/blobs/blobs/"+digestOf(blobs[i]), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[i] = r.status
	}
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	var lost []string
	var sawOK, sawGone int
	var keep [][]byte
	for i, st := range seen {
		switch st {
		case http.StatusNotFound:
			sawGone++
			continue
		case http.StatusOK:
			sawOK++
		default:
			t.Fatalf("HEAD blob %d during the collection: %d, want 200 or 404", i, st)
		}
		dg := digestOf(blobs[i])
		if _, err := api.getBlob("seen/blobs", dg); err != nil {
			lost = append(lost, fmt.Sprintf("target %d (HEAD at +%dms): %v", i, i, err))
			continue
		}
		keep = append(keep, blobs[i])
	}
	t.Logf("during the collection %d blobs answered HEAD 200 and %d 404", sawOK, sawGone)
	if sawGone == 0 || sawOK == 0 {
		t.Logf("the HEADs did not straddle the collection's start; the race was not exercised")
	}
	if len(lost) > 0 {
		t.Errorf("%d blobs answered HEAD 200 while a collection ran, then were collected anyway (a client that skipped uploading them gets MANIFEST_BLOB_UNKNOWN); the first:\n%s",
			len(lost), strings.Join(lost[:min(len(lost), 5)], "\n"))
	}
	if len(keep) > 0 {
		img := newRSImage(t, "seen blobs", keep...)
		if err := api.push("seen/blobs", "kept", img, rsSingle, ""); err != nil {
			t.Errorf("a manifest naming the blobs that answered HEAD 200 during the collection: %v", err)
		}
	}
}

//go:build linux

package test

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Media types the registry tests look for.
const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtOCILayerGzip   = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtOCILayerZstd   = "application/vnd.oci.image.layer.v1.tar+zstd"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// ---------------------------------------------------------------------------
// a private registry: Debian's docker-registry (Distribution 2.8)

var registryOnce once

// needRegistry installs docker-registry and htpasswd (apache2-utils) if they
// are missing.
func needRegistry(t testing.TB) {
	t.Helper()
	needRoot(t)
	registryOnce.Do(func() {
		if !haveCommand("docker-registry", "/usr/bin/docker-registry") || !haveCommand("htpasswd", "/usr/bin/htpasswd") {
			registryOnce.err = hackScript("install-deps.sh", "docker-registry", "apache2-utils")
		}
	})
	if registryOnce.err != nil {
		t.Fatal(registryOnce.err)
	}
}

// registry is one running docker-registry process.
type registry struct {
	host       string // "127.0.0.1:PORT"
	user, pass string // set when the registry asks for htpasswd logins
}

// startRegistry runs `docker-registry serve` on a free 127.0.0.1 port with
// its storage in a temporary directory, optionally behind htpasswd basic
// auth, waits until /v2/ answers as configured and stops it when the test
// ends (showing its log if the test failed).
func startRegistry(t *testing.T, auth bool) *registry {
	t.Helper()
	needRegistry(t)
	dir := t.TempDir()
	reg := &registry{}
	authConf := ""
	if auth {
		reg.user, reg.pass = "berth", "pw-"+randomHex(t, 8)
		htpasswd := strings.TrimSpace(run(t, "htpasswd", "-Bbn", reg.user, reg.pass))
		if !strings.HasPrefix(htpasswd, reg.user+":$2") {
			t.Fatalf("htpasswd -Bbn printed %q, want a bcrypt entry for %s", htpasswd, reg.user)
		}
		file := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(file, []byte(htpasswd+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		authConf = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", file)
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		reg.host = fmt.Sprintf("127.0.0.1:%d", port)
		conf := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
%s`, filepath.Join(dir, "data"), reg.host, randomHex(t, 16), authConf)
		confFile := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
		if lastErr = reg.serve(t, confFile, logFile, auth); lastErr == nil {
			return reg
		}
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
	}
	t.Fatalf("docker-registry: %v", lastErr)
	return nil
}

var errPortTaken = errors.New("port taken")

func (reg *registry) serve(t *testing.T, confFile, logFile string, auth bool) error {
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("docker-registry", "serve", confFile)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	want := http.StatusOK
	if auth {
		want = http.StatusUnauthorized
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			data, _ := os.ReadFile(logFile)
			if bytes.Contains(data, []byte("address already in use")) {
				return errPortTaken
			}
			return fmt.Errorf("exited before answering on %s:\n%s", reg.host, data)
		default:
		}
		// Only our process logs this once it holds the port; an answer on
		// the port before that could come from someone else's server.
		data, _ := os.ReadFile(logFile)
		bound := bytes.Contains(data, []byte("listening on "+reg.host))
		resp, err := client.Get("http://" + reg.host + "/v2/")
		if err == nil && !bound {
			resp.Body.Close()
			err = errors.New("answered before docker-registry logged that it listens")
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != want {
				stop()
				return fmt.Errorf("GET /v2/ answered %d, want %d", resp.StatusCode, want)
			}
			if auth && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				stop()
				return fmt.Errorf("GET /v2/: WWW-Authenticate %q, want a Basic challenge", resp.Header.Get("WWW-Authenticate"))
			}
			break
		}
		if time.Now().After(deadline) {
			stop()
			data, _ := os.ReadFile(logFile)
			return fmt.Errorf("no answer on %s within 30s: %v\n%s", reg.host, err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("docker-registry log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// get fetches /v2/PATH straight from the registry (with the registry's
// credentials, if it has any) and fails the test unless it answers 200.
func (reg *registry) get(t testing.TB, path string, accept ...string) ([]byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+reg.host+"/v2/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	if reg.user != "" {
		req.SetBasicAuth(reg.user, reg.pass)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", req.URL, resp.Status, body)
	}
	return body, resp.Header
}

// manifest returns what the registry serves for repo (path without the
// host) and ref (tag or digest): the raw bytes, their digest (checked
// against Docker-Content-Digest) and the media type.
func (reg *registry) manifest(t testing.TB, repo, ref string) (raw []byte, digest, mediaType string) {
	t.Helper()
	raw, h := reg.get(t, repo+"/manifests/"+ref, mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList)
	digest = digestOf(raw)
	if got := h.Get("Docker-Content-Digest"); got != digest {
		t.Fatalf("registry: manifest %s:%s has digest %s but Docker-Content-Digest %s", repo, ref, digest, got)
	}
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatalf("registry: manifest %s:%s: %v", repo, ref, err)
	}
	return raw, digest, probe.MediaType
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	RootFS       struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// checkStored verifies an image manifest the registry holds: its config
// blob has digest wantID, and every layer blob has its digest and size and
// decompresses (per its media type) to the config's diff ID. It returns the
// parsed manifest.
func (reg *registry) checkStored(t testing.TB, repo, ref, wantID string) ociManifest {
	t.Helper()
	raw, _, _ := reg.manifest(t, repo, ref)
	var m ociManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("registry: manifest %s:%s: %v", repo, ref, err)
	}
	if m.Config.Digest != wantID {
		t.Fatalf("registry: manifest %s:%s names config %s, want the image ID %s", repo, ref, m.Config.Digest, wantID)
	}
	cfgRaw, _ := reg.get(t, repo+"/blobs/"+m.Config.Digest)
	if digestOf(cfgRaw) != wantID || int64(len(cfgRaw)) != m.Config.Size {
		t.Fatalf("registry: config blob of %s:%s: digest %s size %d, want %s size %d", repo, ref, digestOf(cfgRaw), len(cfgRaw), wantID, m.Config.Size)
	}
	var cfg imageConfig
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		t.Fatalf("registry: config of %s:%s: %v", repo, ref, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("registry: %s:%s has %d layers but %d diff IDs", repo, ref, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		blob, _ := reg.get(t, repo+"/blobs/"+l.Digest)
		if digestOf(blob) != l.Digest || int64(len(blob)) != l.Size {
			t.Fatalf("registry: layer %s: digest %s size %d, manifest says size %d", l.Digest, digestOf(blob), len(blob), l.Size)
		}
		var r io.Reader = bytes.NewReader(blob)
		switch l.MediaType {
		case mtOCILayerGzip, mtDockerLayer:
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("registry: layer %s (%s): %v", l.Digest, l.MediaType, err)
			}
			r = zr
		case mtOCILayerZstd:
			zr, err := zstd.NewReader(r)
			if err != nil {
				t.Fatalf("registry: layer %s (%s): %v", l.Digest, l.MediaType, err)
			}
			defer zr.Close()
			r = zr
		default:
			t.Fatalf("registry: layer %s has media type %q", l.Digest, l.MediaType)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("registry: layer %s (%s): %v", l.Digest, l.MediaType, err)
		}
		if got := digestOf(plain); got != cfg.RootFS.DiffIDs[i] {
			t.Errorf("registry: layer %s decompresses to %s, config's diff ID is %s", l.Digest, got, cfg.RootFS.DiffIDs[i])
		}
	}
	return m
}

// ---------------------------------------------------------------------------
// running berth with a private Docker config

// clientEnv is an environment with HOME, DOCKER_CONFIG and the places
// Podman-style auth files are looked for all inside a fresh temporary
// directory, so neither berth nor docker reads or writes the real
// ~/.docker/config.json. It also returns the config.json path.
func clientEnv(t testing.TB) ([]string, string) {
	t.Helper()
	home := t.TempDir()
	cfgDir := filepath.Join(home, ".docker")
	return []string{
		"HOME=" + home,
		"DOCKER_CONFIG=" + cfgDir,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
		"REGISTRY_AUTH_FILE=",
	}, filepath.Join(cfgDir, "config.json")
}

// berthEnv runs berth with extra environment and the given standard input
// (none if empty); it fails the test only if berth could not be run.
func berthEnv(t testing.TB, env []string, root, stdin string, args ...string) result {
	t.Helper()
	needBerth(t)
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	r, err := execute(in, env, berthBin, berthArgs(root, args)...)
	if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// berthEnvOK is berthEnv that fails the test unless berth exits 0; it
// returns the standard output.
func berthEnvOK(t testing.TB, env []string, root string, args ...string) string {
	t.Helper()
	r := berthEnv(t, env, root, "", args...)
	if r.code != 0 {
		t.Fatalf("berth %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// peerEnv runs a peer command with extra environment and standard input,
// failing the test unless it exits 0.
func peerEnv(t testing.TB, env []string, stdin, name string, args ...string) string {
	t.Helper()
	r, err := execute(strings.NewReader(stdin), env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	if r.code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.stdout
}

// ---------------------------------------------------------------------------
// push and pull output

var (
	layerLineRE  = regexp.MustCompile(`^([0-9a-f]{12}): (.+)$`)
	pushDigestRE = regexp.MustCompile(`^(\S+): digest: (sha256:[0-9a-f]{64}) size: ([0-9]+)$`)
)

type pushReport struct {
	digest string
	size   int
	layers map[string][]string // short layer digest -> statuses in order
}

// parsePush checks berth push's output line by line: the repository line,
// only known per-layer statuses, and last the digest line for tag.
func parsePush(t testing.TB, out, repo, tag string) pushReport {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("berth push: output too short:\n%s", out)
	}
	if want := "The push refers to repository [" + repo + "]"; lines[0] != want {
		t.Errorf("berth push: first line %q, want %q", lines[0], want)
	}
	m := pushDigestRE.FindStringSubmatch(lines[len(lines)-1])
	if m == nil || m[1] != tag {
		t.Fatalf("berth push: last line %q, want %q", lines[len(lines)-1], tag+": digest: sha256:<64 hex> size: N")
	}
	rep := pushReport{digest: m[2], layers: map[string][]string{}}
	fmt.Sscan(m[3], &rep.size)
	for _, l := range lines[1 : len(lines)-1] {
		lm := layerLineRE.FindStringSubmatch(l)
		if lm == nil || !slices.Contains([]string{"Preparing", "Layer already exists", "Pushing", "Pushed"}, lm[2]) {
			t.Errorf("berth push: unexpected line %q in\n%s", l, out)
			continue
		}
		rep.layers[lm[1]] = append(rep.layers[lm[1]], lm[2])
	}
	return rep
}

// pushedDigest finds "TAG: digest: sha256:… size: N" in a peer's push
// output.
func pushedDigest(t testing.TB, out, tag string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if m := pushDigestRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil && m[1] == tag {
			return m[2]
		}
	}
	t.Fatalf("push output has no %q line:\n%s", tag+": digest: …", out)
	return ""
}

type pullReport struct {
	digest, status string
	layers         map[string][]string
}

// parsePull checks berth pull's output: "TAG: Pulling from REPO" first
// (optional for a pull by digest), known per-layer statuses, exactly one
// Digest and one Status line, and last the full name.
func parsePull(t testing.TB, out, name string) pullReport {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("berth pull %s: output too short:\n%s", name, out)
	}
	if lines[len(lines)-1] != name {
		t.Errorf("berth pull %s: last line %q, want the full name", name, lines[len(lines)-1])
	}
	rep := pullReport{layers: map[string][]string{}}
	// Docker starts with "TAG: Pulling from REPO" (or "DIGEST: …" for a
	// pull by digest).
	repo, tag := name, ""
	if i := strings.Index(name, "@"); i >= 0 {
		repo, tag = name[:i], name[i+1:]
	} else if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo, tag = name[:i], name[i+1:]
	}
	for i, l := range lines[:len(lines)-1] {
		switch {
		case i == 0 && strings.Contains(l, ": Pulling from "):
			if l != tag+": Pulling from "+repo {
				t.Errorf("berth pull %s: first line %q, want %q", name, l, tag+": Pulling from "+repo)
			}
		case strings.HasPrefix(l, "Digest: "):
			if rep.digest != "" || !idRE.MatchString(strings.TrimPrefix(l, "Digest: ")) {
				t.Errorf("berth pull %s: bad or repeated line %q", name, l)
			}
			rep.digest = strings.TrimPrefix(l, "Digest: ")
		case strings.HasPrefix(l, "Status: "):
			if rep.status != "" {
				t.Errorf("berth pull %s: second Status line %q", name, l)
			}
			rep.status = strings.TrimPrefix(l, "Status: ")
		default:
			lm := layerLineRE.FindStringSubmatch(l)
			if lm == nil || !slices.Contains([]string{"Pulling fs layer", "Pull complete", "Already exists"}, lm[2]) {
				t.Errorf("berth pull %s: unexpected line %q", name, l)
				continue
			}
			rep.layers[lm[1]] = append(rep.layers[lm[1]], lm[2])
		}
	}
	if !strings.Contains(name, "@") && !strings.Contains(lines[0], ": Pulling from ") {
		t.Errorf("berth pull %s: first line %q, want %q", name, lines[0], tag+": Pulling from "+repo)
	}
	if rep.digest == "" || rep.status == "" {
		t.Fatalf("berth pull %s: no Digest or Status line in\n%s", name, out)
	}
	return rep
}

func shortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) < 12 {
		return h
	}
	return h[:12]
}

// checkFreshPull checks the output of a pull that had to download m's
// layers.
func checkFreshPull(t testing.TB, out, name string, m ociManifest) pullReport {
	t.Helper()
	rep := parsePull(t, out, name)
	if want := "Downloaded newer image for " + name; rep.status != want {
		t.Errorf("berth pull %s: Status %q, want %q", name, rep.status, want)
	}
	if len(rep.layers) != len(m.Layers) {
		t.Errorf("berth pull %s: progress for %d layers, the manifest has %d:\n%s", name, len(rep.layers), len(m.Layers), out)
	}
	for _, l := range m.Layers {
		st := rep.layers[shortDigest(l.Digest)]
		if len(st) == 0 || st[len(st)-1] != "Pull complete" || st[0] != "Pulling fs layer" {
			t.Errorf("berth pull %s: layer %s went %q, want Pulling fs layer … Pull complete", name, shortDigest(l.Digest), st)
		}
	}
	return rep
}

// repoDigests is berth's RepoDigests for ref.
func repoDigests(t testing.TB, root, ref string) []string {
	t.Helper()
	var ds []string
	out := berth(t, root, "inspect", "-f", "{{json .RepoDigests}}", ref)
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatalf("berth inspect -f '{{json .RepoDigests}}' %s: %q: %v", ref, out, err)
	}
	return ds
}

func assertRepoDigest(t testing.TB, root, ref, want string) {
	t.Helper()
	if ds := repoDigests(t, root, ref); !slices.Contains(ds, want) {
		t.Errorf("berth inspect %s: RepoDigests %q, want %s among them", ref, ds, want)
	}
	out := berth(t, root, "inspect", "-f", "{{.RepoDigests}}", ref)
	if !strings.Contains(out, want) {
		t.Errorf("berth inspect -f '{{.RepoDigests}}' %s: %q lacks %s", ref, out, want)
	}
}

// pullByDigest pulls ref (REPO@sha256:…, the digest of manifest m) into a
// fresh root and checks the image: ID wantID, no tag, ref among its
// RepoDigests, ref usable as a name for it, a sound store and root
// filesystem.
func pullByDigest(t *testing.T, env []string, ref, wantID string, m ociManifest) {
	t.Helper()
	root := newRoot(t)
	out := berthEnvOK(t, env, root, "pull", ref)
	rep := checkFreshPull(t, out, ref, m)
	if want := ref[strings.Index(ref, "@")+1:]; rep.digest != want {
		t.Errorf("berth pull %s: Digest %s, want %s", ref, rep.digest, want)
	}
	berthID(t, root, wantID) // fails unless the image is there
	assertRepoDigest(t, root, wantID, ref)
	if got := strings.TrimSpace(berth(t, root, "inspect", "-f", "{{json .RepoTags}}", wantID)); got != "[]" && got != "null" {
		t.Errorf("berth pull %s: RepoTags %s, want none for a pull by digest", ref, got)
	}
	// Docker lets the digest reference name the image it pulled.
	code, stdout, stderr := berthErr(t, root, "inspect", "-f", "{{.Id}}", ref)
	if code != 0 || strings.TrimSpace(stdout) != wantID {
		t.Errorf("after berth pull %s: berth inspect -f '{{.Id}}' %s: exit %d, stdout %q, stderr %q; want %s", ref, ref, code, stdout, stderr, wantID)
	}
	checkLoaded(t, root, wantID, nil)
}

// assertNoImages fails unless the berth root lists no images.
func assertNoImages(t testing.TB, root string) {
	t.Helper()
	if out := berth(t, root, "images", "-q", "-a"); strings.TrimSpace(out) != "" {
		t.Errorf("berth images -q -a: %q, want no images after the failed pull", out)
	}
}

// ---------------------------------------------------------------------------
// tests

// TestRegistryPushPull: an image imported into berth goes to a registry and
// comes back into a fresh root with the same ID and contents; pushing and
// pulling again transfers nothing; zstd layers work both ways.
func TestRegistryPushPull(t *testing.T) {
	reg := startRegistry(t, false)
	env, _ := clientEnv(t)
	path := uniqueRepo(t, "busybox")
	repo := reg.host + "/" + path
	name := repo + ":1"

	src := newRoot(t)
	id := berthImport(t, src, "-c", `CMD ["sh"]`, busyboxTar(t), name)

	// First push: every layer is uploaded.
	out := berthEnvOK(t, env, src, "push", name)
	push := parsePush(t, out, repo, "1")
	_, regDigest, mt := reg.manifest(t, path, "1")
	if push.digest != regDigest {
		t.Errorf("berth push printed digest %s, the registry serves %s", push.digest, regDigest)
	}
	if mt != mtOCIManifest && mt != mtDockerManifest {
		t.Errorf("registry: pushed manifest has media type %q", mt)
	}
	m := reg.checkStored(t, path, "1", id)
	raw, _, _ := reg.manifest(t, path, "1")
	if push.size != len(raw) {
		t.Errorf("berth push printed size %d, the manifest has %d bytes", push.size, len(raw))
	}
	if len(push.layers) != len(m.Layers) {
		t.Errorf("berth push: progress for %d layers, the manifest has %d:\n%s", len(push.layers), len(m.Layers), out)
	}
	for _, l := range m.Layers {
		if l.MediaType != mtOCILayerGzip && l.MediaType != mtDockerLayer {
			t.Errorf("berth push: layer %s has media type %q, want gzip (the default)", l.Digest, l.MediaType)
		}
		st := push.layers[shortDigest(l.Digest)]
		if len(st) == 0 || st[len(st)-1] != "Pushed" || slices.Contains(st, "Layer already exists") {
			t.Errorf("berth push: layer %s went %q, want … Pushed", shortDigest(l.Digest), st)
		}
	}
	digestRef := repo + "@" + push.digest
	assertRepoDigest(t, src, name, digestRef)

	// manifest inspect shows what the registry holds.
	var fromBerth, fromReg any
	if err := json.Unmarshal([]byte(berthEnvOK(t, env, src, "manifest", "inspect", name)), &fromBerth); err != nil {
		t.Fatalf("berth manifest inspect %s: %v", name, err)
	}
	json.Unmarshal(raw, &fromReg)
	if !reflect.DeepEqual(fromBerth, fromReg) {
		t.Errorf("berth manifest inspect %s: %v\nthe registry serves %s", name, fromBerth, raw)
	}

	// Second push: nothing to upload, same manifest.
	out = berthEnvOK(t, env, src, "push", name)
	again := parsePush(t, out, repo, "1")
	if again.digest != push.digest {
		t.Errorf("second berth push: digest %s, first push %s", again.digest, push.digest)
	}
	for _, l := range m.Layers {
		if st := again.layers[shortDigest(l.Digest)]; !reflect.DeepEqual(st, []string{"Layer already exists"}) {
			t.Errorf("second berth push: layer %s went %q, want only \"Layer already exists\"\n%s", shortDigest(l.Digest), st, out)
		}
	}

	// Pull into a fresh root.
	dst := newRoot(t)
	out = berthEnvOK(t, env, dst, "pull", name)
	rep := checkFreshPull(t, out, name, m)
	if rep.digest != push.digest {
		t.Errorf("berth pull: Digest %s, pushed %s", rep.digest, push.digest)
	}
	if got := berthID(t, dst, name); got != id {
		t.Fatalf("berth pull %s: Id %s, pushed image's is %s", name, got, id)
	}
	checkLoaded(t, dst, name, map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"})
	assertRepoDigest(t, dst, name, digestRef)

	// Second pull: up to date, nothing downloaded.
	out = berthEnvOK(t, env, dst, "pull", name)
	rep = parsePull(t, out, name)
	if want := "Image is up to date for " + name; rep.status != want {
		t.Errorf("second berth pull: Status %q, want %q\n%s", rep.status, want, out)
	}
	if len(rep.layers) != 0 {
		t.Errorf("second berth pull: layer progress %v, want none\n%s", rep.layers, out)
	}
	if got := berthID(t, dst, name); got != id {
		t.Errorf("after second pull: Id %s, want %s", got, id)
	}
	systemCheck(t, dst)

	t.Run("quiet", func(t *testing.T) {
		root := newRoot(t)
		if out := berthEnvOK(t, env, root, "pull", "-q", name); out != name+"\n" {
			t.Errorf("berth pull -q %s: printed %q, want only the full name", name, out)
		}
		if got := berthID(t, root, name); got != id {
			t.Errorf("berth pull -q: Id %s, want %s", got, id)
		}
		systemCheck(t, root)
	})

	t.Run("by-digest", func(t *testing.T) {
		pullByDigest(t, env, digestRef, id, m)
	})

	t.Run("missing", func(t *testing.T) {
		root := newRoot(t)
		r := berthEnv(t, env, root, "", "pull", repo+":no-such-tag")
		if r.code == 0 {
			t.Errorf("berth pull of a tag the registry lacks: exit 0, want failure\n%s", r)
		}
		if !regexp.MustCompile(`(?i)manifest unknown|not found|404`).MatchString(r.stderr) {
			t.Errorf("berth pull of a tag the registry lacks: stderr %q does not say it was not found", r.stderr)
		}
		assertNoImages(t, root)
		r = berthEnv(t, env, src, "", "push", "--compression-format", "lz4", name)
		if r.code == 0 {
			t.Errorf("berth push --compression-format lz4: exit 0, want an error\n%s", r)
		}
	})

	t.Run("zstd", func(t *testing.T) {
		zname := repo + ":zstd"
		berth(t, src, "tag", name, zname)
		out := berthEnvOK(t, env, src, "push", "--compression-format", "zstd", zname)
		zpush := parsePush(t, out, repo, "zstd")
		zm := reg.checkStored(t, path, "zstd", id)
		for _, l := range zm.Layers {
			if l.MediaType != mtOCILayerZstd {
				t.Errorf("berth push --compression-format zstd: layer %s has media type %q, want %s", l.Digest, l.MediaType, mtOCILayerZstd)
			}
		}
		if zpush.digest == push.digest {
			t.Errorf("zstd push has the same manifest digest as the gzip push: %s", zpush.digest)
		}
		root := newRoot(t)
		checkFreshPull(t, berthEnvOK(t, env, root, "pull", zname), zname, zm)
		if got := berthID(t, root, zname); got != id {
			t.Errorf("berth pull %s (zstd): Id %s, want %s", zname, got, id)
		}
		checkLoaded(t, root, zname, nil)
		assertRepoDigest(t, root, zname, repo+"@"+zpush.digest)
	})
}

// TestRegistryPeersPullBerthPush: what berth pushed, Docker and Podman pull
// with berth's image ID and run.
func TestRegistryPeersPullBerthPush(t *testing.T) {
	reg := startRegistry(t, false)
	env, _ := clientEnv(t)
	path := uniqueRepo(t, "busybox")
	repo := reg.host + "/" + path
	name := repo + ":1"
	src := newRoot(t)
	id := berthImport(t, src, "-c", `CMD ["sh"]`, busyboxTar(t), name)
	push := parsePush(t, berthEnvOK(t, env, src, "push", name), repo, "1")
	reg.checkStored(t, path, "1", id)

	t.Run("docker", func(t *testing.T) {
		needDocker(t)
		dockerCleanup(t, name)
		run(t, "docker", "pull", name)
		if got := dockerID(t, name); got != id {
			t.Fatalf("docker pull %s: Id %s, berth's is %s", name, got, id)
		}
		var ds []string
		json.Unmarshal([]byte(run(t, "docker", "inspect", "-f", "{{json .RepoDigests}}", name)), &ds)
		if !slices.Contains(ds, repo+"@"+push.digest) {
			t.Errorf("docker inspect %s: RepoDigests %q, want %s", name, ds, repo+"@"+push.digest)
		}
		if got := run(t, "docker", "run", "--rm", "--network", "none", name, "echo", "hi"); got != "hi\n" {
			t.Errorf("docker run %s echo hi: printed %q", name, got)
		}
	})

	t.Run("podman", func(t *testing.T) {
		needPodman(t)
		podmanCleanup(t, name)
		run(t, "podman", "pull", "-q", "--tls-verify=false", name)
		if got := podmanID(t, name); got != id {
			t.Fatalf("podman pull %s: Id %s, berth's is %s", name, got, id)
		}
		if got := run(t, "podman", "run", "--rm", "--network", "none", name, "echo", "hi"); got != "hi\n" {
			t.Errorf("podman run %s echo hi: printed %q", name, got)
		}
	})

	t.Run("podman-zstd", func(t *testing.T) {
		needPodman(t)
		zname := repo + ":zstd"
		berth(t, src, "tag", name, zname)
		berthEnvOK(t, env, src, "push", "--compression-format", "zstd", zname)
		podmanCleanup(t, zname)
		run(t, "podman", "pull", "-q", "--tls-verify=false", zname)
		if got := podmanID(t, zname); got != id {
			t.Fatalf("podman pull %s (zstd layers): Id %s, berth's is %s", zname, got, id)
		}
		if got := run(t, "podman", "run", "--rm", "--network", "none", zname, "echo", "hi"); got != "hi\n" {
			t.Errorf("podman run %s echo hi: printed %q", zname, got)
		}
	})
}

// TestRegistryBerthPullsPeers: images Docker, skopeo and Podman pushed come
// into berth, by tag and by digest, with the peer's image ID.
func TestRegistryBerthPullsPeers(t *testing.T) {
	reg := startRegistry(t, false)
	env, _ := clientEnv(t)
	bb := busyboxTar(t)

	// pullBoth pulls name and repo@digest into fresh roots and checks both.
	pullBoth := func(t *testing.T, path, tag, digest, wantID string) {
		t.Helper()
		repo := reg.host + "/" + path
		name := repo + ":" + tag
		_, regDigest, _ := reg.manifest(t, path, tag)
		if regDigest != digest {
			t.Fatalf("the peer reported digest %s, the registry serves %s", digest, regDigest)
		}
		m := reg.checkStored(t, path, tag, wantID)

		root := newRoot(t)
		rep := checkFreshPull(t, berthEnvOK(t, env, root, "pull", name), name, m)
		if rep.digest != digest {
			t.Errorf("berth pull %s: Digest %s, want %s", name, rep.digest, digest)
		}
		if got := berthID(t, root, name); got != wantID {
			t.Fatalf("berth pull %s: Id %s, the peer's is %s", name, got, wantID)
		}
		assertRepoDigest(t, root, name, repo+"@"+digest)
		checkLoaded(t, root, name, nil)

		pullByDigest(t, env, repo+"@"+digest, wantID, m)
	}

	t.Run("docker", func(t *testing.T) {
		needDocker(t)
		path := uniqueRepo(t, "docker")
		name := reg.host + "/" + path + ":1"
		dockerCleanup(t, name)
		run(t, "docker", "import", "-c", `CMD ["sh"]`, bb, name)
		id := dockerID(t, name)
		digest := pushedDigest(t, run(t, "docker", "push", name), "1")
		pullBoth(t, path, "1", digest, id)
	})

	t.Run("skopeo", func(t *testing.T) {
		needSkopeo(t)
		dir := t.TempDir()
		archive := filepath.Join(dir, "docker.tar")
		id := writeDockerArchive(t, archive, bb, "busybox:latest")
		path := uniqueRepo(t, "skopeo")
		digestFile := filepath.Join(dir, "digest")
		run(t, "skopeo", "copy", "-q", "--dest-tls-verify=false", "--digestfile", digestFile,
			"docker-archive:"+archive, "docker://"+reg.host+"/"+path+":1")
		digest, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatal(err)
		}
		pullBoth(t, path, "1", strings.TrimSpace(string(digest)), id)
	})

	t.Run("podman", func(t *testing.T) {
		needPodman(t)
		path := uniqueRepo(t, "podman")
		local := "localhost/" + path + ":1"
		podmanCleanup(t, local)
		run(t, "podman", "import", "-q", "-c", `CMD ["sh"]`, bb, local)
		id := podmanID(t, local)
		digestFile := filepath.Join(t.TempDir(), "digest")
		run(t, "podman", "push", "-q", "--tls-verify=false", "--digestfile", digestFile, local, "docker://"+reg.host+"/"+path+":1")
		digest, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatal(err)
		}
		pullBoth(t, path, "1", strings.TrimSpace(string(digest)), id)
	})
}

// TestRegistryAuth: a registry behind htpasswd logins refuses berth until
// `berth login` (or `docker login`) saved credentials, and again after
// `berth logout`; a wrong password is refused at login.
func TestRegistryAuth(t *testing.T) {
	reg := startRegistry(t, true)
	env, configFile := clientEnv(t)
	path := uniqueRepo(t, "busybox")
	repo := reg.host + "/" + path
	name := repo + ":1"
	src := newRoot(t)
	id := berthImport(t, src, "-c", `CMD ["sh"]`, busyboxTar(t), name)
	authRE := regexp.MustCompile(`(?i)unauthorized|authentication required|401`)

	savedAuth := func() (string, bool) {
		data, err := os.ReadFile(configFile)
		if os.IsNotExist(err) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		var cf struct {
			Auths map[string]struct {
				Auth string `json:"auth"`
			} `json:"auths"`
		}
		if err := json.Unmarshal(data, &cf); err != nil {
			t.Fatalf("%s: %v\n%s", configFile, err, data)
		}
		a, ok := cf.Auths[reg.host]
		return a.Auth, ok
	}
	wantAuth := base64.StdEncoding.EncodeToString([]byte(reg.user + ":" + reg.pass))

	refused := func(t *testing.T, what string, args ...string) {
		t.Helper()
		root := newRoot(t)
		r := berthEnv(t, env, root, "", args...)
		if r.code == 0 {
			t.Errorf("%s: berth %s: exit 0, want a failure\n%s", what, strings.Join(args, " "), r)
		} else if !authRE.MatchString(r.stderr) {
			t.Errorf("%s: berth %s: stderr %q does not say the registry wants credentials", what, strings.Join(args, " "), r.stderr)
		}
		assertNoImages(t, root)
	}

	t.Run("anonymous", func(t *testing.T) {
		refused(t, "without credentials", "pull", name)
		if r := berthEnv(t, env, src, "", "push", name); r.code == 0 {
			t.Errorf("berth push without credentials: exit 0, want a failure\n%s", r)
		} else if !authRE.MatchString(r.stderr) {
			t.Errorf("berth push without credentials: stderr %q does not say the registry wants credentials", r.stderr)
		}
		if r := berthEnv(t, env, src, "", "manifest", "inspect", name); r.code == 0 {
			t.Errorf("berth manifest inspect without credentials: exit 0, want a failure\n%s", r)
		}
	})

	// A wrong password or user is refused and not saved.
	t.Run("wrong-password", func(t *testing.T) {
		r := berthEnv(t, env, src, "wrong-"+reg.pass+"\n", "login", "-u", reg.user, "--password-stdin", reg.host)
		if r.code == 0 || strings.Contains(r.stdout, "Login Succeeded") {
			t.Errorf("berth login with a wrong password: want a failure, got\n%s", r)
		}
		if a, ok := savedAuth(); ok {
			t.Errorf("after a failed berth login, %s holds credentials for %s (%q)", configFile, reg.host, a)
		}
		r = berthEnv(t, env, src, "", "login", "-u", "nobody", "-p", reg.pass, reg.host)
		if r.code == 0 {
			t.Errorf("berth login with an unknown user: want a failure, got\n%s", r)
		}
	})

	var push pushReport
	var m ociManifest
	pullOK := func(t *testing.T, what string) {
		t.Helper()
		if push.digest == "" {
			t.Fatal("nothing was pushed: the login subtest failed")
		}
		root := newRoot(t)
		out := berthEnv(t, env, root, "", "pull", name)
		if out.code != 0 {
			t.Fatalf("%s: berth pull %s: %s", what, name, out)
		}
		rep := checkFreshPull(t, out.stdout, name, m)
		if rep.digest != push.digest {
			t.Errorf("%s: berth pull: Digest %s, pushed %s", what, rep.digest, push.digest)
		}
		if got := berthID(t, root, name); got != id {
			t.Errorf("%s: berth pull: Id %s, want %s", what, got, id)
		}
		systemCheck(t, root)
	}

	// The right password: saved, and push, pull and manifest inspect work.
	t.Run("login", func(t *testing.T) {
		r := berthEnv(t, env, src, reg.pass+"\n", "login", "-u", reg.user, "--password-stdin", reg.host)
		if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
			t.Fatalf("berth login -u %s --password-stdin %s: want Login Succeeded, got\n%s", reg.user, reg.host, r)
		}
		if a, ok := savedAuth(); !ok || a != wantAuth {
			t.Errorf("after berth login, %s: auth for %s = %q (present %v), want %q", configFile, reg.host, a, ok, wantAuth)
		}
		push = parsePush(t, berthEnvOK(t, env, src, "push", name), repo, "1")
		m = reg.checkStored(t, path, "1", id)
		pullOK(t, "after berth login")
		var inspected ociManifest
		if err := json.Unmarshal([]byte(berthEnvOK(t, env, src, "manifest", "inspect", name)), &inspected); err != nil || inspected.Config.Digest != id {
			t.Errorf("berth manifest inspect %s after login: config %s (%v), want %s", name, inspected.Config.Digest, err, id)
		}
	})

	// A failed login must not replace working credentials.
	t.Run("failed-relogin", func(t *testing.T) {
		r := berthEnv(t, env, src, "", "login", "-u", reg.user, "-p", "wrong-"+reg.pass, reg.host)
		if r.code == 0 {
			t.Errorf("berth login with a wrong password after a good one: want a failure, got\n%s", r)
		}
		if a, ok := savedAuth(); !ok || a != wantAuth {
			t.Errorf("after a failed second login, %s: auth for %s = %q (present %v), want the good %q", configFile, reg.host, a, ok, wantAuth)
		}
		pullOK(t, "after a failed second login")
	})

	// Logout: credentials gone, pulls refused again.
	t.Run("logout", func(t *testing.T) {
		out := berthEnvOK(t, env, src, "logout", reg.host)
		if !strings.Contains(out, "Removing login credentials for "+reg.host) {
			t.Errorf("berth logout %s: printed %q", reg.host, out)
		}
		if a, ok := savedAuth(); ok {
			t.Errorf("after berth logout, %s still holds credentials for %s (%q)", configFile, reg.host, a)
		}
		refused(t, "after berth logout", "pull", name)
		if out := berthEnvOK(t, env, src, "logout", reg.host); !strings.Contains(out, "Not logged in to "+reg.host) {
			t.Errorf("second berth logout %s: printed %q, want Not logged in", reg.host, out)
		}
	})

	// Credentials saved by `docker login` (into the same private
	// DOCKER_CONFIG) are used as well, for push and pull.
	t.Run("docker-login", func(t *testing.T) {
		needDocker(t)
		// The control for the wrong-password cases above: Docker refuses it.
		if r, err := execute(strings.NewReader("wrong-"+reg.pass+"\n"), env, "docker", "login", "-u", reg.user, "--password-stdin", reg.host); err != nil || r.code == 0 {
			t.Errorf("docker login with a wrong password: %v %s; want a failure", err, r)
		}
		out := peerEnv(t, env, reg.pass+"\n", "docker", "login", "-u", reg.user, "--password-stdin", reg.host)
		if !strings.Contains(out, "Login Succeeded") {
			t.Errorf("docker login: printed %q", out)
		}
		t.Cleanup(func() { execute(nil, env, "docker", "logout", reg.host) })
		if _, ok := savedAuth(); !ok {
			data, _ := os.ReadFile(configFile)
			t.Logf("docker login did not write auths[%s] into %s (credential helper?):\n%s", reg.host, configFile, data)
		}
		// Push (the layer may be there already) and pull with them.
		again := parsePush(t, berthEnvOK(t, env, src, "push", name), repo, "1")
		if push.digest != "" && again.digest != push.digest {
			t.Errorf("berth push after docker login: digest %s, before %s", again.digest, push.digest)
		}
		push, m = again, reg.checkStored(t, path, "1", id)
		pullOK(t, "after docker login")
		peerEnv(t, env, "", "docker", "logout", reg.host)
		refused(t, "after docker logout", "pull", name)
	})
}

// TestRegistryIndex: an image index with two platforms, pushed by skopeo
// from an OCI layout made here; berth picks the right manifest for
// --platform and refuses a platform the index lacks.
func TestRegistryIndex(t *testing.T) {
	needSkopeo(t)
	reg := startRegistry(t, false)
	env, _ := clientEnv(t)
	native := runtime.GOARCH
	other := "arm64"
	if native == "arm64" {
		other = "amd64"
	}

	layout := t.TempDir()
	ids := writeMultiPlatformLayout(t, layout, busyboxTar(t), map[string][]string{
		"multi":      {native, other},
		"nativeonly": {native},
	})
	path := uniqueRepo(t, "multi")
	repo := reg.host + "/" + path
	for _, tag := range []string{"multi", "nativeonly"} {
		run(t, "skopeo", "copy", "-q", "--all", "--preserve-digests", "--dest-tls-verify=false",
			"oci:"+layout+":"+tag, "docker://"+repo+":"+tag)
		raw, _, mt := reg.manifest(t, path, tag)
		if mt != mtOCIIndex && mt != mtDockerList {
			t.Fatalf("registry: %s:%s has media type %q, want an index:\n%s", path, tag, mt, raw)
		}
	}

	name := repo + ":multi"
	_, indexDigest, _ := reg.manifest(t, path, "multi")
	var idx ociIndex
	if err := json.Unmarshal([]byte(berthEnvOK(t, env, newRoot(t), "manifest", "inspect", name)), &idx); err != nil {
		t.Fatalf("berth manifest inspect %s: %v", name, err)
	}
	if len(idx.Manifests) != 2 {
		t.Errorf("berth manifest inspect %s: %d manifests, want the index's 2", name, len(idx.Manifests))
	}

	for _, arch := range []string{native, other} {
		t.Run(arch, func(t *testing.T) {
			root := newRoot(t)
			out := berthEnvOK(t, env, root, "pull", "--platform", "linux/"+arch, name)
			rep := parsePull(t, out, name)
			if rep.digest != indexDigest {
				t.Errorf("berth pull --platform linux/%s: Digest %s, want the index's %s", arch, rep.digest, indexDigest)
			}
			if got := berthID(t, root, name); got != ids[arch] {
				t.Fatalf("berth pull --platform linux/%s: Id %s, want the %s config %s", arch, got, arch, ids[arch])
			}
			if got := strings.TrimSpace(berth(t, root, "inspect", "-f", "{{.Architecture}}", name)); got != arch {
				t.Errorf("berth inspect -f '{{.Architecture}}': %q, want %s", got, arch)
			}
			assertRepoDigest(t, root, name, repo+"@"+indexDigest)
			systemCheck(t, root)
		})
	}

	t.Run("default-platform", func(t *testing.T) {
		root := newRoot(t)
		berthEnvOK(t, env, root, "pull", name)
		if got := berthID(t, root, name); got != ids[native] {
			t.Errorf("berth pull %s: Id %s, want the native (%s) config %s", name, got, native, ids[native])
		}
		checkLoaded(t, root, name, nil)
	})

	t.Run("missing-platform", func(t *testing.T) {
		for _, c := range []struct{ ref, platform string }{
			{repo + ":nativeonly", "linux/" + other},
			{name, "linux/s390x"},
		} {
			root := newRoot(t)
			r := berthEnv(t, env, root, "", "pull", "--platform", c.platform, c.ref)
			if r.code == 0 {
				t.Errorf("berth pull --platform %s %s: exit 0, want a failure (the index has no such manifest)\n%s", c.platform, c.ref, r)
			} else if !strings.Contains(r.stderr, c.platform) {
				t.Errorf("berth pull --platform %s %s: stderr %q does not mention the platform", c.platform, c.ref, r.stderr)
			}
			assertNoImages(t, root)
		}
	})
}

// writeMultiPlatformLayout writes an OCI image layout in dir: for each ref
// name an index (nested under index.json, as the layout spec allows) of
// one-layer linux images, one per architecture, all with the layer of
// rootfsTar. It returns the config digest (image ID) per architecture.
func writeMultiPlatformLayout(t testing.TB, dir, rootfsTar string, refs map[string][]string) map[string]string {
	t.Helper()
	plain, err := os.ReadFile(rootfsTar)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	putBlob := func(mediaType string, data []byte) ociDescriptor {
		d := digestOf(data)
		if err := os.WriteFile(filepath.Join(dir, blobPath(d)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return ociDescriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
	}
	marshal := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	layer := putBlob(mtOCILayerGzip, gz.Bytes())

	type platformDesc struct {
		ociDescriptor
		Platform map[string]string `json:"platform"`
	}
	ids := map[string]string{}
	manifests := map[string]platformDesc{}
	for _, arches := range refs {
		for _, arch := range arches {
			if _, ok := manifests[arch]; ok {
				continue
			}
			created := "2024-01-02T03:04:05Z"
			cfg := putBlob(mtOCIConfig, marshal(map[string]any{
				"architecture": arch,
				"os":           "linux",
				"created":      created,
				"config":       map[string]any{"Cmd": []string{"sh"}},
				"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digestOf(plain)}},
				"history":      []map[string]any{{"created": created, "created_by": "berth registry test (" + arch + ")"}},
			}))
			ids[arch] = cfg.Digest
			m := putBlob(mtOCIManifest, marshal(ociManifest{SchemaVersion: 2, MediaType: mtOCIManifest, Config: cfg, Layers: []ociDescriptor{layer}}))
			manifests[arch] = platformDesc{m, map[string]string{"os": "linux", "architecture": arch}}
		}
	}
	type index struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     any    `json:"manifests"`
	}
	var top []ociDescriptor
	for ref, arches := range refs {
		var list []platformDesc
		for _, arch := range arches {
			list = append(list, manifests[arch])
		}
		d := putBlob(mtOCIIndex, marshal(index{2, mtOCIIndex, list}))
		d.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref}
		top = append(top, d)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), marshal(index{2, mtOCIIndex, top}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return ids
}

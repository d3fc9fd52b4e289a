//go:build linux

package test

// Integration tests of `berth build`:
//
//   - TestBuildDifferential builds every case of testdata/build with berth
//     and with Docker's BuildKit (and buildah where Docker 20.10 cannot
//     build the feature), compares the image configs and what the images
//     print when run, and runs berth's image in Docker and Podman too.
//   - TestBuildCache changes every input of a build in turn and checks,
//     from berth's plain progress, exactly which steps miss the cache; also
//     --no-cache, --cache-to/--cache-from, --pull and SOURCE_DATE_EPOCH.
//   - TestBuildBadInput: parse errors with their line, COPY from outside
//     the context, a failing RUN, failed builds that must not tag, secrets
//     that must stay out of the image.
//
// The BuildKit peer is the 20.10 Docker daemon's BuildKit driven by Debian's
// docker.io client (/usr/bin/docker): that client has the BuildKit client
// built in (DOCKER_BUILDKIT=1), while the v28 client in /usr/local/bin
// refuses DOCKER_BUILDKIT=1 without the buildx plugin. The daemon's own
// Dockerfile frontend is too old for heredocs, COPY --link/--parents/
// --exclude, ADD --checksum and RUN --network, so every Docker build runs
// BuildKit's v0.16 frontend instead (BUILDKIT_SYNTAX=docker/dockerfile:1-labs,
// an image hack/install-deps.sh builds from the Go module proxy and loads
// into Docker; see there). The frontend is modern, the solver under it is
// the daemon's: where that shows (it ignores the include/exclude patterns
// of COPY --parents and --exclude, leaves empty mount-point stubs after RUN
// --mount, sets no supplementary groups in RUN) the case compares with
// BuildKit v0.16's result (checked by hand against a standalone buildkitd
// v0.16) or does not look.
//
// berth's plain progress is assumed to be BuildKit's: a step starts with
// "#<n> [<stage> <i>/<total>] <INSTRUCTION args>" (the stage part may be
// missing, as BuildKit omits it for single-stage builds), a cache hit adds
// "#<n> CACHED", and "#<n> [internal] ..." lines are ignored.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// dockerBuildCLI is the Docker client the tests build with: docker.io's own
// 20.10 client, which has BuildKit built in (see the top of this file).
const dockerBuildCLI = "/usr/bin/docker"

// buildSyntax is the Dockerfile frontend every Docker build uses.
const buildSyntax = "docker/dockerfile:1-labs"

// ---------------------------------------------------------------------------
// the corpus

// buildPeer says which peers build a case.
type buildPeer int

const (
	peerBuildKit buildPeer = 1 << iota // DOCKER_BUILDKIT=1 docker build
	peerBuildah                        // buildah bud (the images run with podman)
	peerNone     buildPeer = 0         // nobody else can: compare with want
)

// preBuild is an image a case needs before its own build (an ONBUILD
// parent): built by every builder from Dockerfile file in the case's
// context and tagged tag, a "berth-build-" name rewritten like the base.
type preBuild struct {
	file, tag string
}

// buildCase is one build of a directory of testdata/build.
type buildCase struct {
	name       string
	dir        string     // the directory under testdata/build ("" = name)
	dockerfile string     // -f, relative to the case directory ("" = Dockerfile)
	args       []string   // flags for every builder
	berthArgs  []string   // flags for berth only
	buildahArg []string   // flags for buildah only
	peers      buildPeer  // who else builds it (zero: nobody)
	pre        []preBuild // images to build first
	runs       [][]string // run arguments; nil: one run with the image's default command
	// prepare writes generated files into the case's copy and may return
	// extra build flags and environment (e.g. a URL, a secret).
	prepare func(t *testing.T, dir string) (args, env []string)
	// want is the output of the first run, for cases no peer can build.
	want string
	// check runs extra assertions on berth's build.
	check func(t *testing.T, b berthBuilt)
}

// berthBuilt is berth's build of a case.
type berthBuilt struct {
	root, tag, dir string
	info           imageInfo
	output         string // the build's stdout and stderr (plain progress)
}

func buildCorpus() []buildCase {
	return []buildCase{
		{name: "from-scratch", peers: peerBuildKit},
		{name: "arg-before-from", peers: peerBuildKit, args: []string{"--build-arg", "VERSION=2.5"}},
		// Only the stages the target needs are built: not the one after it
		// (RUN exit 1 would fail the build), nor the unnamed stage 1.
		{name: "multistage-target", peers: peerBuildKit, args: []string{"--target", "final"},
			check: func(t *testing.T, b berthBuilt) {
				if strings.Contains(b.output, "echo unused") {
					t.Errorf("the progress shows a step of stage 1, which --target final does not need:\n%s", b.output)
				}
			}},
		{name: "run-forms", peers: peerBuildKit},
		{name: "heredoc", peers: peerBuildKit},
		{name: "run-mounts", peers: peerBuildKit},
		{name: "run-network", peers: peerBuildKit, args: []string{"--network", "host"}},
		{name: "run-network-none", dir: "run-network", peers: peerBuildKit, args: []string{"--network", "none"}},
		{name: "copy-flags", peers: peerBuildKit, prepare: func(t *testing.T, dir string) ([]string, []string) {
			// Modes git does not keep: they must be copied as they are.
			chmod(t, filepath.Join(dir, "files", "c.md"), 0o600)
			chmod(t, filepath.Join(dir, "files", "sub2"), 0o700)
			chmod(t, filepath.Join(dir, "files", "sub1", "x"), 0o640)
			return nil, nil
		}},
		{name: "copy-link", peers: peerBuildKit},
		// Docker 20.10's solver drops the include and exclude patterns the
		// v0.16 frontend uses for --parents and --exclude (it copies
		// everything), and buildah 1.28 lacks both flags: BuildKit v0.16's
		// results, checked by hand with a standalone buildkitd v0.16, are
		// the wants.
		{name: "copy-parents", peers: peerNone, want: strings.Join([]string{
			"/glob directory 755",
			"/glob/src directory 755",
			"/glob/src/a directory 755",
			"/glob/src/a/g.txt regular file 644",
			"/p directory 755",
			"/p/src directory 755",
			"/p/src/a directory 755",
			"/p/src/a/b directory 755",
			"/p/src/a/b/f.txt regular file 644",
			"/p/src/c directory 755",
			"/p/src/c/h.txt regular file 644",
			"/pivot directory 755",
			"/pivot/a directory 755",
			"/pivot/a/b directory 755",
			"/pivot/a/b/f.txt regular file 644",
			"60b725f10c9c85c70d97880dfe8191b3  /glob/src/a/g.txt",
			"daa8075d6ac5ff8d0c6d4650adb4ef29  /p/src/a/b/f.txt",
			"2cd6ee2c70b0bde53fbe6cac3c8b8bb1  /p/src/c/h.txt",
			"daa8075d6ac5ff8d0c6d4650adb4ef29  /pivot/a/b/f.txt",
		}, "\n") + "\n"},
		{name: "copy-exclude", peers: peerNone, want: strings.Join([]string{
			"/add-excluded",
			"/add-excluded/logs",
			"/add-excluded/top.txt",
			"/dir-excluded",
			"/dir-excluded/keep",
			"/dir-excluded/keep/k.md",
			"/dir-excluded/keep/k.txt",
			"/dir-excluded/top.log",
			"/dir-excluded/top.txt",
			"/top-logs-excluded",
			"/top-logs-excluded/keep",
			"/top-logs-excluded/keep/k.md",
			"/top-logs-excluded/keep/k.txt",
			"/top-logs-excluded/logs",
			"/top-logs-excluded/logs/l.log",
			"/top-logs-excluded/top.txt",
			"/two-patterns",
			"/two-patterns/keep",
			"/two-patterns/keep/k.txt",
			"/two-patterns/logs",
			"/two-patterns/logs/l.log",
			"/two-patterns/top.txt",
		}, "\n") + "\n"},
		{name: "add-local-tar", peers: peerBuildKit, prepare: writeAddArchives},
		{name: "add-url-checksum", peers: peerBuildKit, prepare: serveRemoteFiles},
		{name: "env-arg-scope", peers: peerBuildKit, args: []string{
			"--build-arg", "LOCAL=from-cli",
			"--build-arg", "EMPTY=",
			"--build-arg", "HTTP_PROXY=http://proxy.invalid:3128",
		}},
		{name: "workdir-user", peers: peerBuildKit},
		{name: "labels-expose-volume", peers: peerBuildKit, args: []string{
			"--label", "org.example.cli=from-flag",
			"--label", "org.example.b=flag-wins",
		}},
		{name: "entrypoint-exec", peers: peerBuildKit, runs: [][]string{nil, {"run", "args"}}},
		{name: "entrypoint-shell", peers: peerBuildKit, runs: [][]string{nil, {"ignored", "args"}}},
		{name: "cmd-shell", peers: peerBuildKit},
		{name: "shell-instruction", peers: peerBuildKit},
		{name: "healthcheck-stopsignal", peers: peerBuildKit},
		{name: "onbuild", peers: peerBuildKit, dockerfile: "child.Dockerfile",
			pre: []preBuild{{file: "Dockerfile", tag: "berth-build-onbuild-parent"}}},
		{name: "escape-directive", peers: peerBuildKit},
		{name: "dockerignore", peers: peerBuildKit},
		{name: "dockerfile-flag", peers: peerBuildKit, dockerfile: "build/app.Dockerfile"},
		{name: "platform", peers: peerBuildKit, args: []string{"--platform", "linux/" + runtime.GOARCH}},
		// Docker (BuildKit) always writes Docker-format configs: buildah
		// is the peer for --format oci.
		{name: "format-oci", peers: peerBuildah, berthArgs: []string{"--format", "oci"}, buildahArg: []string{"--format", "oci"},
			check: checkFormats},
		// Fixed secrets: BuildKit's cache key of a RUN ignores the secret's
		// content, so a random one would meet a cached step of an earlier run.
		{name: "secrets-mount", peers: peerBuildKit, prepare: func(t *testing.T, dir string) ([]string, []string) {
			secret := filepath.Join(t.TempDir(), "secret.txt")
			writeFile(t, secret, "file-secret-of-the-differential-test\n", 0o600)
			return []string{"--secret", "id=file,src=" + secret, "--secret", "id=env,env=BERTH_TEST_BUILD_SECRET"},
				[]string{"BERTH_TEST_BUILD_SECRET=env-secret-of-the-differential-test"}
		}},
	}
}

// writeAddArchives writes the archives of the add-local-tar case: a plain
// tar and a gzip tar with owners, modes, a symlink and a hard link, a
// file named like a gzip tar that is not one, and a plain file.
func writeAddArchives(t *testing.T, dir string) ([]string, []string) {
	owned := hreg("d/f.txt", "file in tar\n")
	owned.hdr.Mode, owned.hdr.Uid, owned.hdr.Gid = 0o640, 1000, 1000
	script := hreg("d/run.sh", "#!/bin/sh\necho hi\n")
	script.hdr.Mode = 0o755
	private := hreg("top.txt", "top\n")
	private.hdr.Mode = 0o600
	// A hard link's header carries its file's metadata, as tar writes it
	// (extractors apply the last header to the shared inode).
	hard := hlink("d/hard", "d/f.txt")
	hard.hdr.Mode, hard.hdr.Uid, hard.hdr.Gid = 0o640, 1000, 1000
	plain := layerTar(t, []hentry{hdir("d/"), owned, script, hsym("d/link", "f.txt"), hard, private})
	writeFile(t, filepath.Join(dir, "plain.tar"), string(plain), 0o644)
	secretDir := hdir("inner/private/")
	secretDir.hdr.Mode = 0o700
	inner := layerTar(t, []hentry{hdir("inner/"), hreg("inner/g.txt", "gzipped\n"), secretDir, hreg("inner/private/p.txt", "p\n")})
	writeFile(t, filepath.Join(dir, "compressed.tar.gz"), string(gzipBytes(t, inner)), 0o644)
	writeFile(t, filepath.Join(dir, "not-really.tar.gz"), "just text, not gzip\n", 0o644)
	writeFile(t, filepath.Join(dir, "plain.txt"), "plain\n", 0o644)
	return nil, nil
}

// serveRemoteFiles serves the add-url-checksum case's file on 127.0.0.1
// (Docker's daemon fetches from the host's network namespace too) and
// passes its address and checksum as build args.
func serveRemoteFiles(t *testing.T, dir string) ([]string, []string) {
	body := "remote content " + randomHex(t, 4) + "\n"
	modified := time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)
	mux := http.NewServeMux()
	mux.HandleFunc("/files/remote.txt", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "remote.txt", modified, strings.NewReader(body))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256([]byte(body))
	return []string{
		"--build-arg", "BASEURL=" + srv.URL,
		"--build-arg", "SUM=sha256:" + hex.EncodeToString(sum[:]),
	}, nil
}

// checkFormats: berth's --format oci image has none of the Docker-format
// extensions, and the same Dockerfile built in the default format keeps
// all three.
func checkFormats(t *testing.T, b berthBuilt) {
	root, tag, dir := b.root, b.tag, b.dir
	c := b.info.Config
	if c.Healthcheck != nil || len(c.OnBuild) > 0 || len(c.Shell) > 0 {
		t.Errorf("--format oci: config keeps Healthcheck %+v, OnBuild %q, Shell %q; OCI has none of them", c.Healthcheck, c.OnBuild, c.Shell)
	}
	if c.StopSignal != "SIGQUIT" {
		t.Errorf("--format oci: StopSignal %q, want SIGQUIT (OCI keeps it)", c.StopSignal)
	}
	dtag := tag + "-docker-format"
	r := berthBuild(t, root, nil, "-t", dtag, dir)
	if r.code != 0 {
		t.Fatalf("berth build (default format): %s", r)
	}
	d := berthImageInfo(t, root, dtag).Config
	if d.Healthcheck == nil || !reflect.DeepEqual(d.OnBuild, []string{"RUN echo never"}) || !reflect.DeepEqual(d.Shell, []string{"/bin/sh", "-e", "-c"}) {
		t.Errorf("default (docker) format: Healthcheck %+v, OnBuild %q, Shell %q; want all three kept", d.Healthcheck, d.OnBuild, d.Shell)
	}
}

// ---------------------------------------------------------------------------
// image configs

type builtHealthcheck struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

type builtConfig struct {
	Env          []string
	Cmd          []string
	Entrypoint   []string
	WorkingDir   string
	User         string
	Labels       map[string]string
	ExposedPorts map[string]struct{}
	Volumes      map[string]struct{}
	StopSignal   string
	Healthcheck  *builtHealthcheck
	OnBuild      []string
	Shell        []string
}

// imageInfo is what the tests compare of an image: Docker's inspect shape,
// which also decodes an OCI config (JSON field names match regardless of
// case).
type imageInfo struct {
	Id           string
	Author       string
	Architecture string
	Os           string
	Created      string
	Config       builtConfig
}

func berthImageInfo(t testing.TB, root, ref string) imageInfo {
	t.Helper()
	var list []imageInfo
	out := berth(t, root, "image", "inspect", ref)
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("berth image inspect %s: %v\n%s", ref, err, out)
	}
	return list[0]
}

func dockerImageInfo(ref string) (imageInfo, error) {
	var list []imageInfo
	out, err := cmdOut(nil, "docker", "image", "inspect", ref)
	if err != nil {
		return imageInfo{}, err
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		return imageInfo{}, fmt.Errorf("docker image inspect %s: %v\n%s", ref, err, out)
	}
	return list[0], nil
}

// buildahImageInfo reads the OCI config buildah wrote.
func buildahImageInfo(ref string) (imageInfo, error) {
	var v struct {
		FromImageID string
		OCIv1       imageInfo
	}
	out, err := cmdOut(nil, "buildah", "inspect", "--type", "image", ref)
	if err != nil {
		return imageInfo{}, err
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return imageInfo{}, fmt.Errorf("buildah inspect %s: %v", ref, err)
	}
	info := v.OCIv1
	info.Id = "sha256:" + strings.TrimPrefix(v.FromImageID, "sha256:")
	return info, nil
}

// configDiff lists the differences between two images' configs that
// matter, after normalizing the harmless ones:
//   - nil and empty lists and maps are the same (JSON null, [] and a
//     missing field all mean "none" to every runtime);
//   - WorkingDir "" and "/" are the same (an empty WorkingDir runs in /;
//     BuildKit writes "/" for a stage whose base has none);
//   - Env is compared as a set: its order means nothing to a runtime (a
//     name occurs once);
//   - buildah's own io.buildah.version label is dropped (it stamps every
//     image with its version).
func configDiff(got, want imageInfo) []string {
	norm := func(i imageInfo) imageInfo {
		c := &i.Config
		if c.WorkingDir == "" {
			c.WorkingDir = "/"
		}
		c.Env = append([]string(nil), c.Env...)
		sort.Strings(c.Env)
		if c.Labels != nil {
			l := map[string]string{}
			for k, v := range c.Labels {
				if k != "io.buildah.version" {
					l[k] = v
				}
			}
			c.Labels = l
		}
		return i
	}
	g, w := norm(got), norm(want)
	var diffs []string
	add := func(field string, a, b any) {
		if !sameValue(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s: berth %s, peer %s", field, jsonString(a), jsonString(b)))
		}
	}
	add("Env", g.Config.Env, w.Config.Env)
	add("Cmd", g.Config.Cmd, w.Config.Cmd)
	add("Entrypoint", g.Config.Entrypoint, w.Config.Entrypoint)
	add("WorkingDir", g.Config.WorkingDir, w.Config.WorkingDir)
	add("User", g.Config.User, w.Config.User)
	add("Labels", g.Config.Labels, w.Config.Labels)
	add("ExposedPorts", g.Config.ExposedPorts, w.Config.ExposedPorts)
	add("Volumes", g.Config.Volumes, w.Config.Volumes)
	add("StopSignal", g.Config.StopSignal, w.Config.StopSignal)
	add("Healthcheck", g.Config.Healthcheck, w.Config.Healthcheck)
	add("OnBuild", g.Config.OnBuild, w.Config.OnBuild)
	add("Shell", g.Config.Shell, w.Config.Shell)
	add("Author", g.Author, w.Author)
	add("Architecture", g.Architecture, w.Architecture)
	add("Os", g.Os, w.Os)
	return diffs
}

// sameValue is reflect.DeepEqual with nil and empty slices and maps equal.
func sameValue(a, b any) bool {
	empty := func(v any) bool {
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Slice, reflect.Map:
			return rv.Len() == 0
		case reflect.Pointer:
			return rv.IsNil()
		}
		return false
	}
	if empty(a) && empty(b) {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---------------------------------------------------------------------------
// running the builders

// cmdOut runs a peer command and returns its stdout; a non-zero exit is an
// error that carries the output.
func cmdOut(env []string, name string, args ...string) (string, error) {
	r, err := execute(nil, env, name, args...)
	if err != nil {
		return r.stdout, err
	}
	if r.code != 0 {
		return r.stdout, fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.stdout, nil
}

// berthBuild runs `berth --root root build ARGS` with env added to the
// environment and returns its result; it fails the test only if berth
// could not be run.
func berthBuild(t testing.TB, root string, env []string, args ...string) result {
	t.Helper()
	needBerth(t)
	r, err := execute(nil, env, berthBin, berthArgs(root, append([]string{"build"}, args...))...)
	if err != nil {
		t.Fatalf("berth build %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// dockerBuild runs DOCKER_BUILDKIT=1 docker build with the v0.16 frontend;
// RUN steps get no network unless args choose one (this Docker has no
// bridge). The image it makes is removed when the test ends, tagged or not.
func (e *buildEnv) dockerBuild(env []string, args ...string) (result, error) {
	iid, err := os.CreateTemp("", "berth-itest-iid-")
	if err != nil {
		return result{}, err
	}
	iid.Close()
	defer os.Remove(iid.Name())
	full := []string{"build", "--build-arg", "BUILDKIT_SYNTAX=" + buildSyntax}
	if !containsArg(args, "--output") && !containsArg(args, "-o") {
		full = append(full, "--iidfile", iid.Name()) // an exporter other than the image's refuses it
	}
	if !containsArg(args, "--network") {
		full = append(full, "--network", "none")
	}
	full = append(full, args...)
	r, err := execute(nil, append([]string{"DOCKER_BUILDKIT=1"}, env...), dockerBuildCLI, full...)
	if id, _ := os.ReadFile(iid.Name()); len(id) > 0 {
		e.mu.Lock()
		e.dockerIDs = append(e.dockerIDs, strings.TrimSpace(string(id)))
		e.mu.Unlock()
	}
	return r, err
}

func containsArg(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// buildEnv is the per-test state of the peers: the names of this test's
// images in Docker and buildah's store, removed when the test ends.
type buildEnv struct {
	uniq    string // "berthtest-<hex>": every peer image of this test is below it
	base    string // uniq + "/base:latest", the busybox base in every store
	baseTar string // its root filesystem: busybox plus /etc/berth-test-run

	mu        sync.Mutex
	dockerIDs []string // every image Docker built for this test
}

// importBase imports the base image into a berth root.
func (e *buildEnv) importBase(t testing.TB, root string) {
	t.Helper()
	berthImport(t, root, "-c", `CMD ["sh"]`, e.baseTar, e.base)
}

// copyImage copies ref from one berth root to another (save | load): the
// same image ID in both, which two imports (stamped with the time) are not.
func copyImage(t testing.TB, from, to, ref string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "image.tar")
	berth(t, from, "save", "-o", f, ref)
	berth(t, to, "load", "-q", "-i", f)
}

var buildToolsOnce once

// needBuildPeers makes sure Docker (with the v0.16 frontend) and buildah
// are there and imports the base image into Docker and buildah's
// store under a name of this test's own. The base holds a file naming the
// test run: BuildKit keys the cache of a local base image by its layers, so
// with the plain busybox base a step could hit the cache of an earlier run.
func needBuildPeers(t *testing.T, withBuildah bool) *buildEnv {
	t.Helper()
	needDocker(t)
	buildToolsOnce.Do(func() {
		buildToolsOnce.err = hackScript("install-deps.sh", "buildah", "dockerfile-frontend")
	})
	if buildToolsOnce.err != nil {
		t.Fatal(buildToolsOnce.err)
	}
	if !haveCommand(dockerBuildCLI) {
		t.Fatalf("%s (docker.io's client with BuildKit built in) is missing", dockerBuildCLI)
	}
	e := &buildEnv{uniq: strings.TrimSuffix(uniqueRepo(t, "x"), "/x")}
	e.base = e.uniq + "/base:latest"
	e.baseTar = ctrRewriteRootfs(t, nil, []hentry{hreg("etc/berth-test-run", e.uniq+"\n")})
	t.Cleanup(func() { e.removePeerImages() })
	run(t, "docker", "import", "-c", `CMD ["sh"]`, e.baseTar, e.base)
	if withBuildah {
		run(t, "buildah", "pull", "-q", "docker-daemon:"+e.base)
	}
	return e
}

// removePeerImages removes every Docker, Podman and buildah image whose
// name starts with uniq, and every image Docker built for the test.
func (e *buildEnv) removePeerImages() {
	uniq := e.uniq
	e.mu.Lock()
	ids := e.dockerIDs
	e.mu.Unlock()
	defer func() {
		if len(ids) > 0 {
			execute(nil, nil, "docker", append([]string{"rmi", "-f"}, ids...)...)
		}
	}()
	if out, err := cmdOut(nil, "docker", "images", "--format", "{{.Repository}}:{{.Tag}}"); err == nil {
		var refs []string
		for _, l := range strings.Fields(out) {
			if strings.HasPrefix(l, uniq+"/") {
				refs = append(refs, l)
			}
		}
		if len(refs) > 0 {
			execute(nil, nil, "docker", append([]string{"rmi", "-f"}, refs...)...)
		}
	}
	if out, err := cmdOut(nil, "podman", "images", "--format", "{{.Repository}}:{{.Tag}}"); err == nil {
		var refs []string
		for _, l := range strings.Fields(out) {
			if strings.Contains(l, uniq+"/") {
				refs = append(refs, l)
			}
		}
		if len(refs) > 0 {
			execute(nil, nil, "podman", append([]string{"rmi", "-f"}, refs...)...)
		}
	}
}

// rewriteBase renames the images the corpus Dockerfiles name with the
// "berth-build-" prefix to this test's own names (berth-build-base ->
// <uniq>/base), in every Dockerfile of dir, so that parallel runs never
// share a tag in Docker's or buildah's global store.
func (e *buildEnv) rewriteBase(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if n := d.Name(); n != "Dockerfile" && !strings.HasSuffix(n, ".Dockerfile") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(p, []byte(e.rename(string(b))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *buildEnv) rename(s string) string {
	return strings.ReplaceAll(s, "berth-build-", e.uniq+"/")
}

// copyCase copies testdata/build/<name> into a fresh directory with
// normalized modes (0644 files, 0755 executables and directories: a
// checkout's umask must not change the images).
func copyCase(t testing.TB, name string) string {
	t.Helper()
	src := filepath.Join(repoRoot, "test", "testdata", "build", name)
	dst := filepath.Join(t.TempDir(), "ctx")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			return os.Chmod(out, 0o755)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if fi.Mode()&0o100 != 0 {
				mode = 0o755
			}
			if err := os.WriteFile(out, b, mode); err != nil {
				return err
			}
			return os.Chmod(out, mode)
		default:
			return fmt.Errorf("%s: unexpected file type %v in the corpus", p, fi.Mode())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t testing.TB, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, mode)
}

func chmod(t testing.TB, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// runOutput is one run of a built image.
type runOutput struct {
	args   []string
	code   int
	stdout string
	stderr string // shown, not compared (each runtime words its errors)
}

func (r runOutput) String() string {
	return fmt.Sprintf("run %q: exit %d\n%s", r.args, r.code, r.stdout)
}

// runImage runs image with each argument list of runs (nil: the default
// command) through tool: "berth" (with root), "docker" or "podman". A
// non-zero exit is a result, not an error.
func runImage(tool, root, image string, runs [][]string) ([]runOutput, error) {
	if len(runs) == 0 {
		runs = [][]string{nil}
	}
	var outs []runOutput
	for _, a := range runs {
		var name string
		var args []string
		switch tool {
		case "berth":
			name, args = berthBin, berthArgs(root, append([]string{"run", "--rm", image}, a...))
		default:
			name, args = tool, append([]string{"run", "--rm", "--network", "none", image}, a...)
		}
		r, err := execute(nil, nil, name, args...)
		if err != nil {
			return outs, err
		}
		outs = append(outs, runOutput{args: a, code: r.code, stdout: r.stdout, stderr: r.stderr})
	}
	return outs, nil
}

// compareRuns reports where the runs of berth's image by berth (got)
// differ from the reference runs (want, described by what).
func compareRuns(t *testing.T, what string, got, want []runOutput) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d runs, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if got[i].stdout != want[i].stdout || got[i].code != want[i].code {
			t.Errorf("run %q: berth run of berth's image differs from %s:\n--- berth run of berth's image (exit %d)\n%s%s--- %s (exit %d)\n%s%s",
				got[i].args, what, got[i].code, got[i].stdout, stderrNote(got[i].stderr), what, want[i].code, want[i].stdout, stderrNote(want[i].stderr))
		}
	}
}

func stderrNote(s string) string {
	if s == "" {
		return ""
	}
	return "(stderr: " + strings.TrimSpace(s) + ")\n"
}

// peerResult is what one peer built for a case.
type peerResult struct {
	pre  []imageInfo
	info imageInfo
	runs []runOutput
	err  error
}

// buildWithPeer builds the case (its pre-builds first) with the peer and
// runs the image.
func buildWithPeer(e *buildEnv, p buildPeer, c buildCase, dir string, args, env []string) (res peerResult) {
	tag := e.uniq + "/" + c.name
	build := func(file, tag string, extra []string) error {
		var r result
		var err error
		full := append([]string{"-t", tag, "-f", filepath.Join(dir, file)}, extra...)
		full = append(full, dir)
		switch p {
		case peerBuildKit:
			r, err = e.dockerBuild(env, append([]string{"--progress", "plain"}, full...)...)
		case peerBuildah:
			// Without --layers: no intermediate images to clean up.
			r, err = execute(nil, env, "buildah", append([]string{"bud", "--pull=never", "--network", "none"}, append(c.buildahArg, full...)...)...)
		}
		if err == nil && r.code != 0 {
			err = fmt.Errorf("build -f %s: %s", file, r)
		}
		return err
	}
	info := func(ref string) (imageInfo, error) {
		if p == peerBuildah {
			return buildahImageInfo(ref)
		}
		return dockerImageInfo(ref)
	}
	for _, pb := range c.pre {
		ref := e.rename(pb.tag)
		if res.err = build(pb.file, ref, args); res.err != nil {
			return
		}
		i, err := info(ref)
		if res.err = err; err != nil {
			return
		}
		res.pre = append(res.pre, i)
	}
	if res.err = build(dockerfileOf(c), tag+":peer", args); res.err != nil {
		return
	}
	if res.info, res.err = info(tag + ":peer"); res.err != nil {
		return
	}
	runner := "docker"
	if p == peerBuildah {
		runner = "podman"
	}
	res.runs, res.err = runImage(runner, "", tag+":peer", c.runs)
	return
}

func (c buildCase) dirName() string {
	if c.dir == "" {
		return c.name
	}
	return c.dir
}

func dockerfileOf(c buildCase) string {
	if c.dockerfile == "" {
		return "Dockerfile"
	}
	return c.dockerfile
}

func peerName(p buildPeer) string {
	if p == peerBuildah {
		return "buildah"
	}
	return "BuildKit"
}

// ---------------------------------------------------------------------------
// TestBuildDifferential

func TestBuildDifferential(t *testing.T) {
	needBerth(t)
	needPodman(t)
	corpus := buildCorpus()
	e := needBuildPeers(t, true)

	// Every directory of testdata/build is a case (or the output test's).
	ents, err := os.ReadDir(filepath.Join(repoRoot, "test", "testdata", "build"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"output": true}
	for _, c := range corpus {
		known[c.dirName()] = true
	}
	for _, d := range ents {
		if !known[d.Name()] {
			t.Errorf("testdata/build/%s is in no case of buildCorpus", d.Name())
		}
	}

	for _, c := range corpus {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			differentialCase(t, e, c)
		})
	}
	t.Run("flags", func(t *testing.T) {
		t.Parallel()
		buildFlags(t, e)
	})
	t.Run("output", func(t *testing.T) {
		t.Parallel()
		buildOutputs(t, e)
	})
}

func differentialCase(t *testing.T, e *buildEnv, c buildCase) {
	dir := copyCase(t, c.dirName())
	e.rewriteBase(t, dir)
	args, env := append([]string(nil), c.args...), []string(nil)
	if c.prepare != nil {
		a, en := c.prepare(t, dir)
		args, env = append(args, a...), en
	}

	// The peers build while berth does.
	peers := map[buildPeer]*peerResult{}
	var peersDone sync.WaitGroup
	for _, p := range []buildPeer{peerBuildKit, peerBuildah} {
		if c.peers&p == 0 {
			continue
		}
		res := &peerResult{}
		peers[p] = res
		peersDone.Add(1)
		go func(p buildPeer) {
			defer peersDone.Done()
			*res = buildWithPeer(e, p, c, dir, args, env)
		}(p)
	}
	defer peersDone.Wait() // also when berth's side fails the test early

	root := newRoot(t)
	e.importBase(t, root)
	tag := e.uniq + "/" + c.name + ":berth"
	var preInfos []imageInfo
	for _, pb := range c.pre {
		ref := e.rename(pb.tag)
		r := berthBuild(t, root, env, append(append(append([]string{"--progress", "plain", "-t", ref, "-f", filepath.Join(dir, pb.file)}, args...), c.berthArgs...), dir)...)
		if r.code != 0 {
			t.Fatalf("berth build -f %s: %s", pb.file, r)
		}
		preInfos = append(preInfos, berthImageInfo(t, root, ref))
	}
	r := berthBuild(t, root, env, append(append(append([]string{"--progress", "plain", "-t", tag, "-f", filepath.Join(dir, dockerfileOf(c))}, args...), c.berthArgs...), dir)...)
	if r.code != 0 {
		t.Fatalf("berth build: %s", r)
	}
	info := berthImageInfo(t, root, tag)
	if !idRE.MatchString(info.Id) {
		t.Errorf("berth image inspect: Id %q", info.Id)
	}
	runs, err := runImage("berth", root, tag, c.runs)
	if err != nil {
		t.Fatalf("berth's image: %v", err)
	}
	if c.want != "" && (runs[0].stdout != c.want || runs[0].code != 0) {
		t.Errorf("berth's image printed (exit %d)\n%s%s--- want (BuildKit v0.16's result)\n%s", runs[0].code, runs[0].stdout, stderrNote(runs[0].stderr), c.want)
	}
	if c.check != nil {
		c.check(t, berthBuilt{root: root, tag: tag, dir: dir, info: info, output: r.stdout + r.stderr})
	}

	// berth's image, unchanged, in Docker and Podman: same ID, same output.
	saved := filepath.Join(t.TempDir(), "image.tar")
	berth(t, root, "save", "-o", saved, tag)
	hexID := strings.TrimPrefix(info.Id, "sha256:")
	t.Cleanup(func() {
		execute(nil, nil, "docker", "rmi", "-f", tag)
		execute(nil, nil, "podman", "rmi", "-f", hexID)
	})
	var dockerRuns, podmanRuns []runOutput
	var dockerErr, podmanErr error
	var cross sync.WaitGroup
	cross.Add(2)
	go func() {
		defer cross.Done()
		if _, dockerErr = cmdOut(nil, "docker", "load", "-i", saved); dockerErr != nil {
			return
		}
		var di imageInfo
		if di, dockerErr = dockerImageInfo(tag); dockerErr == nil && di.Id != info.Id {
			dockerErr = fmt.Errorf("docker load of berth's image: Id %s, berth's is %s", di.Id, info.Id)
			return
		}
		dockerRuns, dockerErr = runImage("docker", "", tag, c.runs)
	}()
	go func() {
		defer cross.Done()
		if _, podmanErr = cmdOut(nil, "podman", "load", "-q", "-i", saved); podmanErr != nil {
			return
		}
		podmanRuns, podmanErr = runImage("podman", "", hexID, c.runs)
	}()
	cross.Wait()
	peersDone.Wait()
	if dockerErr != nil {
		t.Errorf("berth's image in Docker: %v", dockerErr)
	} else {
		compareRuns(t, "docker run of berth's image", runs, dockerRuns)
	}
	if podmanErr != nil {
		t.Errorf("berth's image in Podman: %v", podmanErr)
	} else {
		compareRuns(t, "podman run of berth's image", runs, podmanRuns)
	}

	for _, p := range []buildPeer{peerBuildKit, peerBuildah} {
		res, ok := peers[p]
		if !ok {
			continue
		}
		name := peerName(p)
		if res.err != nil {
			t.Errorf("%s (the reference) failed: %v", name, res.err)
			continue
		}
		for i := range res.pre {
			for _, d := range configDiff(preInfos[i], res.pre[i]) {
				t.Errorf("%s (%s), config differs from %s's: %s", c.pre[i].file, c.pre[i].tag, name, d)
			}
		}
		for _, d := range configDiff(info, res.info) {
			t.Errorf("config differs from %s's: %s", name, d)
		}
		runner := "docker"
		if p == peerBuildah {
			runner = "podman"
		}
		compareRuns(t, runner+" run of "+name+"'s image", runs, res.runs)
	}
}

// ---------------------------------------------------------------------------
// build flags without a Dockerfile feature of their own

// buildFlags: -q, --iidfile, repeated -t, --progress plain|tty|auto, each
// next to what Docker does with the same flag.
func buildFlags(t *testing.T, e *buildEnv) {
	dir := filepath.Join(t.TempDir(), "ctx")
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+e.base+"\nRUN echo flags > /flags\nCMD [\"cat\", \"/flags\"]\n", 0o644)
	root := newRoot(t)
	e.importBase(t, root)

	iid := filepath.Join(t.TempDir(), "iid")
	a, b := e.uniq+"/flags:a", e.uniq+"/flags:b"
	r := berthBuild(t, root, nil, "-q", "--iidfile", iid, "-t", a, "-t", b, dir)
	if r.code != 0 {
		t.Fatalf("berth build -q: %s", r)
	}
	id := strings.TrimSpace(r.stdout)
	if !idRE.MatchString(id) || r.stdout != id+"\n" {
		t.Errorf("berth build -q printed %q, want only the image ID (sha256:<64 hex>) as docker build -q does", r.stdout)
	}
	if got, err := os.ReadFile(iid); err != nil || string(got) != id {
		t.Errorf("--iidfile holds %q (%v), want %q", got, err, id)
	}
	for _, ref := range []string{a, b} {
		if got := berthID(t, root, ref); got != id {
			t.Errorf("-t %s: names %s, want %s", ref, got, id)
		}
	}
	if out, _ := runImage("berth", root, a, nil); len(out) != 1 || out[0].stdout != "flags\n" {
		t.Errorf("berth run %s: %v", a, out)
	}

	// Docker prints the same shape with -q.
	dr, err := e.dockerBuild(nil, "-q", "-t", e.uniq+"/flags:docker", dir)
	if err != nil || dr.code != 0 {
		t.Errorf("docker build -q: %v %s", err, dr)
	} else if !idRE.MatchString(strings.TrimSpace(dr.stdout)) {
		t.Errorf("docker build -q printed %q (the test's assumption about -q is wrong)", dr.stdout)
	}

	for _, mode := range []string{"plain", "tty", "auto"} {
		r := berthBuild(t, root, nil, "--progress", mode, "--no-cache", "-t", e.uniq+"/flags:"+mode, dir)
		if r.code != 0 {
			t.Errorf("berth build --progress %s (no terminal): %s", mode, r)
			continue
		}
		if mode == "plain" {
			steps, _ := parseProgress(r.stdout + r.stderr)
			if len(steps) == 0 {
				t.Errorf("berth build --progress plain printed no \"#<n> [<i>/<n>] INSTRUCTION\" lines:\n%s", r.stdout+r.stderr)
			}
		}
	}
}

// buildOutputs: --output type=local against Docker's local exporter (the
// same files, modes and links), type=docker into Docker, type=oci into
// Podman, type=image into berth's store.
func buildOutputs(t *testing.T, e *buildEnv) {
	dir := copyCase(t, "output")
	e.rewriteBase(t, dir)
	root := newRoot(t)
	e.importBase(t, root)

	tmp := t.TempDir()
	berthDest, dockerDest := filepath.Join(tmp, "berth-local"), filepath.Join(tmp, "docker-local")
	if r := berthBuild(t, root, nil, "--output", "type=local,dest="+berthDest, dir); r.code != 0 {
		t.Fatalf("berth build --output type=local: %s", r)
	}
	if r, err := e.dockerBuild(nil, "--output", "type=local,dest="+dockerDest, dir); err != nil || r.code != 0 {
		t.Fatalf("docker build --output type=local: %v %s", err, r)
	}
	if got, want := treeListing(t, berthDest), treeListing(t, dockerDest); got != want {
		t.Errorf("--output type=local: berth wrote\n%s--- BuildKit wrote\n%s", got, want)
	}

	want := "generated\nstatic\n"
	// type=docker: a Docker archive that docker load takes as it is.
	dockerTar := filepath.Join(tmp, "docker.tar")
	dref := e.uniq + "/output:docker-exporter"
	if r := berthBuild(t, root, nil, "--target", "build", "-t", dref, "--output", "type=docker,dest="+dockerTar, dir); r.code != 0 {
		t.Errorf("berth build --output type=docker: %s", r)
	} else {
		t.Cleanup(func() { execute(nil, nil, "docker", "rmi", "-f", dref) })
		if _, err := cmdOut(nil, "docker", "load", "-i", dockerTar); err != nil {
			t.Errorf("docker load of berth's type=docker output: %v", err)
		} else if out, err := runImage("docker", "", dref, nil); err != nil || out[0].stdout != want {
			t.Errorf("docker run of berth's type=docker output: %v %v", out, err)
		}
	}
	// type=oci: an OCI layout tar (podman loads oci-archives).
	ociTar := filepath.Join(tmp, "oci.tar")
	if r := berthBuild(t, root, nil, "--target", "build", "--output", "type=oci,dest="+ociTar, dir); r.code != 0 {
		t.Errorf("berth build --output type=oci: %s", r)
	} else {
		ids := ociConfigDigests(t, ociTar)
		if len(ids) != 1 {
			t.Errorf("type=oci output holds %d images, want 1", len(ids))
		} else {
			hexID := strings.TrimPrefix(ids[0], "sha256:")
			t.Cleanup(func() { execute(nil, nil, "podman", "rmi", "-f", hexID) })
			if _, err := cmdOut(nil, "podman", "load", "-q", "-i", ociTar); err != nil {
				t.Errorf("podman load of berth's type=oci output: %v", err)
			} else if out, err := runImage("podman", "", hexID, nil); err != nil || out[0].stdout != want {
				t.Errorf("podman run of berth's type=oci output: %v %v", out, err)
			}
		}
	}
	// type=image: the default, spelled out.
	iref := e.uniq + "/output:image"
	if r := berthBuild(t, root, nil, "--target", "build", "-t", iref, "--output", "type=image", dir); r.code != 0 {
		t.Errorf("berth build --output type=image: %s", r)
	} else if out, err := runImage("berth", root, iref, nil); err != nil || out[0].stdout != want {
		t.Errorf("berth run of the type=image output: %v %v", out, err)
	}
}

// treeListing describes every file below dir: path, type, mode, owner,
// content digest or link target; never times.
func treeListing(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil // made by the caller's --output dest
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", md5.Sum(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}

// ---------------------------------------------------------------------------
// plain progress

var (
	progressStepRE   = regexp.MustCompile(`^#(\d+) \[(?:([^\]\s]+) )?(\d+)/(\d+)\] (.*)$`)
	progressCachedRE = regexp.MustCompile(`^#(\d+) CACHED\s*$`)
)

// progressStep is one step of a build's plain progress.
type progressStep struct {
	vertex string // "#<n>"
	stage  string
	text   string // the instruction as printed
	cached bool
}

// parseProgress reads BuildKit-style plain progress: the steps in the order
// they were first printed, and the set of vertexes reported CACHED.
func parseProgress(out string) ([]progressStep, map[string]bool) {
	var steps []progressStep
	seen := map[string]int{}
	cached := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if m := progressStepRE.FindStringSubmatch(l); m != nil {
			if _, ok := seen[m[1]]; !ok {
				seen[m[1]] = len(steps)
				steps = append(steps, progressStep{vertex: m[1], stage: m[2], text: m[5]})
			}
		} else if m := progressCachedRE.FindStringSubmatch(l); m != nil {
			cached[m[1]] = true
		}
	}
	for i := range steps {
		steps[i].cached = cached[steps[i].vertex]
	}
	return steps, cached
}

// ---------------------------------------------------------------------------
// TestBuildCache

// The cache test's Dockerfile: each step is named by a marker only its own
// printed instruction contains.
const cacheDockerfile = `FROM berth-build-base
ENV GREETING=hello
RUN echo "$GREETING" > /greeting
COPY app/ /app/
RUN cat /app/*.txt > /all
ARG USED=one
RUN echo "used=$USED" > /used
RUN echo done > /done
CMD ["sh", "-c", "cat /greeting /all /used /done; cd /app && for f in *; do echo \"$f $(stat -c %a $f) $(md5sum < $f | cut -c1-32)\"; done"]
`

var cacheSteps = []struct{ name, marker string }{
	{"RUN greeting", "> /greeting"},
	{"COPY app/", "COPY app/"},
	{"RUN cat", "> /all"},
	{"RUN used", "> /used"},
	{"RUN done", "> /done"},
}

// cacheState is the inputs of the cache test's build.
type cacheState struct {
	dockerfile string
	files      map[string]string      // context files (relative path -> content)
	modes      map[string]os.FileMode // their modes (0644 when missing)
	args       []string               // extra build flags
	base       string                 // base tar variant: "" the busybox rootfs, "changed" with one more file
}

func (s cacheState) clone() cacheState {
	n := s
	n.files, n.modes = map[string]string{}, map[string]os.FileMode{}
	for k, v := range s.files {
		n.files[k] = v
	}
	for k, v := range s.modes {
		n.modes[k] = v
	}
	n.args = append([]string(nil), s.args...)
	return n
}

// cacheScenario is one change of the inputs and the first step that must
// miss (len(cacheSteps): none may).
type cacheScenario struct {
	name      string
	change    func(s *cacheState)
	firstMiss int
	// berthOnly: BuildKit tracks context files by stat, so an edit that
	// keeps size and mtime goes unnoticed there; berth hashes contents.
	berthOnly bool
	// sameMtime keeps the edited files' mtimes as they were.
	sameMtime bool
}

func cacheScenarios() []cacheScenario {
	return []cacheScenario{
		{name: "identical rebuild", change: func(s *cacheState) {}, firstMiss: 5},
		{name: "comment and blank line added", change: func(s *cacheState) {
			s.dockerfile = strings.Replace(s.dockerfile, "COPY app/", "# a comment\n\nCOPY app/", 1)
		}, firstMiss: 5},
		{name: "content of a copied file, same size and mtime", change: func(s *cacheState) {
			s.files["app/a.txt"] = strings.ToUpper(s.files["app/a.txt"])
		}, firstMiss: 1, berthOnly: true, sameMtime: true},
		{name: "content of a copied file", change: func(s *cacheState) {
			s.files["app/a.txt"] += "more\n"
		}, firstMiss: 1},
		{name: "mode of a copied file", change: func(s *cacheState) {
			s.modes["app/a.txt"] = 0o755
		}, firstMiss: 1},
		{name: "new file in the copied directory", change: func(s *cacheState) {
			s.files["app/new.txt"] = "new\n"
		}, firstMiss: 1},
		{name: "file deleted from the copied directory", change: func(s *cacheState) {
			delete(s.files, "app/b.txt")
		}, firstMiss: 1},
		{name: "dockerignored file changed and added", change: func(s *cacheState) {
			s.files["app/ignored.log"] = "changed log\n"
			s.files["app/other.log"] = "another ignored file\n"
		}, firstMiss: 5},
		{name: "context file no COPY reads", change: func(s *cacheState) {
			s.files["unused.txt"] = "changed\n"
		}, firstMiss: 5},
		{name: "build-arg a RUN uses", change: func(s *cacheState) {
			s.args = append(s.args, "--build-arg", "USED=two")
		}, firstMiss: 3},
		{name: "build-arg the Dockerfile does not declare", change: func(s *cacheState) {
			s.args = append(s.args, "--build-arg", "NOT_DECLARED=x")
		}, firstMiss: 5},
		{name: "ENV before the first RUN", change: func(s *cacheState) {
			s.dockerfile = strings.Replace(s.dockerfile, "GREETING=hello", "GREETING=hi", 1)
		}, firstMiss: 0},
		{name: "instruction text of the last RUN", change: func(s *cacheState) {
			s.dockerfile = strings.Replace(s.dockerfile, "echo done", "echo done!", 1)
		}, firstMiss: 4},
		{name: "base image", change: func(s *cacheState) {
			s.base = "changed"
		}, firstMiss: 0},
		{name: "--no-cache", change: func(s *cacheState) {
			s.args = append(s.args, "--no-cache")
		}, firstMiss: 0},
	}
}

func baselineCacheState(e *buildEnv) cacheState {
	return cacheState{
		dockerfile: e.rename(cacheDockerfile),
		files: map[string]string{
			"app/a.txt":       "alpha\n",
			"app/b.txt":       "bravo\n",
			"app/ignored.log": "ignored\n",
			"unused.txt":      "not copied\n",
			".dockerignore":   "app/*.log\n",
		},
		modes: map[string]os.FileMode{},
	}
}

// write makes dir hold exactly the state's context (mtimes of unchanged
// files are kept: with sameMtime, of changed ones too).
func (s cacheState) write(t testing.TB, dir string, sameMtime bool) {
	t.Helper()
	want := map[string]bool{"Dockerfile": true}
	writeKeep := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		fi, err := os.Stat(p)
		if err == nil {
			old, _ := os.ReadFile(p)
			if string(old) == content && fi.Mode().Perm() == mode {
				return
			}
		}
		writeFile(t, p, content, mode)
		if err == nil && sameMtime {
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeKeep("Dockerfile", s.dockerfile, 0o644)
	for rel, content := range s.files {
		want[rel] = true
		mode := s.modes[rel]
		if mode == 0 {
			mode = 0o644
		}
		writeKeep(rel, content, mode)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			if !want[rel] {
				os.Remove(p)
			}
		}
		return nil
	})
}

// report is what the cache test's image must print for the state.
func (s cacheState) report() string {
	var names []string
	for rel := range s.files {
		if strings.HasPrefix(rel, "app/") && !strings.HasSuffix(rel, ".log") {
			names = append(names, strings.TrimPrefix(rel, "app/"))
		}
	}
	sort.Strings(names)
	greeting := "hello"
	if strings.Contains(s.dockerfile, "GREETING=hi") {
		greeting = "hi"
	}
	used := "one"
	for _, a := range s.args {
		if a == "USED=two" {
			used = "two"
		}
	}
	done := "done"
	if strings.Contains(s.dockerfile, "echo done!") {
		done = "done!"
	}
	var b strings.Builder
	b.WriteString(greeting + "\n")
	for _, n := range names {
		if strings.HasSuffix(n, ".txt") {
			b.WriteString(s.files["app/"+n])
		}
	}
	fmt.Fprintf(&b, "used=%s\n%s\n", used, done)
	for _, n := range names {
		mode := s.modes["app/"+n]
		if mode == 0 {
			mode = 0o644
		}
		fmt.Fprintf(&b, "%s %o %x\n", n, mode, md5.Sum([]byte(s.files["app/"+n])))
	}
	return b.String()
}

// missPattern describes which cache steps hit and missed.
func missPattern(steps []progressStep) (string, error) {
	var parts []string
	for _, cs := range cacheSteps {
		found := false
		for _, st := range steps {
			if strings.Contains(st.text, cs.marker) {
				found = true
				if st.cached {
					parts = append(parts, cs.name+": hit")
				} else {
					parts = append(parts, cs.name+": MISS")
				}
				break
			}
		}
		if !found {
			return "", fmt.Errorf("no progress step for %q", cs.name)
		}
	}
	return strings.Join(parts, ", "), nil
}

func wantPattern(firstMiss int) string {
	var parts []string
	for i, cs := range cacheSteps {
		if i < firstMiss {
			parts = append(parts, cs.name+": hit")
		} else {
			parts = append(parts, cs.name+": MISS")
		}
	}
	return strings.Join(parts, ", ")
}

func TestBuildCache(t *testing.T) {
	needBerth(t)
	e := needBuildPeers(t, false)
	changedBase := ctrRewriteRootfs(t, nil, []hentry{hreg("etc/berth-test-run", e.uniq+"\n"), hreg("etc/base-version", "2\n")})

	// The same scenarios through BuildKit, in parallel with berth's: they
	// check the expectations themselves.
	t.Run("buildkit-agrees", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "ctx")
		base := baselineCacheState(e)
		base.write(t, dir, false)
		if r, err := e.dockerBuild(nil, "--progress", "plain", dir); err != nil || r.code != 0 {
			t.Fatalf("docker build: %v %s", err, r)
		}
		baseTag := e.base
		for _, sc := range cacheScenarios() {
			if sc.berthOnly {
				continue
			}
			s := base.clone()
			sc.change(&s)
			s.write(t, dir, false)
			if s.base == "changed" {
				run(t, "docker", "tag", baseTag, e.uniq+"/base:original")
				id := strings.TrimSpace(run(t, "docker", "import", "-c", `CMD ["sh"]`, changedBase, baseTag))
				e.mu.Lock()
				e.dockerIDs = append(e.dockerIDs, id) // untagged again below
				e.mu.Unlock()
			}
			r, err := e.dockerBuild(nil, append(append([]string{"--progress", "plain"}, s.args...), dir)...)
			if err != nil || r.code != 0 {
				t.Fatalf("%s: docker build: %v %s", sc.name, err, r)
			}
			steps, _ := parseProgress(r.stderr + r.stdout)
			got, err := missPattern(steps)
			if err != nil {
				t.Fatalf("%s: %v\n%s", sc.name, err, r.stderr)
			}
			if want := wantPattern(sc.firstMiss); got != want {
				t.Errorf("%s: BuildKit: %s\n  the test expects %s", sc.name, got, want)
			}
			if s.base == "changed" {
				run(t, "docker", "tag", e.uniq+"/base:original", baseTag)
			}
			base.write(t, dir, false)
		}
	})

	t.Run("berth", func(t *testing.T) {
		t.Parallel()
		root := newRoot(t)
		e.importBase(t, root)
		dir := filepath.Join(t.TempDir(), "ctx")
		base := baselineCacheState(e)
		base.write(t, dir, false)
		tag := e.uniq + "/cache:latest"
		r := berthBuild(t, root, nil, "--progress", "plain", "-t", tag, dir)
		if r.code != 0 {
			t.Fatalf("berth build: %s", r)
		}
		steps, _ := parseProgress(r.stdout + r.stderr)
		if got, err := missPattern(steps); err != nil || got != wantPattern(0) {
			t.Fatalf("first build: %s %v (want every step to run)\n%s", got, err, r.stdout+r.stderr)
		}
		for _, sc := range cacheScenarios() {
			s := base.clone()
			sc.change(&s)
			s.write(t, dir, sc.sameMtime)
			if s.base == "changed" {
				berth(t, root, "tag", e.base, e.uniq+"/base:original")
				berthImport(t, root, "-c", `CMD ["sh"]`, changedBase, e.base)
			}
			r := berthBuild(t, root, nil, append(append([]string{"--progress", "plain", "-t", tag}, s.args...), dir)...)
			if r.code != 0 {
				t.Fatalf("%s: berth build: %s", sc.name, r)
			}
			steps, _ := parseProgress(r.stdout + r.stderr)
			got, err := missPattern(steps)
			if err != nil {
				t.Fatalf("%s: %v\n%s", sc.name, err, r.stdout+r.stderr)
			}
			if want := wantPattern(sc.firstMiss); got != want {
				t.Errorf("%s: berth: %s\n  want %s", sc.name, got, want)
			}
			// Whatever the cache did, the image must be the changed inputs'.
			if out, err := runImage("berth", root, tag, nil); err != nil {
				t.Errorf("%s: %v", sc.name, err)
			} else if want := s.report(); out[0].stdout != want {
				t.Errorf("%s: the image printed\n%s--- want (the inputs as changed)\n%s", sc.name, out[0].stdout, want)
			}
			if s.base == "changed" {
				if out := berth(t, root, "run", "--rm", tag, "cat", "/etc/base-version"); out != "2\n" {
					t.Errorf("%s: image not built on the changed base: /etc/base-version %q", sc.name, out)
				}
				berth(t, root, "tag", e.uniq+"/base:original", e.base)
			}
			base.write(t, dir, sc.sameMtime)
		}
	})

	// Exported caches: a local directory, and a registry (berth's own
	// server) holding the cache as an OCI artifact.
	for _, kind := range []string{"local", "registry"} {
		t.Run("cache-to-from-"+kind, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ctx")
			baselineCacheState(e).write(t, dir, false)
			cacheDir := filepath.Join(t.TempDir(), "cache")
			to, from := "type=local,dest="+cacheDir, "type=local,src="+cacheDir
			if kind == "registry" {
				srv := startBerthRegistry(t, "", "")
				to = "type=registry,ref=" + srv.host + "/cache/" + e.uniq + ":buildcache"
				from = to
			}
			rootA := newRoot(t)
			e.importBase(t, rootA)
			if r := berthBuild(t, rootA, nil, "--progress", "plain", "--cache-to", to, "-t", "a:1", dir); r.code != 0 {
				t.Fatalf("berth build --cache-to %s: %s", to, r)
			}
			// A fresh store with the same base: every step comes from the
			// exported cache.
			rootB := newRoot(t)
			copyImage(t, rootA, rootB, e.base)
			r := berthBuild(t, rootB, nil, "--progress", "plain", "--cache-from", from, "-t", "b:1", dir)
			if r.code != 0 {
				t.Fatalf("berth build --cache-from %s: %s", from, r)
			}
			steps, _ := parseProgress(r.stdout + r.stderr)
			if got, err := missPattern(steps); err != nil || got != wantPattern(len(cacheSteps)) {
				t.Errorf("--cache-from a --cache-to export in a fresh store: %s %v, want every step cached\n%s", got, err, r.stdout+r.stderr)
			}
			if out, err := runImage("berth", rootB, "b:1", nil); err != nil || out[0].stdout != baselineCacheState(e).report() {
				t.Errorf("image built from the imported cache: %v %v", out, err)
			}
		})
	}

	t.Run("pull", func(t *testing.T) {
		t.Parallel()
		reg := startRegistry(t, false)
		ref := reg.host + "/" + e.uniq + "/pullbase:1"
		pusher := newRoot(t)
		berthImport(t, pusher, "-c", `CMD ["sh"]`, busyboxTar(t), ref)
		berth(t, pusher, "push", "-q", ref)

		dir := filepath.Join(t.TempDir(), "ctx")
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+ref+"\nRUN cat /etc/base-version 2>/dev/null > /seen || echo 1 > /seen\nCMD [\"cat\", \"/seen\"]\n", 0o644)
		root := newRoot(t)
		build := func(extra ...string) string {
			t.Helper()
			r := berthBuild(t, root, nil, append(append([]string{"--progress", "plain", "-t", "pulled:1"}, extra...), dir)...)
			if r.code != 0 {
				t.Fatalf("berth build %q: %s", extra, r)
			}
			out, err := runImage("berth", root, "pulled:1", nil)
			if err != nil {
				t.Fatal(err)
			}
			return out[0].stdout
		}
		if got := build(); got != "1\n" {
			t.Errorf("first build (base pulled because missing): printed %q, want 1", got)
		}
		// A newer base under the same name in the registry.
		berthImport(t, pusher, "-c", `CMD ["sh"]`, changedBase, ref)
		berth(t, pusher, "push", "-q", ref)
		if got := build(); got != "1\n" {
			t.Errorf("rebuild without --pull: printed %q, want 1 (the stored base)", got)
		}
		if got := build("--pull"); got != "2\n" {
			t.Errorf("rebuild with --pull: printed %q, want 2 (the registry's newer base)", got)
		}
	})

	t.Run("source-date-epoch", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "ctx")
		writeFile(t, filepath.Join(dir, "Dockerfile"), e.rename("FROM berth-build-base\nRUN echo made > /made && mkdir /d && touch /d/f\nCOPY app /app\nLABEL x=y\nCMD [\"cat\", \"/made\"]\n"), 0o644)
		writeFile(t, filepath.Join(dir, "app", "f.txt"), "f\n", 0o644)
		env := []string{"SOURCE_DATE_EPOCH=1700000000"}
		var ids []string
		root := newRoot(t)
		e.importBase(t, root)
		other := newRoot(t)
		copyImage(t, root, other, e.base)
		for i, r := range []string{root, root, other} {
			iid := filepath.Join(t.TempDir(), "iid")
			if i == 1 {
				time.Sleep(1100 * time.Millisecond) // a second later: the clock must not show
				if err := os.Chtimes(filepath.Join(dir, "app", "f.txt"), time.Now(), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			res := berthBuild(t, r, env, "--no-cache", "--iidfile", iid, "-t", "sde:1", dir)
			if res.code != 0 {
				t.Fatalf("berth build --no-cache with SOURCE_DATE_EPOCH: %s", res)
			}
			b, err := os.ReadFile(iid)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, strings.TrimSpace(string(b)))
		}
		if ids[0] != ids[1] || ids[0] != ids[2] {
			t.Errorf("SOURCE_DATE_EPOCH=1700000000, --no-cache: image IDs %q, want one ID (same store twice, then a fresh store)", ids)
		}
		if id := strings.TrimSpace(berth(t, root, "images", "--no-trunc", "-q", "sde:1")); id != ids[1] {
			t.Errorf("berth images --no-trunc -q sde:1 = %q, --iidfile said %q", id, ids[1])
		}
		if created := berthImageInfo(t, root, "sde:1").Created; !strings.HasPrefix(created, "2023-11-14T22:13:20") {
			t.Errorf("SOURCE_DATE_EPOCH=1700000000: Created %q, want 2023-11-14T22:13:20Z", created)
		}
	})
}

// ---------------------------------------------------------------------------
// TestBuildBadInput

func TestBuildBadInput(t *testing.T) {
	needBerth(t)
	base := "berth-build-base:latest"

	// newCtx makes a build context holding Dockerfile and files, in a
	// directory of its own (so that ".." of the context is ours too).
	newCtx := func(t *testing.T, dockerfile string, files map[string]string) (ctx, outside string) {
		t.Helper()
		top := t.TempDir()
		ctx = filepath.Join(top, "ctx")
		writeFile(t, filepath.Join(ctx, "Dockerfile"), dockerfile, 0o644)
		for p, c := range files {
			writeFile(t, filepath.Join(ctx, p), c, 0o644)
		}
		return ctx, top
	}
	freshRoot := func(t *testing.T) string {
		root := newRoot(t)
		berthImport(t, root, "-c", `CMD ["sh"]`, busyboxTar(t), base)
		return root
	}

	parseErrors := []struct {
		name, dockerfile string
		line             int
		mention          string
	}{
		{"copy without destination", "FROM berth-build-base\nRUN true\nCOPY onlyone\n", 3, "COPY"},
		{"unknown instruction", "FROM berth-build-base\n# comment\nRUN true\nFROBNICATE the build\n", 4, "FROBNICATE"},
		{"unknown flag", "FROM berth-build-base\nCOPY --bogus=1 Dockerfile /x\n", 2, "bogus"},
		{"bad healthcheck duration", "FROM berth-build-base\nENV A=b\nHEALTHCHECK --interval=soon CMD true\n", 3, "soon"},
		{"instruction before FROM", "ENV A=b\nFROM berth-build-base\n", 1, ""},
		{"unterminated heredoc", "FROM berth-build-base\nRUN <<EOF\necho never ends\n", 2, ""},
	}
	for _, pe := range parseErrors {
		pe := pe
		t.Run("parse/"+pe.name, func(t *testing.T) {
			t.Parallel()
			ctx, _ := newCtx(t, pe.dockerfile, nil)
			root := freshRoot(t)
			r := berthBuild(t, root, nil, "-t", "bad:1", ctx)
			if r.code == 0 {
				t.Fatalf("berth build succeeded, want a failure for line %d:\n%s", pe.line, pe.dockerfile)
			}
			want := fmt.Sprintf("Dockerfile:%d", pe.line)
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr does not name %s:\n%s", want, r.stderr)
			}
			if pe.mention != "" && !strings.Contains(r.stderr, pe.mention) {
				t.Errorf("stderr does not mention %q:\n%s", pe.mention, r.stderr)
			}
			assertNotTagged(t, root, "bad:1")
		})
	}

	t.Run("target-missing", func(t *testing.T) {
		t.Parallel()
		ctx, _ := newCtx(t, "FROM berth-build-base AS one\nRUN true\n", nil)
		root := freshRoot(t)
		if r := berthBuild(t, root, nil, "--target", "two", "-t", "bad:1", ctx); r.code == 0 || !strings.Contains(r.stderr, "two") {
			t.Errorf("--target of a missing stage: %s; want a failure naming the stage", r)
		}
		assertNotTagged(t, root, "bad:1")
	})

	// Sources outside the context: refused, or (BuildKit's way) resolved
	// inside the context so that nothing from outside gets in.
	t.Run("outside-context", func(t *testing.T) {
		t.Parallel()
		for _, src := range []struct{ name, instr string }{
			{"dotdot", "COPY ../outside.txt /leak"},
			{"dotdot-dir", "COPY ../ /leak/"},
			{"absolute-symlink", "COPY abs-link /leak"},
			{"relative-symlink", "COPY rel-link /leak"},
			{"symlinked-dir", "COPY dir-link/outside.txt /leak"},
			{"add", "ADD ../outside.txt /leak"},
			{"bind-mount", "RUN --mount=type=bind,source=../,target=/m cat /m/outside.txt > /leak || true"},
			{"whole-context", "COPY . /leak/"},
		} {
			t.Run(src.name, func(t *testing.T) {
				secret := "OUTSIDE-THE-CONTEXT-" + randomHex(t, 8)
				ctx, top := newCtx(t, "FROM berth-build-base\n"+src.instr+"\n", map[string]string{"inside.txt": "inside\n"})
				writeFile(t, filepath.Join(top, "outside.txt"), secret+"\n", 0o644)
				for name, target := range map[string]string{
					"abs-link": filepath.Join(top, "outside.txt"),
					"rel-link": "../outside.txt",
					"dir-link": top,
				} {
					if err := os.Symlink(target, filepath.Join(ctx, name)); err != nil {
						t.Fatal(err)
					}
				}
				root := freshRoot(t)
				r := berthBuild(t, root, nil, "-t", "out:1", ctx)
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("the build printed the outside file's content")
				}
				if r.code != 0 {
					t.Logf("refused: %s", lastLine(r.stderr))
					assertNotTagged(t, root, "out:1")
					return
				}
				assertNotInImage(t, root, "out:1", secret)
			})
		}
	})

	t.Run("failing-run", func(t *testing.T) {
		t.Parallel()
		ctx, _ := newCtx(t, "FROM berth-build-base\nRUN echo step-one > /one\nRUN echo before-the-failure-marker && exit 3\nRUN echo never-reached\n", nil)
		root := freshRoot(t)
		// The tag exists before: a failed build must leave it alone.
		berthImport(t, root, "-c", `CMD ["true"]`, busyboxTar(t), "keep:1")
		before := berthID(t, root, "keep:1")
		r := berthBuild(t, root, nil, "--progress", "plain", "-t", "keep:1", "-t", "new:1", ctx)
		if r.code == 0 {
			t.Fatalf("berth build with RUN exit 3 succeeded: %s", r)
		}
		all := r.stdout + r.stderr
		if !strings.Contains(all, "before-the-failure-marker") {
			t.Errorf("the failing RUN's output is not shown:\n%s", all)
		}
		if !strings.Contains(r.stderr, "exit code: 3") {
			t.Errorf("stderr does not give the RUN's exit code as BuildKit does (\"... did not complete successfully: exit code: 3\"):\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "exit 3") {
			t.Errorf("stderr does not name the failing command:\n%s", r.stderr)
		}
		// A RUN's output shows as "#<n> <seconds> <line>"; the Dockerfile
		// itself may be quoted around the error.
		if regexp.MustCompile(`(?m)^#\d+ \d+\.\d+ never-reached`).MatchString(all) {
			t.Errorf("a step after the failing RUN ran:\n%s", all)
		}
		if got := berthID(t, root, "keep:1"); got != before {
			t.Errorf("a failed build moved keep:1 from %s to %s", before, got)
		}
		assertNotTagged(t, root, "new:1")
		systemCheck(t, root)
	})

	t.Run("failing-stage", func(t *testing.T) {
		t.Parallel()
		ctx, _ := newCtx(t, "FROM berth-build-base AS a\nRUN false\nFROM berth-build-base\nCOPY --from=a /etc/passwd /p\n", nil)
		root := freshRoot(t)
		if r := berthBuild(t, root, nil, "-t", "stage:1", ctx); r.code == 0 || !strings.Contains(r.stderr, "exit code: 1") {
			t.Errorf("build whose first stage fails: %s; want a failure with exit code: 1", r)
		}
		assertNotTagged(t, root, "stage:1")
	})

	t.Run("bad-checksum", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "payload\n") }))
		defer srv.Close()
		ctx, _ := newCtx(t, "FROM berth-build-base\nADD --checksum=sha256:"+strings.Repeat("0", 64)+" "+srv.URL+"/f /f\n", nil)
		root := freshRoot(t)
		if r := berthBuild(t, root, nil, "-t", "sum:1", ctx); r.code == 0 {
			t.Errorf("ADD --checksum with the wrong digest succeeded")
		}
		assertNotTagged(t, root, "sum:1")
	})

	// Secrets reach RUN but never a layer, the config or the history.
	t.Run("secrets", func(t *testing.T) {
		t.Parallel()
		fileSecret := "FILE-SECRET-" + randomHex(t, 12)
		envSecret := "ENV-SECRET-" + randomHex(t, 12)
		ctx, top := newCtx(t, "FROM berth-build-base\n"+
			"RUN --mount=type=secret,id=s cat /run/secrets/s && cp /run/secrets/s /tmp/copy && rm /tmp/copy\n"+
			"RUN --mount=type=secret,id=e cat /run/secrets/e | wc -c > /envlen\n"+
			"RUN --mount=type=secret,id=s,target=/custom wc -c < /custom > /len\n"+
			"CMD [\"cat\", \"/len\", \"/envlen\"]\n", nil)
		secretFile := filepath.Join(top, "secret.txt")
		writeFile(t, secretFile, fileSecret, 0o600)
		root := freshRoot(t)
		r := berthBuild(t, root, []string{"BERTH_TEST_SECRET=" + envSecret}, "--progress", "plain", "--secret", "id=s,src="+secretFile, "--secret", "id=e,env=BERTH_TEST_SECRET", "-t", "sec:1", ctx)
		if r.code != 0 {
			t.Fatalf("berth build --secret: %s", r)
		}
		if out := berth(t, root, "run", "--rm", "sec:1"); out != fmt.Sprintf("%d\n%d\n", len(fileSecret), len(envSecret)) {
			t.Errorf("the secrets did not reach RUN: image printed %q", out)
		}
		for _, s := range []string{fileSecret, envSecret} {
			assertNotInImage(t, root, "sec:1", s)
			if h := berth(t, root, "history", "--no-trunc", "sec:1"); strings.Contains(h, s) {
				t.Errorf("berth history --no-trunc shows a secret:\n%s", h)
			}
		}
	})
}

func lastLine(s string) string {
	l := ctrLines(s)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// assertNotTagged checks that ref names no image.
func assertNotTagged(t testing.TB, root, ref string) {
	t.Helper()
	if out := strings.TrimSpace(berth(t, root, "images", "-q", ref)); out != "" {
		t.Errorf("a failed build tagged %s (%s)", ref, out)
	}
	if code, _, _ := berthErr(t, root, "image", "inspect", ref); code == 0 {
		t.Errorf("berth image inspect %s succeeds after a failed build", ref)
	}
}

// assertNotInImage saves ref and fails if s occurs anywhere in the archive:
// its files, and every layer decompressed (gzip, zstd) and unpacked; then
// in the image's inspect output.
func assertNotInImage(t testing.TB, root, ref, s string) {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "saved.tar")
	berth(t, root, "save", "-o", saved, ref)
	for name, data := range tarFiles(t, saved) {
		if where := findIn(data, s, 0); where != "" {
			t.Errorf("%s: %q found in the saved image, %s%s", ref, s, name, where)
		}
	}
	if out := berth(t, root, "image", "inspect", ref); strings.Contains(out, s) {
		t.Errorf("%s: %q found in berth image inspect", ref, s)
	}
}

// findIn looks for s in data, in data decompressed, and in the files of
// data read as a tar; it returns where ("" when absent).
func findIn(data []byte, s string, depth int) string {
	if bytes.Contains(data, []byte(s)) {
		return " (raw bytes)"
	}
	if depth > 2 {
		return ""
	}
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			if b, err := io.ReadAll(zr); err == nil {
				if w := findIn(b, s, depth+1); w != "" {
					return " gunzipped" + w
				}
			}
		}
	}
	if len(data) > 4 && bytes.Equal(data[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		if zr, err := zstd.NewReader(bytes.NewReader(data)); err == nil {
			b, err := io.ReadAll(zr)
			zr.Close()
			if err == nil {
				if w := findIn(b, s, depth+1); w != "" {
					return " unzstd" + w
				}
			}
		}
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if strings.Contains(h.Name, s) || strings.Contains(h.Linkname, s) {
			return " in a tar entry name " + h.Name
		}
		for k, v := range h.PAXRecords {
			if strings.Contains(k+v, s) {
				return " in a PAX record of " + h.Name
			}
		}
		if b, err := io.ReadAll(tr); err == nil {
			if w := findIn(b, s, depth+1); w != "" {
				return " in " + h.Name + w
			}
		}
	}
	return ""
}

//go:build linux

// Package test holds berth's integration tests: they build the berth binary,
// run it against private roots and check that images move between berth and
// real peers (Docker, Podman, skopeo) with the same IDs and contents.
//
// The tests need root; they install and start the peers they use through
// hack/install-deps.sh and hack/start-dockerd.sh. Nothing is skipped when
// run as root.
package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	repoRoot string // the module root (directory of go.mod)
	berthBin string // the berth binary built once by TestMain
	buildErr error  // set when the build failed: every test that needs berth fails with it
)

// cmdTimeout bounds every external command so that a hung peer fails the
// test instead of eating the whole go test timeout.
const cmdTimeout = 5 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test: cannot find repository root:", err)
		return 1
	}
	repoRoot = root

	tmp, err := os.MkdirTemp("", "berth-itest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	defer func() {
		if busyboxDir != "" {
			os.RemoveAll(busyboxDir)
		}
	}()

	if os.Geteuid() == 0 {
		berthBin = filepath.Join(tmp, "berth")
		cmd := exec.Command("go", "build", "-o", berthBin, "./cmd/berth")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, out)
		}
	}
	return m.Run()
}

// findRepoRoot locates the module root: `go env GOMOD` first (works with
// -trimpath too), then the location of this source file.
func findRepoRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("runtime.Caller failed")
	}
	dir := filepath.Dir(filepath.Dir(file))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", err
	}
	return dir, nil
}

// needRoot skips the test unless running as root: the only skip there is.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration tests need root")
	}
}

// needBerth makes sure the test runs as root and that the binary was built.
func needBerth(t testing.TB) {
	t.Helper()
	needRoot(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// ---------------------------------------------------------------------------
// running commands

type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// execute runs name with args; stdin may be nil. An error is returned only
// when the command could not be run at all or timed out; a non-zero exit is
// reported in result.code.
func execute(stdin io.Reader, env []string, name string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), cmdTimeout)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, err
	}
	return r, nil
}

// run runs a peer command and fails the test unless it exits 0; it returns
// the standard output.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runIn(t, nil, name, args...)
}

func runIn(t testing.TB, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	r, err := execute(stdin, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	if r.code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.stdout
}

func berthArgs(root string, args []string) []string {
	return append([]string{"--root", root}, args...)
}

// berth runs the berth binary with --root root and fails the test, showing
// stderr, unless it exits 0. It returns the standard output.
func berth(t testing.TB, root string, args ...string) string {
	t.Helper()
	return berthIn(t, root, nil, args...)
}

// berthIn is berth with the given standard input.
func berthIn(t testing.TB, root string, stdin io.Reader, args ...string) string {
	t.Helper()
	needBerth(t)
	r, err := execute(stdin, nil, berthBin, berthArgs(root, args)...)
	if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	if r.code != 0 {
		t.Fatalf("berth %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// berthErr runs berth and returns its exit code, stdout and stderr, failing
// the test only if the binary could not be run.
func berthErr(t testing.TB, root string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	needBerth(t)
	r, err := execute(nil, nil, berthBin, berthArgs(root, args)...)
	if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r.code, r.stdout, r.stderr
}

// newRoot returns a fresh berth root for one test. Anything berth left
// mounted below it is detached before the directory is removed.
func newRoot(t testing.TB) string {
	t.Helper()
	needBerth(t)
	root := t.TempDir()
	t.Cleanup(func() { unmountBelow(t, root) })
	return root
}

// unmountBelow lazily unmounts every mount point at or below dir, deepest
// first.
func unmountBelow(t testing.TB, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", points[i], err)
		} else {
			t.Logf("cleanup: berth left %s mounted", points[i])
		}
	}
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// test images and peers

var (
	busyboxOnce sync.Once
	busyboxPath string
	busyboxErr  error
	busyboxDir  string
)

// busyboxTar returns the path of the busybox root filesystem tar made by
// hack/busybox-rootfs.sh, made once per test binary run.
func busyboxTar(t testing.TB) string {
	t.Helper()
	needRoot(t)
	busyboxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-itest-busybox-")
		if err != nil {
			busyboxErr = err
			return
		}
		busyboxDir = dir
		p := filepath.Join(dir, "busybox-rootfs.tar")
		r, err := execute(nil, nil, "bash", filepath.Join(repoRoot, "hack", "busybox-rootfs.sh"), p)
		switch {
		case err != nil:
			busyboxErr = err
		case r.code != 0:
			busyboxErr = fmt.Errorf("hack/busybox-rootfs.sh: %s", r)
		default:
			busyboxPath = p
		}
	})
	if busyboxErr != nil {
		t.Fatal(busyboxErr)
	}
	return busyboxPath
}

// peer set-up, done once per peer and remembered (also when it failed).
type once struct {
	sync.Once
	err error
}

var dockerOnce, podmanOnce, skopeoOnce once

func hackScript(name string, args ...string) error {
	r, err := execute(nil, nil, "bash", append([]string{filepath.Join(repoRoot, "hack", name)}, args...)...)
	if err != nil {
		return err
	}
	if r.code != 0 {
		return fmt.Errorf("hack/%s %s: %s", name, strings.Join(args, " "), r)
	}
	return nil
}

func haveCommand(name string, fallbacks ...string) bool {
	if _, err := exec.LookPath(name); err == nil {
		return true
	}
	for _, p := range fallbacks {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

// needDocker makes sure a Docker engine answers: installs docker.io if the
// daemon is missing and starts dockerd if it is not running.
func needDocker(t testing.TB) {
	t.Helper()
	needRoot(t)
	dockerOnce.Do(func() {
		if !haveCommand("dockerd", "/usr/sbin/dockerd") || !haveCommand("runc", "/usr/sbin/runc") {
			if dockerOnce.err = hackScript("install-deps.sh", "docker.io", "runc"); dockerOnce.err != nil {
				return
			}
		}
		dockerOnce.err = hackScript("start-dockerd.sh")
	})
	if dockerOnce.err != nil {
		t.Fatal(dockerOnce.err)
	}
}

// needPodman installs podman if needed and makes sure its configuration for
// this machine (runc, cgroupfs, no networking) is in place.
func needPodman(t testing.TB) {
	t.Helper()
	needRoot(t)
	podmanOnce.Do(func() {
		podmanOnce.err = hackScript("install-deps.sh", "podman", "runc")
	})
	if podmanOnce.err != nil {
		t.Fatal(podmanOnce.err)
	}
}

func needSkopeo(t testing.TB) {
	t.Helper()
	needRoot(t)
	skopeoOnce.Do(func() {
		skopeoOnce.err = hackScript("install-deps.sh", "skopeo")
	})
	if skopeoOnce.err != nil {
		t.Fatal(skopeoOnce.err)
	}
}

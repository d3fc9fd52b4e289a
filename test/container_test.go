//go:build linux

package test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// helpers shared by the container tests (container_test.go,
// container_hostile_test.go, commit_test.go)

// ctrTimeout bounds one berth command of the container tests: far more than
// any of them needs, far less than go test's own timeout, so that a hung
// command (a detached run that never returns, a wait that never ends)
// fails the test that issued it.
const ctrTimeout = 90 * time.Second

var ctrIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ctrCmd runs berth --root root ARGS with stdin and a time limit. It never
// fails the test: the error says why the command could not be run or did
// not finish. A berth that exits but leaves its stdout or stderr open in a
// process it started (a runtime, a monitor) is reported as such.
func ctrCmd(root string, stdin io.Reader, timeout time.Duration, args ...string) (result, error) {
	if buildErr != nil {
		return result{}, buildErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, berthArgs(root, args)...)
	cmd.Stdin = stdin
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("berth %s: did not finish within %v (killed)\n%s", strings.Join(args, " "), timeout, r)
	case errors.Is(err, exec.ErrWaitDelay):
		return r, fmt.Errorf("berth %s: exited, but a process it started kept its stdout/stderr open for %v\n%s", strings.Join(args, " "), cmd.WaitDelay, r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r, nil
}

// ctrB runs berth and returns its result; it fails the test only when the
// command could not be run or hung.
func ctrB(t testing.TB, root string, args ...string) result {
	t.Helper()
	needBerth(t)
	r, err := ctrCmd(root, nil, ctrTimeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ctrOK runs berth, fails the test unless it exits 0, and returns stdout.
func ctrOK(t testing.TB, root string, args ...string) string {
	t.Helper()
	r := ctrB(t, root, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// ctrOKIn is ctrOK with standard input.
func ctrOKIn(t testing.TB, root string, stdin io.Reader, args ...string) string {
	t.Helper()
	needBerth(t)
	r, err := ctrCmd(root, stdin, ctrTimeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 0 {
		t.Fatalf("berth %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// ctrImage imports the busybox root filesystem as an image named ref with
// CMD ["sh"] and returns ref.
func ctrImage(t testing.TB, root, ref string) string {
	t.Helper()
	berthImport(t, root, "-c", `CMD ["sh"]`, busyboxTar(t), ref)
	return ref
}

// ctrRunDetached runs `berth run -d ARGS` and returns the full container ID
// it printed, failing unless that is one line of 64 hex digits.
func ctrRunDetached(t testing.TB, root string, args ...string) string {
	t.Helper()
	start := time.Now()
	out := ctrOK(t, root, append([]string{"run", "-d"}, args...)...)
	id := strings.TrimSpace(out)
	if !ctrIDRE.MatchString(id) || out != id+"\n" {
		t.Fatalf("berth run -d %s: printed %q, want one line with a 64-hex container ID", strings.Join(args, " "), out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("berth run -d %s: took %v to return, want it to return once the container runs", strings.Join(args, " "), d)
	}
	return id
}

// ctrState is the part of `container inspect` the tests read.
type ctrState struct {
	Id      string
	Name    string
	Image   string
	Path    string
	Args    []string
	LogPath string
	State   struct {
		Status     string
		Running    bool
		Paused     bool
		OOMKilled  bool
		Dead       bool
		Pid        int
		ExitCode   int
		Error      string
		StartedAt  string
		FinishedAt string
	}
	Config struct {
		Hostname   string
		Env        []string
		Cmd        []string
		Entrypoint []string
		WorkingDir string
		User       string
	}
	HostConfig struct {
		AutoRemove bool
	}
}

// ctrInspect runs `container inspect` on one container.
func ctrInspect(t testing.TB, root, ref string) ctrState {
	t.Helper()
	out := ctrOK(t, root, "container", "inspect", ref)
	var list []ctrState
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("berth container inspect %s: not a JSON array: %v\n%s", ref, err, out)
	}
	if len(list) != 1 {
		t.Fatalf("berth container inspect %s: %d objects, want 1", ref, len(list))
	}
	return list[0]
}

// ctrRecord reads a container's own record (container.json) for what
// inspect does not show, such as the monitor's PID.
func ctrRecord(t testing.TB, root, id string) (status string, monitorPid int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "containers", id, "container.json"))
	if err != nil {
		t.Fatalf("container record: %v", err)
	}
	var rec struct {
		State struct {
			Status     string
			MonitorPid int
		}
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("containers/%s/container.json: %v", id, err)
	}
	return rec.State.Status, rec.State.MonitorPid
}

// ctrWait polls cond every 50ms until it holds or timeout passes.
func ctrWait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ctrPidAlive reports whether pid exists and is not a zombie.
func ctrPidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// ctrProcsMentioning lists the live processes (but this one) whose command
// line contains s, as "pid: cmdline".
func ctrProcsMentioning(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		cl := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		if strings.Contains(cl, s) && ctrPidAlive(pid) {
			out = append(out, fmt.Sprintf("%d: %s", pid, cl))
		}
	}
	return out
}

// ctrMountsUnder lists the mount points at or below dir in this process's
// mount namespace.
func ctrMountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// ctrCgroupDirs lists the cgroup directories of any hierarchy that berth
// made for a container whose ID starts with prefix.
func ctrCgroupDirs(prefix string) []string {
	var out []string
	for _, pattern := range []string{"/sys/fs/cgroup/*/berth/" + prefix + "*", "/sys/fs/cgroup/berth/" + prefix + "*"} {
		m, _ := filepath.Glob(pattern)
		out = append(out, m...)
	}
	return out
}

// ctrProcStatus reads the "Name:\tvalue" fields of a /proc/<pid>/status text.
func ctrProcStatus(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// ctrHexCaps parses a capability mask of /proc/<pid>/status.
func ctrHexCaps(t testing.TB, what, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("%s: capability mask %q: %v", what, s, err)
	}
	return v
}

// ctrDefaultCaps is CapEff of a process in a default Docker container.
const ctrDefaultCaps = 0x00000000a80425fb

// ctrRewriteRootfs writes a copy of the busybox root filesystem tar without
// the entries at or below the names in drop, plus extra entries, and
// returns its path.
func ctrRewriteRootfs(t testing.TB, drop []string, extra []hentry) string {
	t.Helper()
	in, err := os.Open(busyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	norm := func(n string) string {
		return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(n, "./"), "/"), "/")
	}
	for _, e := range extra {
		drop = append(drop, norm(e.hdr.Name))
	}
	dropped := func(name string) bool {
		n := norm(name)
		for _, d := range drop {
			if d != "" && (n == d || strings.HasPrefix(n, d+"/")) {
				return true
			}
		}
		return false
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if dropped(h.Name) {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, e := range extra {
		h := e.hdr
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ctrLines splits output into its non-empty lines.
func ctrLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// isolation, limits and configuration of one container

// TestContainerIsolation checks what a process sees inside `berth run`:
// namespaces, Docker's default confinement (capabilities, seccomp, masked
// and read-only paths), resource limits, the configuration flags and exit
// codes, each against what Docker gives.
func TestContainerIsolation(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	img := ctrImage(t, root, "ctr/busybox:1")

	// runSh runs `berth run --rm FLAGS... img sh -c script` and returns the
	// result; want < 0 accepts any exit code.
	runSh := func(t *testing.T, want int, flags []string, script string) result {
		t.Helper()
		args := append(append([]string{"run", "--rm"}, flags...), img, "sh", "-c", script)
		r := ctrB(t, root, args...)
		if want >= 0 && r.code != want {
			t.Fatalf("berth %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, want, r)
		}
		return r
	}

	t.Run("pid-namespace", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, nil, `echo $$; ls /proc`)
		ls := ctrLines(r.stdout)
		if len(ls) == 0 || ls[0] != "1" {
			t.Fatalf("echo $$ in the container printed %q, want 1 (the command is pid 1)", r.stdout)
		}
		var pids []string
		for _, l := range ls[1:] {
			if _, err := strconv.Atoi(l); err == nil {
				pids = append(pids, l)
			}
		}
		// sh (pid 1) and ls itself, nothing of the host's.
		if len(pids) > 3 || len(pids) == 0 || pids[0] != "1" {
			t.Errorf("ls /proc in the container shows pids %q: want only pid 1 and ls (a private PID namespace)", pids)
		}
		if r := runSh(t, 0, nil, `ps -o pid,comm; true`); len(ctrLines(r.stdout)) != 3 {
			t.Errorf("ps in the container lists %q, want 3 lines (header, sh, ps)", r.stdout)
		}
	})

	t.Run("hostname", func(t *testing.T) {
		t.Parallel()
		name := "ctr-hostname"
		out := ctrOK(t, root, "run", "--name", name, img, "sh", "-c", "hostname; cat /etc/hostname")
		st := ctrInspect(t, root, name)
		ctrOK(t, root, "rm", name)
		want := st.Id[:12]
		if ls := ctrLines(out); len(ls) != 2 || ls[0] != want || ls[1] != want {
			t.Errorf("hostname; cat /etc/hostname: %q, want the short ID %s twice", out, want)
		}
		if st.Config.Hostname != want {
			t.Errorf("inspect Config.Hostname %q, want %s", st.Config.Hostname, want)
		}
		r := runSh(t, 0, []string{"-h", "box.example"}, "hostname; cat /etc/hostname")
		if r.stdout != "box.example\nbox.example\n" {
			t.Errorf("run -h box.example: hostname printed %q, want box.example twice", r.stdout)
		}
		hostName, _ := os.Hostname()
		if hostName == "box.example" || hostName == want {
			t.Errorf("the host's name changed to %q: the UTS namespace is not private", hostName)
		}
	})

	t.Run("default-confinement", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, nil, `cat /proc/self/status`)
		st := ctrProcStatus(r.stdout)
		if got := ctrHexCaps(t, "CapEff", st["CapEff"]); got != ctrDefaultCaps {
			t.Errorf("CapEff %016x, want Docker's default set %016x", got, uint64(ctrDefaultCaps))
		}
		if got := ctrHexCaps(t, "CapBnd", st["CapBnd"]); got != ctrDefaultCaps {
			t.Errorf("CapBnd %016x, want Docker's default set %016x", got, uint64(ctrDefaultCaps))
		}
		if st["Seccomp"] != "2" {
			t.Errorf("Seccomp: %q, want 2 (a filter, Docker's default profile)", st["Seccomp"])
		}
		if st["NoNewPrivs"] != "0" {
			t.Errorf("NoNewPrivs: %q, want 0 (Docker's default)", st["NoNewPrivs"])
		}

		// Masked paths: /proc/kcore when the host has one, else
		// /proc/timer_list and /proc/keys, which must read as /dev/null.
		masked := []string{"/proc/timer_list", "/proc/keys"}
		if _, err := os.Stat("/proc/kcore"); err == nil {
			masked = []string{"/proc/kcore"}
		}
		for _, p := range masked {
			if _, err := os.Stat(p); err != nil {
				continue
			}
			r := runSh(t, -1, nil, fmt.Sprintf(`stat -c '%%F %%t:%%T' %s; wc -c < %s`, p, p))
			ls := ctrLines(r.stdout)
			if len(ls) != 2 || ls[0] != "character special file 1:3" || strings.TrimSpace(ls[1]) != "0" {
				t.Errorf("masked path %s in the container: %q; want /dev/null (character special file 1:3) reading 0 bytes\n%s", p, r.stdout, r)
			}
		}

		// /proc/sys is read-only, and nothing written there reaches the host.
		before, _ := os.ReadFile("/proc/sys/kernel/domainname")
		r = runSh(t, -1, nil, `grep ' /proc/sys ' /proc/self/mountinfo; echo berth-test > /proc/sys/kernel/domainname && echo WROTE`)
		mi := ctrLines(r.stdout)
		if len(mi) == 0 || !strings.Contains(mi[0], " /proc/sys ro,") {
			t.Errorf("/proc/sys mount in the container: %q, want it mounted read-only\n%s", r.stdout, r)
		}
		if strings.Contains(r.stdout, "WROTE") || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("writing /proc/sys/kernel/domainname in the container: want \"Read-only file system\"\n%s", r)
		}
		if after, _ := os.ReadFile("/proc/sys/kernel/domainname"); !bytes.Equal(before, after) {
			t.Errorf("the host's domainname changed from %q to %q", before, after)
		}
		// /sys is read-only too.
		if r := runSh(t, -1, nil, `grep ' /sys ' /proc/self/mountinfo`); !strings.Contains(r.stdout, " /sys ro,") {
			t.Errorf("/sys mount in the container: %q, want read-only", r.stdout)
		}
	})

	t.Run("memory-limit", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, []string{"-m", "32m"}, `cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max`)
		if strings.TrimSpace(r.stdout) != "33554432" {
			t.Errorf("-m 32m: the container's memory limit reads %q, want 33554432", r.stdout)
		}
		name := "ctr-oom"
		start := time.Now()
		r = ctrB(t, root, "run", "--name", name, "-m", "32m", img, "sh", "-c", `x=a; while true; do x=$x$x; done`)
		if r.code != 137 {
			t.Errorf("-m 32m with a memory hog: exit %d after %v, want 137 (killed by the OOM killer)\n%s", r.code, time.Since(start), r)
		}
		st := ctrInspect(t, root, name)
		if st.State.ExitCode != 137 {
			t.Errorf("inspect of the OOM-killed container: ExitCode %d, want 137", st.State.ExitCode)
		}
		ctrOK(t, root, "rm", name)
	})

	t.Run("pids-limit", func(t *testing.T) {
		t.Parallel()
		script := `cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; for i in $(seq 1 25); do sleep 2 & done; wait; echo done`
		r := runSh(t, -1, []string{"--pids-limit", "10"}, script)
		out := r.stdout + r.stderr
		if ls := ctrLines(r.stdout); len(ls) == 0 || ls[0] != "10" {
			t.Errorf("--pids-limit 10: pids.max reads %q, want 10", r.stdout)
		}
		if !strings.Contains(out, "can't fork") {
			t.Errorf("--pids-limit 10: starting 25 background sleeps never failed to fork\n%s", r)
		}
		// Control: without the limit the same loop forks fine.
		r = runSh(t, 0, nil, `for i in $(seq 1 25); do sleep 2 & done; wait; echo done`)
		if strings.Contains(r.stdout+r.stderr, "can't fork") || !strings.Contains(r.stdout, "done") {
			t.Errorf("without --pids-limit: 25 background sleeps failed to fork\n%s", r)
		}
	})

	t.Run("cpus-ulimit", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, []string{"--cpus", "0.5", "--ulimit", "nofile=1024:2048"},
			`cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max; ulimit -n; ulimit -Hn`)
		got := strings.Join(ctrLines(r.stdout), " ")
		if got != "50000 100000 1024 2048" {
			t.Errorf("--cpus 0.5 --ulimit nofile=1024:2048: got %q, want quota 50000 period 100000, nofile soft 1024 hard 2048", got)
		}
	})

	t.Run("env", func(t *testing.T) {
		t.Parallel()
		envFile := filepath.Join(t.TempDir(), "env.list")
		if err := os.WriteFile(envFile, []byte("# a comment\nFROMFILE=hello world\nOVERRIDE=file\n\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runSh(t, 0, []string{"--env-file", envFile, "-e", "FOO=bar", "-e", "OVERRIDE=flag", "-e", "EMPTY="}, `env`)
		env := map[string]bool{}
		for _, l := range ctrLines(r.stdout) {
			env[l] = true
		}
		for _, want := range []string{"FOO=bar", "FROMFILE=hello world", "OVERRIDE=flag", "EMPTY=", "HOME=/root",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} {
			if !env[want] {
				t.Errorf("env in the container lacks %q:\n%s", want, r.stdout)
			}
		}
		for _, bad := range []string{"OVERRIDE=file", "# a comment"} {
			if env[bad] {
				t.Errorf("env in the container has %q: -e must override --env-file, comments are skipped", bad)
			}
		}
		if !strings.Contains(r.stdout, "HOSTNAME=") {
			t.Errorf("env in the container has no HOSTNAME")
		}
	})

	t.Run("workdir", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, []string{"-w", "/made/by/berth"}, `pwd; test -d /made/by/berth && echo isdir`)
		if r.stdout != "/made/by/berth\nisdir\n" {
			t.Errorf("-w /made/by/berth (missing in the image): %q, want the directory created and used", r.stdout)
		}
		r = runSh(t, 0, []string{"-w", "/tmp"}, `pwd`)
		if r.stdout != "/tmp\n" {
			t.Errorf("-w /tmp: pwd %q", r.stdout)
		}
	})

	t.Run("user", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ flag, want string }{
			{"nobody", "65534 65534"},
			{"1234:5678", "1234 5678"},
			{"0", "0 0"},
		} {
			r := runSh(t, 0, []string{"-u", c.flag}, `echo $(id -u) $(id -g)`)
			if strings.TrimSpace(r.stdout) != c.want {
				t.Errorf("-u %s: id -u, id -g = %q, want %q", c.flag, strings.TrimSpace(r.stdout), c.want)
			}
		}
		// The image's own users: USER app from its /etc/passwd and
		// /etc/group, with the supplementary groups and the home.
		passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:4321:8765:App:/home/app:/bin/sh\n"
		group := "root:x:0:\nnogroup:x:65534:\nappgrp:x:8765:\nextra:x:999:app\n"
		tarPath := ctrRewriteRootfs(t, nil, []hentry{hreg("./etc/passwd", passwd), hreg("./etc/group", group)})
		userImg := "ctr/users:1"
		berthImport(t, root, "-c", "USER app", "-c", `CMD ["sh"]`, tarPath, userImg)
		r := ctrB(t, root, "run", "--rm", userImg, "sh", "-c", `echo $(id -u) $(id -g) $(id -G) $HOME`)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "4321 8765 8765 999 /home/app" {
			t.Errorf("image with USER app: uid gid groups HOME = %q, want \"4321 8765 8765 999 /home/app\"\n%s", strings.TrimSpace(r.stdout), r)
		}
		r = ctrB(t, root, "run", "--rm", "-u", "app:extra", userImg, "sh", "-c", `echo $(id -u) $(id -g)`)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "4321 999" {
			t.Errorf("-u app:extra: %q, want \"4321 999\"\n%s", strings.TrimSpace(r.stdout), r)
		}
		r = ctrB(t, root, "run", "--rm", "-u", "root", userImg, "id", "-u")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "0" {
			t.Errorf("-u root over the image's USER app: %q, want 0\n%s", r.stdout, r)
		}
	})

	t.Run("volumes", func(t *testing.T) {
		t.Parallel()
		// A named volume outlives a --rm container.
		runSh(t, 0, []string{"-v", "ctrvol1:/data"}, `echo persisted > /data/f`)
		r := runSh(t, 0, []string{"-v", "ctrvol1:/data"}, `cat /data/f`)
		if r.stdout != "persisted\n" {
			t.Errorf("named volume ctrvol1: the second container read %q, want what the first wrote", r.stdout)
		}
		r = runSh(t, 0, []string{"--mount", "type=volume,source=ctrvol1,target=/other"}, `cat /other/f`)
		if r.stdout != "persisted\n" {
			t.Errorf("--mount type=volume,source=ctrvol1: read %q", r.stdout)
		}

		// Bind mounts: read-only and read-write.
		dir := t.TempDir()
		roDir, rwDir := filepath.Join(dir, "ro"), filepath.Join(dir, "rw")
		os.Mkdir(roDir, 0o755)
		os.Mkdir(rwDir, 0o755)
		os.WriteFile(filepath.Join(roDir, "file"), []byte("host content\n"), 0o644)
		r = runSh(t, 0, []string{"-v", roDir + ":/mnt/ro:ro", "-v", rwDir + ":/mnt/rw"},
			`cat /mnt/ro/file; if touch /mnt/ro/new 2>/dev/null; then echo WROTE; else echo DENIED; fi; echo from-container > /mnt/rw/out`)
		if r.stdout != "host content\nDENIED\n" {
			t.Errorf("-v DIR:/mnt/ro:ro: %q, want the host file readable and writes refused", r.stdout)
		}
		if _, err := os.Stat(filepath.Join(roDir, "new")); err == nil {
			t.Errorf("a write through a :ro bind mount reached the host directory")
		}
		if b, _ := os.ReadFile(filepath.Join(rwDir, "out")); string(b) != "from-container\n" {
			t.Errorf("-v DIR:/mnt/rw: the host file reads %q, want what the container wrote", b)
		}
		r = runSh(t, 0, []string{"--mount", "type=bind,source=" + roDir + ",target=/m,readonly"},
			`cat /m/file; if touch /m/new 2>/dev/null; then echo WROTE; else echo DENIED; fi`)
		if r.stdout != "host content\nDENIED\n" {
			t.Errorf("--mount type=bind,...,readonly: %q, want the file readable and writes refused", r.stdout)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, []string{"--read-only", "--tmpfs", "/scratch"},
			`if touch /newfile 2>/dev/null; then echo WROTE; else echo DENIED; fi; echo ok > /scratch/x && cat /scratch/x`)
		if r.stdout != "DENIED\nok\n" {
			t.Errorf("--read-only --tmpfs /scratch: %q, want the root read-only and the tmpfs writable", r.stdout)
		}
		r = runSh(t, 0, nil, `if touch /newfile 2>/dev/null; then echo WROTE; else echo DENIED; fi`)
		if r.stdout != "WROTE\n" {
			t.Errorf("without --read-only: %q, want the root writable", r.stdout)
		}
	})

	t.Run("network", func(t *testing.T) {
		t.Parallel()
		ifaces := func(procNetDev string) []string {
			var out []string
			for _, l := range ctrLines(procNetDev) {
				if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
					out = append(out, strings.TrimSpace(name))
				}
			}
			sort.Strings(out)
			return out
		}
		r := runSh(t, 0, []string{"--network", "none"}, `cat /proc/net/dev`)
		if got := ifaces(r.stdout); strings.Join(got, ",") != "lo" {
			t.Errorf("--network none: interfaces %q, want only lo", got)
		}
		r = runSh(t, 0, nil, `cat /proc/net/dev`)
		if got := ifaces(r.stdout); strings.Join(got, ",") != "lo" {
			t.Errorf("default network: interfaces %q, want only lo", got)
		}
		// The host's interfaces, read before and after (a peer such as
		// dockerd may add one meanwhile).
		hostIfaces := func() []string {
			b, err := os.ReadFile("/proc/self/net/dev")
			if err != nil {
				t.Fatal(err)
			}
			return ifaces(string(b))
		}
		before := hostIfaces()
		r = runSh(t, 0, []string{"--network", "host"}, `cat /proc/net/dev`)
		after := hostIfaces()
		if got := strings.Join(ifaces(r.stdout), ","); got != strings.Join(before, ",") && got != strings.Join(after, ",") {
			t.Errorf("--network host: interfaces %q, want the host's %q", got, after)
		}
		if len(after) < 2 {
			t.Logf("the host has only %q: --network host is not told apart from none here", after)
		}
	})

	t.Run("exit-codes", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			args []string
			want int
			why  string
		}{
			{[]string{"sh", "-c", "exit 3"}, 3, "the command's own status"},
			{[]string{"nosuchcommand"}, 127, "command not found"},
			{[]string{"/no/such/file"}, 127, "command not found"},
			{[]string{"/etc/passwd"}, 126, "not executable"},
			{[]string{"/etc"}, 126, "a directory cannot be invoked"},
			{[]string{"sh", "-c", "kill -TERM $$; exit 0"}, 0, "pid 1 ignores a signal it has no handler for"},
		} {
			args := append([]string{"run", "--rm", img}, c.args...)
			r := ctrB(t, root, args...)
			if r.code != c.want {
				t.Errorf("berth %s: exit %d, want %d (%s)\n%s", strings.Join(args, " "), r.code, c.want, c.why, r)
			}
			if c.want >= 125 && strings.TrimSpace(r.stderr) == "" {
				t.Errorf("berth %s: exit %d with nothing on stderr", strings.Join(args, " "), r.code)
			}
		}

		// Killed by SIGKILL from outside: 128+9.
		name := "ctr-sigkill"
		type done struct {
			r   result
			err error
		}
		ch := make(chan done, 1)
		go func() {
			r, err := ctrCmd(root, nil, ctrTimeout, "run", "--rm", "--name", name, img, "sleep", "60")
			ch <- done{r, err}
		}()
		if !ctrWait(20*time.Second, func() bool {
			r, _ := ctrCmd(root, nil, ctrTimeout, "container", "inspect", "-f", "{{.State.Running}}", name)
			return strings.TrimSpace(r.stdout) == "true"
		}) {
			t.Fatalf("container %s never showed as running", name)
		}
		ctrOK(t, root, "kill", name)
		d := <-ch
		if d.err != nil {
			t.Fatal(d.err)
		}
		if d.r.code != 137 {
			t.Errorf("foreground run killed by `berth kill` (SIGKILL): exit %d, want 137\n%s", d.r.code, d.r)
		}
	})

	t.Run("stdio", func(t *testing.T) {
		t.Parallel()
		if out := ctrOKIn(t, root, strings.NewReader("piped in\n"), "run", "--rm", "-i", img, "cat"); out != "piped in\n" {
			t.Errorf("run -i IMG cat with input on stdin: %q, want it echoed", out)
		}
		if out := ctrOKIn(t, root, strings.NewReader("not attached\n"), "run", "--rm", img, "cat"); out != "" {
			t.Errorf("run IMG cat (no -i): %q, want nothing (stdin not attached)", out)
		}
		r := runSh(t, 0, []string{"-t"}, `tty; test -t 1 && echo is-a-tty`)
		if got := strings.ReplaceAll(r.stdout, "\r", ""); !strings.HasPrefix(got, "/dev/pts/") || !strings.Contains(got, "is-a-tty") {
			t.Errorf("run -t: %q, want a terminal on /dev/pts", r.stdout)
		}
		if r := runSh(t, 0, nil, `test -t 1 || echo not-a-tty`); r.stdout != "not-a-tty\n" {
			t.Errorf("run without -t: %q, want stdout not to be a terminal", r.stdout)
		}
	})

	t.Run("seccomp-profile", func(t *testing.T) {
		t.Parallel()
		profile := filepath.Join(t.TempDir(), "seccomp.json")
		if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runSh(t, -1, []string{"--security-opt", "seccomp=" + profile}, `grep Seccomp: /proc/self/status; mkdir /newdir && echo MADE`)
		if !strings.Contains(r.stdout, "2") || strings.Contains(r.stdout, "MADE") || !strings.Contains(r.stderr, "Operation not permitted") {
			t.Errorf("--security-opt seccomp=PROFILE denying mkdir: want Seccomp 2 and mkdir failing with EPERM; got %s", r)
		}
		if r := runSh(t, 0, nil, `mkdir /newdir && echo MADE`); r.stdout != "MADE\n" {
			t.Errorf("default profile: mkdir failed: %s", r)
		}
	})

	t.Run("init", func(t *testing.T) {
		t.Parallel()
		r := runSh(t, 0, []string{"--init"}, `echo $$; tr '\0' ' ' < /proc/1/cmdline`)
		ls := ctrLines(r.stdout)
		if len(ls) != 2 || ls[0] == "1" {
			t.Fatalf("--init: %q, want the command not to be pid 1", r.stdout)
		}
		if !strings.Contains(ls[1], "init") && !strings.Contains(ls[1], "tini") {
			t.Errorf("--init: pid 1 is %q, want docker-init/tini", ls[1])
		}
		if !strings.Contains(ls[1], "sh -c") {
			t.Errorf("--init: pid 1 is %q, want it to run the command", ls[1])
		}
		r = runSh(t, 0, nil, `tr '\0' ' ' < /proc/1/cmdline; true`)
		if !strings.HasPrefix(r.stdout, "sh -c") {
			t.Errorf("without --init: pid 1 is %q, want the command", r.stdout)
		}
	})

	t.Run("capabilities", func(t *testing.T) {
		t.Parallel()
		self, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		hostBnd := ctrHexCaps(t, "host CapBnd", ctrProcStatus(string(self))["CapBnd"])
		status := func(flags ...string) map[string]string {
			t.Helper()
			return ctrProcStatus(runSh(t, 0, flags, `cat /proc/self/status`).stdout)
		}

		st := status("--cap-drop", "ALL")
		if ctrHexCaps(t, "CapEff", st["CapEff"]) != 0 || ctrHexCaps(t, "CapBnd", st["CapBnd"]) != 0 {
			t.Errorf("--cap-drop ALL: CapEff %s CapBnd %s, want 0", st["CapEff"], st["CapBnd"])
		}
		st = status("--cap-add", "NET_ADMIN", "--cap-drop", "chown")
		if got, want := ctrHexCaps(t, "CapEff", st["CapEff"]), (uint64(ctrDefaultCaps)|1<<12)&^1; got != want {
			t.Errorf("--cap-add NET_ADMIN --cap-drop chown: CapEff %016x, want %016x", got, want)
		}
		st = status("--security-opt", "no-new-privileges")
		if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
			t.Errorf("--security-opt no-new-privileges: NoNewPrivs %q Seccomp %q, want 1 and 2", st["NoNewPrivs"], st["Seccomp"])
		}
		st = status("--security-opt", "seccomp=unconfined")
		if st["Seccomp"] != "0" || ctrHexCaps(t, "CapEff", st["CapEff"]) != ctrDefaultCaps {
			t.Errorf("--security-opt seccomp=unconfined: Seccomp %q CapEff %s, want 0 and the default caps", st["Seccomp"], st["CapEff"])
		}

		// --privileged: every capability berth itself may hand out (its
		// bounding set), no seccomp filter, the host's devices.
		r := runSh(t, -1, []string{"--privileged"}, `cat /proc/self/status; ls /dev`)
		if r.code != 0 {
			t.Fatalf("run --privileged: exit %d, want 0 (all capabilities of the host's bounding set %016x)\n%s", r.code, hostBnd, r)
		}
		st = ctrProcStatus(r.stdout)
		if got := ctrHexCaps(t, "CapEff", st["CapEff"]); got != hostBnd {
			t.Errorf("--privileged: CapEff %016x, want the full set %016x", got, hostBnd)
		}
		if st["Seccomp"] != "0" {
			t.Errorf("--privileged: Seccomp %q, want 0", st["Seccomp"])
		}
	})
}

// ---------------------------------------------------------------------------
// lifecycle of detached containers

// TestContainerLifecycle drives detached containers through every verb:
// run -d, ps, logs, exec, top, stats, pause, stop, kill, wait, restart,
// rename, rm, prune, create/start, and a monitor killed under a running
// container.
func TestContainerLifecycle(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	img := ctrImage(t, root, "ctr/busybox:1")

	// A container that logs a line every 0.2s, exits 7 on SIGTERM and 42
	// on SIGUSR1.
	const ticker = `trap 'echo got-term; exit 7' TERM; trap 'echo got-usr1; exit 42' USR1; echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done`
	id := ctrRunDetached(t, root, "--name", "lc", img, "sh", "-c", ticker)
	short := id[:12]

	// ps
	ps := ctrOK(t, root, "ps")
	if !strings.Contains(ps, short) || !strings.Contains(ps, "Up ") || !strings.Contains(ps, "lc") {
		t.Errorf("berth ps: want a row for %s (lc) with status Up, got\n%s", short, ps)
	}
	if got := strings.TrimSpace(ctrOK(t, root, "ps", "-q")); !strings.Contains(got, short) {
		t.Errorf("berth ps -q: %q, want %s in it", got, short)
	}
	if got := strings.TrimSpace(ctrOK(t, root, "ps", "--no-trunc", "--filter", "name=lc", "--format", "{{.ID}} {{.Names}} {{.State}}")); got != id+" lc running" {
		t.Errorf("berth ps --filter name=lc --format ...: %q, want %q", got, id+" lc running")
	}
	st := ctrInspect(t, root, "lc")
	if st.Id != id || st.Name != "/lc" || st.State.Status != "running" || !st.State.Running || st.State.Pid <= 0 {
		t.Fatalf("inspect lc: Id %s Name %s Status %s Running %v Pid %d; want %s /lc running true >0", st.Id, st.Name, st.State.Status, st.State.Running, st.State.Pid, id)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.State.Pid)); err != nil || !strings.Contains(string(b), "got-term") {
		t.Errorf("State.Pid %d: /proc/%d/cmdline = %q (%v), want the container's sh", st.State.Pid, st.State.Pid, b, err)
	}
	firstPid := st.State.Pid

	// logs, --tail, -t
	if !ctrWait(10*time.Second, func() bool {
		return strings.Contains(ctrOK(t, root, "logs", "lc"), "tick 3\n")
	}) {
		t.Fatalf("berth logs lc never showed \"tick 3\":\n%s", ctrB(t, root, "logs", "lc"))
	}
	logs := ctrOK(t, root, "logs", "lc")
	if !strings.HasPrefix(logs, "started\ntick 0\ntick 1\n") {
		t.Errorf("berth logs lc: %q, want it to start with started, tick 0, tick 1", logs)
	}
	tail := ctrLines(ctrOK(t, root, "logs", "--tail", "1", "lc"))
	if len(tail) != 1 || !strings.HasPrefix(tail[0], "tick ") {
		t.Errorf("berth logs --tail 1: %q, want one tick line", tail)
	}
	tsRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) tick \d+$`)
	ts := ctrLines(ctrOK(t, root, "logs", "-t", "--tail", "2", "lc"))
	if len(ts) != 2 {
		t.Errorf("berth logs -t --tail 2: %d lines, want 2: %q", len(ts), ts)
	}
	for _, l := range ts {
		if !tsRE.MatchString(l) {
			t.Errorf("berth logs -t: line %q, want an RFC 3339 timestamp before the text", l)
		}
	}

	// exec
	r := ctrB(t, root, "exec", "lc", "sh", "-c", "echo in-exec; echo to-stderr >&2; exit 4")
	if r.code != 4 || r.stdout != "in-exec\n" || r.stderr != "to-stderr\n" {
		t.Errorf("berth exec lc sh -c '...; exit 4': want exit 4, stdout in-exec, stderr to-stderr; got %s", r)
	}
	r = ctrB(t, root, "exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "lc", "sh", "-c", `echo $FOO; pwd; id -u`)
	if r.code != 0 || r.stdout != "bar\n/tmp\n65534\n" {
		t.Errorf("berth exec -e FOO=bar -w /tmp -u nobody: want bar, /tmp, 65534; got %s", r)
	}
	r = ctrB(t, root, "exec", "lc", "sh", "-c", `tr '\0' ' ' < /proc/1/cmdline`)
	if !strings.Contains(r.stdout, "got-term") {
		t.Errorf("berth exec: /proc/1/cmdline %q, want the container's main process (same PID namespace)", r.stdout)
	}
	if out := ctrOKIn(t, root, strings.NewReader("exec stdin\n"), "exec", "-i", "lc", "cat"); out != "exec stdin\n" {
		t.Errorf("berth exec -i lc cat: %q, want the input echoed", out)
	}
	ctrOK(t, root, "exec", "-d", "lc", "sh", "-c", "echo detached > /tmp/exec-d")
	if !ctrWait(10*time.Second, func() bool {
		return ctrB(t, root, "exec", "lc", "cat", "/tmp/exec-d").stdout == "detached\n"
	}) {
		t.Errorf("berth exec -d: the detached command never wrote /tmp/exec-d")
	}
	if r := ctrB(t, root, "exec", "lc", "nosuchcommand"); r.code != 126 && r.code != 127 {
		t.Errorf("berth exec of a missing command: exit %d, want 126 or 127\n%s", r.code, r)
	}

	// top, stats
	top := ctrOK(t, root, "top", "lc")
	if tl := ctrLines(top); len(tl) < 2 || !strings.Contains(tl[0], "PID") || !strings.Contains(top, "got-term") || !strings.Contains(top, strconv.Itoa(firstPid)) {
		t.Errorf("berth top lc: want a header with PID and a row for pid %d running the ticker, got\n%s", firstPid, top)
	}
	stats := ctrLines(ctrOK(t, root, "stats", "--no-stream"))
	found := false
	for _, l := range stats[min(1, len(stats)):] {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == short && f[1] == "lc" {
			found = true
		}
	}
	if len(stats) < 2 || !strings.Contains(stats[0], "CONTAINER ID") || !found {
		t.Errorf("berth stats --no-stream: want a header and a row for %s lc, got %q", short, stats)
	}

	// pause / unpause: the log stops growing while paused.
	ctrOK(t, root, "pause", "lc")
	st = ctrInspect(t, root, "lc")
	if st.State.Status != "paused" || !st.State.Paused || !st.State.Running {
		t.Errorf("after pause: Status %q Paused %v Running %v, want paused true true", st.State.Status, st.State.Paused, st.State.Running)
	}
	if ps := ctrOK(t, root, "ps", "--filter", "name=lc"); !strings.Contains(ps, "(Paused)") {
		t.Errorf("berth ps of a paused container: want \"(Paused)\" in\n%s", ps)
	}
	time.Sleep(300 * time.Millisecond)
	n1 := len(ctrLines(ctrOK(t, root, "logs", "lc")))
	time.Sleep(800 * time.Millisecond)
	if n2 := len(ctrLines(ctrOK(t, root, "logs", "lc"))); n2 != n1 {
		t.Errorf("while paused the container logged %d more lines, want none (frozen)", n2-n1)
	}
	if r := ctrB(t, root, "exec", "lc", "true"); r.code == 0 {
		t.Errorf("berth exec into a paused container exited 0, want a refusal")
	}
	ctrOK(t, root, "unpause", "lc")
	if st = ctrInspect(t, root, "lc"); st.State.Status != "running" || st.State.Paused {
		t.Errorf("after unpause: Status %q Paused %v, want running false", st.State.Status, st.State.Paused)
	}
	if !ctrWait(5*time.Second, func() bool { return len(ctrLines(ctrOK(t, root, "logs", "lc"))) > n1 }) {
		t.Errorf("after unpause the container never logged again")
	}

	// stop: the trap runs, exit 7, well within the timeout.
	start := time.Now()
	if out := ctrOK(t, root, "stop", "-t", "10", "lc"); out != "lc\n" {
		t.Errorf("berth stop lc printed %q, want \"lc\"", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("berth stop of a container that exits on SIGTERM took %v, want well under the 10s timeout", d)
	}
	if got := strings.TrimSpace(ctrOK(t, root, "wait", "lc")); got != "7" {
		t.Errorf("berth wait after stop: %q, want 7 (the TERM trap's exit code)", got)
	}
	if logs := ctrOK(t, root, "logs", "lc"); !strings.Contains(logs, "got-term\n") {
		t.Errorf("after stop: logs lack the TERM trap's output")
	}
	st = ctrInspect(t, root, "lc")
	if st.State.Status != "exited" || st.State.Running || st.State.ExitCode != 7 || st.State.Pid != 0 {
		t.Errorf("after stop: Status %q Running %v ExitCode %d Pid %d, want exited false 7 0", st.State.Status, st.State.Running, st.State.ExitCode, st.State.Pid)
	}
	if ctrPidAlive(firstPid) {
		t.Errorf("after stop: the container's process %d still runs", firstPid)
	}
	if ps := ctrOK(t, root, "ps"); strings.Contains(ps, short) {
		t.Errorf("berth ps (no -a) lists the stopped container:\n%s", ps)
	}
	if ps := ctrOK(t, root, "ps", "-a"); !strings.Contains(ps, "Exited (7)") {
		t.Errorf("berth ps -a: want \"Exited (7)\" for lc in\n%s", ps)
	}

	// restart, kill -s, kill
	startedAt := st.State.StartedAt
	ctrOK(t, root, "restart", "-t", "5", "lc")
	st = ctrInspect(t, root, "lc")
	if !st.State.Running || st.State.Pid <= 0 || st.State.Pid == firstPid || st.State.StartedAt == startedAt {
		t.Errorf("after restart: Running %v Pid %d (was %d) StartedAt %s (was %s), want a new running process", st.State.Running, st.State.Pid, firstPid, st.State.StartedAt, startedAt)
	}
	if !ctrWait(5*time.Second, func() bool { return strings.Contains(ctrOK(t, root, "logs", "lc"), "got-term\nstarted\n") }) {
		t.Errorf("after restart: the log does not continue with the new run's output")
	}
	ctrOK(t, root, "kill", "-s", "USR1", "lc")
	if got := strings.TrimSpace(ctrOK(t, root, "wait", "lc")); got != "42" {
		t.Errorf("berth kill -s USR1 then wait: %q, want 42 (the USR1 trap's exit code)", got)
	}
	ctrOK(t, root, "start", "lc")
	if st = ctrInspect(t, root, "lc"); !st.State.Running {
		t.Fatalf("berth start of a stopped container: not running")
	}
	ctrOK(t, root, "kill", "lc")
	if got := strings.TrimSpace(ctrOK(t, root, "wait", "lc")); got != "137" {
		t.Errorf("berth kill (SIGKILL) then wait: %q, want 137", got)
	}
	if r := ctrB(t, root, "kill", "lc"); r.code == 0 {
		t.Errorf("berth kill of a stopped container exited 0, want an error")
	}

	// stop escalates to SIGKILL for a container that ignores SIGTERM.
	ctrRunDetached(t, root, "--name", "lc-stubborn", img, "sh", "-c", `trap '' TERM; echo ready; while true; do sleep 0.1; done`)
	ctrWait(5*time.Second, func() bool { return strings.Contains(ctrOK(t, root, "logs", "lc-stubborn"), "ready") })
	start = time.Now()
	ctrOK(t, root, "stop", "-t", "2", "lc-stubborn")
	if d := time.Since(start); d < 1900*time.Millisecond || d > 8*time.Second {
		t.Errorf("berth stop -t 2 of a container ignoring SIGTERM took %v, want about 2s (then SIGKILL)", d)
	}
	if st := ctrInspect(t, root, "lc-stubborn"); st.State.Running || st.State.ExitCode != 137 {
		t.Errorf("after stop -t 2 of a container ignoring SIGTERM: Running %v ExitCode %d, want false 137", st.State.Running, st.State.ExitCode)
	}

	// A --rm container survives a restart (as in Docker) and is removed
	// when it stops for good.
	ctrRunDetached(t, root, "--rm", "--name", "lc-rm", img, "sleep", "60")
	rmPid := ctrInspect(t, root, "lc-rm").State.Pid
	ctrOK(t, root, "restart", "-t", "1", "lc-rm")
	if st := ctrInspect(t, root, "lc-rm"); !st.State.Running || st.State.Pid == rmPid {
		t.Errorf("after restart of a --rm container: Running %v Pid %d (was %d), want a new running process", st.State.Running, st.State.Pid, rmPid)
	}
	ctrOK(t, root, "stop", "-t", "1", "lc-rm")
	if !ctrWait(10*time.Second, func() bool { return !strings.Contains(ctrOK(t, root, "ps", "-a"), "lc-rm") }) {
		t.Errorf("a --rm container stopped after its restart is still listed:\n%s", ctrOK(t, root, "ps", "-a"))
	}

	// wait blocks until the container exits.
	ctrRunDetached(t, root, "--name", "lc-wait", img, "sh", "-c", "sleep 1; exit 5")
	start = time.Now()
	if got := strings.TrimSpace(ctrOK(t, root, "wait", "lc-wait")); got != "5" {
		t.Errorf("berth wait: %q, want 5", got)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("berth wait returned after %v, before the container (sleep 1) could exit", d)
	}

	// logs -f follows until the container stops.
	ctrRunDetached(t, root, "--name", "lc-follow", img, "sh", "-c", `for i in 1 2 3 4; do echo f$i; sleep 0.4; done`)
	start = time.Now()
	r = ctrB(t, root, "logs", "-f", "lc-follow")
	if r.code != 0 || r.stdout != "f1\nf2\nf3\nf4\n" {
		t.Errorf("berth logs -f: want f1..f4 and exit 0 when the container stops; got %s", r)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("berth logs -f returned after %v, before the container finished logging (~1.6s)", d)
	}

	// rename, name conflicts
	ctrOK(t, root, "rename", "lc", "lc-renamed")
	if st := ctrInspect(t, root, "lc-renamed"); st.Id != id || st.Name != "/lc-renamed" {
		t.Errorf("after rename: inspect lc-renamed gives %s %s, want %s /lc-renamed", st.Id, st.Name, id)
	}
	if r := ctrB(t, root, "container", "inspect", "lc"); r.code == 0 {
		t.Errorf("after rename: the old name lc still resolves")
	}
	r = ctrB(t, root, "run", "-d", "--name", "lc-renamed", img, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("run --name of a name in use: want exit 125 and \"already in use\"; got %s", r)
	}
	r = ctrB(t, root, "create", "--name", "lc-stubborn", img, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("create --name of a name in use: want exit 125 and \"already in use\"; got %s", r)
	}
	if r := ctrB(t, root, "rename", "lc-renamed", "lc-stubborn"); r.code == 0 {
		t.Errorf("rename to a name in use exited 0")
	}

	// rm refuses a running container without -f.
	ctrOK(t, root, "start", "lc-renamed")
	st = ctrInspect(t, root, "lc-renamed")
	runPid := st.State.Pid
	r = ctrB(t, root, "rm", "lc-renamed")
	if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "running") {
		t.Errorf("berth rm of a running container: want a refusal naming it running; got %s", r)
	}
	if st := ctrInspect(t, root, "lc-renamed"); !st.State.Running {
		t.Errorf("a refused rm stopped the container")
	}
	ctrOK(t, root, "rm", "-f", "lc-renamed")
	if r := ctrB(t, root, "container", "inspect", "lc-renamed"); r.code == 0 {
		t.Errorf("after rm -f the container still exists")
	}
	if !ctrWait(5*time.Second, func() bool { return !ctrPidAlive(runPid) }) {
		t.Errorf("after rm -f the container's process %d still runs", runPid)
	}
	if _, err := os.Stat(filepath.Join(root, "containers", id)); !os.IsNotExist(err) {
		t.Errorf("after rm -f containers/%s remains (%v)", id, err)
	}
	if m := ctrMountsUnder(filepath.Join(root, "containers", id)); len(m) > 0 {
		t.Errorf("after rm -f mounts remain: %q", m)
	}

	// create + start, start -a
	out := ctrOK(t, root, "create", "--name", "lc-created", img, "sh", "-c", "echo from-create; exit 3")
	cid := strings.TrimSpace(out)
	if !ctrIDRE.MatchString(cid) {
		t.Fatalf("berth create printed %q, want a 64-hex ID", out)
	}
	if st := ctrInspect(t, root, "lc-created"); st.State.Status != "created" || st.State.Running {
		t.Errorf("after create: Status %q Running %v, want created false", st.State.Status, st.State.Running)
	}
	if ps := ctrOK(t, root, "ps", "-a", "--filter", "name=lc-created"); !strings.Contains(ps, "Created") {
		t.Errorf("berth ps -a: want status Created for a created container in\n%s", ps)
	}
	if out := ctrOK(t, root, "start", "lc-created"); out != "lc-created\n" {
		t.Errorf("berth start lc-created printed %q, want the name", out)
	}
	if got := strings.TrimSpace(ctrOK(t, root, "wait", "lc-created")); got != "3" {
		t.Errorf("wait after start: %q, want 3", got)
	}
	if logs := ctrOK(t, root, "logs", "lc-created"); logs != "from-create\n" {
		t.Errorf("logs of the started container: %q, want from-create", logs)
	}
	r = ctrB(t, root, "start", "-a", "lc-created")
	if r.code != 3 || r.stdout != "from-create\n" {
		t.Errorf("berth start -a: want the output on stdout and exit 3; got %s", r)
	}

	// container prune -f removes the stopped containers only.
	running := ctrRunDetached(t, root, "--name", "lc-running", img, "sleep", "300")
	before := strings.Fields(ctrOK(t, root, "ps", "-a", "-q", "--no-trunc"))
	out = ctrOK(t, root, "container", "prune", "-f")
	after := strings.Fields(ctrOK(t, root, "ps", "-a", "-q", "--no-trunc"))
	if len(after) != 1 || after[0] != running {
		t.Errorf("after container prune -f: containers %q, want only the running %s", after, running)
	}
	for _, c := range before {
		if c != running && !strings.Contains(out, c) {
			t.Errorf("container prune -f output does not name removed container %s:\n%s", c, out)
		}
	}
	if !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("container prune -f output lacks \"Total reclaimed space\":\n%s", out)
	}

	// A monitor killed with SIGKILL: the container is found dead, cleaned
	// up and reported with an error.
	t.Run("monitor-killed", func(t *testing.T) {
		mid := ctrRunDetached(t, root, "--name", "lc-orphan", img, "sleep", "300")
		st := ctrInspect(t, root, "lc-orphan")
		_, mpid := ctrRecord(t, root, mid)
		if mpid <= 0 || !ctrPidAlive(mpid) {
			t.Fatalf("container.json State.MonitorPid = %d, want a live monitor process", mpid)
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", mpid)); !strings.Contains(string(b), "monitor") || !strings.Contains(string(b), mid) {
			t.Errorf("State.MonitorPid %d runs %q, want `berth container monitor %s`", mpid, bytes.ReplaceAll(b, []byte{0}, []byte{' '}), mid)
		}
		if err := syscall.Kill(mpid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// SIGKILL takes effect only once the monitor leaves an
		// uninterruptible sleep (an fsync on a busy disk): wait for it.
		if !ctrWait(60*time.Second, func() bool { return !ctrPidAlive(mpid) }) {
			t.Fatalf("monitor %d still alive 60s after SIGKILL", mpid)
		}
		ps := ctrOK(t, root, "ps", "-a", "--filter", "name=lc-orphan", "--format", "{{.Status}}")
		if !strings.HasPrefix(strings.TrimSpace(ps), "Exited") {
			t.Errorf("berth ps -a after the monitor was killed: status %q, want Exited", strings.TrimSpace(ps))
		}
		after := ctrInspect(t, root, "lc-orphan")
		if after.State.Running || after.State.Status != "exited" || after.State.Error == "" {
			t.Errorf("inspect after the monitor was killed: Running %v Status %q Error %q, want false, exited and an error", after.State.Running, after.State.Status, after.State.Error)
		}
		if !ctrWait(10*time.Second, func() bool { return !ctrPidAlive(st.State.Pid) }) {
			t.Errorf("the container's process %d survived its monitor's death", st.State.Pid)
		}
		if p := ctrProcsMentioning(mid); len(p) > 0 {
			t.Errorf("processes of the orphaned container remain:\n%s", strings.Join(p, "\n"))
		}
		if m := ctrMountsUnder(filepath.Join(root, "containers", mid)); len(m) > 0 {
			t.Errorf("mounts of the orphaned container remain: %q", m)
		}
		if !ctrWait(5*time.Second, func() bool { return len(ctrCgroupDirs(mid)) == 0 }) {
			t.Errorf("cgroups of the orphaned container remain: %q", ctrCgroupDirs(mid))
		}
		if _, err := os.Stat(filepath.Join(root, "runtime", mid)); !os.IsNotExist(err) {
			t.Errorf("the runtime's state of the orphaned container remains: runtime/%s (%v)", mid, err)
		}
		// It can be started again and removed.
		ctrOK(t, root, "start", "lc-orphan")
		if st := ctrInspect(t, root, "lc-orphan"); !st.State.Running {
			t.Errorf("the orphaned container does not start again")
		}
		ctrOK(t, root, "rm", "-f", "lc-orphan")
	})

	// rmi of an image a container uses is a conflict unless -f.
	t.Run("rmi-in-use", func(t *testing.T) {
		ref := "ctr/in-use:1"
		imgID := berthImport(t, root, "-m", "in use", busyboxTar(t), ref)
		ctrOK(t, root, "create", "--name", "lc-user", ref, "echo", "still-runs")
		r := ctrB(t, root, "rmi", ref)
		if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "conflict") {
			t.Errorf("berth rmi of an image a container uses: want a conflict error; got %s", r)
		}
		if got := berthID(t, root, ref); got != imgID {
			t.Errorf("after the refused rmi: %s is %s, want %s", ref, got, imgID)
		}
		ctrOK(t, root, "rmi", "-f", ref)
		if r := ctrB(t, root, "image", "inspect", ref); r.code == 0 {
			t.Errorf("after rmi -f the tag %s still resolves", ref)
		}
		r = ctrB(t, root, "start", "-a", "lc-user")
		if r.code != 0 || r.stdout != "still-runs\n" {
			t.Errorf("start -a of a container whose image was removed with rmi -f: want it to run as in Docker; got %s", r)
		}
		ctrOK(t, root, "rm", "lc-user")
	})

	ctrOK(t, root, "rm", "-f", "lc-running")
	systemCheck(t, root)
}

// ---------------------------------------------------------------------------
// churn

// TestContainerChurn starts and removes 200 containers and then looks for
// anything left behind: mounts, cgroups, processes, records, leases.
func TestContainerChurn(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	img := ctrImage(t, root, "ctr/busybox:1")

	const total, workers = 200, 4
	var (
		mu   sync.Mutex
		ids  []string // full IDs of detached ones, short IDs of --rm ones
		errs []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if i%2 == 0 {
					r, err := ctrCmd(root, nil, ctrTimeout, "run", "--rm", img, "hostname")
					if err != nil || r.code != 0 || len(strings.TrimSpace(r.stdout)) != 12 {
						fail("#%d run --rm IMG hostname: %v %s", i, err, r)
						continue
					}
					mu.Lock()
					ids = append(ids, strings.TrimSpace(r.stdout))
					mu.Unlock()
					continue
				}
				r, err := ctrCmd(root, nil, ctrTimeout, "run", "-d", img, "sleep", "100")
				id := strings.TrimSpace(r.stdout)
				if err != nil || r.code != 0 || !ctrIDRE.MatchString(id) {
					fail("#%d run -d IMG sleep 100: %v %s", i, err, r)
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				if r, err := ctrCmd(root, nil, ctrTimeout, "rm", "-f", id); err != nil || r.code != 0 {
					fail("#%d rm -f %s: %v %s", i, id, err, r)
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; i < total; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%d containers started and removed in %v", total, time.Since(start))
	for _, e := range errs {
		t.Error(e)
	}

	if got := strings.TrimSpace(ctrOK(t, root, "ps", "-a", "-q")); got != "" {
		t.Errorf("after the churn berth ps -a -q lists %q, want nothing", got)
	}
	if m := ctrMountsUnder(root); len(m) > 0 {
		t.Errorf("after the churn %d mounts remain under the root, e.g. %q", len(m), m[:min(5, len(m))])
	}
	var leftCgroups []string
	for _, id := range ids {
		leftCgroups = append(leftCgroups, ctrCgroupDirs(id)...)
	}
	if len(leftCgroups) > 0 {
		t.Errorf("after the churn %d cgroup directories remain, e.g. %q", len(leftCgroups), leftCgroups[:min(5, len(leftCgroups))])
	}
	if !ctrWait(5*time.Second, func() bool { return len(ctrProcsMentioning(root)) == 0 }) {
		p := ctrProcsMentioning(root)
		t.Errorf("after the churn %d processes (monitors, runtimes) of this root remain, e.g.\n%s", len(p), strings.Join(p[:min(5, len(p))], "\n"))
	}
	var leftProcs []string
	for _, id := range ids {
		leftProcs = append(leftProcs, ctrProcsMentioning(id)...)
	}
	if len(leftProcs) > 0 {
		t.Errorf("after the churn processes naming the containers remain:\n%s", strings.Join(leftProcs[:min(5, len(leftProcs))], "\n"))
	}
	for _, c := range []struct{ dir, allow string }{{"containers", ".names"}, {"leases", ""}, {"runtime", ""}} {
		for _, name := range dirEntries(t, filepath.Join(root, c.dir)) {
			if name != c.allow {
				t.Errorf("after the churn %s/%s remains", c.dir, name)
			}
		}
	}
	if names := dirEntries(t, filepath.Join(root, "containers", ".names")); len(names) > 0 {
		t.Errorf("after the churn container names remain: %q", names)
	}
	if vols := dirEntries(t, filepath.Join(root, "volumes")); len(vols) > 0 {
		t.Errorf("after the churn volumes remain: %q", vols)
	}
	systemCheck(t, root)
	// The image is no longer in use: it can be removed without -f.
	ctrOK(t, root, "rmi", img)
}

package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/container/fscopy"
	"github.com/berth-dev/berth/internal/container/user"
	"github.com/berth-dev/berth/internal/snapshot"
)

// Attach is the terminal or streams a foreground container is attached to.
type Attach struct {
	// Stdin is nil unless the container keeps stdin open (-i).
	Stdin  *os.File
	Stdout io.Writer
	Stderr io.Writer
}

// prepare mounts a container's root filesystem and writes its runtime
// bundle.
func (e *Engine) prepare(c *Container) error {
	dir := e.Containers.Dir(c.ID)
	rootfs := e.rootfs(c.ID)
	if err := snapshot.Unmount(rootfs); err != nil {
		return err
	}
	if err := e.mountRootfs(c); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			snapshot.Unmount(rootfs)
		}
	}()
	if c.Config.WorkingDir != "" {
		if err := makeWorkdir(rootfs, c.Config.WorkingDir); err != nil {
			return err
		}
	}
	if err := e.fillVolumes(c, rootfs); err != nil {
		return err
	}
	u, err := user.Resolve(rootfs, c.Config.User, c.HostConfig.GroupAdd)
	if err != nil {
		return err
	}
	if err := e.writeEtcFiles(c, dir); err != nil {
		return err
	}
	s, err := buildSpec(specInput{
		c: c, dir: dir, rootfs: rootfs, user: u,
		cgroupsPath: "/berth/" + c.ID,
		volumes:     e.volumeSources(c),
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return err
	}
	ok = true
	return nil
}

// fillVolumes copies what the image holds at a volume's mount point into
// the volume when the volume is empty, as Docker does on first use. The
// mount point is resolved inside the root; owners, modes and times are
// kept.
func (e *Engine) fillVolumes(c *Container, rootfs string) error {
	for target, dir := range e.volumeSources(c) {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) > 0 {
			continue
		}
		h, err := pathrs.OpenInRoot(rootfs, target)
		if err != nil {
			continue
		}
		fi, err := h.Stat()
		if err != nil || !fi.IsDir() {
			h.Close()
			continue
		}
		src := fmt.Sprintf("/proc/self/fd/%d", h.Fd())
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(fscopy.Export(pw, src)) }()
		_, err = archive.ApplyLayer(dir, pr)
		pr.CloseWithError(err)
		h.Close()
		if err != nil {
			return fmt.Errorf("volume %s: copying the image's content: %w", target, err)
		}
	}
	return nil
}

// mountRootfs mounts the container's root filesystem: its image's layers
// under its init layer and its writable layer.
func (e *Engine) mountRootfs(c *Container) error {
	img, err := e.Images.Get(c.Image.String())
	if err != nil {
		return fmt.Errorf("container %s: image %s: %w", shortID(c.ID), c.Image, err)
	}
	layers, err := e.Images.LayerDirs(img)
	if err != nil {
		return err
	}
	dir := e.Containers.Dir(c.ID)
	initDir, err := makeInitLayer(dir)
	if err != nil {
		return err
	}
	if err := snapshot.MountWritable(append([]string{initDir}, layers...), filepath.Join(dir, "diff"), filepath.Join(dir, "work"), e.rootfs(c.ID), c.HostConfig.AutoRemove); err != nil {
		return fmt.Errorf("container %s: %w", shortID(c.ID), err)
	}
	return nil
}

// initEntries are the mount points the runtime needs, made in a layer of
// their own between the image and the container's writable layer (as
// Docker's init layer), so that they never show up in diff or commit.
var initEntries = []struct {
	path string
	dir  bool
}{
	{"dev", true}, {"dev/pts", true}, {"dev/shm", true}, {"proc", true}, {"sys", true},
	{"etc", true}, {"etc/hostname", false}, {"etc/hosts", false}, {"etc/resolv.conf", false},
}

// makeInitLayer creates a container's init layer directory once.
func makeInitLayer(dir string) (string, error) {
	initDir := filepath.Join(dir, "init")
	if _, err := os.Stat(initDir); err == nil {
		return initDir, nil
	}
	tmp := initDir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	for _, e := range initEntries {
		p := filepath.Join(tmp, e.path)
		var err error
		if e.dir {
			err = os.Mkdir(p, 0o755)
		} else {
			err = os.WriteFile(p, nil, 0o644)
		}
		if err != nil {
			return "", err
		}
	}
	if err := os.Symlink("/proc/mounts", filepath.Join(tmp, "etc/mtab")); err != nil {
		return "", err
	}
	return initDir, os.Rename(tmp, initDir)
}

// pseudoFS are where the runtime mounts kernel filesystems: a working
// directory resolving into them could reach host file descriptors through
// /proc/self/fd (CVE-2024-21626) and is refused.
var pseudoFS = []string{"/proc", "/sys", "/dev"}

// makeWorkdir resolves the working directory inside the container's root,
// creating it when missing, as Docker does.
func makeWorkdir(rootfs, wd string) error {
	clean := path.Clean("/" + wd)
	for _, p := range pseudoFS {
		if clean == p || strings.HasPrefix(clean, p+"/") {
			return fmt.Errorf("working directory %s is inside %s: refused", wd, p)
		}
	}
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	h, err := pathrs.MkdirAllHandle(root, clean, 0o755)
	if err != nil {
		return fmt.Errorf("working directory %s: %w", wd, err)
	}
	defer h.Close()
	// Where the handle really is: symlinks in the path may have led
	// elsewhere inside the root.
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", h.Fd()))
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(rootfs, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("working directory %s resolves outside the container", wd)
	}
	inside := "/" + rel
	if rel == "." {
		inside = "/"
	}
	for _, p := range pseudoFS {
		if inside == p || strings.HasPrefix(inside, p+"/") {
			return fmt.Errorf("working directory %s resolves into %s: refused", wd, p)
		}
	}
	return nil
}

// writeEtcFiles writes the hostname, hosts and resolv.conf files that are
// bind-mounted over the image's.
func (e *Engine) writeEtcFiles(c *Container, dir string) error {
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	resolv := ""
	if b, err := readBounded("/etc/resolv.conf", 64<<10); err == nil {
		resolv = string(b)
	}
	if c.HostConfig.NetworkMode == "host" {
		if b, err := readBounded("/etc/hosts", 1<<20); err == nil {
			hosts = string(b)
		}
	} else {
		// Loopback name servers of the host are unreachable from a
		// private network namespace.
		var keep []string
		for _, l := range strings.Split(resolv, "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
				continue
			}
			keep = append(keep, l)
		}
		resolv = strings.Join(keep, "\n")
	}
	files := map[string]string{
		"hostname":    c.Config.Hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolv,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ErrRunning is returned when a container is already running.
var ErrRunning = errors.New("container is already running")

// Run is a container's monitor: it starts the container and holds it
// until it exits, keeping its log and recording its exit code, then
// unmounts it (and removes it with --rm). With attach the container's
// streams are also connected to the caller. ready, if set, is called once
// the container runs or failed to start. Run returns the container's exit
// code; a failure to start is a *StartError.
func (e *Engine) Run(id string, attach *Attach, ready func(error)) (int, error) {
	if ready == nil {
		ready = func(error) {}
	}
	code, err := e.run(id, attach, ready)
	if err != nil {
		ready(err)
	}
	return code, err
}

func (e *Engine) run(id string, attach *Attach, ready func(error)) (int, error) {
	dir := e.Containers.Dir(id)
	lock, err := os.OpenFile(e.lockPath(id), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 125, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return 125, fmt.Errorf("container %s: %w", shortID(id), ErrRunning)
	}
	c, err := e.Containers.read(id)
	if err != nil {
		return 125, err
	}
	rt, err := e.runtime(c)
	if err != nil {
		return 125, e.failStart(c, err)
	}
	if err := e.prepare(c); err != nil {
		return 125, e.failStart(c, err)
	}
	runtimeLog := filepath.Join(dir, "runtime.log")
	os.Remove(runtimeLog)
	pidFile := filepath.Join(dir, "pid")
	os.Remove(pidFile)
	logw, err := openLog(c.LogPath)
	if err != nil {
		snapshot.Unmount(e.rootfs(id))
		return 125, e.failStart(c, err)
	}
	cmd := rt.command("--log", runtimeLog, "--log-format", "json", "run", "--pid-file", pidFile, "--bundle", dir, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	st, err := plumb(cmd, c.Config.Tty, attach, logw)
	if err != nil {
		logw.Close()
		snapshot.Unmount(e.rootfs(id))
		return 125, e.failStart(c, err)
	}
	if err := cmd.Start(); err != nil {
		st.close()
		logw.Close()
		snapshot.Unmount(e.rootfs(id))
		return 125, e.failStart(c, err)
	}
	st.started()
	stopSignals := forwardSignals(cmd.Process, attach != nil && !c.Config.Tty)
	// The container is recorded as running only once the runtime has
	// started its process (the pid file appears after the exec), so a
	// kill or stop never lands between runc's create and start.
	exited := make(chan struct{})
	marked := make(chan struct{})
	go func() {
		defer close(marked)
		if waitReady(pidFile, exited) {
			if _, err := e.Containers.Update(id, func(c *Container) error {
				c.State = State{
					Status: Running, Running: true, StartedAt: time.Now().UTC(),
					MonitorPid: os.Getpid(),
				}
				return nil
			}); err != nil {
				cmd.Process.Kill()
			}
		}
		ready(nil)
	}()
	werr := cmd.Wait()
	close(exited)
	<-marked
	stopSignals()
	st.finish()
	logw.Close()
	code := 0
	if cmd.ProcessState != nil {
		code = exitStatus(cmd.ProcessState)
	} else if werr != nil {
		code = 125
	}
	var startErr *StartError
	if code != 0 {
		startErr = runtimeError(runtimeLog)
		if startErr != nil {
			code = startErr.Code
			startErr.Shown = attach != nil && attach.Stderr != nil && !c.Config.Tty
		}
	}
	snapshot.Unmount(e.rootfs(id))
	os.Remove(pidFile)
	if c.HostConfig.AutoRemove && !e.restarting(id) {
		lock.Close()
		err = e.remove(c, true)
		if startErr != nil {
			return code, startErr
		}
		return code, err
	}
	_, err = e.Containers.Update(id, func(c *Container) error {
		c.State.Running, c.State.Paused, c.State.Restarting = false, false, false
		c.State.Status = Exited
		c.State.Pid = 0
		c.State.ExitCode = code
		c.State.FinishedAt = time.Now().UTC()
		if startErr != nil {
			c.State.Error = startErr.Msg
		}
		return nil
	})
	if startErr != nil {
		return code, startErr
	}
	return code, err
}

// restarting reports whether a restart stopped the container.
func (e *Engine) restarting(id string) bool {
	c, err := e.Containers.read(id)
	return err == nil && c.State.Restarting
}

// failStart records a container that could not be started.
func (e *Engine) failStart(c *Container, cause error) error {
	e.Containers.Update(c.ID, func(c *Container) error {
		c.State.Error = cause.Error()
		c.State.ExitCode = 125
		if c.State.Status == Running {
			c.State.Status = Exited
		}
		return nil
	})
	if c.HostConfig.AutoRemove {
		e.remove(c, true)
	}
	return cause
}

// waitReady waits until the runtime wrote the container's pid file or
// exited, and reports whether the container's process was started.
func waitReady(pidFile string, exited <-chan struct{}) bool {
	for delay := 200 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		if _, err := os.Stat(pidFile); err == nil {
			return true
		}
		select {
		case <-exited:
			_, err := os.Stat(pidFile)
			return err == nil
		case <-time.After(delay):
		}
	}
}

// forwardSignals passes the signals a user sends to an attached berth on
// to the runtime, which hands them to the container (Docker's
// --sig-proxy).
func forwardSignals(p *os.Process, enabled bool) func() {
	if !enabled {
		return func() {}
	}
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				p.Signal(s)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// streams connects a runtime process's stdio.
type streams struct {
	closeAfterStart []io.Closer
	wg              sync.WaitGroup
	splitters       []*lineSplitter
	pty             *os.File
	restore         func()
}

func (s *streams) started() {
	for _, c := range s.closeAfterStart {
		c.Close()
	}
	s.closeAfterStart = nil
}

func (s *streams) close() {
	s.started()
	if s.pty != nil {
		s.pty.Close()
	}
	if s.restore != nil {
		s.restore()
	}
}

// finish waits for the output to drain after the process exited.
func (s *streams) finish() {
	s.wg.Wait()
	for _, sp := range s.splitters {
		sp.flush()
	}
	s.close()
}

// plumb connects cmd's stdio for a container: through a pseudo-terminal
// berth owns when tty, else through pipes; output goes to the log and to
// the attached streams.
func plumb(cmd *exec.Cmd, tty bool, attach *Attach, logw *jsonLog) (*streams, error) {
	s := &streams{}
	var stdin *os.File
	var stdout, stderr io.Writer
	if attach != nil {
		stdin, stdout, stderr = attach.Stdin, attach.Stdout, attach.Stderr
	}
	if tty {
		master, slave, err := openPTY()
		if err != nil {
			return nil, err
		}
		s.pty = master
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		s.closeAfterStart = append(s.closeAfterStart, slave)
		if stdin != nil {
			s.restore = rawTerminal(stdin, master, func() {
				if cmd.Process != nil {
					cmd.Process.Signal(unix.SIGWINCH)
				}
			})
			go io.Copy(master, stdin)
		}
		sp := &lineSplitter{log: logw, stream: "stdout", out: stdout}
		s.splitters = append(s.splitters, sp)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			io.Copy(sp, master) // ends with EIO once every slave is closed
		}()
		return s, nil
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	for _, o := range []struct {
		name string
		dst  *io.Writer
		out  io.Writer
	}{{"stdout", &cmd.Stdout, stdout}, {"stderr", &cmd.Stderr, stderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			s.close()
			return nil, err
		}
		*o.dst = w
		s.closeAfterStart = append(s.closeAfterStart, w)
		sp := &lineSplitter{log: logw, stream: o.name, out: o.out}
		s.splitters = append(s.splitters, sp)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer r.Close()
			io.Copy(sp, r)
		}()
	}
	return s, nil
}

// StartDetached starts a created or stopped container under a monitor
// process of its own and returns once the container runs.
func (e *Engine) StartDetached(c *Container) error {
	if e.monitorAlive(c.ID) {
		return nil // Docker's start of a running container is a no-op
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := e.MonitorCommand(c.ID)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return err
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	go cmd.Wait()
	msg, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	return decodeReady(msg)
}

// ReadyWriter returns the function a detached monitor reports readiness
// with, over the pipe StartDetached handed it as fd 3.
func ReadyWriter(f *os.File) func(error) {
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			msg := "ok"
			if err != nil {
				code := 125
				var se *StartError
				if errors.As(err, &se) {
					code = se.Code
				}
				msg = fmt.Sprintf("%d %s", code, err.Error())
			}
			f.WriteString(msg)
			f.Close()
		})
	}
}

func decodeReady(msg []byte) error {
	s := string(msg)
	if s == "ok" {
		return nil
	}
	if s == "" {
		return &StartError{Code: 125, Msg: "the container's monitor exited before the container started"}
	}
	var code int
	if _, err := fmt.Sscanf(s, "%d", &code); err != nil {
		return &StartError{Code: 125, Msg: s}
	}
	_, rest, _ := strings.Cut(s, " ")
	return &StartError{Code: code, Msg: rest}
}

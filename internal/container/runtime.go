package container

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Runtime is an OCI runtime binary driven through runc's command line,
// which crun, youki and runsc share.
type Runtime struct {
	// Path is the binary.
	Path string
	// Root is the runtime's state directory for berth's containers.
	Root string
}

// NewRuntime finds the runtime binary name (a name on PATH or a path),
// keeping its state under stateRoot.
func NewRuntime(name, stateRoot string) (Runtime, error) {
	if name == "" {
		name = "runc"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return Runtime{}, fmt.Errorf("runtime %q: %w", name, err)
	}
	return Runtime{Path: p, Root: stateRoot}, nil
}

func (r Runtime) command(args ...string) *exec.Cmd {
	cmd := exec.Command(r.Path, append([]string{"--root", r.Root}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	return cmd
}

// run runs a short runtime command and returns its error output as the
// error.
func (r Runtime) run(args ...string) error {
	cmd := r.command(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s %s: %s", filepath.Base(r.Path), args[0], msg)
	}
	return nil
}

// Kill sends a signal (a name such as "TERM" or a number) to the
// container's init process.
func (r Runtime) Kill(id, sig string) error { return r.run("kill", id, sig) }

// Delete removes the runtime's state of a container, killing it if force.
func (r Runtime) Delete(id string, force bool) error {
	if force {
		return r.run("delete", "--force", id)
	}
	return r.run("delete", id)
}

// Pause freezes every process of the container.
func (r Runtime) Pause(id string) error { return r.run("pause", id) }

// Resume thaws a paused container.
func (r Runtime) Resume(id string) error { return r.run("resume", id) }

// StartError is a failure to start a container's process, with the exit
// code Docker uses for it: 126 when the command cannot be invoked, 127
// when it is not found, 125 for everything else.
type StartError struct {
	Code int
	Msg  string
	// Shown is set when the runtime already printed the error on the
	// stderr the caller is attached to.
	Shown bool
}

func (e *StartError) Error() string { return e.Msg }

// runtimeError reads the error a runtime logged (runc --log-format json)
// and classifies it. It returns nil when the log holds no error, which
// means the exit status is the container process's own.
func runtimeError(logPath string) *StartError {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && (entry.Level == "error" || entry.Level == "fatal") {
			last = entry.Msg
		}
	}
	if last == "" {
		return nil
	}
	return classify(last)
}

// classify maps a runtime error message to Docker's exit codes.
func classify(msg string) *StartError {
	code := 125
	if i := strings.Index(msg, "exec: "); i >= 0 {
		tail := msg[i:]
		switch {
		case strings.Contains(tail, "executable file not found"), strings.Contains(tail, "no such file or directory"):
			code = 127
		case strings.Contains(tail, "permission denied"), strings.Contains(tail, "is a directory"), strings.Contains(tail, "exec format error"):
			code = 126
		}
	}
	return &StartError{Code: code, Msg: msg}
}

// exitStatus turns a finished runtime process into an exit code: its own
// status, or 128+signal when it was killed.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// errNotRunning tells whether a runtime error says the container is gone.
func errNotRunning(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return errors.Is(err, os.ErrNotExist) || strings.Contains(s, "not running") ||
		strings.Contains(s, "does not exist") || strings.Contains(s, "container not running")
}

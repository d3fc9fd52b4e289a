package container

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/container/user"
	"github.com/berth-dev/berth/internal/snapshot"
)

// Step is a one-shot container a build runs for a RUN instruction: no
// record, no monitor, no log file. Its root filesystem is Layers under a
// writable layer in Dir/diff, which becomes the step's image layer.
type Step struct {
	// Dir is a directory the step owns; it holds the bundle, the init
	// layer and the writable layer (diff/).
	Dir string
	// Layers are the read-only layer directories, top-most first.
	Layers []string
	// Args is the command; Env, WorkingDir, User and Hostname as in an
	// image config.
	Args       []string
	Env        []string
	WorkingDir string
	User       string
	Hostname   string
	// Network is "none" (a private, empty network namespace) or "host".
	Network string
	// Mounts are extra mounts (build cache directories, secrets, bind
	// mounts of other stages, tmpfs). Their mount points are made in the
	// init layer, so they never show up in the step's layer.
	Mounts []specs.Mount
	// Runtime is the OCI runtime binary ("" for runc).
	Runtime        string
	Stdout, Stderr io.Writer
}

// Upper is the step's writable layer directory.
func (s Step) Upper() string { return filepath.Join(s.Dir, "diff") }

// RunStep runs a build step to completion and returns its exit code. A
// failure to start it is a *StartError. The writable layer stays in
// s.Upper() for the caller to turn into a layer; the rest of s.Dir is
// unmounted.
func (e *Engine) RunStep(ctx context.Context, s Step) (int, error) {
	id := NewID()
	rootfs := filepath.Join(s.Dir, "merged")
	for _, d := range []string{"diff", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return 125, err
		}
	}
	initDir, err := makeInitLayer(s.Dir)
	if err != nil {
		return 125, err
	}
	for _, m := range s.Mounts {
		if err := mountPoint(initDir, m); err != nil {
			return 125, err
		}
	}
	if err := snapshot.MountWritable(append([]string{initDir}, s.Layers...), s.Upper(), filepath.Join(s.Dir, "work"), rootfs, true); err != nil {
		return 125, err
	}
	defer snapshot.Unmount(rootfs)
	c := &Container{
		ID:   id,
		Path: s.Args[0],
		Args: s.Args[1:],
		Config: Config{
			Hostname: s.Hostname, Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
		},
		HostConfig: HostConfig{NetworkMode: s.Network},
	}
	if c.Config.Hostname == "" {
		c.Config.Hostname = id[:12]
	}
	if s.WorkingDir != "" {
		if err := makeWorkdir(rootfs, s.WorkingDir); err != nil {
			return 125, err
		}
	}
	u, err := user.Resolve(rootfs, s.User, nil)
	if err != nil {
		return 125, err
	}
	if err := e.writeEtcFiles(c, s.Dir); err != nil {
		return 125, err
	}
	spec, err := buildSpec(specInput{c: c, dir: s.Dir, rootfs: rootfs, user: u, cgroupsPath: "/berth/" + id})
	if err != nil {
		return 125, err
	}
	spec.Mounts = append(spec.Mounts, s.Mounts...)
	b, err := json.Marshal(spec)
	if err != nil {
		return 125, err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "config.json"), b, 0o600); err != nil {
		return 125, err
	}
	rt, err := NewRuntime(s.Runtime, e.RuntimeRoot)
	if err != nil {
		return 125, err
	}
	runtimeLog := filepath.Join(s.Dir, "runtime.log")
	cmd := rt.command("--log", runtimeLog, "--log-format", "json", "run", "--bundle", s.Dir, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	if err := cmd.Start(); err != nil {
		return 125, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// The runtime deletes the container once its process is
			// gone; retry until it is.
			for {
				if rt.Kill(id, "KILL") != nil {
					select {
					case <-done:
						return
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				return
			}
		case <-done:
		}
	}()
	cmd.Wait()
	close(done)
	if ctx.Err() != nil {
		return 125, ctx.Err()
	}
	code := exitStatus(cmd.ProcessState)
	if code != 0 {
		if se := runtimeError(runtimeLog); se != nil {
			return se.Code, se
		}
	}
	return code, nil
}

// mountPoint makes the mount point of m in the init layer: a directory,
// or an empty file when the source is a file.
func mountPoint(initDir string, m specs.Mount) error {
	p := filepath.Join(initDir, filepath.Clean("/"+m.Destination))
	if fi, err := os.Stat(m.Source); err == nil && !fi.IsDir() && m.Type == "bind" {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", m.Destination, err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("mount point %s: %w", m.Destination, err)
		}
		return f.Close()
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("mount point %s: %w", m.Destination, err)
	}
	return nil
}

package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/snapshot"
)

// Remove deletes a container: its record, name, writable layer, log and
// image lease, and with volumes its anonymous volumes. A running container
// needs force (it is killed first).
func (e *Engine) Remove(c *Container, force, volumes bool) error {
	if c.State.Running {
		if !force {
			return fmt.Errorf("cannot remove container %q: container is running: stop the container before removing or force remove", c.Name)
		}
		if err := e.Kill(c, "KILL"); err != nil && !errNotRunning(err) {
			return err
		}
		if !e.waitMonitor(c.ID, 10*time.Second) {
			return fmt.Errorf("container %s: did not stop after SIGKILL", shortID(c.ID))
		}
	}
	if c.HostConfig.AutoRemove && !volumes {
		volumes = true
	}
	return e.remove(c, volumes)
}

// remove deletes a stopped container.
func (e *Engine) remove(c *Container, volumes bool) error {
	if e.runtimeKnows(c.ID) {
		if rt, err := e.runtime(c); err == nil {
			rt.Delete(c.ID, true)
		}
	}
	if err := snapshot.Unmount(e.rootfs(c.ID)); err != nil {
		return err
	}
	dir := e.Containers.Dir(c.ID)
	// Drop the record first: a container without one is garbage, never a
	// half-removed container.
	if err := os.Remove(e.Containers.recordPath(c.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	e.Containers.releaseName(c.Name, c.ID)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("container %s: %w", shortID(c.ID), err)
	}
	if err := e.Images.Release(c.ID); err != nil {
		return err
	}
	if volumes {
		for _, m := range c.HostConfig.Mounts {
			if m.Type == "volume" && slices.Contains(m.Options, "anonymous") {
				if err := os.RemoveAll(filepath.Join(e.VolumeRoot, m.Source)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// signalName normalises a signal given as a name ("SIGTERM", "term") or
// number.
func signalName(sig string) (string, error) {
	s := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(sig), "SIG"))
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return "", fmt.Errorf("invalid signal: %s", sig)
		}
		return s, nil
	}
	if unix.SignalNum("SIG"+s) == 0 {
		return "", fmt.Errorf("invalid signal: %s", sig)
	}
	return s, nil
}

// Kill sends a signal to a running container's main process.
func (e *Engine) Kill(c *Container, sig string) error {
	if !c.State.Running {
		return fmt.Errorf("cannot kill container: %s: container %s is not running", c.Name, shortID(c.ID))
	}
	name, err := signalName(sig)
	if err != nil {
		return err
	}
	rt, err := e.runtime(c)
	if err != nil {
		return err
	}
	return rt.Kill(c.ID, name)
}

// Stop sends the container's stop signal (SIGTERM unless the image says
// otherwise), waits up to timeout for it to exit, then kills it.
func (e *Engine) Stop(c *Container, timeout time.Duration, sig string) error {
	if !c.State.Running {
		return nil
	}
	if sig == "" {
		sig = c.Config.StopSignal
	}
	if sig == "" {
		sig = "TERM"
	}
	rt, err := e.runtime(c)
	if err != nil {
		return err
	}
	if c.State.Paused {
		if err := e.Unpause(c); err != nil {
			return err
		}
	}
	name, err := signalName(sig)
	if err != nil {
		return err
	}
	if err := rt.Kill(c.ID, name); err != nil && !errNotRunning(err) {
		return err
	}
	if e.waitMonitor(c.ID, timeout) {
		return nil
	}
	if err := rt.Kill(c.ID, "KILL"); err != nil && !errNotRunning(err) {
		return err
	}
	if !e.waitMonitor(c.ID, 30*time.Second) {
		return fmt.Errorf("container %s: did not exit after SIGKILL", shortID(c.ID))
	}
	return nil
}

// Restart stops a container (see Stop) and starts it again, detached. A
// --rm container survives its restart, as in Docker: it is marked
// restarting first, and its monitor leaves a restarting container for the
// next start instead of removing it.
func (e *Engine) Restart(c *Container, timeout time.Duration, sig string) error {
	if c.State.Running {
		if _, err := e.Containers.Update(c.ID, func(c *Container) error {
			c.State.Restarting = true
			return nil
		}); err != nil {
			return err
		}
	}
	if err := e.Stop(c, timeout, sig); err != nil {
		return err
	}
	c, err := e.Get(c.ID)
	if err != nil {
		return err
	}
	return e.StartDetached(c)
}

// Pause freezes a running container.
func (e *Engine) Pause(c *Container) error {
	if !c.State.Running {
		return fmt.Errorf("container %s is not running", shortID(c.ID))
	}
	if c.State.Paused {
		return fmt.Errorf("container %s is already paused", shortID(c.ID))
	}
	rt, err := e.runtime(c)
	if err != nil {
		return err
	}
	if err := rt.Pause(c.ID); err != nil {
		return err
	}
	_, err = e.Containers.Update(c.ID, func(c *Container) error {
		if c.State.Running {
			c.State.Paused, c.State.Status = true, Paused
		}
		return nil
	})
	return err
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(c *Container) error {
	if !c.State.Paused {
		return fmt.Errorf("container %s is not paused", shortID(c.ID))
	}
	rt, err := e.runtime(c)
	if err != nil {
		return err
	}
	if err := rt.Resume(c.ID); err != nil {
		return err
	}
	_, err = e.Containers.Update(c.ID, func(c *Container) error {
		if c.State.Running {
			c.State.Paused, c.State.Status = false, Running
		}
		return nil
	})
	return err
}

// Wait blocks until the container is not running and returns its exit
// code.
func (e *Engine) Wait(c *Container) (int, error) {
	if c.State.Running {
		e.waitMonitor(c.ID, -1)
	}
	c, err := e.Reconcile(c.ID)
	if err != nil {
		if errors.Is(err, ErrNoSuchContainer) {
			return 0, nil // removed on exit
		}
		return 0, err
	}
	return c.State.ExitCode, nil
}

// Pid returns a running container's main process ID on the host.
func (e *Engine) Pid(c *Container) (int, error) {
	if !c.State.Running {
		return 0, fmt.Errorf("container %s is not running", shortID(c.ID))
	}
	b, err := os.ReadFile(filepath.Join(e.Containers.Dir(c.ID), "pid"))
	if err != nil {
		return 0, fmt.Errorf("container %s: pid: %w", shortID(c.ID), err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

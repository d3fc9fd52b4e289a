package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/store"
)

// Engine runs containers from a store's images.
type Engine struct {
	Images     *store.Store
	Containers *Store
	// RuntimeRoot is the OCI runtime's state directory.
	RuntimeRoot string
	// VolumeRoot holds named volumes, one <name>/_data directory each.
	VolumeRoot string
	// MonitorCommand returns the command that monitors container id in
	// the background (berth re-executing itself); it must exit when the
	// container does.
	MonitorCommand func(id string) *exec.Cmd
}

// NewEngine opens the containers of the store's root.
func NewEngine(images *store.Store) (*Engine, error) {
	cs, err := OpenStore(images.Root)
	if err != nil {
		return nil, err
	}
	return &Engine{
		Images:      images,
		Containers:  cs,
		RuntimeRoot: filepath.Join(images.Root, "runtime"),
		VolumeRoot:  filepath.Join(images.Root, "volumes"),
	}, nil
}

// Create makes a container from an image. c carries the user's Config
// and HostConfig (with the image's defaults not yet applied), ImageName
// and Name; Create fills in the rest and records it.
func (e *Engine) Create(img store.Image, c *Container) error {
	c.ID = NewID()
	c.Created = time.Now().UTC()
	c.Image = img.ID
	c.Driver = "overlay"
	c.Platform = "linux"
	c.State = State{Status: Created}
	c.LogPath = filepath.Join(e.Containers.Dir(c.ID), c.ID+"-json.log")
	if err := applyImageConfig(c, img.Config.Config); err != nil {
		return err
	}
	if c.Config.Hostname == "" {
		if c.HostConfig.NetworkMode == "host" {
			c.Config.Hostname, _ = os.Hostname()
		} else {
			c.Config.Hostname = c.ID[:12]
		}
	}
	if c.HostConfig.Runtime == "" {
		c.HostConfig.Runtime = "runc"
	}
	if _, err := Capabilities(c.HostConfig.CapAdd, c.HostConfig.CapDrop, c.HostConfig.Privileged); err != nil {
		return err
	}
	if _, _, err := securityOptions(c.HostConfig.SecurityOpt); err != nil {
		return err
	}
	if err := e.setupVolumes(c, img.Config.Config.Volumes); err != nil {
		return err
	}
	durable := !c.HostConfig.AutoRemove
	if err := e.Images.Lease(c.ID, img.ID, durable); err != nil {
		return err
	}
	if err := e.Containers.Create(c, durable); err != nil {
		e.Images.Release(c.ID)
		return err
	}
	return nil
}

// applyImageConfig merges the image's defaults into the container's
// configuration the way Docker does.
func applyImageConfig(c *Container, ic image.Config) error {
	cfg := &c.Config
	if cfg.Entrypoint == nil {
		cfg.Entrypoint = ic.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = ic.Cmd
		}
	} else if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		// --entrypoint "" clears the image's entrypoint.
		cfg.Entrypoint = nil
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = ic.Cmd
		}
	}
	argv := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	if len(argv) == 0 {
		return errors.New("no command specified")
	}
	c.Path, c.Args = argv[0], argv[1:]
	cfg.Env = mergeEnv(ic.Env, cfg.Env)
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ic.WorkingDir
	}
	if cfg.WorkingDir != "" && !strings.HasPrefix(cfg.WorkingDir, "/") {
		return fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.User == "" {
		cfg.User = ic.User
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = ic.StopSignal
	}
	if len(ic.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range ic.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
	}
	cfg.OnBuild = ic.OnBuild
	return nil
}

// mergeEnv overlays variables on base, replacing same-named ones in place.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i] = kv
				replaced = true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// setupVolumes creates named and anonymous volumes and records every mount
// as docker inspect shows them. Image VOLUMEs not otherwise mounted get
// anonymous volumes, as in Docker.
func (e *Engine) setupVolumes(c *Container, imageVolumes map[string]struct{}) error {
	mounted := map[string]bool{}
	for _, m := range c.HostConfig.Mounts {
		mounted[filepath.Clean(m.Target)] = true
	}
	var targets []string
	for t := range imageVolumes {
		if !mounted[filepath.Clean(t)] {
			targets = append(targets, t)
		}
	}
	slices.Sort(targets)
	for _, t := range targets {
		c.HostConfig.Mounts = append(c.HostConfig.Mounts, Mount{Type: "volume", Target: t})
	}
	c.Mounts = nil
	for i := range c.HostConfig.Mounts {
		m := &c.HostConfig.Mounts[i]
		if !strings.HasPrefix(m.Target, "/") {
			return fmt.Errorf("invalid mount config: mount path must be absolute: %s", m.Target)
		}
		mp := MountPoint{Type: m.Type, Destination: m.Target, RW: !m.ReadOnly, Propagation: "rprivate"}
		switch m.Type {
		case "volume":
			if m.Source == "" {
				m.Source = NewID()
				m.Options = append(m.Options, "anonymous")
			}
			if err := ValidName(m.Source); err != nil {
				return fmt.Errorf("volume name %q: %w", m.Source, err)
			}
			dir := filepath.Join(e.VolumeRoot, m.Source, "_data")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			mp.Name, mp.Source, mp.Driver = m.Source, dir, "local"
		case "bind":
			mp.Source = m.Source
		case "tmpfs":
			mp.Propagation = ""
		}
		if m.ReadOnly {
			mp.Mode = "ro"
		}
		c.Mounts = append(c.Mounts, mp)
	}
	return nil
}

// volumeSources maps volume mount targets to their directories.
func (e *Engine) volumeSources(c *Container) map[string]string {
	out := map[string]string{}
	for _, m := range c.HostConfig.Mounts {
		if m.Type == "volume" {
			out[m.Target] = filepath.Join(e.VolumeRoot, m.Source, "_data")
		}
	}
	return out
}

// runtime is the OCI runtime a container runs with.
func (e *Engine) runtime(c *Container) (Runtime, error) {
	return NewRuntime(c.HostConfig.Runtime, e.RuntimeRoot)
}

// runtimeKnows reports whether the runtime still has state for a
// container (runc keeps a directory per container under its root), without
// the cost of running it.
func (e *Engine) runtimeKnows(id string) bool {
	_, err := os.Lstat(filepath.Join(e.RuntimeRoot, id))
	return err == nil
}

// lockPath is the monitor lock: held exclusively by a container's monitor
// for as long as it runs, so its absence means no monitor.
func (e *Engine) lockPath(id string) string {
	return filepath.Join(e.Containers.Dir(id), "monitor.lock")
}

// monitorAlive reports whether a monitor holds the container.
func (e *Engine) monitorAlive(id string) bool {
	f, err := os.Open(e.lockPath(id))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	return false
}

// waitMonitor blocks until no monitor holds the container, or timeout
// passes (a negative timeout waits for ever). It reports whether the
// monitor is gone.
func (e *Engine) waitMonitor(id string, timeout time.Duration) bool {
	f, err := os.Open(e.lockPath(id))
	if err != nil {
		return true
	}
	defer f.Close()
	if timeout < 0 {
		return unix.Flock(int(f.Fd()), unix.LOCK_SH) == nil
	}
	deadline := time.Now().Add(timeout)
	for {
		if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reconcile loads a container and, if its record says it runs but no
// monitor holds it (the monitor was killed, or the machine rebooted),
// cleans up what is left and records it as exited with the reason.
func (e *Engine) Reconcile(id string) (*Container, error) {
	c, err := e.Containers.read(id)
	if err != nil {
		return nil, err
	}
	if !c.State.Running || e.monitorAlive(id) {
		return c, nil
	}
	return e.Containers.Update(id, func(c *Container) error {
		if !c.State.Running || e.monitorAlive(id) {
			return nil
		}
		if rt, err := e.runtime(c); err == nil && e.runtimeKnows(id) {
			rt.Delete(id, true)
		}
		snapshot.Unmount(e.rootfs(id))
		c.State.Running, c.State.Paused = false, false
		c.State.Status = Exited
		c.State.ExitCode = 255
		c.State.Error = fmt.Sprintf("monitor process %d exited while the container was running; the container was stopped", c.State.MonitorPid)
		c.State.Pid = 0
		c.State.FinishedAt = time.Now().UTC()
		return nil
	})
}

func (e *Engine) rootfs(id string) string { return filepath.Join(e.Containers.Dir(id), "merged") }

// Get resolves a container reference and loads it, reconciled.
func (e *Engine) Get(ref string) (*Container, error) {
	id, err := e.Containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	return e.Reconcile(id)
}

// List loads every container, newest first.
func (e *Engine) List() ([]*Container, error) {
	ids, err := e.Containers.IDs()
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, id := range ids {
		c, err := e.Reconcile(id)
		if errors.Is(err, ErrNoSuchContainer) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Container) int { return b.Created.Compare(a.Created) })
	return out, nil
}

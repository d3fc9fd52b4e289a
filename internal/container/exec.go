package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/container/user"
)

// ExecOptions are `exec` flags.
type ExecOptions struct {
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Tty        bool
	Detach     bool
	Privileged bool
}

// Exec runs an extra process in a running container and returns its exit
// code (0 at once with Detach). It runs with the container's own
// capabilities, seccomp profile, environment and user unless overridden.
func (e *Engine) Exec(c *Container, opts ExecOptions, attach *Attach) (int, error) {
	if !c.State.Running {
		return 125, fmt.Errorf("container %s is not running", shortID(c.ID))
	}
	if c.State.Paused {
		return 125, fmt.Errorf("container %s is paused, unpause the container before exec", shortID(c.ID))
	}
	if len(opts.Cmd) == 0 {
		return 125, fmt.Errorf("no command specified")
	}
	dir := e.Containers.Dir(c.ID)
	b, err := readBounded(filepath.Join(dir, "config.json"), 16<<20)
	if err != nil {
		return 125, fmt.Errorf("container %s: runtime spec: %w", shortID(c.ID), err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil || spec.Process == nil {
		return 125, fmt.Errorf("container %s: runtime spec is damaged", shortID(c.ID))
	}
	p := *spec.Process
	p.Args = opts.Cmd
	p.Terminal = opts.Tty
	p.Env = mergeEnv(p.Env, opts.Env)
	if opts.Tty && !slices.ContainsFunc(p.Env, func(s string) bool { return len(s) > 5 && s[:5] == "TERM=" }) {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if opts.WorkingDir != "" {
		if opts.WorkingDir[0] != '/' {
			return 125, fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", opts.WorkingDir)
		}
		if err := makeWorkdir(e.rootfs(c.ID), opts.WorkingDir); err != nil {
			return 125, err
		}
		p.Cwd = opts.WorkingDir
	}
	if opts.User != "" {
		u, err := user.Resolve(e.rootfs(c.ID), opts.User, c.HostConfig.GroupAdd)
		if err != nil {
			return 125, err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids}
	}
	if opts.Privileged {
		caps := hostCaps()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	}
	pf, err := os.CreateTemp(dir, "exec-*.json")
	if err != nil {
		return 125, err
	}
	defer os.Remove(pf.Name())
	if err := json.NewEncoder(pf).Encode(&p); err != nil {
		pf.Close()
		return 125, err
	}
	pf.Close()
	runtimeLog := pf.Name() + ".log"
	defer os.Remove(runtimeLog)
	rt, err := e.runtime(c)
	if err != nil {
		return 125, err
	}
	args := []string{"--log", runtimeLog, "--log-format", "json", "exec", "--process", pf.Name()}
	if opts.Detach {
		args = append(args, "--detach")
	}
	cmd := rt.command(append(args, c.ID)...)
	if opts.Detach {
		attach = nil
	}
	st, err := plumb(cmd, opts.Tty && !opts.Detach, attach, nil)
	if err != nil {
		return 125, err
	}
	if err := cmd.Start(); err != nil {
		st.close()
		return 125, err
	}
	st.started()
	cmd.Wait()
	st.finish()
	code := exitStatus(cmd.ProcessState)
	if code != 0 {
		if se := runtimeError(runtimeLog); se != nil {
			return se.Code, se
		}
	}
	return code, nil
}

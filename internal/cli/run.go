package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/remote"
	"github.com/berth-dev/berth/internal/store"
)

// createFlags are the flags `run` and `create` share.
type createFlags struct {
	name, workdir, user, entrypoint, hostname, network   string
	memory, memorySwap, shmSize, runtime, stopSignal     string
	env, envFile, volumes, mounts, tmpfs, ulimits, label []string
	capAdd, capDrop, securityOpt, groupAdd               []string
	cpus                                                 float64
	pidsLimit                                            int64
	stopTimeout                                          int
	rm, interactive, tty, readOnly, privileged, init     bool
	pull                                                 string
}

func (f *createFlags) register(fs *pflag.FlagSet) {
	fs.SetInterspersed(false)
	// -h is --hostname here, as in Docker: help has no shorthand.
	fs.Bool("help", false, "print usage")
	fs.StringVar(&f.name, "name", "", "assign a name to the container")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "overwrite the default ENTRYPOINT of the image")
	fs.StringVarP(&f.hostname, "hostname", "h", "", "container host name")
	fs.StringVar(&f.network, "network", "none", "network mode: none (a private network namespace with loopback only) or host")
	fs.StringVar(&f.network, "net", "none", "network mode")
	fs.Lookup("net").Hidden = true
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit: -1 for unlimited swap")
	fs.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm")
	fs.StringVar(&f.runtime, "runtime", "", "OCI runtime binary (default runc)")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container")
	fs.IntVar(&f.stopTimeout, "stop-timeout", -1, "timeout (in seconds) to stop a container")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set environment variables")
	fs.StringArrayVar(&f.envFile, "env-file", nil, "read in a file of environment variables")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount a volume")
	fs.StringArrayVar(&f.mounts, "mount", nil, "attach a filesystem mount to the container")
	fs.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs directory")
	fs.StringArrayVar(&f.ulimits, "ulimit", nil, "ulimit options")
	fs.StringArrayVarP(&f.label, "label", "l", nil, "set meta data on a container")
	fs.StringSliceVar(&f.capAdd, "cap-add", nil, "add Linux capabilities")
	fs.StringSliceVar(&f.capDrop, "cap-drop", nil, "drop Linux capabilities")
	fs.StringArrayVar(&f.securityOpt, "security-opt", nil, "security options")
	fs.StringArrayVar(&f.groupAdd, "group-add", nil, "add additional groups to join")
	fs.Float64Var(&f.cpus, "cpus", 0, "number of CPUs")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "tune container pids limit (-1 for unlimited)")
	fs.BoolVar(&f.rm, "rm", false, "automatically remove the container and its anonymous volumes when it exits")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep STDIN open even if not attached")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the container's root filesystem as read only")
	fs.BoolVar(&f.privileged, "privileged", false, "give extended privileges to this container")
	fs.BoolVar(&f.init, "init", false, "run an init inside the container that forwards signals and reaps processes")
	fs.StringVar(&f.pull, "pull", "missing", `pull image before running ("always", "missing", "never")`)
}

// container turns the flags and arguments into a container request.
func (f *createFlags) container(fs *pflag.FlagSet, imageRef string, args []string) (*container.Container, error) {
	c := &container.Container{ImageName: imageRef, Name: f.name}
	cfg := &c.Config
	hc := &c.HostConfig
	cfg.Image = imageRef
	cfg.Cmd = args
	if fs.Changed("entrypoint") {
		// [""] stands for --entrypoint "": clear the image's entrypoint.
		cfg.Entrypoint = []string{f.entrypoint}
	}
	cfg.WorkingDir = f.workdir
	cfg.User = f.user
	cfg.Hostname = f.hostname
	cfg.Tty = f.tty
	cfg.OpenStdin = f.interactive
	cfg.AttachStdin = f.interactive
	cfg.StopSignal = f.stopSignal
	if f.stopTimeout >= 0 {
		t := f.stopTimeout
		cfg.StopTimeout = &t
	}
	env, err := readEnv(f.envFile, f.env)
	if err != nil {
		return nil, err
	}
	cfg.Env = env
	if len(f.label) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range f.label {
			k, v, _ := strings.Cut(l, "=")
			cfg.Labels[k] = v
		}
	}
	switch f.network {
	case "none", "host":
		hc.NetworkMode = f.network
	case "default", "bridge":
		return nil, fmt.Errorf("network %q is not supported: berth offers --network none (the default) and --network host", f.network)
	default:
		return nil, fmt.Errorf("network %s not found", f.network)
	}
	hc.AutoRemove = f.rm
	hc.ReadonlyRootfs = f.readOnly
	hc.Privileged = f.privileged
	hc.CapAdd, hc.CapDrop = f.capAdd, f.capDrop
	hc.SecurityOpt = f.securityOpt
	hc.GroupAdd = f.groupAdd
	hc.Runtime = f.runtime
	if f.init {
		t := true
		hc.Init = &t
	}
	if f.memory != "" {
		if hc.Memory, err = units.RAMInBytes(f.memory); err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"-m, --memory\" flag: %w", f.memory, err)
		}
	}
	if f.memorySwap != "" {
		if f.memorySwap == "-1" {
			hc.MemorySwap = -1
		} else if hc.MemorySwap, err = units.RAMInBytes(f.memorySwap); err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--memory-swap\" flag: %w", f.memorySwap, err)
		}
	}
	if f.shmSize != "" {
		if hc.ShmSize, err = units.RAMInBytes(f.shmSize); err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--shm-size\" flag: %w", f.shmSize, err)
		}
	}
	if f.cpus < 0 {
		return nil, fmt.Errorf("invalid argument %v for \"--cpus\" flag", f.cpus)
	}
	hc.NanoCpus = int64(f.cpus * 1e9)
	if fs.Changed("pids-limit") {
		p := f.pidsLimit
		hc.PidsLimit = &p
	}
	for _, u := range f.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for \"--ulimit\" flag: %w", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, container.Ulimit{Name: ul.Name, Soft: ul.Soft, Hard: ul.Hard})
	}
	for _, v := range f.volumes {
		m, err := parseVolume(v)
		if err != nil {
			return nil, err
		}
		hc.Binds = append(hc.Binds, v)
		hc.Mounts = append(hc.Mounts, m)
	}
	for _, v := range f.mounts {
		m, err := parseMount(v)
		if err != nil {
			return nil, err
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	for _, t := range f.tmpfs {
		target, opts, _ := strings.Cut(t, ":")
		m := container.Mount{Type: "tmpfs", Target: target}
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[target] = opts
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "":
			case "ro":
				m.ReadOnly = true
			default:
				m.Options = append(m.Options, o)
			}
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	return c, nil
}

// readEnv reads --env-file files and -e values; "-e NAME" takes NAME from
// berth's own environment, as Docker does.
func readEnv(files, vars []string) ([]string, error) {
	var out []string
	add := func(kv string) {
		if !strings.Contains(kv, "=") {
			if v, ok := os.LookupEnv(kv); ok {
				out = append(out, kv+"="+v)
			}
			return
		}
		out = append(out, kv)
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimLeft(sc.Text(), " \t")
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			add(line)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("env file %s: %w", p, err)
		}
	}
	for _, v := range vars {
		if strings.HasPrefix(v, "=") {
			return nil, fmt.Errorf("invalid environment variable: %s", v)
		}
		add(v)
	}
	return out, nil
}

// parseVolume parses -v [SOURCE:]TARGET[:OPTIONS]. A source that is an
// absolute path is a bind mount (created when missing, as Docker does),
// otherwise a named volume; no source means an anonymous volume.
func parseVolume(v string) (container.Mount, error) {
	parts := strings.Split(v, ":")
	var m container.Mount
	switch len(parts) {
	case 1:
		m = container.Mount{Type: "volume", Target: parts[0]}
	case 2, 3:
		if len(parts) == 2 && strings.HasPrefix(parts[0], "/") && !strings.HasPrefix(parts[1], "/") {
			// TARGET:OPTIONS
			m = container.Mount{Type: "volume", Target: parts[0]}
			parts = []string{"", parts[0], parts[1]}
		} else {
			m = container.Mount{Source: parts[0], Target: parts[1]}
			if strings.HasPrefix(parts[0], "/") || strings.HasPrefix(parts[0], ".") {
				m.Type = "bind"
			} else {
				m.Type = "volume"
			}
		}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.ReadOnly = true
				case "rw", "z", "Z", "private", "rprivate", "nocopy":
				default:
					return m, fmt.Errorf("invalid mode: %s", o)
				}
			}
		}
	default:
		return m, fmt.Errorf("invalid volume specification: '%s'", v)
	}
	if m.Target == "" || !strings.HasPrefix(m.Target, "/") {
		return m, fmt.Errorf("invalid volume specification: '%s': mount path must be absolute", v)
	}
	if m.Type == "bind" {
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return m, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return m, fmt.Errorf("invalid volume specification: '%s': %w", v, err)
		}
		m.Source = abs
	}
	return m, nil
}

// parseMount parses --mount type=...,source=...,target=...,readonly.
func parseMount(v string) (container.Mount, error) {
	m := container.Mount{Type: "volume"}
	for _, field := range strings.Split(v, ",") {
		k, val, hasVal := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = val
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "readonly", "ro":
			m.ReadOnly = true
			if hasVal {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return m, fmt.Errorf("invalid value for %s: %s", k, val)
				}
				m.ReadOnly = b
			}
		case "tmpfs-size":
			m.Options = append(m.Options, "size="+val)
		case "tmpfs-mode":
			m.Options = append(m.Options, "mode="+val)
		case "bind-propagation", "consistency", "volume-nocopy":
		default:
			return m, fmt.Errorf("unexpected key '%s' in '%s'", k, field)
		}
	}
	if m.Target == "" {
		return m, errors.New("target is required")
	}
	switch m.Type {
	case "bind":
		if m.Source == "" {
			return m, errors.New("invalid mount config for type \"bind\": field Source must not be empty")
		}
		if _, err := os.Stat(m.Source); err != nil {
			return m, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
		}
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return m, err
		}
		m.Source = abs
	case "volume", "tmpfs":
	default:
		return m, fmt.Errorf("invalid mount config: unknown mount type %q", m.Type)
	}
	return m, nil
}

// withEngine opens the store and the container engine around fn.
func (a *app) withEngine(fn func(*container.Engine) error) error {
	return a.withStore(func(st *store.Store) error {
		e, err := container.NewEngine(st)
		if err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		root := a.root
		e.MonitorCommand = func(id string) *exec.Cmd {
			return exec.Command(self, "--root", root, "container", "monitor", id)
		}
		return fn(e)
	})
}

// createContainer resolves the image (pulling it when missing, as Docker
// does) and creates the container.
func (a *app) createContainer(ctx context.Context, e *container.Engine, f *createFlags, fs *pflag.FlagSet, args []string) (*container.Container, error) {
	c, err := f.container(fs, args[0], args[1:])
	if err != nil {
		return nil, err
	}
	img, err := a.imageForRun(ctx, e.Images, args[0], f.pull)
	if err != nil {
		return nil, err
	}
	if err := e.Create(img, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (a *app) imageForRun(ctx context.Context, st *store.Store, ref, pull string) (store.Image, error) {
	switch pull {
	case "missing", "never", "always":
	default:
		return store.Image{}, fmt.Errorf("invalid pull option: %q: must be one of \"always\", \"missing\" or \"never\"", pull)
	}
	if pull != "always" {
		img, err := st.Get(ref)
		if err == nil || pull == "never" || !errors.Is(err, store.ErrNoSuchImage) {
			return img, err
		}
		fmt.Fprintf(a.stderr, "Unable to find image '%s' locally\n", ref)
	}
	ropts, err := remoteOptions(true)
	if err != nil {
		return store.Image{}, err
	}
	res, err := remote.Pull(ctx, st, ref, remote.PullOptions{Options: ropts, Platform: image.Platform()})
	if err != nil {
		return store.Image{}, err
	}
	return res.Image, nil
}

// startFailure turns an error from starting a container into berth's exit
// status: the StartError's code (125, 126, 127), else 125.
func startFailure(err error) error {
	var se *container.StartError
	if errors.As(err, &se) {
		if se.Shown {
			return &exitError{code: se.Code}
		}
		return &exitError{code: se.Code, msg: "berth: " + se.Msg}
	}
	return &exitError{code: 125, msg: "berth: " + err.Error()}
}

// attach is what a container or exec in the foreground is attached to:
// berth's output, and with -i its input.
func (a *app) attach(interactive bool) *container.Attach {
	at := &container.Attach{Stdout: a.stdout, Stderr: a.stderr}
	if interactive {
		at.Stdin, _ = a.stdin.(*os.File)
	}
	return at
}

func newRunCommand(a *app) *cobra.Command {
	var f createFlags
	var detach bool
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.interactive && f.tty && !detach && !isTerminal(a.stdin) {
				return &exitError{code: 1, msg: "the input device is not a TTY"}
			}
			return a.withEngine(func(e *container.Engine) error {
				c, err := a.createContainer(cmd.Context(), e, &f, cmd.Flags(), args)
				if err != nil {
					return startFailure(err)
				}
				if detach {
					if err := e.StartDetached(c); err != nil {
						return startFailure(err)
					}
					fmt.Fprintln(a.stdout, c.ID)
					return nil
				}
				code, err := e.Run(c.ID, a.attach(f.interactive), nil)
				if err != nil {
					return startFailure(err)
				}
				if code != 0 {
					return &exitError{code: code}
				}
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run container in background and print container ID")
	return cmd
}

func newCreateCommand(a *app) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				c, err := a.createContainer(cmd.Context(), e, &f, cmd.Flags(), args)
				if err != nil {
					return startFailure(err)
				}
				fmt.Fprintln(a.stdout, c.ID)
				return nil
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	dockerunits "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
)

func containerCommands(a *app) []*cobra.Command {
	return []*cobra.Command{
		newRunCommand(a), newCreateCommand(a), newStartCommand(a), newPsCommand(a),
		newLogsCommand(a), newStopCommand(a), newKillCommand(a), newRestartCommand(a),
		newRmCommand(a), newWaitCommand(a), newExecCommand(a), newPauseCommand(a),
		newUnpauseCommand(a), newTopCommand(a), newStatsCommand(a), newRenameCommand(a),
	}
}

// newContainerCommand is the `container` group.
func newContainerCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "container", Short: "Manage containers"}
	ls := newPsCommand(a)
	ls.Use, ls.Aliases = "ls [OPTIONS]", []string{"list", "ps"}
	rm := newRmCommand(a)
	rm.Aliases = []string{"remove"}
	cmd.AddCommand(containerCommands(a)...)
	cmd.AddCommand(changeCommands(a)...)

	cmd.AddCommand(ls, newContainerInspectCommand(a), newContainerPruneCommand(a), newMonitorCommand(a))
	return cmd
}

// forEach runs fn on each named container, printing each name on success
// as Docker does, and fails with every error at the end.
func (a *app) forEach(e *container.Engine, refs []string, fn func(*container.Container) error) error {
	var errs []string
	for _, ref := range refs {
		c, err := e.Get(ref)
		if err == nil {
			err = fn(c)
		}
		if err != nil {
			errs = append(errs, "Error response from daemon: "+err.Error())
			continue
		}
		fmt.Fprintln(a.stdout, ref)
	}
	if len(errs) > 0 {
		return &exitError{code: 1, msg: strings.Join(errs, "\n")}
	}
	return nil
}

// eachContainerCommand is a command on CONTAINER [CONTAINER...] that runs
// fn on each of them through forEach.
func (a *app) eachContainerCommand(use, short string, fn func(*container.Engine, *container.Container) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				return a.forEach(e, args, func(c *container.Container) error { return fn(e, c) })
			})
		},
	}
}

// newStartCommand starts each container detached, or with -a or -i runs
// one in the foreground.
func newStartCommand(a *app) *cobra.Command {
	var attach, interactive bool
	cmd := a.eachContainerCommand("start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers",
		(*container.Engine).StartDetached)
	startDetached := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !attach && !interactive {
			return startDetached(cmd, args)
		}
		return a.withEngine(func(e *container.Engine) error {
			if len(args) > 1 {
				return errors.New("you cannot start and attach multiple containers at once")
			}
			c, err := e.Get(args[0])
			if err != nil {
				return err
			}
			code, err := e.Run(c.ID, a.attach(interactive), nil)
			if err != nil {
				return startFailure(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		})
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach container's STDIN")
	return cmd
}

// monitor is the hidden command a detached container's monitor runs as.
func newMonitorCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "monitor ID",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The pipe must not leak into the runtime and the container,
			// or StartDetached would wait for them to exit.
			syscall.CloseOnExec(3)
			ready := os.NewFile(3, "ready")
			return a.withEngine(func(e *container.Engine) error {
				_, err := e.Run(args[0], nil, container.ReadyWriter(ready))
				return err
			})
		},
	}
}

// psRow is one line of `ps`, with Docker's template fields.
type psRow struct {
	ID         string
	Image      string
	Command    string
	CreatedAt  string
	RunningFor string
	Ports      string
	State      string
	Status     string
	Size       string
	Names      string
	Labels     string
	Mounts     string
	Networks   string
}

// statusText is the STATUS column.
func statusText(c *container.Container) string {
	st := c.State
	switch {
	case st.Running && st.Paused:
		return "Up " + upFor(time.Since(st.StartedAt)) + " (Paused)"
	case st.Running:
		return "Up " + upFor(time.Since(st.StartedAt))
	case st.Status == container.Created:
		return "Created"
	case st.Status == container.Dead:
		return "Dead"
	default:
		if st.FinishedAt.IsZero() {
			return "Created"
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, upFor(time.Since(st.FinishedAt)))
	}
}

func upFor(d time.Duration) string {
	if d < time.Second {
		return "Less than a second"
	}
	return humanDuration(d)
}

func commandText(c *container.Container, noTrunc bool) string {
	s := strings.Join(append([]string{c.Path}, c.Args...), " ")
	if !noTrunc && len([]rune(s)) > 20 {
		s = string([]rune(s)[:19]) + "…"
	}
	return strconv.Quote(s)
}

// psFilter is one --filter of ps.
type psFilter struct{ key, value string }

func (f psFilter) match(c *container.Container) bool {
	switch f.key {
	case "id":
		return strings.HasPrefix(c.ID, f.value)
	case "name":
		return strings.Contains(c.Name, strings.TrimPrefix(f.value, "/"))
	case "status":
		return c.State.Status == f.value
	case "exited":
		return !c.State.Running && c.State.Status == container.Exited && strconv.Itoa(c.State.ExitCode) == f.value
	case "label":
		k, v, hasV := strings.Cut(f.value, "=")
		lv, ok := c.Config.Labels[k]
		return ok && (!hasV || lv == v)
	case "ancestor":
		return c.ImageName == f.value || strings.HasPrefix(c.Image.Encoded(), strings.TrimPrefix(f.value, "sha256:"))
	}
	return false
}

func newPsCommand(a *app) *cobra.Command {
	var all, quiet, noTrunc, latest bool
	var last int
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var fs []psFilter
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				switch k {
				case "id", "name", "status", "exited", "label", "ancestor":
				default:
					ok = false
				}
				if !ok {
					return fmt.Errorf("invalid filter '%s'", f)
				}
				fs = append(fs, psFilter{k, v})
			}
			if latest {
				last = 1
			}
			return a.withEngine(func(e *container.Engine) error {
				cs, err := e.List()
				if err != nil {
					return err
				}
				if quiet && format == "" {
					format = "{{.ID}}"
				}
				p, err := newRowPrinter(a.stdout, format,
					"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
					map[string]string{"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
						"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
						"Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"})
				if err != nil {
					return err
				}
				n := 0
			next:
				for _, c := range cs {
					if !all && !c.State.Running && last <= 0 && len(filters) == 0 {
						continue
					}
					for _, f := range fs {
						if !f.match(c) {
							continue next
						}
					}
					if last > 0 && n >= last {
						break
					}
					n++
					id := c.ID
					if !noTrunc {
						id = container.ShortID(id)
					}
					var labels, mounts []string
					for k, v := range c.Config.Labels {
						labels = append(labels, k+"="+v)
					}
					for _, m := range c.Mounts {
						name := m.Name
						if name == "" {
							name = m.Source
						}
						mounts = append(mounts, name)
					}
					if err := p.print(psRow{
						ID: id, Image: c.ImageName, Command: commandText(c, noTrunc),
						CreatedAt:  c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
						RunningFor: since(c.Created), State: c.State.Status, Status: statusText(c),
						Names: c.Name, Labels: strings.Join(labels, ","), Mounts: strings.Join(mounts, ","),
						Networks: c.HostConfig.NetworkMode,
					}); err != nil {
						return err
					}
				}
				return p.flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers (default shows just running)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only display container IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	cmd.Flags().BoolVarP(&latest, "latest", "l", false, "show the latest created container")
	cmd.Flags().IntVarP(&last, "last", "n", -1, "show n last created containers")
	cmd.Flags().StringVar(&format, "format", "", "format output using a Go template, 'table' or 'json'")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter output based on conditions provided")
	return cmd
}

func newLogsCommand(a *app) *cobra.Command {
	var follow, timestamps bool
	var tail, sinceFlag string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := container.LogOptions{Follow: follow, Timestamps: timestamps, Tail: -1}
			if tail != "all" {
				n, err := strconv.Atoi(tail)
				if err != nil {
					return fmt.Errorf("invalid --tail %q: a number or \"all\"", tail)
				}
				if n >= 0 {
					opts.Tail = n
				}
			}
			if sinceFlag != "" {
				t, err := parseSince(sinceFlag)
				if err != nil {
					return err
				}
				opts.Since = t
			}
			return a.withEngine(func(e *container.Engine) error {
				c, err := e.Get(args[0])
				if err != nil {
					return err
				}
				return e.ReadLogs(c, opts, a.stdout, a.stderr)
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow log output")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps")
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "number of lines to show from the end of the logs")
	cmd.Flags().StringVar(&sinceFlag, "since", "", "show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
	return cmd
}

// parseSince parses a timestamp or a duration back from now.
func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("invalid --since %q", s)
}

// stopTimeout is -t, else the container's own, else Docker's 10 seconds.
func stopTimeout(c *container.Container, flag int) time.Duration {
	if flag >= 0 {
		return time.Duration(flag) * time.Second
	}
	if c.Config.StopTimeout != nil {
		return time.Duration(*c.Config.StopTimeout) * time.Second
	}
	return 10 * time.Second
}

// stoppingCommand is stop or restart: a command on CONTAINER [CONTAINER...]
// with -t and -s that calls stop (Engine.Stop or Engine.Restart) on each.
func (a *app) stoppingCommand(use, short string, stop func(*container.Engine, *container.Container, time.Duration, string) error) *cobra.Command {
	var timeout int
	var sig string
	cmd := a.eachContainerCommand(use, short, func(e *container.Engine, c *container.Container) error {
		return stop(e, c, stopTimeout(c, timeout), sig)
	})
	cmd.Flags().IntVarP(&timeout, "time", "t", -1, "seconds to wait before killing the container")
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "signal to send to the container")
	return cmd
}

func newStopCommand(a *app) *cobra.Command {
	return a.stoppingCommand("stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
		(*container.Engine).Stop)
}

func newKillCommand(a *app) *cobra.Command {
	var sig string
	cmd := a.eachContainerCommand("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
		func(e *container.Engine, c *container.Container) error { return e.Kill(c, sig) })
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send to the container")
	return cmd
}

func newRestartCommand(a *app) *cobra.Command {
	return a.stoppingCommand("restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
		(*container.Engine).Restart)
}

func newRmCommand(a *app) *cobra.Command {
	var force, volumes bool
	cmd := a.eachContainerCommand("rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
		func(e *container.Engine, c *container.Container) error { return e.Remove(c, force, volumes) })
	cmd.Flags().BoolVarP(&force, "force", "f", false, "force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove anonymous volumes associated with the container")
	return cmd
}

func newWaitCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				var errs []string
				for _, ref := range args {
					c, err := e.Get(ref)
					if err != nil {
						errs = append(errs, "Error response from daemon: "+err.Error())
						continue
					}
					code, err := e.Wait(c)
					if err != nil {
						errs = append(errs, err.Error())
						continue
					}
					fmt.Fprintln(a.stdout, code)
				}
				if len(errs) > 0 {
					return &exitError{code: 1, msg: strings.Join(errs, "\n")}
				}
				return nil
			})
		},
	}
}

func newExecCommand(a *app) *cobra.Command {
	var opts container.ExecOptions
	var interactive bool
	var env, envFile []string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interactive && opts.Tty && !opts.Detach && !isTerminal(a.stdin) {
				return &exitError{code: 1, msg: "the input device is not a TTY"}
			}
			vars, err := readEnv(envFile, env)
			if err != nil {
				return err
			}
			opts.Env = vars
			opts.Cmd = args[1:]
			return a.withEngine(func(e *container.Engine) error {
				c, err := e.Get(args[0])
				if err != nil {
					return err
				}
				code, err := e.Exec(c, opts, a.attach(interactive))
				if err != nil {
					var se *container.StartError
					if errors.As(err, &se) {
						return &exitError{code: code, msg: "berth: " + err.Error()}
					}
					return &exitError{code: 126, msg: "Error response from daemon: " + err.Error()}
				}
				if code != 0 {
					return &exitError{code: code}
				}
				return nil
			})
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&interactive, "interactive", "i", false, "keep STDIN open even if not attached")
	fs.BoolVarP(&opts.Tty, "tty", "t", false, "allocate a pseudo-TTY")
	fs.BoolVarP(&opts.Detach, "detach", "d", false, "detached mode: run command in the background")
	fs.BoolVar(&opts.Privileged, "privileged", false, "give extended privileges to the command")
	fs.StringVarP(&opts.WorkingDir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&opts.User, "user", "u", "", "username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringArrayVarP(&env, "env", "e", nil, "set environment variables")
	fs.StringArrayVar(&envFile, "env-file", nil, "read in a file of environment variables")
	return cmd
}

func newPauseCommand(a *app) *cobra.Command {
	return a.eachContainerCommand("pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers",
		(*container.Engine).Pause)
}

func newUnpauseCommand(a *app) *cobra.Command {
	return a.eachContainerCommand("unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
		(*container.Engine).Unpause)
}

func newRenameCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				return e.Containers.Rename(args[0], args[1])
			})
		},
	}
}

func newContainerPruneCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				fmt.Fprint(a.stdout, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")
				var answer string
				fmt.Fscanln(a.stdin, &answer)
				if !strings.EqualFold(answer, "y") && !strings.EqualFold(answer, "yes") {
					return nil
				}
			}
			return a.withEngine(func(e *container.Engine) error {
				cs, err := e.List()
				if err != nil {
					return err
				}
				var deleted []string
				var reclaimed int64
				for _, c := range cs {
					if c.State.Running {
						continue
					}
					size, _ := e.WritableSize(c)
					if err := e.Remove(c, false, false); err != nil {
						return err
					}
					deleted = append(deleted, c.ID)
					reclaimed += size
				}
				if len(deleted) > 0 {
					fmt.Fprintf(a.stdout, "Deleted Containers:\n%s\n\n", strings.Join(deleted, "\n"))
				}
				fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(reclaimed))
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

// inspectContainer is docker inspect's shape for a container.
type inspectContainer struct {
	ID              string `json:"Id"`
	Created         string
	Path            string
	Args            []string
	State           inspectState
	Image           string
	ResolvConfPath  string
	HostnamePath    string
	HostsPath       string
	LogPath         string
	Name            string
	RestartCount    int
	Driver          string
	Platform        string
	MountLabel      string
	ProcessLabel    string
	AppArmorProfile string
	ExecIDs         []string
	HostConfig      container.HostConfig
	GraphDriver     graphDriver
	Mounts          []container.MountPoint
	Config          container.Config
	NetworkSettings networkSettings
}

type inspectState struct {
	Status     string
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  string
	FinishedAt string
}

type networkSettings struct {
	Networks map[string]struct{}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toInspectContainer(e *container.Engine, c *container.Container) inspectContainer {
	dir := e.Containers.Dir(c.ID)
	st := c.State
	pid := 0
	if st.Running {
		pid, _ = e.Pid(c)
	}
	mounts := c.Mounts
	if mounts == nil {
		mounts = []container.MountPoint{}
	}
	return inspectContainer{
		ID: c.ID, Created: rfc3339(c.Created), Path: c.Path, Args: nonNil(c.Args),
		State: inspectState{
			Status: st.Status, Running: st.Running, Paused: st.Paused, Restarting: st.Restarting,
			OOMKilled: st.OOMKilled, Dead: st.Dead, Pid: pid, ExitCode: st.ExitCode, Error: st.Error,
			StartedAt: rfc3339(st.StartedAt), FinishedAt: rfc3339(st.FinishedAt),
		},
		Image:          c.Image.String(),
		ResolvConfPath: dir + "/resolv.conf", HostnamePath: dir + "/hostname", HostsPath: dir + "/hosts",
		LogPath: c.LogPath, Name: "/" + c.Name, RestartCount: c.RestartCount,
		Driver: c.Driver, Platform: c.Platform, HostConfig: c.HostConfig,
		GraphDriver: graphDriver{Name: "overlay2", Data: map[string]string{
			"UpperDir": dir + "/diff", "WorkDir": dir + "/work", "MergedDir": dir + "/merged",
		}},
		Mounts: mounts, Config: c.Config,
		NetworkSettings: networkSettings{Networks: map[string]struct{}{c.HostConfig.NetworkMode: {}}},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newContainerInspectCommand(a *app) *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				var out []inspectContainer
				var failed []string
				for _, ref := range args {
					c, err := e.Get(ref)
					if err != nil {
						failed = append(failed, err.Error())
						continue
					}
					out = append(out, toInspectContainer(e, c))
				}
				return printInspected(a.stdout, out, format, failed)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format output using a Go template")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "display total file sizes")
	return cmd
}

func newTopCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				c, err := e.Get(args[0])
				if err != nil {
					return err
				}
				out, err := e.Top(c, args[1:])
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(out)
				return err
			})
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// statsRow is one line of `stats`.
type statsRow struct {
	Container string
	ID        string
	Name      string
	CPUPerc   string
	MemUsage  string
	MemPerc   string
	NetIO     string
	BlockIO   string
	PIDs      string
}

func newStatsCommand(a *app) *cobra.Command {
	var noStream, all, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(func(e *container.Engine) error {
				for {
					cs, err := statsTargets(e, args, all)
					if err != nil {
						return err
					}
					first := map[string]container.Stats{}
					for _, c := range cs {
						first[c.ID], _ = e.Stats(c)
					}
					select {
					case <-cmd.Context().Done():
						return nil
					case <-time.After(500 * time.Millisecond):
					}
					p, err := newRowPrinter(a.stdout, format,
						"table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
						map[string]string{"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
							"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"})
					if err != nil {
						return err
					}
					if !noStream {
						fmt.Fprint(a.stdout, "\033[2J\033[H")
					}
					for _, c := range cs {
						s, _ := e.Stats(c)
						p.print(toStatsRow(c, first[c.ID], s, noTrunc))
					}
					if err := p.flush(); err != nil || noStream {
						return err
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "disable streaming stats and only pull the first result")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers (default shows just running)")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	cmd.Flags().StringVar(&format, "format", "", "format output using a Go template, 'table' or 'json'")
	return cmd
}

func statsTargets(e *container.Engine, refs []string, all bool) ([]*container.Container, error) {
	if len(refs) == 0 {
		cs, err := e.List()
		if err != nil {
			return nil, err
		}
		var out []*container.Container
		for _, c := range cs {
			if all || c.State.Running {
				out = append(out, c)
			}
		}
		return out, nil
	}
	var out []*container.Container
	for _, r := range refs {
		c, err := e.Get(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func toStatsRow(c *container.Container, a, b container.Stats, noTrunc bool) statsRow {
	id := c.ID
	if !noTrunc {
		id = container.ShortID(id)
	}
	row := statsRow{Container: id, ID: id, Name: c.Name, CPUPerc: "0.00%", MemUsage: "0B / 0B", MemPerc: "0.00%",
		NetIO: "0B / 0B", BlockIO: "0B / 0B", PIDs: "0"}
	if !c.State.Running {
		row.CPUPerc, row.MemPerc = "--", "--"
		row.MemUsage, row.NetIO, row.BlockIO, row.PIDs = "-- / --", "-- / --", "-- / --", "--"
		return row
	}
	if sys := float64(b.System - a.System); sys > 0 && b.CPU >= a.CPU {
		row.CPUPerc = fmt.Sprintf("%.2f%%", float64(b.CPU-a.CPU)/sys*float64(b.OnlineCPUs)*100)
	}
	row.MemUsage = binarySize(b.Memory) + " / " + binarySize(b.MemoryLimit)
	if b.MemoryLimit > 0 {
		row.MemPerc = fmt.Sprintf("%.2f%%", float64(b.Memory)/float64(b.MemoryLimit)*100)
	}
	row.NetIO = humanSize(int64(b.NetRx)) + " / " + humanSize(int64(b.NetTx))
	row.BlockIO = humanSize(int64(b.BlockRead)) + " / " + humanSize(int64(b.BlockWrite))
	row.PIDs = strconv.FormatUint(b.Pids, 10)
	return row
}

// binarySize renders memory as Docker's stats does ("1.5MiB").
func binarySize(n uint64) string { return dockerunits.BytesSize(float64(n)) }

func humanDuration(d time.Duration) string { return dockerunits.HumanDuration(d) }

// newAnyInspectCommand is the top-level inspect: containers first, then
// images, as Docker looks them up.
func newAnyInspectCommand(a *app) *cobra.Command {
	var format, typ string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on containers or images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch typ {
			case "", "container", "image":
			default:
				return fmt.Errorf("%q is not a valid value for --type", typ)
			}
			return a.withEngine(func(e *container.Engine) error {
				var out []any
				var failed []string
				for _, ref := range args {
					if typ != "image" {
						if c, err := e.Get(ref); err == nil {
							out = append(out, toInspectContainer(e, c))
							continue
						}
					}
					if typ != "container" {
						if img, err := e.Images.Get(ref); err == nil {
							out = append(out, toInspect(e.Images, img))
							continue
						}
					}
					failed = append(failed, "No such object: "+ref)
				}
				return printInspected(a.stdout, out, format, failed)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format output using a Go template")
	cmd.Flags().StringVar(&typ, "type", "", "return JSON for specified type (container or image)")
	return cmd
}

package build

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/berth-dev/berth/internal/image"
)

// defaultShell is the shell of shell-form instructions when the image
// sets none.
var defaultShell = []string{"/bin/sh", "-c"}

// proxyArgs are the build arguments Docker predefines: usable without an
// ARG line, passed to RUN steps, never written into the history.
var proxyArgs = []string{
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
	"NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
}

// dispatch applies one instruction to the state.
func (s *stageRun) dispatch(ctx context.Context, st *state, cmd instructions.Command) (*state, error) {
	b := s.b
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		return s.run(ctx, st, c)
	case *instructions.CopyCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		return s.copy(ctx, st, copyInstr{
			name: "COPY", src: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod,
			link: c.Link, exclude: c.ExcludePatterns, parents: c.Parents, text: c.String(),
		})
	case *instructions.AddCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		if c.KeepGitDir != nil {
			return nil, fmt.Errorf("ADD --keep-git-dir: git sources are not supported by berth build")
		}
		unpack := true
		if c.Unpack != nil {
			unpack = *c.Unpack
		}
		return s.copy(ctx, st, copyInstr{
			name: "ADD", src: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, link: c.Link,
			exclude: c.ExcludePatterns, checksum: c.Checksum, unpack: unpack, text: c.String(),
		})
	case *instructions.EnvCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		msg := "ENV"
		for _, kv := range c.Env {
			st.img.Config.Env = setEnv(st.img.Config.Env, kv.Key, kv.Value)
			msg += " " + kv.String()
		}
		return b.configStep(st, msg), nil
	case *instructions.LabelCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		msg := "LABEL"
		if st.img.Config.Labels == nil {
			st.img.Config.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			st.img.Config.Labels[kv.Key] = kv.Value
			msg += " " + kv.String()
		}
		return b.configStep(st, msg), nil
	case *instructions.MaintainerCommand:
		st.img.Author = c.Maintainer
		return b.configStep(st, "MAINTAINER "+c.Maintainer), nil
	case *instructions.WorkdirCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		wd := c.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", st.img.Config.WorkingDir, wd)
		}
		return s.workdir(ctx, st, path.Clean(wd))
	case *instructions.UserCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		st.img.Config.User = c.User
		return b.configStep(st, "USER "+c.User), nil
	case *instructions.ExposeCommand:
		ex := s.expand(st)
		if st.img.Config.ExposedPorts == nil {
			st.img.Config.ExposedPorts = map[string]struct{}{}
		}
		var ports []string
		for _, p := range c.Ports {
			v, err := ex(p)
			if err != nil {
				return nil, err
			}
			list, err := expandPorts(v)
			if err != nil {
				return nil, err
			}
			for _, port := range list {
				st.img.Config.ExposedPorts[port] = struct{}{}
				ports = append(ports, port)
			}
		}
		return b.configStep(st, "EXPOSE "+portsString(ports)), nil
	case *instructions.VolumeCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		if st.img.Config.Volumes == nil {
			st.img.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return nil, fmt.Errorf("VOLUME specified can not be an empty string")
			}
			st.img.Config.Volumes[v] = struct{}{}
		}
		return b.configStep(st, fmt.Sprintf("VOLUME %v", c.Volumes)), nil
	case *instructions.StopSignalCommand:
		if err := c.Expand(s.expand(st)); err != nil {
			return nil, err
		}
		if err := checkSignal(c.Signal); err != nil {
			return nil, err
		}
		st.img.Config.StopSignal = c.Signal
		return b.configStep(st, "STOPSIGNAL "+c.Signal), nil
	case *instructions.CmdCommand:
		args := s.withShell(st, c.ShellDependantCmdLine)
		st.img.Config.Cmd = args
		st.img.Config.ArgsEscaped = true
		st.cmdSet = true
		return b.configStep(st, fmt.Sprintf("CMD %q", args)), nil
	case *instructions.EntrypointCommand:
		args := s.withShell(st, c.ShellDependantCmdLine)
		st.img.Config.Entrypoint = args
		if !st.cmdSet {
			st.img.Config.Cmd = nil
		}
		return b.configStep(st, fmt.Sprintf("ENTRYPOINT %q", args)), nil
	case *instructions.ShellCommand:
		st.img.Config.Shell = slices.Clone(c.Shell)
		return b.configStep(st, fmt.Sprintf("SHELL %v", c.Shell)), nil
	case *instructions.HealthCheckCommand:
		h := c.Health
		st.img.Config.Healthcheck = &image.HealthConfig{
			Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
		return b.configStep(st, fmt.Sprintf("HEALTHCHECK %+v", *h)), nil
	case *instructions.OnbuildCommand:
		st.img.Config.OnBuild = append(st.img.Config.OnBuild, c.Expression)
		st.key = key(st.key.String(), "ONBUILD "+c.Expression)
		return st, nil
	case *instructions.ArgCommand:
		return s.arg(st, c)
	}
	return nil, fmt.Errorf("instruction %s is not supported by berth build", strings.ToUpper(cmd.Name()))
}

// arg declares build arguments in the stage.
func (s *stageRun) arg(st *state, c *instructions.ArgCommand) (*state, error) {
	b := s.b
	var parts []string
	for _, kv := range c.Args {
		k, err := s.expand(st)(kv.Key)
		if err != nil {
			return nil, err
		}
		v, has := b.opts.BuildArgs[k]
		if !has && kv.Value != nil {
			if v, err = s.expand(st)(*kv.Value); err != nil {
				return nil, err
			}
			has = true
		}
		if !has {
			v, has = b.metaArg(k)
		}
		part := k
		if has {
			s.args = setEnv(s.args, k, v)
			part += "=" + v
		}
		parts = append(parts, part)
	}
	// The values enter the keys of the steps that see them (RUN) or use
	// them (through expansion), not the declaration's.
	k := key(st.key.String(), "ARG "+argNames(c))
	st = b.configStep(st, "ARG "+strings.Join(parts, " "))
	st.key = k
	return st, nil
}

func argNames(c *instructions.ArgCommand) string {
	var names []string
	for _, kv := range c.Args {
		names = append(names, kv.Key)
	}
	return strings.Join(names, " ")
}

// withShell turns a shell-form command line into the shell's argv.
func (s *stageRun) withShell(st *state, cl instructions.ShellDependantCmdLine) []string {
	if !cl.PrependShell {
		return slices.Clone(cl.CmdLine)
	}
	sh := st.img.Config.Shell
	if len(sh) == 0 {
		sh = defaultShell
	}
	return append(slices.Clone(sh), strings.Join(cl.CmdLine, " "))
}

// expandPorts parses one EXPOSE word: "80", "80/udp", "8000-8002/tcp".
func expandPorts(v string) ([]string, error) {
	port, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("EXPOSE %s: invalid protocol %q", v, proto)
	}
	lo, hi, isRange := strings.Cut(port, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("EXPOSE %s: invalid port", v)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("EXPOSE %s: invalid port range", v)
		}
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

// portsString is BuildKit's history text for EXPOSE (a Go map's format).
func portsString(ports []string) string {
	sorted := slices.Clone(ports)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	parts := make([]string, len(sorted))
	for i, p := range sorted {
		parts[i] = p + ":{}"
	}
	return "map[" + strings.Join(parts, " ") + "]"
}

// checkSignal accepts a signal name or number as STOPSIGNAL takes it.
func checkSignal(sig string) error {
	if n, err := strconv.Atoi(sig); err == nil {
		if n <= 0 || n > 64 {
			return fmt.Errorf("STOPSIGNAL %s: invalid signal number", sig)
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if name == "" || strings.ContainsAny(name, " \t/") {
		return fmt.Errorf("STOPSIGNAL %s: invalid signal", sig)
	}
	return nil
}

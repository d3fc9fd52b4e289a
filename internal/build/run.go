package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/berth-dev/berth/internal/build/buildctx"
	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/snapshot"
)

// runHostname is the hostname RUN steps see, as under BuildKit.
const runHostname = "buildkitsandbox"

// run executes a RUN instruction as a one-shot container.
func (s *stageRun) run(ctx context.Context, st *state, c *instructions.RunCommand) (*state, error) {
	b := s.b
	args, shebang, err := s.runArgs(st, c)
	if err != nil {
		return nil, err
	}
	if sec := instructions.GetSecurity(c); sec == "insecure" {
		return nil, errors.New("RUN --security=insecure is not allowed (berth grants no build entitlements)")
	}
	network := instructions.GetNetwork(c)
	if network == "" || network == "default" {
		network = b.opts.Network
	}
	if network == "default" {
		// berth has no bridge network: steps share the host's, as
		// BuildKit's own OCI worker does by default.
		network = "host"
	}
	argEnv := s.runArgEnv()
	env := slices.Clone(argEnv)
	for _, e := range st.img.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		env = setEnv(env, k, v)
	}
	// A proxy argument is given to RUN in both spellings, as BuildKit
	// does; an explicit one of either spelling wins.
	for _, p := range proxyArgs {
		v, ok := b.opts.BuildArgs[p]
		if !ok {
			continue
		}
		for _, name := range []string{strings.ToUpper(p), strings.ToLower(p)} {
			if _, given := b.opts.BuildArgs[name]; name != p && given {
				continue
			}
			if _, set := lookupEnv(env, name); !set {
				env = append(env, name+"="+v)
			}
		}
	}
	mounts := instructions.GetMounts(c)
	mountKey, err := s.mountsKey(ctx, mounts)
	if err != nil {
		return nil, err
	}
	argv, _ := json.Marshal(args)
	argj, _ := json.Marshal(argEnv)
	// A heredoc script run from a file is not in argv: its text is keyed.
	var scripts []string
	for _, f := range c.Files {
		scripts = append(scripts, f.Name+"\n"+heredocData(f))
	}
	k := key(st.key.String(), "RUN", string(argv), string(argj), mountKey, network, strings.Join(scripts, "\x00"))
	createdBy := "RUN " + runCommandString(args, argEnv) + " # buildkit"
	prog := b.prog.step(s.stepName(c.String()))
	return s.layerStep(ctx, st, k, createdBy, prog, func(dir string, layers []string) error {
		var extra []specs.Mount
		stepEnv := slices.Clone(env)
		if shebang != "" {
			pipes := filepath.Join(dir, "pipes")
			if err := os.Mkdir(pipes, 0o755); err != nil {
				return err
			}
			f := c.Files[0]
			if err := os.WriteFile(filepath.Join(pipes, filepath.Base(shebang)), []byte(heredocData(f)), 0o755); err != nil {
				return err
			}
			extra = append(extra, specs.Mount{Destination: "/dev/pipes", Type: "bind", Source: pipes, Options: []string{"rbind", "ro"}})
		}
		ms, menv, cleanup, err := s.runMounts(ctx, dir, mounts)
		defer cleanup()
		if err != nil {
			return err
		}
		extra = append(extra, ms...)
		stepEnv = append(stepEnv, menv...)
		code, err := b.e.RunStep(ctx, container.Step{
			Dir:        dir,
			Layers:     layers,
			Args:       args,
			Env:        stepEnv,
			WorkingDir: st.img.Config.WorkingDir,
			User:       st.img.Config.User,
			Hostname:   runHostname,
			Network:    network,
			Mounts:     extra,
			Runtime:    b.opts.Runtime,
			Stdout:     prog,
			Stderr:     prog,
		})
		if err != nil {
			return err
		}
		if code != 0 {
			return &StepError{Cmd: args, Code: code}
		}
		return nil
	})
}

// runArgs is the argv of a RUN, heredocs included (BuildKit's rules: a
// lone heredoc with a shebang runs as a script file, a lone heredoc
// without one is the shell's command, anything else is handed to the
// shell whole). shebang names the script file when there is one.
func (s *stageRun) runArgs(st *state, c *instructions.RunCommand) (args []string, shebang string, err error) {
	args = slices.Clone(c.CmdLine)
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, "", fmt.Errorf("RUN: a heredoc needs the shell form")
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			if strings.HasPrefix(c.Files[0].Data, "#!") {
				name := path.Join("/dev/pipes", path.Base(c.Files[0].Name))
				return []string{name}, name, nil
			}
			args = []string{heredocData(c.Files[0])}
		} else {
			full := args[0]
			for _, f := range c.Files {
				full += "\n" + f.Data + f.Name
			}
			args = []string{full}
		}
	}
	if c.PrependShell {
		sh := st.img.Config.Shell
		if len(sh) == 0 {
			sh = defaultShell
		}
		args = append(slices.Clone(sh), strings.Join(args, " "))
	}
	if len(args) == 0 {
		return nil, "", errors.New("RUN: empty command")
	}
	return args, "", nil
}

func heredocData(f instructions.ShellInlineFile) string {
	if f.Chomp {
		return parser.ChompHeredocContent(f.Data)
	}
	return f.Data
}

// runArgEnv is the stage's declared build arguments, which RUN steps see
// in their environment (not the proxy ones: those are added without
// entering the history or the key's visible text).
func (s *stageRun) runArgEnv() []string {
	return slices.Clone(s.args)
}

// runCommandString is BuildKit's history text of a RUN: "|N K=V … argv".
func runCommandString(args, argEnv []string) string {
	var parts []string
	if len(argEnv) > 0 {
		parts = append(parts, "|"+strconv.Itoa(len(argEnv)))
		parts = append(parts, argEnv...)
	}
	return strings.Join(append(parts, args...), " ")
}

// mountsKey is the part of a RUN's cache key its mounts make: their
// specs, and for bind mounts the content of what is mounted.
func (s *stageRun) mountsKey(ctx context.Context, mounts []*instructions.Mount) (string, error) {
	var parts []string
	for _, m := range mounts {
		spec, _ := json.Marshal(struct {
			Type, From, Source, Target, ID string
			RO                             bool
		}{string(m.Type), m.From, m.Source, m.Target, m.CacheID, m.ReadOnly})
		part := string(spec)
		if m.Type == instructions.MountTypeBind {
			d, err := s.bindDigest(ctx, m)
			if err != nil {
				return "", err
			}
			part += d.String()
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "\n"), nil
}

// runMounts turns RUN --mount flags into runtime mounts (and secret
// environment variables).
func (s *stageRun) runMounts(ctx context.Context, dir string, mounts []*instructions.Mount) ([]specs.Mount, []string, func(), error) {
	b := s.b
	var out []specs.Mount
	var env []string
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	for i, m := range mounts {
		target := m.Target
		switch m.Type {
		case instructions.MountTypeCache:
			id := m.CacheID
			if id == "" {
				id = target
			}
			host := filepath.Join(b.st.Root, "build", "cache-mounts", digest.FromString(id).Encoded()[:32])
			if _, err := os.Stat(host); os.IsNotExist(err) {
				if err := os.MkdirAll(host, 0o755); err != nil {
					return nil, nil, cleanup, err
				}
				if m.Mode != nil {
					os.Chmod(host, os.FileMode(*m.Mode))
				}
				uid, gid := -1, -1
				if m.UID != nil {
					uid = int(*m.UID)
				}
				if m.GID != nil {
					gid = int(*m.GID)
				}
				if uid >= 0 || gid >= 0 {
					os.Chown(host, uid, gid)
				}
			}
			opts := []string{"rbind"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: host, Options: opts})
		case instructions.MountTypeTmpfs:
			opts := []string{"nosuid", "nodev"}
			if m.SizeLimit > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.SizeLimit, 10))
			}
			out = append(out, specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		case instructions.MountTypeSecret:
			id := m.CacheID
			if id == "" && target != "" {
				id = path.Base(target)
			}
			data, ok := b.opts.Secrets[id]
			if !ok {
				if m.Required {
					return nil, nil, cleanup, fmt.Errorf("secret %s: not provided (--secret id=%s,src=FILE)", id, id)
				}
				continue
			}
			if m.Env != nil {
				name := *m.Env
				if name == "" {
					name = id
				}
				env = append(env, name+"="+string(data))
				if target == "" {
					continue
				}
			}
			if target == "" {
				target = "/run/secrets/" + id
			}
			secrets := filepath.Join(dir, "secrets")
			if err := os.MkdirAll(secrets, 0o700); err != nil {
				return nil, nil, cleanup, err
			}
			f := filepath.Join(secrets, strconv.Itoa(i))
			mode := os.FileMode(0o400)
			if m.Mode != nil {
				mode = os.FileMode(*m.Mode) & 0o7777
			}
			if err := os.WriteFile(f, data, mode); err != nil {
				return nil, nil, cleanup, err
			}
			os.Chmod(f, mode)
			uid, gid := 0, 0
			if m.UID != nil {
				uid = int(*m.UID)
			}
			if m.GID != nil {
				gid = int(*m.GID)
			}
			os.Chown(f, uid, gid)
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: f, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		case instructions.MountTypeBind:
			src, err := s.bindSource(ctx, m, filepath.Join(dir, "context-"+strconv.Itoa(i)))
			if err != nil {
				return nil, nil, cleanup, err
			}
			if m.ReadOnly {
				out = append(out, specs.Mount{Destination: target, Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
				continue
			}
			// A writable bind mount takes writes in a throwaway layer:
			// the source is never changed.
			fi, err := os.Stat(src)
			if err != nil {
				return nil, nil, cleanup, err
			}
			if !fi.IsDir() {
				out = append(out, specs.Mount{Destination: target, Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
				continue
			}
			mdir := filepath.Join(dir, "bind-"+strconv.Itoa(i))
			for _, d := range []string{"upper", "work", "merged"} {
				if err := os.MkdirAll(filepath.Join(mdir, d), 0o755); err != nil {
					return nil, nil, cleanup, err
				}
			}
			merged := filepath.Join(mdir, "merged")
			if err := snapshot.MountWritable([]string{src}, filepath.Join(mdir, "upper"), filepath.Join(mdir, "work"), merged, true); err != nil {
				return nil, nil, cleanup, err
			}
			cleanups = append(cleanups, func() { snapshot.Unmount(merged) })
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: merged, Options: []string{"rbind"}})
		case instructions.MountTypeSSH:
			return nil, nil, cleanup, errors.New("RUN --mount=type=ssh is not supported by berth build")
		default:
			return nil, nil, cleanup, fmt.Errorf("RUN --mount: unknown type %q", m.Type)
		}
	}
	return out, env, cleanup, nil
}

// bindSource resolves the host path a bind mount shows: source inside
// a stage or an image, or inside the build context — then, when the
// context has ignore rules, a copy in scratch of what they keep, as
// BuildKit only ever sees that.
func (s *stageRun) bindSource(ctx context.Context, m *instructions.Mount, scratch string) (string, error) {
	if m.From == "" {
		t, err := s.b.context()
		if err != nil {
			return "", err
		}
		if len(t.IgnorePatterns()) > 0 {
			srcs, err := t.Match([]string{bindArg(m)}, buildctx.CopyOptions{})
			if err != nil {
				return "", fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
			}
			if err := os.MkdirAll(scratch, 0o755); err != nil {
				return "", err
			}
			if len(srcs) == 1 && !srcs[0].IsDir() {
				if err := buildctx.Copy(scratch, "/", srcs, buildctx.CopyOptions{}); err != nil {
					return "", err
				}
				return filepath.Join(scratch, filepath.Base(srcs[0].Path)), nil
			}
			return scratch, buildctx.Copy(scratch, "/", srcs, buildctx.CopyOptions{})
		}
	}
	root := s.b.opts.ContextDir
	if m.From != "" {
		st, err := s.fromState(ctx, m.From)
		if err != nil {
			return "", err
		}
		if root, err = s.b.rootOf(st); err != nil {
			return "", err
		}
	}
	p, err := securejoin.SecureJoin(root, m.Source)
	if err != nil {
		return "", fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
	}
	if _, err := os.Lstat(p); err != nil {
		return "", fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
	}
	return p, nil
}

// bindDigest is the content digest of what a bind mount shows.
func (s *stageRun) bindDigest(ctx context.Context, m *instructions.Mount) (digest.Digest, error) {
	if m.From == "" {
		t, err := s.b.context()
		if err != nil {
			return "", err
		}
		srcs, err := t.Match([]string{bindArg(m)}, buildctx.CopyOptions{})
		if err != nil {
			return "", fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
		}
		return buildctx.Digest(srcs, buildctx.CopyOptions{})
	}
	src, err := s.bindSource(ctx, m, "")
	if err != nil {
		return "", err
	}
	return treeDigest(src)
}

// bindArg is a bind mount's source as a context argument.
func bindArg(m *instructions.Mount) string {
	if m.Source == "" || m.Source == "/" {
		return "."
	}
	return m.Source
}

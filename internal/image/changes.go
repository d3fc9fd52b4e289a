package image

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// envList lets the shell lexer expand $VARS from an image's Env.
type envList []string

func (e envList) Get(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func (e envList) Keys() []string {
	var keys []string
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}

// ApplyChanges applies Dockerfile instructions to a config, as the
// -c/--change flag of `docker import` and `docker commit` does. Allowed:
// CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
// WORKDIR. Lines are parsed with BuildKit's Dockerfile parser.
func ApplyChanges(cfg *Config, changes []string) error {
	for _, change := range changes {
		res, err := parser.Parse(strings.NewReader(change))
		if err != nil {
			return fmt.Errorf("change %q: %w", change, err)
		}
		for _, n := range res.AST.Children {
			if err := applyChange(cfg, n); err != nil {
				return fmt.Errorf("change %q: %w", change, err)
			}
		}
	}
	return nil
}

func applyChange(cfg *Config, n *parser.Node) error {
	instr := strings.ToLower(n.Value)
	lex := shell.NewLex('\\')
	var args []string
	for a := n.Next; a != nil; a = a.Next {
		args = append(args, a.Value)
	}
	word := func(s string) (string, error) {
		w, _, err := lex.ProcessWord(s, envList(cfg.Env))
		return w, err
	}
	cmdForm := func() []string {
		if n.Attributes["json"] {
			return args
		}
		return []string{"/bin/sh", "-c", strings.Join(args, " ")}
	}
	need := func(min int) error {
		if len(args) < min {
			return fmt.Errorf("%s requires at least %d argument(s)", strings.ToUpper(instr), min)
		}
		return nil
	}
	switch instr {
	case "cmd":
		cfg.Cmd = cmdForm()
	case "entrypoint":
		cfg.Entrypoint = cmdForm()
		if len(args) == 0 {
			cfg.Entrypoint = nil
		}
	case "env", "label":
		if err := need(2); err != nil {
			return err
		}
		if len(args)%3 != 0 {
			return fmt.Errorf("%s: malformed key=value arguments", strings.ToUpper(instr))
		}
		for i := 0; i < len(args); i += 3 {
			k, err := word(args[i])
			if err != nil {
				return err
			}
			v, err := word(args[i+1])
			if err != nil {
				return err
			}
			if instr == "env" {
				cfg.Env = setEnv(cfg.Env, k, v)
				continue
			}
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			cfg.Labels[k] = v
		}
	case "expose":
		if err := need(1); err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, a := range args {
			p, err := word(a)
			if err != nil {
				return err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case "volume":
		if err := need(1); err != nil {
			return err
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, a := range args {
			v, err := word(a)
			if err != nil {
				return err
			}
			cfg.Volumes[v] = struct{}{}
		}
	case "user", "workdir", "stopsignal":
		if err := need(1); err != nil {
			return err
		}
		v, err := word(args[0])
		if err != nil {
			return err
		}
		switch instr {
		case "user":
			cfg.User = v
		case "workdir":
			if !strings.HasPrefix(v, "/") {
				v = strings.TrimSuffix(cfg.WorkingDir, "/") + "/" + v
			}
			cfg.WorkingDir = v
		default:
			cfg.StopSignal = v
		}
	case "onbuild":
		if n.Next == nil || len(n.Next.Children) == 0 {
			return fmt.Errorf("ONBUILD requires an instruction")
		}
		cfg.OnBuild = append(cfg.OnBuild, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(n.Original), strings.Fields(n.Original)[0])))
	default:
		return fmt.Errorf("%s is not a valid change command", strings.ToUpper(instr))
	}
	return nil
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

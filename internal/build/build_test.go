package build

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/berth-dev/berth/internal/image"
)

// configOnly builds a Dockerfile whose instructions only change the
// config (FROM scratch), without a store or a runtime.
func configOnly(t *testing.T, df string, args map[string]string) (*state, error) {
	t.Helper()
	b := &builder{opts: Options{BuildArgs: args}, dfName: "Dockerfile", prog: newProgress(nil), mounted: map[string]string{}}
	res, err := parser.Parse(strings.NewReader(df))
	if err != nil {
		return nil, b.located(err)
	}
	b.escape = res.EscapeToken
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, b.located(err)
	}
	if err := b.resolveMetaArgs(meta); err != nil {
		return nil, err
	}
	for i, s := range stages {
		b.stages = append(b.stages, &stageRun{b: b, index: i, stage: s})
	}
	target := b.stages[len(b.stages)-1]
	b.markNeeded(target)
	b.countSteps()
	return target.result(context.Background())
}

func TestConfigInstructions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		df    string
		args  map[string]string
		check func(t *testing.T, c image.Config)
	}{
		{"env and expansion", "FROM scratch\nENV A=1 B=\"two words\"\nENV C=${A}-$B\n", nil, func(t *testing.T, c image.Config) {
			want := []string{"A=1", "B=two words", "C=1-two words"}
			if !reflect.DeepEqual(c.Env, want) {
				t.Errorf("Env %q, want %q", c.Env, want)
			}
		}},
		{"env replaces", "FROM scratch\nENV A=1\nENV A=2\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Env, []string{"A=2"}) {
				t.Errorf("Env %q, want [A=2]", c.Env)
			}
		}},
		{"cmd shell form", "FROM scratch\nCMD echo hi\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Cmd, []string{"/bin/sh", "-c", "echo hi"}) {
				t.Errorf("Cmd %q", c.Cmd)
			}
		}},
		{"shell changes shell form", "FROM scratch\nSHELL [\"/bin/bash\", \"-xc\"]\nENTRYPOINT run me\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/bash", "-xc", "run me"}) || !reflect.DeepEqual(c.Shell, []string{"/bin/bash", "-xc"}) {
				t.Errorf("Entrypoint %q Shell %q", c.Entrypoint, c.Shell)
			}
		}},
		{"entrypoint resets an inherited cmd", "FROM scratch AS a\nCMD [\"x\"]\nFROM a\nENTRYPOINT [\"e\"]\n", nil, func(t *testing.T, c image.Config) {
			if c.Cmd != nil || !reflect.DeepEqual(c.Entrypoint, []string{"e"}) {
				t.Errorf("Cmd %q Entrypoint %q, want no Cmd", c.Cmd, c.Entrypoint)
			}
		}},
		{"entrypoint keeps the stage's own cmd", "FROM scratch\nCMD [\"x\"]\nENTRYPOINT [\"e\"]\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Cmd, []string{"x"}) {
				t.Errorf("Cmd %q, want [x]", c.Cmd)
			}
		}},
		{"labels user expose volume stopsignal", "FROM scratch\nLABEL a=b \"c d\"=e\nUSER 1000:1000\nEXPOSE 80 53/udp 8000-8001\nVOLUME [\"/data\", \"/logs\"]\nSTOPSIGNAL SIGINT\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Labels, map[string]string{"a": "b", "c d": "e"}) || c.User != "1000:1000" || c.StopSignal != "SIGINT" {
				t.Errorf("Labels %v User %q StopSignal %q", c.Labels, c.User, c.StopSignal)
			}
			wantPorts := map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
			if !reflect.DeepEqual(c.ExposedPorts, wantPorts) {
				t.Errorf("ExposedPorts %v", c.ExposedPorts)
			}
			if _, ok := c.Volumes["/logs"]; !ok || len(c.Volumes) != 2 {
				t.Errorf("Volumes %v", c.Volumes)
			}
		}},
		{"healthcheck and onbuild", "FROM scratch\nHEALTHCHECK --interval=5s --retries=2 CMD true\nONBUILD RUN echo child\n", nil, func(t *testing.T, c image.Config) {
			h := c.Healthcheck
			if h == nil || h.Interval != 5*time.Second || h.Retries != 2 || !reflect.DeepEqual(h.Test, []string{"CMD-SHELL", "true"}) {
				t.Errorf("Healthcheck %+v", h)
			}
			if !reflect.DeepEqual(c.OnBuild, []string{"RUN echo child"}) {
				t.Errorf("OnBuild %q", c.OnBuild)
			}
		}},
		{"arg default, override and scope", "ARG V=meta\nFROM scratch\nARG V\nARG W=w-$V\nENV OUT=$W\nFROM scratch\nENV OUT2=[$W]\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Env, []string{"OUT2=[]"}) {
				t.Errorf("Env %q: an ARG of one stage must not leak into the next", c.Env)
			}
		}},
		{"build-arg overrides", "FROM scratch\nARG W=default\nENV OUT=$W\n", map[string]string{"W": "given"}, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Env, []string{"OUT=given"}) {
				t.Errorf("Env %q", c.Env)
			}
		}},
		{"meta arg inherited by ARG NAME", "ARG V=meta\nFROM scratch\nARG V\nENV OUT=$V\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Env, []string{"OUT=meta"}) {
				t.Errorf("Env %q", c.Env)
			}
		}},
		{"env wins over arg", "FROM scratch\nARG X=arg\nENV X=env\nENV OUT=$X\n", nil, func(t *testing.T, c image.Config) {
			if v, _ := lookupEnv(c.Env, "OUT"); v != "env" {
				t.Errorf("Env %q", c.Env)
			}
		}},
		{"escape directive", "# escape=`\nFROM scratch\nENV A=x `\n    B=y\n", nil, func(t *testing.T, c image.Config) {
			if !reflect.DeepEqual(c.Env, []string{"A=x", "B=y"}) {
				t.Errorf("Env %q", c.Env)
			}
		}},
		{"maintainer", "FROM scratch\nMAINTAINER someone\n", nil, func(t *testing.T, c image.Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := configOnly(t, tc.df, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			c := st.img.Config
			// FROM scratch gets BuildKit's default PATH first.
			if len(c.Env) == 0 || c.Env[0] != defaultPathEnv {
				t.Fatalf("Env %q does not start with %s", c.Env, defaultPathEnv)
			}
			c.Env = c.Env[1:]
			if len(c.Env) == 0 {
				c.Env = nil
			}
			tc.check(t, c)
		})
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"FROM scratch\nFOO bar\n", "Dockerfile:2"},
		{"FROM scratch\nENV\n", "Dockerfile:2"},
		{"FROM scratch\nRUN --mount=type=nope true\n", "Dockerfile:2"},
		{"ENV A=b\n", "Dockerfile:1"},
		{"FROM scratch\nSTOPSIGNAL \"\"\n", "Dockerfile:2"},
	} {
		_, err := configOnly(t, tc.df, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to name %s", tc.df, err, tc.want)
		}
	}
}

func TestCacheKeysChain(t *testing.T) {
	a, err := configOnly(t, "FROM scratch\nENV A=1\nLABEL x=y\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	same, _ := configOnly(t, "FROM scratch\nENV A=1\nLABEL x=y\n", nil)
	other, _ := configOnly(t, "FROM scratch\nENV A=2\nLABEL x=y\n", nil)
	unusedArg, _ := configOnly(t, "FROM scratch\nENV A=1\nLABEL x=y\n", map[string]string{"UNUSED": "1"})
	if a.key != same.key || a.key != unusedArg.key {
		t.Errorf("same Dockerfile, different keys")
	}
	if a.key == other.key {
		t.Errorf("ENV A=1 and ENV A=2 give the same key")
	}
}

func TestExpandPorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{"80", []string{"80/tcp"}, false},
		{"53/UDP", []string{"53/udp"}, false},
		{"1-3/tcp", []string{"1/tcp", "2/tcp", "3/tcp"}, false},
		{"3-1", nil, true},
		{"x", nil, true},
		{"80/foo", nil, true},
		{"70000", nil, true},
	} {
		got, err := expandPorts(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("expandPorts(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestRunCommandString(t *testing.T) {
	if got := runCommandString([]string{"/bin/sh", "-c", "echo"}, nil); got != "/bin/sh -c echo" {
		t.Errorf("got %q", got)
	}
	if got := runCommandString([]string{"x"}, []string{"A=1", "B=2"}); got != "|2 A=1 B=2 x" {
		t.Errorf("got %q", got)
	}
}

func TestStepErrorMessage(t *testing.T) {
	err := error(&StepError{Cmd: []string{"/bin/sh", "-c", "exit 3"}, Code: 3})
	if got := err.Error(); got != `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3` {
		t.Errorf("got %q", got)
	}
	wrapped := &errLine{file: "Dockerfile", line: 4, err: err}
	var se *StepError
	if !errors.As(wrapped, &se) || !strings.HasPrefix(wrapped.Error(), "Dockerfile:4: ") {
		t.Errorf("wrapped: %v", wrapped)
	}
}

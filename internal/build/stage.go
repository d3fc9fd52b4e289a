package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// state is the image a stage has built so far.
type state struct {
	img    image.Image
	layers []ocispec.Descriptor
	key    digest.Digest
	// cmdSet is set once the stage itself set CMD: a later ENTRYPOINT
	// then keeps it.
	cmdSet bool
	// base is what the state was made FROM ("scratch", an image name).
	base string
	// created is the time of the latest layer (the base image's at
	// first): config-only steps are stamped with it, so that a build
	// served wholly from the cache gives the same image ID again.
	created time.Time
}

func (s *state) clone() *state {
	c := *s
	c.img.Config.Env = slices.Clone(s.img.Config.Env)
	c.img.Config.Cmd = slices.Clone(s.img.Config.Cmd)
	c.img.Config.Entrypoint = slices.Clone(s.img.Config.Entrypoint)
	c.img.Config.Shell = slices.Clone(s.img.Config.Shell)
	c.img.Config.OnBuild = slices.Clone(s.img.Config.OnBuild)
	c.img.Config.Labels = cloneMap(s.img.Config.Labels)
	c.img.Config.ExposedPorts = cloneMap(s.img.Config.ExposedPorts)
	c.img.Config.Volumes = cloneMap(s.img.Config.Volumes)
	c.img.RootFS.DiffIDs = slices.Clone(s.img.RootFS.DiffIDs)
	c.img.History = slices.Clone(s.img.History)
	c.layers = slices.Clone(s.layers)
	return &c
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// stageRun is one stage of the build, built at most once.
type stageRun struct {
	b      *builder
	index  int
	stage  instructions.Stage
	needed bool
	// label prefixes its steps in the progress ("" for a single stage).
	label string
	total int
	step  int

	once sync.Once
	res  *state
	err  error

	// args are the build arguments declared in the stage, with values.
	args []string
	lex  *shell.Lex
}

// result builds the stage once and returns its final state.
func (s *stageRun) result(ctx context.Context) (*state, error) {
	s.once.Do(func() {
		s.res, s.err = s.build(ctx)
	})
	return s.res, s.err
}

// dependencies are the stage names or indexes the stage refers to
// (unexpanded references with variables are found when dispatched).
func (s *stageRun) dependencies() []string {
	deps := []string{s.stage.BaseName}
	for _, c := range s.stage.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				deps = append(deps, c.From)
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From != "" {
					deps = append(deps, m.From)
				}
			}
		}
	}
	return deps
}

// stepName is how the progress names a step: "[build 2/4] RUN …".
func (s *stageRun) stepName(text string) string {
	s.step++
	if s.label != "" {
		return fmt.Sprintf("[%s %d/%d] %s", s.label, s.step, s.total, text)
	}
	return fmt.Sprintf("[%d/%d] %s", s.step, s.total, text)
}

// build dispatches every instruction of the stage.
func (s *stageRun) build(ctx context.Context) (*state, error) {
	b := s.b
	s.lex = shell.NewLex(b.escape)
	st, err := s.from(ctx)
	if err != nil {
		return nil, b.at(s.stage.Location, err)
	}
	// ONBUILD triggers of the base image run first, then are dropped.
	triggers := st.img.Config.OnBuild
	st.img.Config.OnBuild = nil
	for _, t := range triggers {
		node, err := parser.Parse(strings.NewReader(t))
		if err != nil || len(node.AST.Children) != 1 {
			return nil, b.at(s.stage.Location, fmt.Errorf("ONBUILD trigger %q: cannot parse it", t))
		}
		cmd, err := instructions.ParseCommand(node.AST.Children[0])
		if err != nil {
			return nil, b.at(s.stage.Location, fmt.Errorf("ONBUILD trigger %q: %w", t, err))
		}
		if shownStep(cmd) {
			s.total++
		}
		if st, err = s.dispatch(ctx, st, cmd); err != nil {
			return nil, b.at(s.stage.Location, err)
		}
	}
	for _, cmd := range s.stage.Commands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if st, err = s.dispatch(ctx, st, cmd); err != nil {
			return nil, b.at(cmd.Location(), err)
		}
	}
	return st, nil
}

// defaultPathEnv is the PATH a stage's config gets when its base sets
// none, as under BuildKit.
const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// from resolves the stage's base and makes sure its config has a PATH.
func (s *stageRun) from(ctx context.Context) (*state, error) {
	st, err := s.base(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := lookupEnv(st.img.Config.Env, "PATH"); !ok {
		st.img.Config.Env = append([]string{defaultPathEnv}, st.img.Config.Env...)
	}
	return st, nil
}

// base resolves the stage's base: scratch, an earlier stage or an image.
func (s *stageRun) base(ctx context.Context) (*state, error) {
	b := s.b
	name, _, err := s.lex.ProcessWord(s.stage.BaseName, shell.EnvsFromSlice(b.metaArgs))
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("FROM %s: base name is empty after expanding build arguments", s.stage.BaseName)
	}
	if s.stage.Platform != "" {
		plat, _, err := s.lex.ProcessWord(s.stage.Platform, shell.EnvsFromSlice(b.metaArgs))
		if err != nil {
			return nil, err
		}
		if p, err := image.ParsePlatform(plat); err != nil || !image.MatchPlatform(image.Platform(), p) {
			return nil, fmt.Errorf("FROM --platform=%s: berth builds for %s only", plat, image.FormatPlatform(image.Platform()))
		}
	}
	if dep := b.stageByName(name); dep != nil && dep.index < s.index {
		step := b.prog.step(s.stepName("FROM " + name))
		base, err := dep.result(ctx)
		if err != nil {
			return nil, err
		}
		step.done()
		st := base.clone()
		st.cmdSet = false
		return st, nil
	}
	if strings.EqualFold(name, "scratch") {
		p := image.Platform()
		return &state{
			img:  image.Image{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, RootFS: ocispec.RootFS{Type: "layers"}},
			key:  key("FROM scratch"),
			base: "scratch",
		}, nil
	}
	full, err := image.NormalizeName(name)
	if err != nil {
		return nil, fmt.Errorf("FROM %s: %w", name, err)
	}
	step := b.prog.step(s.stepName("FROM " + full))
	img, err := b.baseImage(ctx, name)
	if err != nil {
		return nil, err
	}
	step.done()
	return imageState(img, full), nil
}

// imageState starts a state from a stored image.
func imageState(img store.Image, name string) *state {
	st := &state{img: img.Config, key: key("FROM", img.ID.String()), base: name}
	if img.Config.Created != nil {
		st.created = img.Config.Created.UTC()
	}
	st.layers = slices.Clone(img.Manifest.Layers)
	st = st.clone()
	return st
}

// baseImage finds (pulling when needed or asked) a base image.
func (b *builder) baseImage(ctx context.Context, ref string) (store.Image, error) {
	if !b.opts.Pull {
		img, err := b.st.Get(ref)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, store.ErrNoSuchImage) {
			return store.Image{}, err
		}
	}
	if b.opts.Fetch == nil {
		return store.Image{}, fmt.Errorf("image %s: %w", ref, store.ErrNoSuchImage)
	}
	return b.opts.Fetch(ctx, ref)
}

// env is what variables expand from: the stage's build arguments under
// the config's environment (ENV wins over ARG, as in Docker).
func (s *stageRun) env(st *state) shell.EnvGetter {
	all := slices.Clone(s.args)
	for _, e := range st.img.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		all = setEnv(all, k, v)
	}
	return shell.EnvsFromSlice(all)
}

// expand expands variables in one word.
func (s *stageRun) expand(st *state) instructions.SingleWordExpander {
	env := s.env(st)
	return func(word string) (string, error) {
		out, _, err := s.lex.ProcessWord(word, env)
		return out, err
	}
}

// stamp is the time recorded for a step of st: SOURCE_DATE_EPOCH, or
// the state's latest layer time (nil when there is none).
func (b *builder) stamp(st *state) *time.Time {
	if b.opts.SourceDateEpoch != nil {
		t := b.opts.SourceDateEpoch.UTC()
		return &t
	}
	if st.created.IsZero() {
		return nil
	}
	t := st.created
	return &t
}

// configStep records an instruction that only changes the config.
func (b *builder) configStep(st *state, createdBy string) *state {
	st.img.History = append(st.img.History, ocispec.History{
		Created: b.stamp(st), CreatedBy: createdBy, Comment: historyComment, EmptyLayer: true,
	})
	st.key = key(st.key.String(), createdBy)
	return st
}

// historyComment marks history entries made by a Dockerfile build, as
// BuildKit does.
const historyComment = "buildkit.dockerfile.v0"

// setEnv sets k=v in a KEY=value list, replacing an existing k.
func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// lookupEnv finds k in a KEY=value list.
func lookupEnv(env []string, k string) (string, bool) {
	for _, e := range env {
		if ek, v, _ := strings.Cut(e, "="); ek == k {
			return v, true
		}
	}
	return "", false
}

package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/build/buildctx"
	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/meta"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/store"
)

// MaxDockerfileSize bounds the Dockerfile read.
const MaxDockerfileSize = 4 << 20

// Options are the inputs of one build (`berth build` flags).
type Options struct {
	// ContextDir is the build context directory.
	ContextDir string
	// Dockerfile is the Dockerfile's path (for messages and its
	// <Dockerfile>.dockerignore); DockerfileData its contents.
	Dockerfile     string
	DockerfileData []byte
	// BuildArgs are --build-arg values.
	BuildArgs map[string]string
	// Target is the stage to build; "" builds the last one.
	Target  string
	NoCache bool
	// Pull fetches base images even when they are stored.
	Pull bool
	// Labels are added to the image's config.
	Labels map[string]string
	// Network is the default network of RUN steps: "default", "none" or
	// "host".
	Network string
	// Secrets are --secret values by id.
	Secrets map[string][]byte
	// Format is "docker" (the default) or "oci".
	Format string
	// Runtime is the OCI runtime for RUN steps ("" for runc).
	Runtime string
	// SourceDateEpoch, when set, is the time written into the config,
	// the history and (clamping later ones) the layers' files.
	SourceDateEpoch *time.Time
	// Progress receives BuildKit-style plain progress; nil prints nothing.
	Progress io.Writer
	// CacheFrom and CacheTo are external caches to import step layers
	// from and export them to.
	CacheFrom, CacheTo []CacheStore
	// Fetch pulls an image that is not stored (or, with Pull, any base
	// image) and returns it.
	Fetch func(ctx context.Context, ref string) (store.Image, error)
}

// Result is a built image, stored but not yet named.
type Result struct {
	Image store.Image
}

// errLine names the Dockerfile line an error is about, as BuildKit does.
type errLine struct {
	file string
	line int
	err  error
}

func (e *errLine) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }
func (e *errLine) Unwrap() error { return e.err }

// StepError is a RUN step that exited non-zero.
type StepError struct {
	Cmd  []string
	Code int
}

func (e *StepError) Error() string {
	return fmt.Sprintf("process %q did not complete successfully: exit code: %d", strings.Join(e.Cmd, " "), e.Code)
}

// builder is one build in progress.
type builder struct {
	opts   Options
	e      *container.Engine
	st     *store.Store
	dfName string
	escape rune
	stages []*stageRun
	// metaArgs are the ARGs before the first FROM with their values,
	// plus the automatic platform ones.
	metaArgs []string
	work     string
	prog     *progress

	ctxOnce sync.Once
	ctxTree *buildctx.Tree
	ctxErr  error

	mountMu sync.Mutex
	mounted map[string]string // stage or image root filesystems mounted read-only

	ctx      context.Context
	external externalCaches
	usedMu   sync.Mutex
	used     map[string]meta.CacheEntry
}

// Build runs a build and stores the resulting image, untagged: the caller
// names it only once everything succeeded.
func Build(ctx context.Context, e *container.Engine, opts Options) (Result, error) {
	if opts.ContextDir != "" {
		dir, err := filepath.Abs(opts.ContextDir)
		if err != nil {
			return Result{}, err
		}
		opts.ContextDir = dir
	}
	b := &builder{opts: opts, e: e, st: e.Images, mounted: map[string]string{}, ctx: ctx}
	b.dfName = filepath.Base(opts.Dockerfile)
	if b.dfName == "" || b.dfName == "." {
		b.dfName = "Dockerfile"
	}
	b.prog = newProgress(opts.Progress)
	if b.opts.Network == "" {
		b.opts.Network = "default"
	}
	switch b.opts.Network {
	case "default", "none", "host":
	default:
		return Result{}, fmt.Errorf("network mode %q not supported by berth build (default, none or host)", b.opts.Network)
	}
	if b.opts.Format == "" {
		b.opts.Format = "docker"
	}
	if b.opts.Format != "docker" && b.opts.Format != "oci" {
		return Result{}, fmt.Errorf("--format %q: want docker or oci", b.opts.Format)
	}
	if err := os.MkdirAll(filepath.Join(b.st.Root, "build"), 0o700); err != nil {
		return Result{}, err
	}
	snapshot.SpreadSubdirs(filepath.Join(b.st.Root, "build"))
	work, err := os.MkdirTemp(filepath.Join(b.st.Root, "build"), "run-")
	if err != nil {
		return Result{}, err
	}
	snapshot.SpreadSubdirs(work)
	b.work = work
	defer b.cleanup()

	step := b.prog.internal("load build definition from " + b.dfName)
	res, err := parser.Parse(bytes.NewReader(opts.DockerfileData))
	if err != nil {
		return Result{}, b.located(err)
	}
	b.escape = res.EscapeToken
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return Result{}, b.located(err)
	}
	if len(stages) == 0 {
		return Result{}, fmt.Errorf("%s: no build stage in the Dockerfile (it needs a FROM)", b.dfName)
	}
	step.done()
	if err := b.resolveMetaArgs(metaArgs); err != nil {
		return Result{}, err
	}
	for i, s := range stages {
		b.stages = append(b.stages, &stageRun{b: b, index: i, stage: s})
	}
	target := b.stages[len(b.stages)-1]
	if opts.Target != "" {
		target = b.stageByName(opts.Target)
		if target == nil {
			return Result{}, fmt.Errorf("target stage %q could not be found", opts.Target)
		}
	}
	b.markNeeded(target)
	b.countSteps()
	// Every stage the target needs starts at once; each waits for the
	// stages it uses. All are done before the work directory goes.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	b.ctx = ctx
	for _, s := range b.stages {
		if s.needed && s != target {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.result(ctx)
			}()
		}
	}
	final, err := target.result(ctx)
	if err != nil {
		return Result{}, err
	}
	img, err := b.export(ctx, final)
	if err != nil {
		return Result{}, err
	}
	if err := b.exportCache(); err != nil {
		return Result{}, err
	}
	return Result{Image: img}, nil
}

// located turns BuildKit's located errors into "Dockerfile:LINE: msg".
func (b *builder) located(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		return &errLine{file: b.dfName, line: le.Locations[0][0].Start.Line, err: errors.Unwrap(le)}
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "dockerfile parse error on line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if line, err2 := strconv.Atoi(n); err2 == nil {
				return &errLine{file: b.dfName, line: line, err: errors.New(tail)}
			}
		}
	}
	return fmt.Errorf("%s: %w", b.dfName, err)
}

// at wraps err with the Dockerfile line of cmd.
func (b *builder) at(loc []parser.Range, err error) error {
	if err == nil {
		return nil
	}
	var el *errLine
	if errors.As(err, &el) || len(loc) == 0 {
		return err
	}
	return &errLine{file: b.dfName, line: loc[0].Start.Line, err: err}
}

// cleanup unmounts what the build mounted and removes its work directory.
func (b *builder) cleanup() {
	b.mountMu.Lock()
	for _, dir := range b.mounted {
		unmountTree(dir)
	}
	b.mountMu.Unlock()
	os.RemoveAll(b.work)
	if b.ctxTree != nil {
		b.ctxTree.Close()
	}
}

// context opens the build context once.
func (b *builder) context() (*buildctx.Tree, error) {
	b.ctxOnce.Do(func() {
		step := b.prog.internal("load build context")
		b.ctxTree, b.ctxErr = buildctx.OpenContext(b.opts.ContextDir, b.opts.Dockerfile)
		step.done()
	})
	return b.ctxTree, b.ctxErr
}

// platformArgs are BuildKit's automatic platform build arguments.
func platformArgs() []string {
	p := image.Platform()
	plat := image.FormatPlatform(p)
	return []string{
		"BUILDPLATFORM=" + plat, "BUILDOS=" + p.OS, "BUILDARCH=" + p.Architecture, "BUILDVARIANT=" + p.Variant,
		"TARGETPLATFORM=" + plat, "TARGETOS=" + p.OS, "TARGETARCH=" + p.Architecture, "TARGETVARIANT=" + p.Variant,
	}
}

// resolveMetaArgs gives the ARGs before the first FROM their values.
func (b *builder) resolveMetaArgs(args []instructions.ArgCommand) error {
	env := platformArgs()
	for _, a := range args {
		for _, kv := range a.Args {
			lex := shell.NewLex(b.escape)
			key, _, err := lex.ProcessWord(kv.Key, shell.EnvsFromSlice(env))
			if err != nil {
				return b.at(a.Location(), err)
			}
			val, ok := b.opts.BuildArgs[key]
			if !ok {
				if kv.Value == nil {
					continue
				}
				if val, _, err = lex.ProcessWord(*kv.Value, shell.EnvsFromSlice(env)); err != nil {
					return b.at(a.Location(), err)
				}
			}
			env = setEnv(env, key, val)
		}
	}
	b.metaArgs = env
	return nil
}

// metaArg returns the value of a meta ARG.
func (b *builder) metaArg(name string) (string, bool) {
	return lookupEnv(b.metaArgs, name)
}

// stageByName finds a stage by name or index.
func (b *builder) stageByName(name string) *stageRun {
	for _, s := range b.stages {
		if s.stage.Name != "" && strings.EqualFold(s.stage.Name, name) {
			return s
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < len(b.stages) {
		return b.stages[n]
	}
	return nil
}

// markNeeded marks the stages the target depends on.
func (b *builder) markNeeded(s *stageRun) {
	if s.needed {
		return
	}
	s.needed = true
	for _, dep := range s.dependencies() {
		if d := b.stageByName(dep); d != nil && d.index < s.index {
			b.markNeeded(d)
		}
	}
}

// countSteps numbers the shown steps of each needed stage, as BuildKit
// does: FROM and every RUN, COPY, ADD and WORKDIR.
func (b *builder) countSteps() {
	n := 0
	for _, s := range b.stages {
		if s.needed {
			n++
		}
	}
	for _, s := range b.stages {
		s.total = 1
		for _, c := range s.stage.Commands {
			if shownStep(c) {
				s.total++
			}
		}
		if n > 1 {
			s.label = s.stage.Name
			if s.label == "" {
				s.label = "stage-" + strconv.Itoa(s.index)
			}
		}
	}
}

// shownStep reports whether the progress numbers an instruction.
func shownStep(c instructions.Command) bool {
	switch c.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		return true
	}
	return false
}

// key chains a cache key.
func key(parts ...string) digest.Digest {
	return digest.FromString(strings.Join(parts, "\x00"))
}

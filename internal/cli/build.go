package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/build"
	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/container/fscopy"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/imagearchive"
	"github.com/berth-dev/berth/internal/remote"
	"github.com/berth-dev/berth/internal/store"
)

// buildFlags are `build`'s flags, Docker's (buildx's) names.
type buildFlags struct {
	tags, buildArgs, labels, secrets, outputs []string
	cacheFrom, cacheTo                        []string
	file, target, network, progress, iidfile  string
	platform, format, runtime                 string
	noCache, pull, quiet, push, tlsVerify     bool
}

func buildCommands(a *app) []*cobra.Command {
	return []*cobra.Command{newBuildCommand(a), newBuilderCommand(a)}
}

func newBuildCommand(a *app) *cobra.Command {
	f := &buildFlags{}
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.build(cmd.Context(), f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name and optionally a tag (name:tag)")
	fl.StringVarP(&f.file, "file", "f", "", "name of the Dockerfile (default: PATH/Dockerfile)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build-time variable")
	fl.StringVar(&f.target, "target", "", "the build stage to build")
	fl.BoolVar(&f.noCache, "no-cache", false, "do not use the cache")
	fl.BoolVar(&f.pull, "pull", false, "always pull base images")
	fl.StringArrayVar(&f.labels, "label", nil, "set metadata for the image")
	fl.StringVar(&f.network, "network", "default", "network of RUN steps: default, none or host")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID[,src=FILE|,env=VAR]")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto, plain, tty or quiet")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the image ID")
	fl.StringVar(&f.iidfile, "iidfile", "", "write the image ID to the file")
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "output: type=image|docker|oci|local|tar[,dest=PATH]")
	fl.BoolVar(&f.push, "push", false, "push the image to its registry (with -t)")
	fl.BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS and verified certificates when pushing or pulling")
	fl.StringVar(&f.platform, "platform", "", "target platform (only the host's)")
	fl.StringVar(&f.format, "format", "docker", "image format: docker or oci")
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "external cache source: type=local,src=DIR or type=registry,ref=NAME")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "external cache destination: type=local,dest=DIR or type=registry,ref=NAME")
	fl.StringVar(&f.runtime, "runtime", "", "OCI runtime of RUN steps (default runc)")
	return cmd
}

// output is one parsed --output.
type output struct {
	typ, dest string
	push      bool
}

func parseOutput(s string) (output, error) {
	if !strings.Contains(s, "=") {
		if s == "-" {
			return output{typ: "tar", dest: "-"}, nil
		}
		return output{typ: "local", dest: s}, nil
	}
	var o output
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "type":
			o.typ = v
		case "dest":
			o.dest = v
		case "push":
			o.push = v == "true"
		case "name":
		default:
			return o, fmt.Errorf("--output %s: unknown key %q", s, k)
		}
	}
	switch o.typ {
	case "image", "registry":
		o.push = o.push || o.typ == "registry"
	case "docker", "oci", "local", "tar":
		if o.dest == "" {
			return o, fmt.Errorf("--output %s: type=%s needs dest=", s, o.typ)
		}
	default:
		return o, fmt.Errorf("--output %s: unknown type %q (image, docker, oci, local or tar)", s, o.typ)
	}
	return o, nil
}

// parseSecret reads one --secret: id=ID[,src=FILE|,env=VAR].
func parseSecret(s string) (string, []byte, error) {
	var id, src, env string
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "id":
			id = v
		case "src", "source":
			src = v
		case "env":
			env = v
		case "type":
		default:
			return "", nil, fmt.Errorf("--secret %s: unknown key %q", s, k)
		}
	}
	if id == "" {
		return "", nil, fmt.Errorf("--secret %s: id= is required", s)
	}
	switch {
	case src != "":
		b, err := os.ReadFile(src)
		return id, b, err
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", nil, fmt.Errorf("--secret %s: environment variable %s is not set", s, env)
		}
		return id, []byte(v), nil
	}
	if v, ok := os.LookupEnv(id); ok {
		return id, []byte(v), nil
	}
	return "", nil, fmt.Errorf("--secret %s: give src=FILE or env=VAR", s)
}

func (a *app) build(ctx context.Context, f *buildFlags, ctxArg string) error {
	opts := build.Options{
		Target: f.target, NoCache: f.noCache, Pull: f.pull, Network: f.network,
		Format: f.format, Runtime: f.runtime,
		BuildArgs: map[string]string{}, Labels: map[string]string{}, Secrets: map[string][]byte{},
	}
	if f.platform != "" {
		p, err := image.ParsePlatform(f.platform)
		if err != nil {
			return err
		}
		if !image.MatchPlatform(image.Platform(), p) {
			return fmt.Errorf("--platform %s: berth builds for %s only", f.platform, image.FormatPlatform(image.Platform()))
		}
	}
	for _, t := range f.tags {
		if _, err := image.NormalizeName(t); err != nil {
			return fmt.Errorf("invalid tag %q: %w", t, err)
		}
	}
	for _, ba := range f.buildArgs {
		k, v, ok := strings.Cut(ba, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		opts.BuildArgs[k] = v
	}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		opts.Labels[k] = v
	}
	for _, s := range f.secrets {
		id, data, err := parseSecret(s)
		if err != nil {
			return err
		}
		opts.Secrets[id] = data
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if v, ok := opts.BuildArgs["SOURCE_DATE_EPOCH"]; ok {
		epoch = v
	}
	if epoch != "" {
		n, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%s: not a number of seconds", epoch)
		}
		t := time.Unix(n, 0).UTC()
		opts.SourceDateEpoch = &t
	}
	var outputs []output
	for _, o := range f.outputs {
		out, err := parseOutput(o)
		if err != nil {
			return err
		}
		outputs = append(outputs, out)
	}
	if len(outputs) == 0 {
		outputs = []output{{typ: "image"}}
	}
	if f.push {
		for i := range outputs {
			if outputs[i].typ == "image" {
				outputs[i].push = true
			}
		}
	}
	for _, c := range f.cacheFrom {
		cs, err := parseCacheRef(c, "src", f.tlsVerify)
		if err != nil {
			return err
		}
		opts.CacheFrom = append(opts.CacheFrom, cs)
	}
	for _, c := range f.cacheTo {
		cs, err := parseCacheRef(c, "dest", f.tlsVerify)
		if err != nil {
			return err
		}
		opts.CacheTo = append(opts.CacheTo, cs)
	}
	// The context: a directory, or "-" for a Dockerfile on stdin and an
	// empty context.
	var err error
	if ctxArg == "-" {
		if opts.DockerfileData, err = readBounded(a.stdin, build.MaxDockerfileSize); err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "berth-build-context-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		opts.ContextDir, opts.Dockerfile = dir, filepath.Join(dir, "Dockerfile")
	} else {
		fi, err := os.Stat(ctxArg)
		if err != nil {
			return fmt.Errorf("unable to prepare context: path %q not found", ctxArg)
		}
		if !fi.IsDir() {
			return fmt.Errorf("unable to prepare context: path %q is not a directory", ctxArg)
		}
		opts.ContextDir = ctxArg
		opts.Dockerfile = f.file
		if opts.Dockerfile == "" {
			opts.Dockerfile = filepath.Join(ctxArg, "Dockerfile")
		}
		if opts.Dockerfile == "-" {
			opts.DockerfileData, err = readBounded(a.stdin, build.MaxDockerfileSize)
			opts.Dockerfile = filepath.Join(ctxArg, "Dockerfile")
		} else {
			opts.DockerfileData, err = readFileBounded(opts.Dockerfile, build.MaxDockerfileSize)
		}
		if err != nil {
			return fmt.Errorf("failed to read dockerfile: %w", err)
		}
	}
	if f.quiet || f.progress == "quiet" {
		opts.Progress = io.Discard
	} else {
		switch f.progress {
		case "auto", "plain", "tty", "rawjson":
		default:
			return fmt.Errorf("--progress %s: want auto, plain, tty or quiet", f.progress)
		}
		opts.Progress = a.stderr
	}
	return a.withEngine(func(e *container.Engine) error {
		opts.Fetch = func(ctx context.Context, ref string) (store.Image, error) {
			ropts, err := remoteOptions(f.tlsVerify)
			if err != nil {
				return store.Image{}, err
			}
			res, err := remote.Pull(ctx, e.Images, ref, remote.PullOptions{Options: ropts, Platform: image.Platform()})
			return res.Image, err
		}
		res, err := build.Build(ctx, e, opts)
		if err != nil {
			return buildFailure(err)
		}
		return a.finishBuild(ctx, e.Images, f, opts, res.Image, outputs)
	})
}

// buildFailure gives a failed RUN step's message BuildKit's shape.
func buildFailure(err error) error {
	var se *build.StepError
	if errors.As(err, &se) {
		return &exitError{code: 1, msg: "ERROR: failed to solve: " + err.Error()}
	}
	return err
}

// finishBuild names and writes out the built image: only now, after the
// whole build succeeded, does any name point at it.
func (a *app) finishBuild(ctx context.Context, st *store.Store, f *buildFlags, opts build.Options, img store.Image, outputs []output) error {
	id := img.ID.String()
	for _, o := range outputs {
		switch o.typ {
		case "image", "registry":
			for _, t := range f.tags {
				if err := st.Tag(id, t); err != nil {
					return err
				}
				if full, err := image.NormalizeName(t); err == nil {
					fmt.Fprintf(opts.Progress, "naming to %s done\n", full)
				}
			}
			if o.push {
				if len(f.tags) == 0 {
					return errors.New("--push needs a name (-t)")
				}
				ropts, err := remoteOptions(f.tlsVerify)
				if err != nil {
					return err
				}
				ropts.Out = opts.Progress
				for _, t := range f.tags {
					if _, err := remote.Push(ctx, st, t, remote.PushOptions{Options: ropts}); err != nil {
						return err
					}
				}
			}
		case "docker", "oci":
			refs := []string{id}
			if len(f.tags) > 0 {
				for _, t := range f.tags {
					if err := st.Tag(id, t); err != nil {
						return err
					}
				}
				refs = f.tags
			}
			if err := writeTo(a.stdout, o.dest, func(w io.Writer) error { return imagearchive.Save(st, refs, w) }); err != nil {
				return err
			}
		case "local", "tar":
			root, err := st.Mount(id)
			if err != nil {
				return err
			}
			if o.typ == "tar" {
				err = writeTo(a.stdout, o.dest, func(w io.Writer) error { return fscopy.Export(w, root) })
			} else if err = os.MkdirAll(o.dest, 0o755); err == nil {
				err = fscopy.CopyFrom(root, "/.", o.dest, nil, false)
			}
			st.Unmount(id)
			if err != nil {
				return err
			}
		}
	}
	if f.iidfile != "" {
		if err := os.WriteFile(f.iidfile, []byte(id), 0o644); err != nil {
			return err
		}
	}
	if f.quiet {
		fmt.Fprintln(a.stdout, id)
	}
	return nil
}

// writeTo writes to a file (atomically) or, for "-", to stdout.
func writeTo(stdout io.Writer, dest string, fn func(io.Writer) error) error {
	if dest == "-" {
		return fn(stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".berth-output-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// parseCacheRef reads --cache-from/--cache-to: type=local,src|dest=DIR or
// type=registry,ref=NAME[:TAG] (a bare NAME means type=registry, as in
// BuildKit).
func parseCacheRef(s, dirKey string, tlsVerify bool) (build.CacheStore, error) {
	typ, dir, ref := "", "", ""
	if !strings.Contains(s, "=") {
		return registryCache(s, tlsVerify)
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "type":
			typ = v
		case dirKey:
			dir = v
		case "ref":
			ref = v
		case "mode", "compression", "oci-mediatypes", "ignore-error", "image-manifest":
		default:
			return nil, fmt.Errorf("cache %s: unknown key %q", s, k)
		}
	}
	switch typ {
	case "local", "":
		if dir == "" {
			return nil, fmt.Errorf("cache %s: needs %s=DIR", s, dirKey)
		}
		return build.DirCache(dir), nil
	case "registry":
		if ref == "" {
			return nil, fmt.Errorf("cache %s: needs ref=NAME[:TAG]", s)
		}
		return registryCache(ref, tlsVerify)
	}
	return nil, fmt.Errorf("cache %s: type=%s is not supported (local or registry)", s, typ)
}

func registryCache(ref string, tlsVerify bool) (build.CacheStore, error) {
	ropts, err := remoteOptions(tlsVerify)
	if err != nil {
		return nil, err
	}
	return remote.NewCacheRef(ref, ropts)
}

// readBounded reads at most limit bytes of r.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

func readFileBounded(p string, limit int64) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return readBounded(fh, limit)
}

func newBuilderCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "builder", Short: "Manage the build cache"}
	var all, force bool
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove the build cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				n, err := st.CachePrune(time.Now().Add(time.Second))
				if err != nil {
					return err
				}
				if err := os.RemoveAll(filepath.Join(st.Root, "build", "cache-mounts")); err != nil {
					return err
				}
				res, err := st.GC(true)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Deleted build cache objects: %d\nTotal reclaimed space: %s\n", n, humanSize(res.Reclaimed))
				return nil
			})
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "remove all build cache (the default: berth keeps no other)")
	prune.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	cmd.AddCommand(prune)
	return cmd
}

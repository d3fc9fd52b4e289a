package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/store"
)

// CommitOptions are `commit` flags.
type CommitOptions struct {
	// Name tags the new image; empty leaves it untagged.
	Name    string
	Author  string
	Message string
	// Changes are Dockerfile instructions applied to the new config.
	Changes []string
	// Pause freezes a running container while its layer is read.
	Pause bool
	// Exclude are .dockerignore-style patterns of paths (relative to the
	// container's root) left out of the new layer.
	Exclude []string
}

// Commit turns the container's writable layer into a new layer on top of
// its image's and records the result as a new image, whose config is the
// container's.
func (e *Engine) Commit(ctx context.Context, c *Container, opts CommitOptions) (store.Image, error) {
	var exclude func(string) bool
	if len(opts.Exclude) > 0 {
		pm, err := patternmatcher.New(opts.Exclude)
		if err != nil {
			return store.Image{}, fmt.Errorf("--exclude: %w", err)
		}
		exclude = func(name string) bool {
			ok, _ := pm.MatchesOrParentMatches(name)
			return ok
		}
	}
	if opts.Name != "" {
		if _, err := image.NormalizeName(opts.Name); err != nil {
			return store.Image{}, err
		}
	}
	parent, err := e.Images.Get(c.Image.String())
	if err != nil {
		return store.Image{}, fmt.Errorf("container %s: image %s: %w", shortID(c.ID), image.ShortID(c.Image), err)
	}
	if opts.Pause && c.State.Running && !c.State.Paused {
		if err := e.Pause(c); err != nil {
			return store.Image{}, err
		}
		defer func() {
			if cur, err := e.Containers.read(c.ID); err == nil && cur.State.Paused {
				e.Unpause(cur)
			}
		}()
	}
	w, err := e.Images.Content.NewWriter("")
	if err != nil {
		return store.Image{}, err
	}
	defer w.Close()
	upper := filepath.Join(e.Containers.Dir(c.ID), "diff")
	if err := archive.WriteDiffWith(w, upper, archive.DiffOptions{Exclude: exclude}); err != nil {
		return store.Image{}, fmt.Errorf("container %s: %w", shortID(c.ID), err)
	}
	layer, err := w.Commit("", -1)
	if err != nil {
		return store.Image{}, err
	}

	now := time.Now().UTC()
	cfg := parent.Config
	cfg.Created = &now
	cfg.Author = opts.Author
	cfg.Comment = opts.Message
	cfg.Container = c.ID
	cfg.Parent = ""
	cfg.DockerVersion = ""
	cfg.Config = commitConfig(parent.Config.Config, c)
	if err := image.ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return store.Image{}, err
	}
	cfg.RootFS.DiffIDs = append(slices.Clone(parent.Config.RootFS.DiffIDs), layer.Digest)
	cfg.History = append(slices.Clone(parent.Config.History), ocispec.History{
		Created:   &now,
		Author:    opts.Author,
		CreatedBy: strings.Join(append([]string{c.Path}, c.Args...), " "),
		Comment:   opts.Message,
	})
	raw, err := json.Marshal(cfg)
	if err != nil {
		return store.Image{}, err
	}
	var layers []store.Layer
	var descs []ocispec.Descriptor
	for _, l := range parent.Manifest.Layers {
		l.MediaType = ociLayerType(l.MediaType)
		descs = append(descs, l)
		layers = append(layers, store.Layer{Desc: l})
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: layer.Digest, Size: layer.Size}
	descs = append(descs, desc)
	layers = append(layers, store.Layer{Desc: desc})
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	m, err := image.NewManifest(cfgDesc, descs)
	if err != nil {
		return store.Image{}, err
	}
	ni := store.NewImage{Manifest: m, Config: raw, Layers: layers}
	if opts.Name != "" {
		ni.Names = []string{opts.Name}
	}
	rec, err := e.Images.AddImage(ctx, ni)
	if err != nil {
		return store.Image{}, err
	}
	return e.Images.Get(rec.ID.String())
}

// ociLayerType maps a Docker layer media type to its OCI equal (the bytes
// are the same), so the new manifest is all OCI.
func ociLayerType(mt string) string {
	switch mt {
	case image.MediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer
	case image.MediaTypeDockerLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case image.MediaTypeDockerLayerZstd:
		return ocispec.MediaTypeImageLayerZstd
	case image.MediaTypeDockerForeignLayer:
		return ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // the OCI name of Docker's foreign layers
	}
	return mt
}

// commitConfig is the committed image's config: the container's, as
// Docker's commit records it.
func commitConfig(base image.Config, c *Container) image.Config {
	cfg := base
	cfg.Env = c.Config.Env
	cfg.Cmd = c.Config.Cmd
	cfg.Entrypoint = c.Config.Entrypoint
	cfg.WorkingDir = c.Config.WorkingDir
	cfg.User = c.Config.User
	cfg.Labels = c.Config.Labels
	cfg.StopSignal = c.Config.StopSignal
	cfg.OnBuild = c.Config.OnBuild
	return cfg
}

// Change is one line of `diff`.
type Change struct {
	Kind string // "A", "C" or "D"
	Path string
}

// Diff lists what the container changed, from its writable layer alone:
// whiteouts are deletions, entries present in the image are changes, the
// rest additions.
func (e *Engine) Diff(c *Container) ([]Change, error) {
	img, err := e.Images.Get(c.Image.String())
	if err != nil {
		return nil, err
	}
	layers, err := e.Images.LayerDirs(img)
	if err != nil {
		return nil, err
	}
	var lowers []*os.File
	for _, l := range layers {
		f, err := os.OpenFile(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		lowers = append(lowers, f)
	}
	upper := filepath.Join(e.Containers.Dir(c.ID), "diff")
	var out []Change
	err = filepath.WalkDir(upper, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel, _ := filepath.Rel(upper, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0:
			out = append(out, Change{"D", "/" + rel})
		case inLowers(lowers, rel):
			out = append(out, Change{"C", "/" + rel})
		default:
			out = append(out, Change{"A", "/" + rel})
		}
		return nil
	})
	return out, err
}

// inLowers reports whether rel exists in the image, looking through the
// layers top-first without following any symlink: a whiteout hides it.
func inLowers(lowers []*os.File, rel string) bool {
	for _, l := range lowers {
		fd, err := unix.Openat2(int(l.Fd()), rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err == nil {
			return !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0)
		}
	}
	return false
}

// WithRootfs calls fn with the container's root filesystem mounted: the
// running container's own mount, or a temporary one for a stopped
// container.
func (e *Engine) WithRootfs(c *Container, fn func(rootfs string) error) error {
	rootfs := e.rootfs(c.ID)
	if mounted, err := snapshot.IsMountPoint(rootfs); err != nil {
		return err
	} else if mounted {
		return fn(rootfs)
	}
	if err := e.mountRootfs(c); err != nil {
		return err
	}
	ferr := fn(rootfs)
	if err := snapshot.Unmount(rootfs); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/build/buildctx"
	"github.com/berth-dev/berth/internal/container/user"
	"github.com/berth-dev/berth/internal/image"
)

// MaxURLSize bounds what ADD downloads.
const MaxURLSize = 8 << 30

// copyInstr is a COPY or ADD after expansion.
type copyInstr struct {
	name     string
	src      instructions.SourcesAndDest
	from     string
	chown    string
	chmod    string
	link     bool
	exclude  []string
	parents  bool
	checksum string
	unpack   bool
	text     string
}

// sourceGroup is sources from one tree, copied with one set of options.
type sourceGroup struct {
	tree *buildctx.Tree
	srcs []buildctx.Source
	opts buildctx.CopyOptions
}

// fromState resolves a --from (or --mount from=) reference: an earlier
// stage by name or index, or an image.
func (s *stageRun) fromState(ctx context.Context, from string) (*state, error) {
	if dep := s.b.stageByName(from); dep != nil {
		if dep.index >= s.index {
			return nil, fmt.Errorf("--from=%s: a stage can only use earlier stages", from)
		}
		return dep.result(ctx)
	}
	full, err := image.NormalizeName(from)
	if err != nil {
		return nil, fmt.Errorf("--from=%s: %w", from, err)
	}
	img, err := s.b.baseImage(ctx, from)
	if err != nil {
		return nil, err
	}
	return imageState(img, full), nil
}

// copy executes COPY and ADD.
func (s *stageRun) copy(ctx context.Context, st *state, ci copyInstr) (*state, error) {
	b := s.b
	if ci.checksum != "" {
		for _, p := range ci.src.SourcePaths {
			if !isURL(p) {
				return nil, fmt.Errorf("%s --checksum: only URL sources can be checked, not %s", ci.name, p)
			}
		}
	}
	opts := buildctx.CopyOptions{Excludes: ci.exclude, Parents: ci.parents, Chmod: ci.chmod, Link: ci.link}
	var groups []sourceGroup
	fromKey := ""
	var local, urls []string
	for _, p := range ci.src.SourcePaths {
		if isURL(p) {
			if ci.name != "ADD" {
				return nil, fmt.Errorf("COPY %s: COPY takes no URLs (use ADD)", p)
			}
			if strings.HasSuffix(p, ".git") || strings.HasPrefix(p, "git@") {
				return nil, fmt.Errorf("ADD %s: git sources are not supported by berth build", p)
			}
			urls = append(urls, p)
		} else {
			local = append(local, p)
		}
	}
	if len(local) > 0 {
		var tree *buildctx.Tree
		lopts := opts
		lopts.Unpack = ci.name == "ADD" && ci.unpack
		if ci.from != "" {
			fst, err := s.fromState(ctx, ci.from)
			if err != nil {
				return nil, err
			}
			root, err := b.rootOf(fst)
			if err != nil {
				return nil, err
			}
			if tree, err = buildctx.OpenRoot(root); err != nil {
				return nil, err
			}
			defer tree.Close()
			fromKey = fst.key.String()
		} else {
			t, err := b.context()
			if err != nil {
				return nil, err
			}
			tree = t
		}
		srcs, err := tree.Match(local, lopts)
		if err != nil {
			return nil, err
		}
		groups = append(groups, sourceGroup{tree: tree, srcs: srcs, opts: lopts})
	}
	for _, u := range urls {
		dir, err := os.MkdirTemp(b.work, "url-")
		if err != nil {
			return nil, err
		}
		step := b.prog.step("[internal] download " + u)
		_, name, _, err := buildctx.FetchURL(ctx, u, ci.checksum, dir, MaxURLSize)
		if err != nil {
			step.fail(err)
			return nil, err
		}
		step.done()
		tree, err := buildctx.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer tree.Close()
		uopts := opts
		if uopts.Chmod == "" {
			uopts.Chmod = "600"
		}
		srcs, err := tree.Match([]string{name}, uopts)
		if err != nil {
			return nil, err
		}
		groups = append(groups, sourceGroup{tree: tree, srcs: srcs, opts: uopts})
	}
	for i, sc := range ci.src.SourceContents {
		dir, err := os.MkdirTemp(b.work, "heredoc-")
		if err != nil {
			return nil, err
		}
		data := sc.Data
		if sc.Expand {
			if data, err = s.expand(st)(data); err != nil {
				return nil, err
			}
		}
		name := path.Base(sc.Path)
		if name == "" || name == "." || name == "/" {
			name = "heredoc-" + strconv.Itoa(i)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return nil, err
		}
		tree, err := buildctx.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer tree.Close()
		srcs, err := tree.Match([]string{name}, opts)
		if err != nil {
			return nil, err
		}
		groups = append(groups, sourceGroup{tree: tree, srcs: srcs, opts: opts})
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s: no source files were specified", ci.name)
	}
	dest := ci.src.DestPath
	if !path.IsAbs(dest) {
		wd := st.img.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		trailing := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
		dest = path.Join(wd, dest)
		if trailing && !strings.HasSuffix(dest, "/") {
			dest += "/"
		}
	}
	if n := len(ci.src.SourcePaths) + len(ci.src.SourceContents); n > 1 && !strings.HasSuffix(dest, "/") {
		dest += "/"
	}
	var sums []string
	for _, g := range groups {
		d, err := buildctx.Digest(g.srcs, g.opts)
		if err != nil {
			return nil, err
		}
		sums = append(sums, d.String())
	}
	spec, _ := json.Marshal(struct {
		Name, Dest, Chown, Chmod, From, Checksum string
		Exclude                                  []string
		Parents, Unpack                          bool
		Sources                                  []string
	}{ci.name, dest, ci.chown, ci.chmod, fromKey, ci.checksum, ci.exclude, ci.parents, ci.unpack, sums})
	k := key(st.key.String(), string(spec))
	createdBy := ci.text + " # buildkit"
	prog := b.prog.step(s.stepName(ci.text))
	return s.layerStep(ctx, st, k, createdBy, prog, func(dir string, layers []string) error {
		merged, unmount, err := overlay(dir, layers)
		if err != nil {
			return err
		}
		defer unmount()
		var owner *buildctx.Owner
		if ci.chown != "" {
			o, err := resolveChown(merged, ci.chown)
			if err != nil {
				return err
			}
			owner = &o
		}
		for _, g := range groups {
			g.opts.Chown = owner
			if err := buildctx.Copy(merged, dest, g.srcs, g.opts); err != nil {
				return err
			}
		}
		unmount()
		return nil
	})
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// resolveChown resolves --chown=user[:group] against the destination's
// /etc/passwd and /etc/group. A user without a group gets the group of
// the same number, as Docker does.
func resolveChown(rootfs, spec string) (buildctx.Owner, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, err := resolveID(rootfs, u, false)
	if err != nil {
		return buildctx.Owner{}, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	gid := uid
	if hasGroup {
		if gid, err = resolveID(rootfs, g, true); err != nil {
			return buildctx.Owner{}, fmt.Errorf("--chown=%s: %w", spec, err)
		}
	}
	return buildctx.Owner{UID: uid, GID: gid}, nil
}

// resolveID resolves a user or group name (or number) in rootfs.
func resolveID(rootfs, name string, group bool) (int, error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return int(n), nil
	}
	if name == "" {
		return 0, errors.New("empty name")
	}
	spec := name
	if group {
		spec = "0:" + name
	}
	e, err := user.Resolve(rootfs, spec, nil)
	if err != nil {
		return 0, err
	}
	if group {
		return int(e.GID), nil
	}
	return int(e.UID), nil
}

// treeDigest is the content digest of a file or directory tree, for the
// cache key of a RUN bind mount.
func treeDigest(p string) (digest.Digest, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	root, name := p, "."
	if !fi.IsDir() {
		root, name = filepath.Dir(p), filepath.Base(p)
	}
	t, err := buildctx.OpenRoot(root)
	if err != nil {
		return "", err
	}
	defer t.Close()
	srcs, err := t.Match([]string{name}, buildctx.CopyOptions{})
	if err != nil {
		return "", err
	}
	return buildctx.Digest(srcs, buildctx.CopyOptions{})
}

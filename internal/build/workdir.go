package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container/user"
)

// workdir makes the working directory a WORKDIR names, as BuildKit does:
// missing directories are created owned by the stage's USER (a layer
// when anything was created, none when it existed).
func (s *stageRun) workdir(ctx context.Context, st *state, wd string) (*state, error) {
	b := s.b
	st.img.Config.WorkingDir = wd
	text := "WORKDIR " + wd
	prog := b.prog.step(s.stepName(text))
	k := key(st.key.String(), text)
	usr := st.img.Config.User
	return s.layerStep(ctx, st, k, text, prog, func(dir string, layers []string) error {
		merged, unmount, err := overlay(dir, layers)
		if err != nil {
			return err
		}
		defer unmount()
		uid, gid := 0, 0
		if usr != "" {
			u, err := user.Resolve(merged, usr, nil)
			if err != nil {
				return fmt.Errorf("WORKDIR %s: USER %s: %w", wd, usr, err)
			}
			uid, gid = int(u.UID), int(u.GID)
		}
		if err := mkdirOwned(merged, wd, uid, gid); err != nil {
			return fmt.Errorf("WORKDIR %s: %w", wd, err)
		}
		unmount()
		return nil
	})
}

// mkdirOwned creates the missing directories of p inside rootfs (every
// component resolved inside it), each owned by uid:gid.
func mkdirOwned(rootfs, p string, uid, gid int) error {
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	cur := "/"
	for _, comp := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if comp == "" {
			continue
		}
		cur = path.Join(cur, comp)
		h, err := pathrs.OpenInRoot(rootfs, cur)
		if err == nil {
			h.Close()
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if h, err = pathrs.MkdirAllHandle(root, cur, 0o755); err != nil {
			return err
		}
		err = unix.Fchownat(int(h.Fd()), "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		h.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

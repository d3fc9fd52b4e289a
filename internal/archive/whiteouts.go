package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// PruneWhiteouts removes the whiteouts of a layer directory that hide
// nothing in its lowers (top-most first). overlayfs filters whiteouts only
// in merged directories: one that hides nothing would show through as a
// broken entry, and the bottom layer of a stack (or a single-layer image)
// would show all of them. A path counts as present in a lower when it
// resolves there without following any symlink.
func PruneWhiteouts(root string, lowers []string) error {
	lowerFDs := make([]int, 0, len(lowers))
	defer func() {
		for _, fd := range lowerFDs {
			unix.Close(fd)
		}
	}()
	for _, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("lower layer %s: %w", l, err)
		}
		lowerFDs = append(lowerFDs, fd)
	}
	return pruneDir(root, "", lowerFDs)
}

func pruneDir(root, rel string, lowers []int) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := fsat.JoinRel(rel, e.Name())
		switch {
		case e.IsDir():
			if err := pruneDir(root, p, lowers); err != nil {
				return err
			}
		case e.Type()&os.ModeCharDevice != 0:
			full := filepath.Join(root, p)
			var st unix.Stat_t
			if err := unix.Lstat(full, &st); err != nil {
				return err
			}
			if st.Rdev != 0 || existsInLowers(p, lowers) {
				continue
			}
			if err := unix.Unlink(full); err != nil {
				return fmt.Errorf("layer entry %q: removing a whiteout that hides nothing: %w", p, err)
			}
		}
	}
	return nil
}

func existsInLowers(p string, lowers []int) bool {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for _, l := range lowers {
		fd, err := unix.Openat2(l, p, how)
		if err == nil {
			unix.Close(fd)
			return true
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
			// Unknown: keep the whiteout, which is the safe side.
			return true
		}
	}
	return false
}

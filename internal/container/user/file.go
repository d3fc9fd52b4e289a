package user

import (
	"errors"
	"fmt"
	"io"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

var (
	// ErrNotRegular is wrapped when a database path resolves to something
	// other than a regular file (directory, FIFO, socket, device).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped when a database file exceeds MaxFileSize.
	ErrTooLarge = fmt.Errorf("larger than %d bytes", MaxFileSize)
)

// rootSource reads database files strictly inside a root directory.
type rootSource struct {
	root *os.File // O_PATH directory handle
}

func fstat(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	rc, err := f.SyscallConn()
	if err != nil {
		return st, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.Fstat(int(fd), &st)
	}); err != nil {
		return st, err
	}
	return st, serr
}

// read opens path inside the root and returns its content. A path that does
// not exist (ENOENT, or ENOTDIR because a parent is not a directory) is
// reported as absent, not as an error.
//
// The path is resolved with pathrs-lite into an O_PATH handle: symlinks are
// followed as if the root were "/", ".." cannot climb above it, and magic
// links are refused. Opening with O_PATH has no side effects even on device
// nodes or FIFOs; the handle is fstat'ed and only a regular file is reopened
// for reading, through the same inode, with O_NONBLOCK|O_NOCTTY. The reopened
// file is checked again before a bounded read.
func (s *rootSource) read(path string) ([]byte, bool, error) {
	h, err := pathrs.OpenatInRoot(s.root, path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("open %s in container rootfs: %w", path, err)
	}
	defer h.Close() //nolint:errcheck // O_PATH handle, nothing to flush

	st, err := fstat(h)
	if err != nil {
		return nil, false, fmt.Errorf("stat %s in container rootfs: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false, fmt.Errorf("container %s: %w", path, ErrNotRegular)
	}
	if st.Size > MaxFileSize {
		return nil, false, fmt.Errorf("container %s: %w", path, ErrTooLarge)
	}

	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return nil, false, fmt.Errorf("open %s in container rootfs: %w", path, err)
	}
	defer f.Close() //nolint:errcheck // read-only

	st2, err := fstat(f)
	if err != nil {
		return nil, false, fmt.Errorf("stat %s in container rootfs: %w", path, err)
	}
	if st2.Mode&unix.S_IFMT != unix.S_IFREG || st2.Dev != st.Dev || st2.Ino != st.Ino {
		return nil, false, fmt.Errorf("container %s: changed while being opened: %w", path, ErrNotRegular)
	}

	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s in container rootfs: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, false, fmt.Errorf("container %s: %w", path, ErrTooLarge)
	}
	return data, true, nil
}

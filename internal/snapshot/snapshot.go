// Package snapshot keeps unpacked layers on disk: one directory per layer,
// keyed in the metadata by chain ID and shared by every image and container
// stacked above it, and the overlayfs mounts that union them.
//
// A snapshot directory holds only its own layer's changes, in overlayfs form
// (whiteouts are 0/0 character devices, opaque directories carry
// trusted.overlay.opaque). A snapshot becomes visible only when its record is
// committed; directories without a record are garbage. snapshot never
// interprets image documents and never writes outside its root.
package snapshot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/meta"
)

// Store manages snapshot directories under root.
type Store struct {
	root string
	db   *meta.DB
}

// New opens the snapshot directories under root.
func New(root string, db *meta.DB) (*Store, error) {
	for _, d := range []string{"", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
		SpreadSubdirs(filepath.Join(root, d))
	}
	return &Store{root: root, db: db}, nil
}

// SpreadSubdirs marks dir with FS_TOPDIR_FL, best effort: ext4 then places
// each new directory in it in a block group of its own, as it does for
// top-level directories. Without it, files written soon after others were
// deleted land among the freshly freed inodes, and ext4 slows file creation
// there down several times for minutes. Every directory that layers are
// written into (snapshots, containers' writable layers, build steps) wants
// it.
func SpreadSubdirs(dir string) {
	const topdirFlag = 0x00020000 // FS_TOPDIR_FL in linux/fs.h
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&topdirFlag != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|topdirFlag))
}

// Dir is the layer directory of a committed snapshot.
func (s *Store) Dir(sn meta.Snapshot) string {
	return filepath.Join(s.root, strconv.FormatUint(sn.Dir, 10), "fs")
}

// Pending is a layer directory being filled, not yet visible.
type Pending struct {
	tmp string
	// Snapshot describes the record to commit; Dir is assigned on commit.
	Snapshot meta.Snapshot
}

// Dir is where the layer's files go.
func (p *Pending) Dir() string { return filepath.Join(p.tmp, "fs") }

// Prepare creates an empty pending layer directory.
func (s *Store) Prepare(chainID, parent, diffID digest.Digest) (*Pending, error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "unpack-")
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Pending{tmp: tmp, Snapshot: meta.Snapshot{ChainID: chainID, Parent: parent, DiffID: diffID}}, nil
}

// Abort discards a pending layer.
func (p *Pending) Abort() error { return os.RemoveAll(p.tmp) }

// Commit makes pending layers visible in one transaction, after flushing
// their files to disk. Layers whose chain ID is already committed are
// discarded. Commit consumes every pending layer, also on error.
func (s *Store) Commit(pending []*Pending) error {
	defer func() {
		for _, p := range pending {
			p.Abort()
		}
	}()
	if len(pending) == 0 {
		return nil
	}
	if err := syncfs(s.root); err != nil {
		return err
	}
	return s.db.Update(func(tx *meta.Tx) error {
		for _, p := range pending {
			if _, err := tx.Snapshot(p.Snapshot.ChainID); err == nil {
				continue
			}
			n, err := tx.NextSnapshotDir()
			if err != nil {
				return err
			}
			dst := filepath.Join(s.root, strconv.FormatUint(n, 10))
			// A directory with this number can only be left from a
			// transaction that never committed.
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			if err := os.Rename(p.tmp, dst); err != nil {
				return err
			}
			sn := p.Snapshot
			sn.Dir = n
			sn.Created = time.Now().UTC()
			if err := tx.PutSnapshot(sn); err != nil {
				return err
			}
		}
		return syncDir(s.root)
	})
}

// Remove deletes a snapshot's record and then its directory.
func (s *Store) Remove(sn meta.Snapshot) error {
	if err := s.db.Update(func(tx *meta.Tx) error { return tx.DeleteSnapshot(sn.ChainID) }); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Dir(s.Dir(sn)))
}

// Garbage lists directories under root that no committed snapshot owns
// (interrupted unpacks and removals). Only call it while no other berth
// process can be unpacking.
func (s *Store) Garbage(live []meta.Snapshot) ([]string, error) {
	owned := map[string]bool{"tmp": true}
	for _, sn := range live {
		owned[strconv.FormatUint(sn.Dir, 10)] = true
	}
	var out []string
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !owned[e.Name()] {
			out = append(out, filepath.Join(s.root, e.Name()))
		}
	}
	tmps, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	if err != nil {
		return nil, err
	}
	for _, e := range tmps {
		out = append(out, filepath.Join(s.root, "tmp", e.Name()))
	}
	return out, nil
}

// MountReadOnly mounts the union of layer directories (top-most first) at
// target, read-only: overlayfs for two or more layers, a read-only bind
// mount for one, an empty read-only tmpfs for none.
func MountReadOnly(layers []string, target string) error {
	var err error
	switch len(layers) {
	case 0:
		err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, "size=4k")
	case 1:
		if err = unix.Mount(layers[0], target, "", unix.MS_BIND, ""); err == nil {
			err = unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
			if err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
			}
		}
	default:
		opts := "lowerdir=" + strings.Join(layers, ":")
		if len(opts) >= os.Getpagesize() {
			return fmt.Errorf("mount %s: %d layers exceed the overlayfs option size", target, len(layers))
		}
		err = unix.Mount("overlay", target, "overlay", unix.MS_RDONLY, opts)
	}
	if err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	return nil
}

// MountWritable mounts at target the union of layer directories (top-most
// first) under the writable directory upper, with work as overlayfs'
// scratch space on the same filesystem as upper: a container's root
// filesystem. redirect_dir and metacopy stay off so that upper is always
// expressible as a layer tar.
//
// volatile is for an upper directory that is thrown away, or whose files
// berth makes durable itself (a build step's, flushed with the snapshot it
// becomes): overlayfs then skips the syncs its users ask for and the one
// at unmount, as Podman does for --rm containers. Such a mount leaves a
// marker in work that makes overlayfs refuse the next mount (the upper
// directory may be torn after a crash); remounting after a clean unmount
// removes it first.
func MountWritable(layers []string, upper, work, target string, volatile bool) error {
	if len(layers) == 0 {
		return fmt.Errorf("mount %s: overlayfs needs a lower layer", target)
	}
	opts := "lowerdir=" + strings.Join(layers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(opts)+50 >= os.Getpagesize() {
		return fmt.Errorf("mount %s: %d layers exceed the overlayfs option size", target, len(layers))
	}
	opts += ",redirect_dir=off,metacopy=off,index=off"
	if volatile {
		if err := os.RemoveAll(filepath.Join(work, "work", "incompat")); err != nil {
			return err
		}
		opts += ",volatile"
	}
	err := unix.Mount("overlay", target, "overlay", 0, opts)
	if errors.Is(err, unix.EINVAL) {
		// An older kernel: without the options it may not know.
		err = unix.Mount("overlay", target, "overlay", 0, "lowerdir="+strings.Join(layers, ":")+",upperdir="+upper+",workdir="+work)
	}
	if err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	return nil
}

// Unmount unmounts target if it is a mount point.
func Unmount(target string) error {
	mounted, err := IsMountPoint(target)
	if err != nil || !mounted {
		return err
	}
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// IsMountPoint reports whether path is listed in /proc/self/mountinfo.
func IsMountPoint(path string) (bool, error) {
	path = filepath.Clean(path)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == path {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountPath decodes the octal escapes mountinfo uses for spaces etc.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// A lease keeps an image from being deleted while something outside the
// store, such as a container, still uses it. A lease is a file
// leases/<holder> holding the image ID; GC never collects a leased image's
// data because Remove keeps the image record for as long as it is leased.

func (s *Store) leaseDir() string { return filepath.Join(s.Root, "leases") }

// Lease records that holder uses image id. With durable false the lease is
// not synced to disk (for holders that do not outlive a crash, such as
// containers removed on exit).
func (s *Store) Lease(holder string, id digest.Digest, durable bool) error {
	if err := id.Validate(); err != nil {
		return err
	}
	if holder == "" || strings.ContainsAny(holder, "/\x00") || holder[0] == '.' {
		return fmt.Errorf("lease holder %q: invalid name", holder)
	}
	dir := s.leaseDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(id.String())
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, holder))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("lease %s: %w", holder, err)
	}
	return nil
}

// Release drops holder's lease; releasing a missing lease is not an error.
func (s *Store) Release(holder string) error {
	err := os.Remove(filepath.Join(s.leaseDir(), holder))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// leases maps each leased image to its holders. An unreadable lease is an
// error: guessing could let an image in use be deleted.
func (s *Store) leases() (map[digest.Digest][]string, error) {
	entries, err := os.ReadDir(s.leaseDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[digest.Digest][]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.leaseDir(), e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease %s: %w", e.Name(), err)
		}
		id, err := digest.Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("lease %s: %w", e.Name(), err)
		}
		out[id] = append(out[id], e.Name())
	}
	return out, nil
}

// Package container owns berth's containers: their records and names, the
// runtime spec each one runs with, the monitor that holds a running
// container (berth has no daemon), logs, and turning a container's
// writable layer back into image data (diff, commit).
//
// A container lives in <root>/containers/<id>/: container.json (the
// record), config.json (the OCI runtime spec; the directory is the runtime
// bundle), diff/ and work/ (its overlayfs upper and work directories),
// merged/ (its root filesystem while mounted), hosts, hostname,
// resolv.conf, its json-file log and two lock files. A container's names
// are symlinks in <root>/containers/.names/.
//
// container never unpacks or deletes image data (that is store's) and
// never resolves a path inside a container's root filesystem on the host
// side except through an in-root resolver: the image is hostile.
package container

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/snapshot"
)

// Status values, as Docker reports them.
const (
	Created    = "created"
	Running    = "running"
	Paused     = "paused"
	Restarting = "restarting"
	Exited     = "exited"
	Dead       = "dead"
)

// ErrNoSuchContainer is returned when a reference matches no container.
var ErrNoSuchContainer = errors.New("No such container")

// Container is a container record, shaped like Docker's.
type Container struct {
	ID      string
	Created time.Time
	Path    string
	Args    []string
	State   State
	// Image is the image ID; ImageName what the user asked for.
	Image     digest.Digest
	ImageName string
	Name      string
	// Driver and the rest are informational, as in docker inspect.
	Driver       string
	Platform     string
	RestartCount int
	LogPath      string
	Config       Config
	HostConfig   HostConfig
	Mounts       []MountPoint
}

// State is a container's run state.
type State struct {
	Status     string
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
	// MonitorPid is the berth process holding the container while it runs.
	MonitorPid int `json:",omitempty"`
}

// Config is the part of the configuration that belongs to the container
// itself (Docker's Config).
type Config struct {
	Hostname     string
	Domainname   string
	User         string
	AttachStdin  bool
	AttachStdout bool
	AttachStderr bool
	Tty          bool
	OpenStdin    bool
	StdinOnce    bool
	Env          []string
	Cmd          []string
	Image        string
	Volumes      map[string]struct{}
	WorkingDir   string
	Entrypoint   []string
	OnBuild      []string
	Labels       map[string]string
	StopSignal   string `json:",omitempty"`
	StopTimeout  *int   `json:",omitempty"`
}

// HostConfig is the part of the configuration that depends on the host
// (Docker's HostConfig).
type HostConfig struct {
	Binds          []string
	NetworkMode    string
	AutoRemove     bool
	CapAdd         []string
	CapDrop        []string
	GroupAdd       []string
	Privileged     bool
	ReadonlyRootfs bool
	SecurityOpt    []string
	Tmpfs          map[string]string
	Init           *bool `json:",omitempty"`
	Runtime        string
	Memory         int64
	MemorySwap     int64
	NanoCpus       int64
	PidsLimit      *int64 `json:",omitempty"`
	Ulimits        []Ulimit
	ShmSize        int64
	Mounts         []Mount `json:",omitempty"`
}

// Ulimit is one --ulimit.
type Ulimit struct {
	Name string
	Soft int64
	Hard int64
}

// Mount is one requested mount (--mount, -v, --tmpfs all become these).
type Mount struct {
	Type     string // bind, volume, tmpfs
	Source   string
	Target   string
	ReadOnly bool
	// Options are extra mount options (tmpfs size=, mode=, ...).
	Options []string `json:",omitempty"`
}

// MountPoint is a mount as docker inspect shows it.
type MountPoint struct {
	Type        string
	Name        string `json:",omitempty"`
	Source      string
	Destination string
	Driver      string `json:",omitempty"`
	Mode        string
	RW          bool
	Propagation string
}

// Store is the set of containers under one berth root.
type Store struct {
	root string // <berth root>/containers
}

// OpenStore opens (creating if needed) the container directory of a berth
// root.
func OpenStore(berthRoot string) (*Store, error) {
	root := filepath.Join(berthRoot, "containers")
	if err := os.MkdirAll(filepath.Join(root, ".names"), 0o711); err != nil {
		return nil, err
	}
	snapshot.SpreadSubdirs(root)
	return &Store{root: root}, nil
}

// Dir is a container's directory.
func (s *Store) Dir(id string) string { return filepath.Join(s.root, id) }

func (s *Store) recordPath(id string) string { return filepath.Join(s.root, id, "container.json") }

var (
	idPattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

// NewID returns a random container ID.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// ValidName checks a container name the way Docker does.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return nil
}

// reserveName points name at id, failing if another live container has it.
func (s *Store) reserveName(name, id string) error {
	link := filepath.Join(s.root, ".names", name)
	for range 3 {
		err := os.Symlink(id, link)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		owner, rerr := os.Readlink(link)
		if rerr != nil {
			continue
		}
		if _, serr := os.Stat(s.recordPath(owner)); serr == nil {
			return fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", "/"+name, owner)
		}
		// A name left behind by an interrupted create or remove.
		os.Remove(link)
	}
	return fmt.Errorf("container name %q: could not reserve it", name)
}

func (s *Store) releaseName(name, id string) {
	link := filepath.Join(s.root, ".names", name)
	if owner, err := os.Readlink(link); err == nil && owner == id {
		os.Remove(link)
	}
}

// Create records a new container. The name is reserved first, so two
// creates of one name cannot both succeed; with durable false (a container
// removed on exit) nothing is synced to disk.
func (s *Store) Create(c *Container, durable bool) error {
	if c.Name == "" {
		for range 10 {
			c.Name = randomName()
			if err := s.reserveName(c.Name, c.ID); err == nil {
				break
			}
			c.Name = ""
		}
		if c.Name == "" {
			return errors.New("could not choose a container name")
		}
	} else {
		if err := ValidName(c.Name); err != nil {
			return err
		}
		if err := s.reserveName(c.Name, c.ID); err != nil {
			return err
		}
	}
	dir := s.Dir(c.ID)
	for _, d := range []string{"", "diff", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			s.releaseName(c.Name, c.ID)
			os.RemoveAll(dir)
			return err
		}
	}
	// The root of the container's filesystem is what processes inside see
	// as "/": 0755 like Docker's.
	os.Chmod(filepath.Join(dir, "diff"), 0o755)
	if err := s.write(c, durable); err != nil {
		s.releaseName(c.Name, c.ID)
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// write saves the record atomically.
func (s *Store) write(c *Container, durable bool) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	p := s.recordPath(c.ID)
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("container %s: saving record: %w", shortID(c.ID), err)
	}
	return nil
}

// read loads a record.
func (s *Store) read(id string) (*Container, error) {
	b, err := os.ReadFile(s.recordPath(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, id)
		}
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("container %s: record: %w", shortID(id), err)
	}
	return &c, nil
}

// Update reads a container's record, applies fn and writes it back, with
// the container's lock held so concurrent updates do not lose each other's
// changes.
func (s *Store) Update(id string, fn func(*Container) error) (*Container, error) {
	unlock, err := s.lock(id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, err := s.read(id)
	if err != nil {
		return nil, err
	}
	if err := fn(c); err != nil {
		return c, err
	}
	return c, s.write(c, !c.HostConfig.AutoRemove)
}

// lock takes the container's record lock.
func (s *Store) lock(id string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Dir(id), "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, id)
		}
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// IDs lists the IDs of all containers.
func (s *Store) IDs() ([]string, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if idPattern.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Resolve finds a container by full ID, name or unique ID prefix.
func (s *Store) Resolve(ref string) (string, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return "", fmt.Errorf("%w: %q", ErrNoSuchContainer, ref)
	}
	if idPattern.MatchString(ref) {
		if _, err := os.Stat(s.recordPath(ref)); err == nil {
			return ref, nil
		}
	}
	if namePattern.MatchString(ref) {
		if id, err := os.Readlink(filepath.Join(s.root, ".names", ref)); err == nil && idPattern.MatchString(id) {
			if _, err := os.Stat(s.recordPath(id)); err == nil {
				return id, nil
			}
		}
	}
	if isHex(ref) {
		ids, err := s.IDs()
		if err != nil {
			return "", err
		}
		var found []string
		for _, id := range ids {
			if strings.HasPrefix(id, ref) {
				found = append(found, id)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return "", fmt.Errorf("multiple IDs found with provided prefix: %s", ref)
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNoSuchContainer, ref)
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return s != ""
}

// Rename gives a container a new name.
func (s *Store) Rename(ref, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	id, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	if err := s.reserveName(name, id); err != nil {
		return err
	}
	var old string
	_, err = s.Update(id, func(c *Container) error {
		old = c.Name
		c.Name = name
		return nil
	})
	if err != nil {
		s.releaseName(name, id)
		return err
	}
	s.releaseName(old, id)
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ShortID is the 12-character form of a container ID.
func ShortID(id string) string { return shortID(id) }

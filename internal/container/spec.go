package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container/seccomp"
	"github.com/berth-dev/berth/internal/container/user"
)

// DefaultCaps is Docker's default capability set.
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCaps is every capability by number, as linux/capability.h names them.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// hostCaps is every capability the running kernel knows that berth itself
// may grant: its bounding set (a capability outside it cannot be given to
// a child, and runc would fail).
func hostCaps() []string {
	last := len(allCaps) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < last {
			last = n
		}
	}
	bounding := ^uint64(0)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
					bounding = n
				}
			}
		}
	}
	var out []string
	for i, c := range allCaps[:last+1] {
		if bounding&(1<<i) != 0 {
			out = append(out, c)
		}
	}
	return out
}

// normalizeCap turns "net_admin" or "CAP_NET_ADMIN" into "CAP_NET_ADMIN".
func normalizeCap(c string) (string, error) {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" {
		return c, nil
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	if !slices.Contains(allCaps, c) {
		return "", fmt.Errorf("unknown capability: %q", c)
	}
	return c, nil
}

// Capabilities applies --cap-add and --cap-drop to Docker's default set
// the way Docker does: ALL in --cap-drop empties the set before additions,
// ALL in --cap-add grants every capability.
func Capabilities(add, drop []string, privileged bool) ([]string, error) {
	if privileged {
		return slices.Clone(hostCaps()), nil
	}
	var adds, drops []string
	for _, c := range add {
		n, err := normalizeCap(c)
		if err != nil {
			return nil, err
		}
		adds = append(adds, n)
	}
	for _, c := range drop {
		n, err := normalizeCap(c)
		if err != nil {
			return nil, err
		}
		drops = append(drops, n)
	}
	if slices.Contains(adds, "ALL") {
		var out []string
		for _, c := range hostCaps() {
			if !slices.Contains(drops, c) {
				out = append(out, c)
			}
		}
		return out, nil
	}
	var out []string
	if !slices.Contains(drops, "ALL") {
		for _, c := range DefaultCaps {
			if !slices.Contains(drops, c) {
				out = append(out, c)
			}
		}
	}
	for _, c := range adds {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Docker's masked and read-only paths.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initPath is where --init's init binary appears inside the container.
const initPath = "/sbin/docker-init"

// hostInit finds a static init binary for --init.
func hostInit() (string, error) {
	for _, p := range []string{"/usr/bin/tini-static", "/usr/sbin/docker-init", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("--init: no init binary found (install the tini package)")
}

// specInput is what a runtime spec is made from.
type specInput struct {
	c      *Container
	dir    string // container directory (bundle)
	rootfs string // mounted root filesystem
	user   user.Exec
	// cgroupsPath is the container's cgroup, relative to the hierarchy.
	cgroupsPath string
	// volumes maps a mount target to its host source for volume mounts.
	volumes map[string]string
}

// buildSpec writes the OCI runtime spec of a container.
func buildSpec(in specInput) (*specs.Spec, error) {
	c := in.c
	hc := c.HostConfig
	caps, err := Capabilities(hc.CapAdd, hc.CapDrop, hc.Privileged)
	if err != nil {
		return nil, err
	}
	args := append([]string{c.Path}, c.Args...)
	var mounts []specs.Mount
	if hc.Init != nil && *hc.Init {
		init, err := hostInit()
		if err != nil {
			return nil, err
		}
		args = append([]string{initPath, "--"}, args...)
		mounts = append(mounts, specs.Mount{Destination: initPath, Type: "bind", Source: init, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	cwd := c.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	env := containerEnv(c, in.user.Home)
	noNewPrivs, seccompOpt, err := securityOptions(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: c.Config.Hostname,
		Root:     &specs.Root{Path: in.rootfs, Readonly: hc.ReadonlyRootfs},
		Process: &specs.Process{
			Terminal: c.Config.Tty,
			User: specs.User{
				UID:            in.user.UID,
				GID:            in.user.GID,
				AdditionalGids: in.user.AdditionalGids,
			},
			Args: args,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			NoNewPrivileges: noNewPrivs,
		},
		Mounts: defaultMounts(c, hc.Privileged),
		Linux: &specs.Linux{
			CgroupsPath: in.cgroupsPath,
			Resources:   &specs.LinuxResources{},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
		},
	}
	if c.Config.Domainname != "" {
		s.Domainname = c.Config.Domainname
	}
	if hc.NetworkMode != "host" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if cgroup2() {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	for _, u := range hc.Ulimits {
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{
			Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard),
		})
	}
	if err := setResources(s.Linux.Resources, hc); err != nil {
		return nil, err
	}
	if hc.Privileged {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		s.Linux.Devices = hostDevices()
	} else {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
		switch {
		case seccompOpt == "unconfined":
		case seccompOpt != "":
			data, err := readBounded(seccompOpt, 1<<20)
			if err != nil {
				return nil, fmt.Errorf("seccomp profile: %w", err)
			}
			if s.Linux.Seccomp, err = seccomp.FromDockerProfile(data, caps); err != nil {
				return nil, fmt.Errorf("seccomp profile %s: %w", seccompOpt, err)
			}
		default:
			if s.Linux.Seccomp, err = seccomp.Default(caps); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range []string{"hostname", "hosts", "resolv.conf"} {
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/etc/" + f, Type: "bind", Source: filepath.Join(in.dir, f),
			Options: []string{"rbind", "rprivate"},
		})
	}
	s.Mounts = append(s.Mounts, mounts...)
	user, err := userMounts(hc, in.volumes)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(s.Mounts, user...)
	return s, nil
}

// defaultMounts are the pseudo filesystems every container gets, as
// Docker mounts them.
func defaultMounts(c *Container, privileged bool) []specs.Mount {
	shm := c.HostConfig.ShmSize
	if shm <= 0 {
		shm = 64 << 20
	}
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgOpts := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
	if privileged {
		sysOpts = sysOpts[:3]
		cgOpts = cgOpts[:4]
	}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgOpts},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
	}
	return ms
}

// userMounts are the container's bind, volume and tmpfs mounts.
func userMounts(hc HostConfig, volumes map[string]string) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range hc.Mounts {
		switch m.Type {
		case "bind", "volume":
			src := m.Source
			if m.Type == "volume" {
				src = volumes[m.Target]
			}
			opts := []string{"rbind", "rprivate"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "bind", Source: src, Options: opts})
		case "tmpfs":
			opts := []string{"nosuid", "nodev", "noexec"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: append(opts, m.Options...)})
		default:
			return nil, fmt.Errorf("mount %s: unknown type %q", m.Target, m.Type)
		}
	}
	return out, nil
}

// containerEnv is the process environment as Docker builds it: PATH when
// the image has none, HOSTNAME, TERM for a terminal, the configured
// variables, and HOME from the user's passwd entry when unset.
func containerEnv(c *Container, home string) []string {
	var env []string
	has := func(k string) bool {
		for _, e := range c.Config.Env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		env = append(env, "PATH="+DefaultPath)
	}
	env = append(env, "HOSTNAME="+c.Config.Hostname)
	if c.Config.Tty && !has("TERM") {
		env = append(env, "TERM=xterm")
	}
	env = append(env, c.Config.Env...)
	if !has("HOME") {
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return env
}

// securityOptions parses --security-opt values.
func securityOptions(opts []string) (noNewPrivs bool, seccompProfile string, err error) {
	for _, o := range opts {
		k, v, hasValue := strings.Cut(o, "=")
		if !hasValue {
			k, v, hasValue = strings.Cut(o, ":")
		}
		switch k {
		case "no-new-privileges":
			noNewPrivs = true
			if hasValue {
				if noNewPrivs, err = strconv.ParseBool(v); err != nil {
					return false, "", fmt.Errorf("invalid --security-opt %q", o)
				}
			}
		case "seccomp":
			if v == "" {
				return false, "", fmt.Errorf("invalid --security-opt %q", o)
			}
			seccompProfile = v
		case "label", "apparmor":
			// No SELinux or AppArmor here: accepted and ignored as on a
			// Docker host without them.
		default:
			return false, "", fmt.Errorf("invalid --security-opt %q", o)
		}
	}
	return noNewPrivs, seccompProfile, nil
}

// readBounded reads a host file of at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %s", p, units.BytesSize(float64(limit)))
	}
	return b, nil
}

// setResources turns the cgroup flags into spec resources.
func setResources(r *specs.LinuxResources, hc HostConfig) error {
	if hc.Memory > 0 {
		if hc.Memory < 6<<20 {
			return errors.New("Minimum memory limit allowed is 6MB")
		}
		limit := hc.Memory
		r.Memory = &specs.LinuxMemory{Limit: &limit}
		swap := hc.MemorySwap
		if swap == 0 {
			swap = 2 * hc.Memory
		}
		if swapAccounting() {
			r.Memory.Swap = &swap
		}
	}
	if hc.NanoCpus > 0 {
		period := uint64(100000)
		quota := hc.NanoCpus * int64(period) / 1e9
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: hc.PidsLimit}
	}
	return nil
}

// cgroup2 reports whether the host runs the unified cgroup hierarchy only.
func cgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// swapAccounting reports whether memory+swap limits can be set.
func swapAccounting() bool {
	if cgroup2() {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// hostDevices lists the host's device nodes for a privileged container.
func hostDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch p {
			case "/dev/pts", "/dev/shm", "/dev/mqueue":
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		typ := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil
		}
		if p == "/dev/console" || path.Dir(p) == "/dev/pts" {
			return nil
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{
			Path: p, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			FileMode: &mode, UID: &uid, GID: &gid,
		})
		return nil
	})
	return out
}

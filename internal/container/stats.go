package container

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Stats is a resource usage sample of a running container, read from its
// cgroups (v1 or v2).
type Stats struct {
	// CPU is the CPU time the container used so far; System the host's
	// total CPU time at the same moment (both in nanoseconds).
	CPU, System uint64
	// OnlineCPUs is how many CPUs the host has.
	OnlineCPUs            int
	Memory, MemoryLimit   uint64
	Pids                  uint64
	NetRx, NetTx          uint64
	BlockRead, BlockWrite uint64
	Taken                 time.Time
}

// cgroupFile is a file of the container's cgroup for a v1 controller (or
// the unified hierarchy on v2).
func cgroupFile(id, controller, v1name, v2name string) string {
	if cgroup2() {
		return filepath.Join("/sys/fs/cgroup/berth", id, v2name)
	}
	return filepath.Join("/sys/fs/cgroup", controller, "berth", id, v1name)
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// readKeyed reads "key value" lines.
func readKeyed(p string) map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile(p)
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// Stats samples a running container.
func (e *Engine) Stats(c *Container) (Stats, error) {
	st := Stats{Taken: time.Now()}
	if !c.State.Running {
		return st, nil
	}
	id := c.ID
	var err error
	if cgroup2() {
		st.CPU = readKeyed(cgroupFile(id, "", "", "cpu.stat"))["usage_usec"] * 1000
		st.Memory, err = readUint(cgroupFile(id, "", "", "memory.current"))
		st.Memory -= min(st.Memory, readKeyed(cgroupFile(id, "", "", "memory.stat"))["inactive_file"])
		st.MemoryLimit, _ = readUint(cgroupFile(id, "", "", "memory.max"))
	} else {
		st.CPU, _ = readUint(cgroupFile(id, "cpuacct", "cpuacct.usage", ""))
		st.Memory, err = readUint(cgroupFile(id, "memory", "memory.usage_in_bytes", ""))
		st.Memory -= min(st.Memory, readKeyed(cgroupFile(id, "memory", "memory.stat", ""))["total_inactive_file"])
		st.MemoryLimit, _ = readUint(cgroupFile(id, "memory", "memory.limit_in_bytes", ""))
	}
	if err != nil {
		return st, fmt.Errorf("container %s: cgroup: %w", shortID(id), err)
	}
	if st.MemoryLimit == 0 || st.MemoryLimit > 1<<60 {
		st.MemoryLimit = hostMemory()
	}
	st.Pids, _ = readUint(cgroupFile(id, "pids", "pids.current", "pids.current"))
	st.System, st.OnlineCPUs = systemCPU()
	if pid, err := e.Pid(c); err == nil {
		st.NetRx, st.NetTx = netIO(pid)
	}
	return st, nil
}

// systemCPU is the host's total CPU time in nanoseconds and its CPU count.
func systemCPU() (uint64, int) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 1
	}
	defer f.Close()
	var total uint64
	cpus := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "cpu" {
			for _, v := range fields[1:8] {
				n, _ := strconv.ParseUint(v, 10, 64)
				total += n
			}
		} else if strings.HasPrefix(fields[0], "cpu") {
			cpus++
		}
	}
	// /proc/stat counts in USER_HZ (100 per second).
	return total * 1e7, max(cpus, 1)
}

func hostMemory() uint64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n * 1024
		}
	}
	return 0
}

// netIO sums the received and sent bytes of every interface but loopback
// in the process's network namespace.
func netIO(pid int) (rx, tx uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 9 {
			r, _ := strconv.ParseUint(f[0], 10, 64)
			t, _ := strconv.ParseUint(f[8], 10, 64)
			rx, tx = rx+r, tx+t
		}
	}
	return rx, tx
}

// Top runs ps on the host with args and keeps the header and the lines of
// the container's processes, as docker top does.
func (e *Engine) Top(c *Container, psArgs []string) ([]byte, error) {
	if !c.State.Running {
		return nil, fmt.Errorf("container %s is not running", shortID(c.ID))
	}
	procs, err := os.ReadFile(cgroupFile(c.ID, "pids", "cgroup.procs", "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("container %s: cgroup: %w", shortID(c.ID), err)
	}
	pids := map[string]bool{}
	for _, p := range strings.Fields(string(procs)) {
		pids[p] = true
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return nil, fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) == 0 {
		return nil, nil
	}
	col := -1
	for i, h := range strings.Fields(string(lines[0])) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("ps output has no PID column")
	}
	var buf bytes.Buffer
	buf.Write(lines[0])
	buf.WriteByte('\n')
	for _, l := range lines[1:] {
		f := strings.Fields(string(l))
		if len(f) > col && pids[f[col]] {
			buf.Write(l)
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), nil
}

// WritableSize is the size of the files in the container's writable layer.
func (e *Engine) WritableSize(c *Container) (int64, error) {
	var total int64
	err := filepath.WalkDir(filepath.Join(e.Containers.Dir(c.ID), "diff"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total, err
}

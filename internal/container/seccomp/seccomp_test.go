package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// dockerDefaultCaps is the capability set Docker gives a container by default.
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func withCaps(extra ...string) []string {
	return append(slices.Clone(dockerDefaultCaps), extra...)
}

func withoutCap(c string) []string {
	return slices.DeleteFunc(slices.Clone(dockerDefaultCaps), func(s string) bool { return s == c })
}

func kernelIs(major, minor uint64) func() (kernelVersion, error) {
	return func() (kernelVersion, error) { return kernelVersion{major, minor}, nil }
}

func testHost(goarch string, major, minor uint64) host {
	return hostFor(goarch, kernelIs(major, minor))
}

// Verdicts of classify.
const (
	allow       = "allow"         // an unconditional SCMP_ACT_ALLOW rule
	allowIfArgs = "allow-if-args" // only SCMP_ACT_ALLOW rules with argument filters
	errno38     = "errno(38)"     // an SCMP_ACT_ERRNO rule returning ENOSYS
	byDefault   = "default"       // no rule: the default action (EPERM) applies
)

// classify reports how profile s treats syscall name.
func classify(t *testing.T, s *specs.LinuxSeccomp, name string) string {
	t.Helper()
	var rules []specs.LinuxSyscall
	for _, r := range s.Syscalls {
		if slices.Contains(r.Names, name) {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return byDefault
	}
	conditional := false
	for _, r := range rules {
		switch {
		case r.Action == specs.ActAllow && len(r.Args) == 0:
			return allow
		case r.Action == specs.ActAllow:
			conditional = true
		case r.Action == specs.ActErrno && r.ErrnoRet != nil && *r.ErrnoRet == 38:
			return errno38
		default:
			t.Fatalf("unexpected rule for %s: %+v", name, r)
		}
	}
	if conditional {
		return allowIfArgs
	}
	return byDefault
}

func TestDefaultSyscalls(t *testing.T) {
	tests := []struct {
		name    string
		goarch  string
		kernel  [2]uint64
		caps    []string
		syscall string
		want    string
	}{
		{"read", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "read", allow},
		{"clone needs flag filter", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "clone", allowIfArgs},
		{"clone3 is ENOSYS", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "clone3", errno38},
		{"socket filtered", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "socket", allowIfArgs},
		{"personality filtered", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "personality", allowIfArgs},
		{"mount denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "mount", byDefault},
		{"umount2 denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "umount2", byDefault},
		{"unshare denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "unshare", byDefault},
		{"reboot denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "reboot", byDefault},
		{"bpf denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "bpf", byDefault},
		{"kcmp denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "kcmp", byDefault},
		{"keyctl denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "keyctl", byDefault},
		{"open_by_handle_at denied", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "open_by_handle_at", byDefault},
		{"chroot with CAP_SYS_CHROOT", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "chroot", allow},
		{"chroot without CAP_SYS_CHROOT", "amd64", [2]uint64{6, 18}, withoutCap("CAP_SYS_CHROOT"), "chroot", byDefault},
		{"no caps still reads", "amd64", [2]uint64{6, 18}, nil, "read", allow},
		{"ptrace on 6.18", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "ptrace", allow},
		{"ptrace on 4.8", "amd64", [2]uint64{4, 8}, dockerDefaultCaps, "ptrace", allow},
		{"ptrace on 4.7", "amd64", [2]uint64{4, 7}, dockerDefaultCaps, "ptrace", byDefault},
		{"process_vm_readv on 4.4", "amd64", [2]uint64{4, 4}, dockerDefaultCaps, "process_vm_readv", byDefault},
		{"process_vm_readv on 5.10", "amd64", [2]uint64{5, 10}, dockerDefaultCaps, "process_vm_readv", allow},
		{"arch_prctl on amd64", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "arch_prctl", allow},
		{"modify_ldt on amd64", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "modify_ldt", allow},
		{"arm only on amd64", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "arm_fadvise64_64", byDefault},
		{"s390 only on amd64", "amd64", [2]uint64{6, 18}, dockerDefaultCaps, "s390_runtime_instr", byDefault},

		{"SYS_ADMIN mount", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_ADMIN"), "mount", allow},
		{"SYS_ADMIN unshare", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_ADMIN"), "unshare", allow},
		{"SYS_ADMIN clone", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_ADMIN"), "clone", allow},
		{"SYS_ADMIN clone3", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_ADMIN"), "clone3", allow},
		{"SYS_ADMIN bpf", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_ADMIN"), "bpf", allow},
		{"SYS_ADMIN not reboot", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_ADMIN"), "reboot", byDefault},
		{"SYS_PTRACE ptrace on 4.4", "amd64", [2]uint64{4, 4}, withCaps("CAP_SYS_PTRACE"), "ptrace", allow},
		{"SYS_PTRACE process_vm_readv on 4.4", "amd64", [2]uint64{4, 4}, withCaps("CAP_SYS_PTRACE"), "process_vm_readv", allow},
		{"SYS_PTRACE kcmp", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_PTRACE"), "kcmp", allow},
		{"SYS_BOOT reboot", "amd64", [2]uint64{6, 18}, withCaps("CAP_SYS_BOOT"), "reboot", allow},
		{"BPF bpf", "amd64", [2]uint64{6, 18}, withCaps("CAP_BPF"), "bpf", allow},
		{"case-sensitive caps", "amd64", [2]uint64{6, 18}, withCaps("cap_sys_admin"), "mount", byDefault},

		{"arm64 arm_fadvise64_64", "arm64", [2]uint64{6, 1}, dockerDefaultCaps, "arm_fadvise64_64", allow},
		{"arm64 no arch_prctl", "arm64", [2]uint64{6, 1}, dockerDefaultCaps, "arch_prctl", byDefault},
		{"arm64 clone", "arm64", [2]uint64{6, 1}, dockerDefaultCaps, "clone", allowIfArgs},
		{"s390x runtime_instr", "s390x", [2]uint64{6, 1}, dockerDefaultCaps, "s390_runtime_instr", allow},
		{"s390x clone", "s390x", [2]uint64{6, 1}, dockerDefaultCaps, "clone", allowIfArgs},
		{"riscv64 flush_icache", "riscv64", [2]uint64{6, 1}, dockerDefaultCaps, "riscv_flush_icache", allow},
		{"ppc64le swapcontext", "ppc64le", [2]uint64{6, 1}, dockerDefaultCaps, "swapcontext", allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := defaultFor(tt.caps, testHost(tt.goarch, tt.kernel[0], tt.kernel[1]))
			if err != nil {
				t.Fatal(err)
			}
			if got := classify(t, s, tt.syscall); got != tt.want {
				t.Errorf("%s on %s %d.%d: got %s, want %s", tt.syscall, tt.goarch, tt.kernel[0], tt.kernel[1], got, tt.want)
			}
		})
	}
}

func TestDefaultCloneFilter(t *testing.T) {
	// CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP
	const nsFlags = 0x7E020000
	tests := []struct {
		goarch string
		index  uint
	}{
		{"amd64", 0},
		{"arm64", 0},
		{"s390x", 1}, // s390 passes clone's flags as the second argument
	}
	for _, tt := range tests {
		t.Run(tt.goarch, func(t *testing.T) {
			s, err := defaultFor(dockerDefaultCaps, testHost(tt.goarch, 6, 1))
			if err != nil {
				t.Fatal(err)
			}
			var clones []specs.LinuxSyscall
			for _, r := range s.Syscalls {
				if slices.Contains(r.Names, "clone") {
					clones = append(clones, r)
				}
			}
			want := []specs.LinuxSyscall{{
				Names:  []string{"clone"},
				Action: specs.ActAllow,
				Args:   []specs.LinuxSeccompArg{{Index: tt.index, Value: nsFlags, Op: specs.OpMaskedEqual}},
			}}
			if !reflect.DeepEqual(clones, want) {
				t.Errorf("clone rules = %+v, want %+v", clones, want)
			}
		})
	}
}

func TestDefaultHeader(t *testing.T) {
	tests := []struct {
		goarch string
		want   []specs.Arch
	}{
		{"amd64", []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}},
		{"arm64", []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		{"s390x", []specs.Arch{specs.ArchS390X, specs.ArchS390}},
		{"mips64le", []specs.Arch{specs.ArchMIPSEL64, specs.ArchMIPSEL, specs.ArchMIPSEL64N32}},
		{"riscv64", []specs.Arch{specs.ArchRISCV64}},
		{"loong64", []specs.Arch{specs.ArchLOONGARCH64}},
		{"ppc64le", nil}, // not in the archMap: runtime uses the native arch only
		{"wasm", nil},    // unknown to seccomp altogether
	}
	for _, tt := range tests {
		t.Run(tt.goarch, func(t *testing.T) {
			s, err := defaultFor(dockerDefaultCaps, testHost(tt.goarch, 6, 1))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Architectures, tt.want) {
				t.Errorf("architectures = %v, want %v", s.Architectures, tt.want)
			}
			if s.DefaultAction != specs.ActErrno || s.DefaultErrnoRet == nil || *s.DefaultErrnoRet != 1 {
				t.Errorf("default action = %s/%v, want SCMP_ACT_ERRNO/1", s.DefaultAction, s.DefaultErrnoRet)
			}
		})
	}
}

func TestDefaultRuleCount(t *testing.T) {
	// Docker's default on amd64 with its default caps keeps: the big allow
	// list, ptrace (>= 4.8), 3 socket, 5 personality, arch_prctl,
	// modify_ldt, the filtered clone, the clone3 ENOSYS and chroot.
	s, err := defaultFor(dockerDefaultCaps, testHost("amd64", 6, 18))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Syscalls) != 15 {
		t.Errorf("got %d rules, want 15", len(s.Syscalls))
	}
	if n := len(s.Syscalls[0].Names); n < 300 {
		t.Errorf("first rule has %d names, want Docker's full allow list", n)
	}
}

func TestDefaultOnThisHost(t *testing.T) {
	s, err := Default(dockerDefaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := hostKernel()
	if err != nil {
		t.Fatal(err)
	}
	want := byDefault
	if !kv.less(kernelVersion{4, 8}) {
		want = allow
	}
	if got := classify(t, s, "ptrace"); got != want {
		t.Errorf("ptrace on kernel %s: got %s, want %s", kv, got, want)
	}
	if got := classify(t, s, "mount"); got != byDefault {
		t.Errorf("mount: got %s, want %s", got, byDefault)
	}
	if runtime.GOARCH == "amd64" {
		want := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
		if !reflect.DeepEqual(s.Architectures, want) {
			t.Errorf("architectures = %v, want %v", s.Architectures, want)
		}
	}
}

// The returned profiles must not share memory with each other or with the
// embedded default.
func TestDefaultIsolation(t *testing.T) {
	h := testHost("amd64", 6, 18)
	a, err := defaultFor(dockerDefaultCaps, h)
	if err != nil {
		t.Fatal(err)
	}
	// Snapshot by value: a result sharing memory would change with a.
	want, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	a.Architectures[0] = "SCMP_ARCH_BOGUS"
	*a.DefaultErrnoRet = 99
	for i := range a.Syscalls {
		a.Syscalls[i].Names[0] = "bogus"
		a.Syscalls[i].Action = specs.ActKill
		for j := range a.Syscalls[i].Args {
			a.Syscalls[i].Args[j].Value = 7
		}
		if a.Syscalls[i].ErrnoRet != nil {
			*a.Syscalls[i].ErrnoRet = 99
		}
	}
	b, err := defaultFor(dockerDefaultCaps, h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("mutating one result changed a later one")
	}
}

// The OCI form is itself a valid Docker profile without conditions, so
// converting the output again must reproduce it.
func TestRoundTrip(t *testing.T) {
	h := testHost("amd64", 6, 18)
	s, err := defaultFor(withCaps("CAP_SYS_ADMIN"), h)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := fromDockerProfile(b, nil, testHost("arm64", 3, 10))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, again) {
		t.Errorf("round trip changed the profile:\n%+v\n%+v", s, again)
	}
}

func uintp(v uint) *uint { return &v }

func TestFromDockerProfile(t *testing.T) {
	tests := []struct {
		name   string
		json   string
		caps   []string
		goarch string
		kernel [2]uint64
		want   *specs.LinuxSeccomp
	}{
		{
			name: "legacy name",
			json: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW"}]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read"}, Action: specs.ActAllow},
			}},
		},
		{
			name: "OCI fields kept",
			json: `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
				"flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],"listenerPath":"/run/seccomp.sock","listenerMetadata":"meta",
				"syscalls":[{"names":["write","writev"],"action":"SCMP_ACT_ERRNO","errnoRet":0,"comment":"why",
				"args":[{"index":0,"value":1,"valueTwo":3,"op":"SCMP_CMP_MASKED_EQ"},{"index":5,"value":18446744073709551615,"op":"SCMP_CMP_NE"}]}],
				"unknownField":true}`,
			want: &specs.LinuxSeccomp{
				DefaultAction:    specs.ActErrno,
				DefaultErrnoRet:  uintp(38),
				Architectures:    []specs.Arch{specs.ArchX86_64, specs.ArchX86},
				Flags:            []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
				ListenerPath:     "/run/seccomp.sock",
				ListenerMetadata: "meta",
				Syscalls: []specs.LinuxSyscall{{
					Names: []string{"write", "writev"}, Action: specs.ActErrno, ErrnoRet: uintp(0),
					Args: []specs.LinuxSeccompArg{
						{Index: 0, Value: 1, ValueTwo: 3, Op: specs.OpMaskedEqual},
						{Index: 5, Value: 1<<64 - 1, Op: specs.OpNotEqual},
					},
				}},
			},
		},
		{
			name:   "archMap without host entry",
			json:   `{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}]}`,
			goarch: "amd64",
			want:   &specs.LinuxSeccomp{DefaultAction: specs.ActAllow},
		},
		{
			name:   "archMap with host entry",
			json:   `{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}]}`,
			goarch: "arm64",
			want:   &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		},
		{
			name: "empty minKernel is unset",
			json: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_LOG","includes":{"minKernel":""},"excludes":{"minKernel":null}}]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"a"}, Action: specs.ActLog},
			}},
		},
		{
			name: "no syscalls",
			json: `{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[],"args":[]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goarch := tt.goarch
			if goarch == "" {
				goarch = "amd64"
			}
			got, err := fromDockerProfile([]byte(tt.json), tt.caps, testHost(goarch, 6, 18))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(tt.want)
				t.Errorf("got  %s\nwant %s", gb, wb)
			}
		})
	}
}

// TestFilters checks which rules survive includes/excludes, with moby's
// semantics: includes needs ALL its caps, excludes drops on ANY of its caps;
// arches name only the host's own architecture; minKernel compares
// "<major>.<minor>" of the host kernel.
func TestFilters(t *testing.T) {
	tests := []struct {
		name   string
		filter string // the includes/excludes part of the rule
		caps   []string
		goarch string
		kernel [2]uint64
		kept   bool
	}{
		{"no filter", ``, nil, "amd64", [2]uint64{6, 18}, true},
		{"empty filters", `"includes":{},"excludes":{}`, nil, "amd64", [2]uint64{6, 18}, true},
		{"includes all caps held", `"includes":{"caps":["CAP_A","CAP_B"]}`, []string{"CAP_B", "CAP_C", "CAP_A"}, "amd64", [2]uint64{6, 18}, true},
		{"includes one cap missing", `"includes":{"caps":["CAP_A","CAP_B"]}`, []string{"CAP_A", "CAP_C"}, "amd64", [2]uint64{6, 18}, false},
		{"includes no caps held", `"includes":{"caps":["CAP_A"]}`, nil, "amd64", [2]uint64{6, 18}, false},
		{"excludes no cap held", `"excludes":{"caps":["CAP_A","CAP_B"]}`, []string{"CAP_C"}, "amd64", [2]uint64{6, 18}, true},
		{"excludes one cap held", `"excludes":{"caps":["CAP_A","CAP_B"]}`, []string{"CAP_B"}, "amd64", [2]uint64{6, 18}, false},
		{"excludes all caps held", `"excludes":{"caps":["CAP_A","CAP_B"]}`, []string{"CAP_A", "CAP_B"}, "amd64", [2]uint64{6, 18}, false},
		{"includes host arch", `"includes":{"arches":["arm64","amd64"]}`, nil, "amd64", [2]uint64{6, 18}, true},
		{"includes other arch", `"includes":{"arches":["arm64"]}`, nil, "amd64", [2]uint64{6, 18}, false},
		{"includes sub-arch only", `"includes":{"arches":["x86","x32"]}`, nil, "amd64", [2]uint64{6, 18}, false},
		{"excludes host arch", `"excludes":{"arches":["amd64"]}`, nil, "amd64", [2]uint64{6, 18}, false},
		{"excludes other arch", `"excludes":{"arches":["amd64"]}`, nil, "arm64", [2]uint64{6, 18}, true},
		{"includes arch on unknown host", `"includes":{"arches":["amd64"]}`, nil, "wasm", [2]uint64{6, 18}, false},
		{"includes minKernel newer host", `"includes":{"minKernel":"5.10"}`, nil, "amd64", [2]uint64{6, 1}, true},
		{"includes minKernel equal host", `"includes":{"minKernel":"5.10"}`, nil, "amd64", [2]uint64{5, 10}, true},
		{"includes minKernel older host", `"includes":{"minKernel":"5.10"}`, nil, "amd64", [2]uint64{5, 4}, false},
		{"includes minKernel numeric not lexical", `"includes":{"minKernel":"5.9"}`, nil, "amd64", [2]uint64{5, 10}, true},
		{"excludes minKernel older host", `"excludes":{"minKernel":"5.10"}`, nil, "amd64", [2]uint64{5, 4}, true},
		{"excludes minKernel equal host", `"excludes":{"minKernel":"5.10"}`, nil, "amd64", [2]uint64{5, 10}, false},
		{"excludes minKernel newer host", `"excludes":{"minKernel":"5.10"}`, nil, "amd64", [2]uint64{6, 0}, false},
		{"both pass", `"includes":{"caps":["CAP_A"]},"excludes":{"caps":["CAP_B"]}`, []string{"CAP_A"}, "amd64", [2]uint64{6, 18}, true},
		{"excludes wins", `"includes":{"caps":["CAP_A"]},"excludes":{"caps":["CAP_B"]}`, []string{"CAP_A", "CAP_B"}, "amd64", [2]uint64{6, 18}, false},
		{"all conditions", `"includes":{"caps":["CAP_A"],"arches":["amd64"],"minKernel":"4.8"}`, []string{"CAP_A"}, "amd64", [2]uint64{4, 8}, true},
		{"all conditions, one fails", `"includes":{"caps":["CAP_A"],"arches":["amd64"],"minKernel":"4.8"}`, []string{"CAP_A"}, "amd64", [2]uint64{4, 7}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := `{"names":["x"],"action":"SCMP_ACT_ALLOW"`
			if tt.filter != "" {
				r += "," + tt.filter
			}
			r += "}"
			doc := `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[` + r + `,{"names":["y"],"action":"SCMP_ACT_LOG"}]}`
			s, err := fromDockerProfile([]byte(doc), tt.caps, testHost(tt.goarch, tt.kernel[0], tt.kernel[1]))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, sc := range s.Syscalls {
				names = append(names, sc.Names...)
			}
			want := []string{"y"}
			if tt.kept {
				want = []string{"x", "y"}
			}
			if !slices.Equal(names, want) {
				t.Errorf("rules for %s = %v, want %v", tt.filter, names, want)
			}
		})
	}
}

// The host kernel is only needed, and its failure only matters, for rules
// with a minKernel condition that is actually reached.
func TestKernelLookupFailure(t *testing.T) {
	h := hostFor("amd64", func() (kernelVersion, error) { return kernelVersion{}, errors.New("no uname") })
	plain := `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_A"],"minKernel":"4.8"}}]}`
	if _, err := fromDockerProfile([]byte(plain), nil, h); err != nil {
		t.Errorf("kernel consulted although the caps condition already failed: %v", err)
	}
	_, err := fromDockerProfile([]byte(plain), []string{"CAP_A"}, h)
	if err == nil || !strings.Contains(err.Error(), "no uname") || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("got %v, want the kernel error naming syscall x", err)
	}
}

func TestFromDockerProfileErrors(t *testing.T) {
	const da = `"defaultAction":"SCMP_ACT_ERRNO"`
	rule := func(body string) string {
		return `{` + da + `,"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},` + body + `]}`
	}
	tests := []struct {
		name string
		json string
		want []string // substrings of the error
	}{
		{"empty input", ``, []string{"malformed JSON"}},
		{"truncated", `{"defaultAction":`, []string{"malformed JSON"}},
		{"not an object", `[]`, []string{"must be a JSON object"}},
		{"trailing garbage", `{` + da + `} {}`, []string{"malformed JSON"}},
		{"null document", `null`, []string{`"defaultAction" is required`}},
		{"empty object", `{}`, []string{`"defaultAction" is required`}},
		{"unknown default action", `{"defaultAction":"SCMP_ACT_MAYBE"}`, []string{`"defaultAction"`, `"SCMP_ACT_MAYBE"`}},
		{"default errno too big", `{` + da + `,"defaultErrnoRet":65536}`, []string{`"defaultErrnoRet"`, "65536"}},
		{"negative errno", `{` + da + `,"defaultErrnoRet":-1}`, []string{`"defaultErrnoRet"`}},
		{"both arch forms", `{` + da + `,"architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`, []string{`"architectures" and "archMap"`}},
		{"unknown architecture", `{` + da + `,"architectures":["SCMP_ARCH_X86_64","x86_64"]}`, []string{`"architectures"[1]`, `"x86_64"`}},
		{"unknown archMap arch", `{` + da + `,"archMap":[{"architecture":"SCMP_ARCH_PDP11"}]}`, []string{`"archMap"[0]`, "SCMP_ARCH_PDP11"}},
		{"unknown sub-arch", `{` + da + `,"archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","i386"]}]}`, []string{`"subArchitectures"[1]`, `"i386"`}},
		{"unknown flag", `{` + da + `,"flags":["SECCOMP_FILTER_FLAG_TURBO"]}`, []string{`"flags"[0]`, "SECCOMP_FILTER_FLAG_TURBO"}},
		{"syscalls not a list", `{` + da + `,"syscalls":{}}`, []string{`"syscalls"`}},
		{"null rule", rule(`null`), []string{`"syscalls"[1]`, "null"}},
		{"unknown action", rule(`{"names":["reboot"],"action":"SCMP_ACT_FOO"}`), []string{`"syscalls"[1]`, `"reboot"`, `"action"`, `"SCMP_ACT_FOO"`}},
		{"missing action", rule(`{"names":["reboot"]}`), []string{`"reboot"`, `"action" is required`}},
		{"name and names", rule(`{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}`), []string{`"name" and "names"`, `"a"`}},
		{"no names", rule(`{"names":[],"action":"SCMP_ACT_ALLOW"}`), []string{`"syscalls"[1]`, "no syscall names"}},
		{"names missing", rule(`{"action":"SCMP_ACT_ALLOW"}`), []string{"no syscall names"}},
		{"empty name", rule(`{"names":["read",""],"action":"SCMP_ACT_ALLOW"}`), []string{`"names"[1]`, "invalid syscall name"}},
		{"bad name", rule(`{"names":["re ad"],"action":"SCMP_ACT_ALLOW"}`), []string{`"re ad"`, "invalid syscall name"}},
		{"names not a list", rule(`{"names":"read","action":"SCMP_ACT_ALLOW"}`), []string{`"syscalls.names"`}},
		{"errnoRet too big", rule(`{"names":["open"],"action":"SCMP_ACT_ERRNO","errnoRet":100000}`), []string{`"open"`, `"errnoRet"`}},
		{"unknown op", rule(`{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}`), []string{`"socket"`, `"args"[0]`, `"SCMP_CMP_LIKE"`}},
		{"missing op", rule(`{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1}]}`), []string{`"socket"`, `"op" is required`}},
		{"arg index too big", rule(`{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}`), []string{`"args"[1]`, `"index" 6`}},
		{"negative value", rule(`{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":-1,"op":"SCMP_CMP_EQ"}]}`), []string{`"syscalls.args.value"`}},
		{"bad cap", rule(`{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["sys_admin"]}}`), []string{`"mount"`, `"includes"`, `"caps"[0]`, `"sys_admin"`}},
		{"bad excluded cap", rule(`{"names":["mount"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_"]}}`), []string{`"excludes"`, `"CAP_"`}},
		{"bad arch name", rule(`{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["AMD64"]}}`), []string{`"arches"[0]`, `"AMD64"`}},
		{"minKernel with x", rule(`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"5.x"}}`), []string{`"ptrace"`, `"minKernel"`, `"5.x"`}},
		{"minKernel one part", rule(`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"5"}}`), []string{`"minKernel"`, `"5"`}},
		{"minKernel three parts", rule(`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"4.8.1"}}`), []string{`"excludes"`, `"4.8.1"`}},
		{"minKernel zero", rule(`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"0.0"}}`), []string{"0.0"}},
		{"minKernel too big", rule(`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"256.1"}}`), []string{`"256.1"`}},
		{"minKernel number", rule(`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":4.8}}`), []string{`"syscalls.includes.minKernel"`}},
		// A malformed rule is an error even where its conditions exclude it.
		{"invalid but filtered out", rule(`{"names":["x"],"action":"SCMP_ACT_NOPE","includes":{"arches":["sparc"]}}`), []string{`"SCMP_ACT_NOPE"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := fromDockerProfile([]byte(tt.json), dockerDefaultCaps, testHost("amd64", 6, 18))
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			if s != nil {
				t.Errorf("returned a profile with error %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	valid := []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`)
	atLimit := append(bytes.Repeat([]byte(" "), MaxProfileSize-len(valid)), valid...)
	if _, err := FromDockerProfile(atLimit, nil); err != nil {
		t.Errorf("profile of exactly %d bytes: %v", len(atLimit), err)
	}
	over := append([]byte(" "), atLimit...)
	_, err := FromDockerProfile(over, nil)
	if !errors.Is(err, ErrProfileTooLarge) {
		t.Errorf("profile of %d bytes: got %v, want ErrProfileTooLarge", len(over), err)
	}
}

func TestParseMinKernel(t *testing.T) {
	tests := []struct {
		in   string
		want kernelVersion
		ok   bool
	}{
		{"4.8", kernelVersion{4, 8}, true},
		{"5.10", kernelVersion{5, 10}, true},
		{"0.1", kernelVersion{0, 1}, true},
		{"255.255", kernelVersion{255, 255}, true},
		{"5.x", kernelVersion{}, false},
		{"x.5", kernelVersion{}, false},
		{"5", kernelVersion{}, false},
		{"5.", kernelVersion{}, false},
		{".5", kernelVersion{}, false},
		{"4.8.0", kernelVersion{}, false},
		{"4.8-rc1", kernelVersion{}, false},
		{"+4.8", kernelVersion{}, false},
		{"-4.8", kernelVersion{}, false},
		{" 4.8", kernelVersion{}, false},
		{"0.0", kernelVersion{}, false},
		{"256.0", kernelVersion{}, false},
		{"", kernelVersion{}, false},
	}
	for _, tt := range tests {
		got, err := parseMinKernel(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseMinKernel(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseRelease(t *testing.T) {
	tests := []struct {
		in   string
		want kernelVersion
		ok   bool
	}{
		{"6.18.0-1-amd64", kernelVersion{6, 18}, true},
		{"3.12-1-amd64", kernelVersion{3, 12}, true},
		{"3.12.25-gentoo", kernelVersion{3, 12}, true},
		{"5.4.0+", kernelVersion{5, 4}, true},
		{"4.8", kernelVersion{4, 8}, true},
		{"5.15.0-rc5", kernelVersion{5, 15}, true},
		{"6", kernelVersion{}, false},
		{"6.", kernelVersion{}, false},
		{"6.x", kernelVersion{}, false},
		{"v6.1", kernelVersion{}, false},
		{"", kernelVersion{}, false},
		{"99999999999999999999.1", kernelVersion{}, false},
	}
	for _, tt := range tests {
		got, err := parseRelease(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseRelease(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// The embedded profile must be Docker's file byte for byte: it is the
// reference berth's default is equivalent to.
func TestEmbeddedDefaultIsDockers(t *testing.T) {
	const reference = "/work/shared/reference/docker-default-seccomp.json"
	if ref, err := os.ReadFile(reference); err == nil && !bytes.Equal(ref, defaultProfileJSON) {
		t.Errorf("default.json differs from %s", reference)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(defaultProfileJSON, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"defaultAction", "defaultErrnoRet", "archMap", "syscalls"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("embedded default.json lacks %q", k)
		}
	}
	if _, err := parse(defaultProfileJSON); err != nil {
		t.Errorf("embedded default.json does not validate: %v", err)
	}
}

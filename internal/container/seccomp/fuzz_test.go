package seccomp

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

var fuzzSeeds = []string{
	`{"defaultAction":"SCMP_ACT_ALLOW"}`,
	`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"],"listenerPath":"/s","syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW"}]}`,
	`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],"syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}],"excludes":{"caps":["CAP_SYS_ADMIN"],"arches":["s390x"]}}]}`,
	`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8","caps":["CAP_SYS_PTRACE"],"arches":["amd64"]}},{"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38,"excludes":{"minKernel":"5.3"}}]}`,
	`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[null]}`,
	`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}`,
	`{"syscalls":[{"names":["x"],"action":"SCMP_ACT_NOTIFY","includes":{"minKernel":"5.x"}}]}`,
	`{}`, `null`, `[]`, ``,
}

// FuzzFromDockerProfile feeds arbitrary bytes to the converter. It must never
// panic; whatever it accepts must be a well-formed OCI profile, and because
// that OCI profile is itself an unconditional Docker profile, converting it
// again must give it back unchanged.
func FuzzFromDockerProfile(f *testing.F) {
	f.Add(defaultProfileJSON, false)
	f.Add(defaultProfileJSON, true)
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, admin bool) {
		caps := dockerDefaultCaps
		if admin {
			caps = withCaps("CAP_SYS_ADMIN", "CAP_SYS_PTRACE")
		}
		h := testHost("amd64", 6, 18)
		s, err := fromDockerProfile(data, caps, h)
		if err != nil {
			if s != nil {
				t.Fatalf("profile returned with error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkWellFormed(t, s)

		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal accepted profile: %v", err)
		}
		again, err := fromDockerProfile(b, nil, testHost("arm64", 4, 4))
		if err != nil {
			t.Fatalf("own output rejected: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed the profile:\n%+v\n%+v", s, again)
		}
	})
}

func checkWellFormed(t *testing.T, s *specs.LinuxSeccomp) {
	t.Helper()
	if !validActions[s.DefaultAction] {
		t.Fatalf("default action %q", s.DefaultAction)
	}
	if s.DefaultErrnoRet != nil && *s.DefaultErrnoRet > maxErrno {
		t.Fatalf("default errno %d", *s.DefaultErrnoRet)
	}
	for _, a := range s.Architectures {
		if !validArches[a] {
			t.Fatalf("architecture %q", a)
		}
	}
	for _, f := range s.Flags {
		if !validFlags[f] {
			t.Fatalf("flag %q", f)
		}
	}
	for _, r := range s.Syscalls {
		if len(r.Names) == 0 {
			t.Fatalf("rule without names: %+v", r)
		}
		for _, n := range r.Names {
			if !validSyscallName(n) {
				t.Fatalf("syscall name %q", n)
			}
		}
		if !validActions[r.Action] {
			t.Fatalf("action %q", r.Action)
		}
		if r.ErrnoRet != nil && *r.ErrnoRet > maxErrno {
			t.Fatalf("errno %d", *r.ErrnoRet)
		}
		for _, a := range r.Args {
			if a.Index > maxArgIndex || !validOps[a.Op] {
				t.Fatalf("arg %+v", a)
			}
		}
	}
}

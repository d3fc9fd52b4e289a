package seccomp

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// MaxProfileSize is the largest profile, in bytes, that FromDockerProfile
// accepts. Docker's own default profile is about 13 KiB.
const MaxProfileSize = 1 << 20

// ErrProfileTooLarge is returned (wrapped) by FromDockerProfile for input
// larger than MaxProfileSize.
var ErrProfileTooLarge = errors.New("seccomp profile is larger than 1 MiB")

// defaultProfileJSON is an unmodified copy of moby's
// profiles/seccomp/default.json.
//
//go:embed default.json
var defaultProfileJSON []byte

// maxErrno is the largest value that fits SECCOMP_RET_DATA, the 16 bits in
// which the kernel carries the errno of SCMP_ACT_ERRNO (and the message of
// SCMP_ACT_TRACE). Larger values would be silently truncated by the runtime.
const maxErrno = 0xffff

// maxArgIndex is the highest system call argument index seccomp can inspect.
const maxArgIndex = 5

// profile is a seccomp profile in Docker's JSON format: the OCI fields plus
// archMap and conditional syscall rules.
type profile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet"`
	Architectures    []specs.Arch             `json:"architectures"`
	ArchMap          []archMapping            `json:"archMap"`
	Flags            []specs.LinuxSeccompFlag `json:"flags"`
	ListenerPath     string                   `json:"listenerPath"`
	ListenerMetadata string                   `json:"listenerMetadata"`
	Syscalls         []*rule                  `json:"syscalls"`
}

// archMapping lists the seccomp architectures a profile covers when the host
// is Arch: Arch itself followed by SubArches.
type archMapping struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

// rule is one entry of a Docker profile's syscalls list.
type rule struct {
	Names    []string                 `json:"names"`
	Name     string                   `json:"name"` // legacy single-name form
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet"`
	Args     []specs.LinuxSeccompArg  `json:"args"`
	Comment  string                   `json:"comment"`
	Includes *filter                  `json:"includes"`
	Excludes *filter                  `json:"excludes"`
}

// filter is a rule's includes or excludes condition.
type filter struct {
	Caps      []string `json:"caps"`
	Arches    []string `json:"arches"`
	MinKernel *string  `json:"minKernel"`

	// minKernel is MinKernel parsed by validate; nil when unset.
	minKernel *kernelVersion
}

// host is what rule filters are evaluated against besides capabilities.
type host struct {
	// arch is the libseccomp name of the host architecture ("amd64",
	// "arm64", "s390x", ...), which is what the "arches" filters name.
	arch string
	// scmpArch selects the archMap entry; empty if the architecture is
	// unknown, in which case no architectures are listed and the runtime
	// uses only the native one.
	scmpArch specs.Arch
	// kernel returns the host kernel version; only consulted for rules that
	// have a minKernel condition.
	kernel func() (kernelVersion, error)
}

type hostArch struct {
	native string
	scmp   specs.Arch
}

// goarchToSeccomp maps runtime.GOARCH to libseccomp's name for that
// architecture and its SCMP_ARCH_* constant. It follows moby's table, with
// the names libseccomp actually uses (moby maps loong64 and mipsle to names
// its own archMap lookup then fails to find).
var goarchToSeccomp = map[string]hostArch{
	"386":      {"x86", specs.ArchX86},
	"amd64":    {"amd64", specs.ArchX86_64},
	"arm":      {"arm", specs.ArchARM},
	"arm64":    {"arm64", specs.ArchAARCH64},
	"loong64":  {"loong64", specs.ArchLOONGARCH64},
	"mips":     {"mips", specs.ArchMIPS},
	"mipsle":   {"mipsel", specs.ArchMIPSEL},
	"mips64":   {"mips64", specs.ArchMIPS64},
	"mips64le": {"mipsel64", specs.ArchMIPSEL64},
	"ppc64":    {"ppc64", specs.ArchPPC64},
	"ppc64le":  {"ppc64le", specs.ArchPPC64LE},
	"riscv64":  {"riscv64", specs.ArchRISCV64},
	"s390x":    {"s390x", specs.ArchS390X},
}

func hostFor(goarch string, kernel func() (kernelVersion, error)) host {
	a := goarchToSeccomp[goarch]
	return host{arch: a.native, scmpArch: a.scmp, kernel: kernel}
}

func currentHost() host { return hostFor(runtime.GOARCH, hostKernel) }

var defaultProfile = sync.OnceValues(func() (*profile, error) {
	return parse(defaultProfileJSON)
})

// Default returns berth's default profile for a container whose
// bounding/effective capability set is caps (names like "CAP_SYS_ADMIN"),
// for the host architecture and kernel. It is Docker's default profile,
// resolved the way Docker resolves it.
func Default(caps []string) (*specs.LinuxSeccomp, error) {
	return defaultFor(caps, currentHost())
}

func defaultFor(caps []string, h host) (*specs.LinuxSeccomp, error) {
	p, err := defaultProfile()
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	s, err := p.resolve(caps, h)
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	return s, nil
}

// FromDockerProfile converts a profile in Docker's JSON format (what
// `--security-opt seccomp=FILE` gets) for a container whose capability set
// is caps, for the host architecture and kernel, the same way Default does.
//
// data is limited to MaxProfileSize bytes. Unlike Docker, a profile without
// a defaultAction is an error rather than "seccomp disabled".
func FromDockerProfile(data []byte, caps []string) (*specs.LinuxSeccomp, error) {
	return fromDockerProfile(data, caps, currentHost())
}

func fromDockerProfile(data []byte, caps []string, h host) (*specs.LinuxSeccomp, error) {
	if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrProfileTooLarge, len(data))
	}
	p, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	s, err := p.resolve(caps, h)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return s, nil
}

// parse decodes and validates a Docker-format profile. Validation does not
// depend on the host or the capabilities, so a profile is either valid
// everywhere or nowhere.
func parse(data []byte) (*profile, error) {
	var p profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, describeJSONError(err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d: %w", syn.Offset, err)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("field %q: JSON %s cannot be used as %s (byte %d)", typ.Field, typ.Value, typ.Type, typ.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("a profile must be a JSON object, not JSON %s", typ.Value)
	}
	return fmt.Errorf("malformed JSON: %w", err)
}

func (p *profile) validate() error {
	if p.DefaultAction == "" {
		return errors.New(`"defaultAction" is required`)
	}
	if !validActions[p.DefaultAction] {
		return fmt.Errorf(`"defaultAction": unknown action %q`, p.DefaultAction)
	}
	if err := checkErrno(p.DefaultErrnoRet); err != nil {
		return fmt.Errorf(`"defaultErrnoRet": %w`, err)
	}
	if len(p.Architectures) != 0 && len(p.ArchMap) != 0 {
		return errors.New(`both "architectures" and "archMap" are set; use one of them`)
	}
	for i, a := range p.Architectures {
		if !validArches[a] {
			return fmt.Errorf(`"architectures"[%d]: unknown architecture %q`, i, a)
		}
	}
	for i, m := range p.ArchMap {
		if !validArches[m.Arch] {
			return fmt.Errorf(`"archMap"[%d]: unknown architecture %q`, i, m.Arch)
		}
		for j, a := range m.SubArches {
			if !validArches[a] {
				return fmt.Errorf(`"archMap"[%d] (%s): "subArchitectures"[%d]: unknown architecture %q`, i, m.Arch, j, a)
			}
		}
	}
	for i, f := range p.Flags {
		if !validFlags[f] {
			return fmt.Errorf(`"flags"[%d]: unknown seccomp flag %q`, i, f)
		}
	}
	for i, r := range p.Syscalls {
		if r == nil {
			return fmt.Errorf(`"syscalls"[%d]: entry is null`, i)
		}
		if err := r.validate(); err != nil {
			return fmt.Errorf(`"syscalls"[%d] %s: %w`, i, r.label(), err)
		}
	}
	return nil
}

// label names a rule in error messages by its syscall names.
func (r *rule) label() string {
	names := r.Names
	if r.Name != "" {
		names = append([]string{r.Name}, names...)
	}
	switch len(names) {
	case 0:
		return "(no names)"
	case 1:
		return fmt.Sprintf("(%s)", quoteShort(names[0]))
	default:
		return fmt.Sprintf("(%s and %d more)", quoteShort(names[0]), len(names)-1)
	}
}

func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func (r *rule) validate() error {
	if r.Name != "" {
		if len(r.Names) != 0 {
			return errors.New(`both "name" and "names" are set; use one of them`)
		}
		// Normalise the legacy form once; resolve only reads Names.
		r.Names = []string{r.Name}
		r.Name = ""
	}
	if len(r.Names) == 0 {
		return errors.New(`no syscall names ("names" is empty)`)
	}
	for i, n := range r.Names {
		if !validSyscallName(n) {
			return fmt.Errorf(`"names"[%d]: invalid syscall name %s`, i, quoteShort(n))
		}
	}
	if r.Action == "" {
		return errors.New(`"action" is required`)
	}
	if !validActions[r.Action] {
		return fmt.Errorf(`"action": unknown action %q`, r.Action)
	}
	if err := checkErrno(r.ErrnoRet); err != nil {
		return fmt.Errorf(`"errnoRet": %w`, err)
	}
	for i, a := range r.Args {
		if a.Index > maxArgIndex {
			return fmt.Errorf(`"args"[%d]: "index" %d out of range (syscalls have arguments 0 to %d)`, i, a.Index, maxArgIndex)
		}
		if a.Op == "" {
			return fmt.Errorf(`"args"[%d]: "op" is required`, i)
		}
		if !validOps[a.Op] {
			return fmt.Errorf(`"args"[%d]: unknown operator %q`, i, a.Op)
		}
	}
	if err := r.Includes.validate(); err != nil {
		return fmt.Errorf(`"includes": %w`, err)
	}
	if err := r.Excludes.validate(); err != nil {
		return fmt.Errorf(`"excludes": %w`, err)
	}
	return nil
}

func (f *filter) validate() error {
	if f == nil {
		return nil
	}
	for i, c := range f.Caps {
		if !validCapName(c) {
			return fmt.Errorf(`"caps"[%d]: invalid capability name %s (want e.g. "CAP_SYS_ADMIN")`, i, quoteShort(c))
		}
	}
	for i, a := range f.Arches {
		if !validArchName(a) {
			return fmt.Errorf(`"arches"[%d]: invalid architecture name %s (want e.g. "amd64")`, i, quoteShort(a))
		}
	}
	// An empty string means "unset", as in moby's KernelVersion decoding.
	if f.MinKernel != nil && *f.MinKernel != "" {
		v, err := parseMinKernel(*f.MinKernel)
		if err != nil {
			return fmt.Errorf(`"minKernel": %w`, err)
		}
		f.minKernel = &v
	}
	return nil
}

func checkErrno(v *uint) error {
	if v != nil && *v > maxErrno {
		return fmt.Errorf("%d is larger than %d", *v, maxErrno)
	}
	return nil
}

// resolve evaluates the profile's conditions for one container and host and
// returns a freshly allocated OCI profile sharing no memory with p.
func (p *profile) resolve(caps []string, h host) (*specs.LinuxSeccomp, error) {
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  cloneUint(p.DefaultErrnoRet),
		Architectures:    cloneOrNil(p.Architectures),
		Flags:            cloneOrNil(p.Flags),
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
	}
	if h.scmpArch != "" {
		for _, m := range p.ArchMap {
			if m.Arch == h.scmpArch {
				out.Architectures = append(out.Architectures, m.Arch)
				out.Architectures = append(out.Architectures, m.SubArches...)
				break
			}
		}
	}
	for i, r := range p.Syscalls {
		ok, err := r.applies(caps, h)
		if err != nil {
			return nil, fmt.Errorf(`"syscalls"[%d] %s: %w`, i, r.label(), err)
		}
		if !ok {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names:    slices.Clone(r.Names),
			Action:   r.Action,
			ErrnoRet: cloneUint(r.ErrnoRet),
			Args:     cloneOrNil(r.Args),
		})
	}
	return out, nil
}

// applies reports whether rule r is part of the profile for a container with
// capabilities caps on host h. As in moby, the excludes filter is checked
// first: the rule is dropped if the host architecture is listed, if ANY of
// the listed capabilities is held, or if the host kernel is at least
// minKernel. Then the includes filter: the rule is kept only if the host
// architecture is listed, ALL listed capabilities are held, and the host
// kernel is at least minKernel. Empty lists impose no condition. Only the
// host's own architecture name is compared, not its sub-architectures.
func (r *rule) applies(caps []string, h host) (bool, error) {
	if ex := r.Excludes; ex != nil {
		if slices.Contains(ex.Arches, h.arch) {
			return false, nil
		}
		for _, c := range ex.Caps {
			if slices.Contains(caps, c) {
				return false, nil
			}
		}
		if ex.minKernel != nil {
			ok, err := kernelAtLeast(h, *ex.minKernel)
			if err != nil || ok {
				return false, err
			}
		}
	}
	if in := r.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, h.arch) {
			return false, nil
		}
		for _, c := range in.Caps {
			if !slices.Contains(caps, c) {
				return false, nil
			}
		}
		if in.minKernel != nil {
			ok, err := kernelAtLeast(h, *in.minKernel)
			if err != nil || !ok {
				return false, err
			}
		}
	}
	return true, nil
}

func kernelAtLeast(h host, want kernelVersion) (bool, error) {
	if h.kernel == nil {
		return false, errors.New("host kernel version unknown")
	}
	v, err := h.kernel()
	if err != nil {
		return false, err
	}
	return !v.less(want), nil
}

func cloneUint(v *uint) *uint {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}

func cloneOrNil[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

var validActions = map[specs.LinuxSeccompAction]bool{
	specs.ActKill:        true,
	specs.ActKillProcess: true,
	specs.ActKillThread:  true,
	specs.ActTrap:        true,
	specs.ActErrno:       true,
	specs.ActTrace:       true,
	specs.ActAllow:       true,
	specs.ActLog:         true,
	specs.ActNotify:      true,
}

var validOps = map[specs.LinuxSeccompOperator]bool{
	specs.OpNotEqual:     true,
	specs.OpLessThan:     true,
	specs.OpLessEqual:    true,
	specs.OpEqualTo:      true,
	specs.OpGreaterEqual: true,
	specs.OpGreaterThan:  true,
	specs.OpMaskedEqual:  true,
}

var validFlags = map[specs.LinuxSeccompFlag]bool{
	specs.LinuxSeccompFlagLog:              true,
	specs.LinuxSeccompFlagSpecAllow:        true,
	specs.LinuxSeccompFlagWaitKillableRecv: true,
}

var validArches = map[specs.Arch]bool{
	specs.ArchX86:         true,
	specs.ArchX86_64:      true,
	specs.ArchX32:         true,
	specs.ArchARM:         true,
	specs.ArchAARCH64:     true,
	specs.ArchMIPS:        true,
	specs.ArchMIPS64:      true,
	specs.ArchMIPS64N32:   true,
	specs.ArchMIPSEL:      true,
	specs.ArchMIPSEL64:    true,
	specs.ArchMIPSEL64N32: true,
	specs.ArchPPC:         true,
	specs.ArchPPC64:       true,
	specs.ArchPPC64LE:     true,
	specs.ArchS390:        true,
	specs.ArchS390X:       true,
	specs.ArchPARISC:      true,
	specs.ArchPARISC64:    true,
	specs.ArchRISCV64:     true,
	specs.ArchLOONGARCH64: true,
	specs.ArchM68K:        true,
	specs.ArchSH:          true,
	specs.ArchSHEB:        true,
}

// validSyscallName accepts what syscall names look like ("read",
// "_llseek", "arm_fadvise64_64"); whether the name exists on the host is the
// runtime's concern.
func validSyscallName(s string) bool {
	return len(s) > 0 && len(s) <= 64 && strings.TrimFunc(s, isWordChar) == ""
}

// validCapName accepts "CAP_" followed by upper-case letters, digits and
// underscores. moby compares capability names verbatim, so "sys_admin"
// would silently never match; reject it instead.
func validCapName(s string) bool {
	rest, ok := strings.CutPrefix(s, "CAP_")
	return ok && len(rest) > 0 && len(rest) <= 64 && strings.TrimFunc(rest, func(c rune) bool {
		return c == '_' || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	}) == ""
}

// validArchName accepts libseccomp-style architecture names ("amd64", "x32",
// "s390x"). Unknown but well-formed names are allowed: they simply never
// match, as in moby.
func validArchName(s string) bool {
	return len(s) > 0 && len(s) <= 32 && strings.TrimFunc(s, func(c rune) bool {
		return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
	}) == ""
}

func isWordChar(c rune) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

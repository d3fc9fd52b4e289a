package seccomp

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// kernelVersion is the "<major>.<minor>" part of a kernel release, which is
// all that minKernel conditions compare (as in moby: "3.12.25-gentoo",
// "3.12-1-amd64" and "3.12" are equal).
type kernelVersion struct {
	major, minor uint64
}

func (v kernelVersion) less(o kernelVersion) bool {
	if v.major != o.major {
		return v.major < o.major
	}
	return v.minor < o.minor
}

func (v kernelVersion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

// parseMinKernel parses a profile's minKernel value, which must be exactly
// "<major>.<minor>" with each part a decimal number up to 255 (the limits
// moby applies), and not "0.0".
func parseMinKernel(s string) (kernelVersion, error) {
	bad := func(why string) (kernelVersion, error) {
		return kernelVersion{}, fmt.Errorf(`invalid kernel version %s, want "<major>.<minor>" such as "4.8": %s`, quoteShort(s), why)
	}
	majStr, minStr, ok := strings.Cut(s, ".")
	if !ok || strings.Contains(minStr, ".") {
		return bad("need exactly two numbers separated by a dot")
	}
	var v kernelVersion
	var err error
	if v.major, err = strconv.ParseUint(majStr, 10, 8); err != nil {
		return bad("major version is not a number from 0 to 255")
	}
	if v.minor, err = strconv.ParseUint(minStr, 10, 8); err != nil {
		return bad("minor version is not a number from 0 to 255")
	}
	if v == (kernelVersion{}) {
		return bad("version cannot be 0.0")
	}
	return v, nil
}

// parseRelease extracts the version from a kernel release string as uname(2)
// reports it ("6.18.0-1-amd64", "3.12-1-amd64", "5.4.0+"): the leading
// "<major>.<minor>" numbers; anything after them is ignored.
func parseRelease(release string) (kernelVersion, error) {
	majStr, rest := leadingDigits(release)
	rest, dot := strings.CutPrefix(rest, ".")
	minStr, _ := leadingDigits(rest)
	if majStr == "" || !dot || minStr == "" {
		return kernelVersion{}, fmt.Errorf("cannot parse kernel release %s", quoteShort(release))
	}
	var v kernelVersion
	var err error
	if v.major, err = strconv.ParseUint(majStr, 10, 64); err != nil {
		return kernelVersion{}, fmt.Errorf("cannot parse kernel release %s: %w", quoteShort(release), err)
	}
	if v.minor, err = strconv.ParseUint(minStr, 10, 64); err != nil {
		return kernelVersion{}, fmt.Errorf("cannot parse kernel release %s: %w", quoteShort(release), err)
	}
	return v, nil
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// hostKernel returns the running kernel's version, read once with uname(2).
var hostKernel = sync.OnceValues(func() (kernelVersion, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return kernelVersion{}, fmt.Errorf("uname: %w", err)
	}
	return parseRelease(unix.ByteSliceToString(uts.Release[:]))
})

package fsat

import (
	"archive/tar"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCleanRel(t *testing.T) {
	for in, want := range map[string]string{
		"":            "",
		".":           "",
		"/":           "",
		"./a/b/":      "a/b",
		"../../../x":  "x",
		"/etc/passwd": "etc/passwd",
		"a/../../b":   "b",
		"a//b/./c":    "a/b/c",
		"...":         "...",
	} {
		if got := CleanRel(in); got != want {
			t.Errorf("CleanRel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitJoinRel(t *testing.T) {
	tests := []struct {
		path, dir, base string
	}{
		{"", "", ""},
		{"a", "", "a"},
		{"a/b", "a", "b"},
		{"a/b/c", "a/b", "c"},
	}
	for _, tc := range tests {
		dir, base := SplitRel(tc.path)
		if dir != tc.dir || base != tc.base {
			t.Errorf("SplitRel(%q) = %q, %q, want %q, %q", tc.path, dir, base, tc.dir, tc.base)
		}
		if got := JoinRel(dir, base); got != tc.path {
			t.Errorf("JoinRel(%q, %q) = %q, want %q", dir, base, got, tc.path)
		}
	}
	if got := JoinRel("a/b", ""); got != "a/b" {
		t.Errorf(`JoinRel("a/b", "") = %q, want "a/b"`, got)
	}
}

func TestCheckName(t *testing.T) {
	long := strings.Repeat("a/", 2100) + "f"
	comp := strings.Repeat("x", 256)
	tests := []struct {
		name string
		raw  string
		msg  string // "" for no error
	}{
		{"root", "", ""},
		{"short", "a/b", ""},
		{"longest component", "d/" + strings.Repeat("x", 255), ""},
		{"name too long", long, "4096"},
		{"component too long", "d/" + comp, "255"},
		{"long component cleaned away", "d/" + comp + "/..", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckName(tc.raw, CleanRel(tc.raw))
			switch {
			case tc.msg == "" && err != nil:
				t.Errorf("CheckName(%q): %v", tc.raw, err)
			case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Errorf("CheckName(%q) = %v, want an error with %q", tc.raw, err, tc.msg)
			}
		})
	}
}

func TestDeviceNode(t *testing.T) {
	tests := []struct {
		name           string
		typ            byte
		major, minor   int64
		mode           uint32
		dmajor, dminor uint32
		err            bool
	}{
		{"char", tar.TypeChar, 1, 3, unix.S_IFCHR, 1, 3, false},
		{"block", tar.TypeBlock, 8, 1, unix.S_IFBLK, 8, 1, false},
		{"fifo ignores numbers", tar.TypeFifo, -1, 1 << 40, unix.S_IFIFO, 0, 0, false},
		{"negative major", tar.TypeChar, -1, 0, 0, 0, 0, true},
		{"minor too large", tar.TypeBlock, 0, 1 << 32, 0, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode, dev, err := DeviceNode(&tar.Header{Typeflag: tc.typ, Devmajor: tc.major, Devminor: tc.minor})
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "out of range") {
					t.Fatalf("err = %v, want out of range", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mode != tc.mode || unix.Major(uint64(dev)) != tc.dmajor || unix.Minor(uint64(dev)) != tc.dminor {
				t.Errorf("got mode %#o device %d:%d, want %#o %d:%d", mode,
					unix.Major(uint64(dev)), unix.Minor(uint64(dev)), tc.mode, tc.dmajor, tc.dminor)
			}
		})
	}
}

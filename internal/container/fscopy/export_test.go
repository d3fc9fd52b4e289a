package fscopy

import (
	"archive/tar"
	"bytes"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// sampleTree is a small root filesystem with every kind of entry.
func sampleTree(tb testing.TB, root string) {
	tb.Helper()
	mkTree(tb, root,
		dir("bin", 0o755),
		reg("bin/sh", "#!shell", 0o755),
		hard("bin/bash", "bin/sh"),
		dir("dev", 0o755),
		chr("dev/null", 1, 3, 0o666),
		fifo("dev/pipe", 0o620),
		dir("etc", 0o755).xattr("trusted.overlay.opaque", "y"),
		reg("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644).xattr("user.note", "hello").
			xattr("trusted.overlay.origin", "x").xattr("trusted.berth", "t"),
		reg("etc/shadow", "root:*:1::::::\n", 0o640).owner(0, 42),
		sym("etc/localtime", "/usr/share/zoneinfo/UTC"),
		dir("home", 0o755),
		dir("home/user", 0o700).owner(1000, 1000),
		reg("home/user/.profile", "", 0o600).owner(1000, 1000),
		sym("lib", "usr/lib"),
		sym("rootlink", "/"),
		dir("tmp", 0o1777),
		dir("usr", 0o755),
		dir("usr/bin", 0o755),
		reg("usr/bin/su", "su", 0o4755),
		dir("usr/lib", 0o755),
	)
	// A socket is skipped.
	l, err := net.Listen("unix", filepath.Join(root, "tmp/sock"))
	must(tb, err)
	tb.Cleanup(func() { l.Close() })
	ts := []unix.Timespec{unix.NsecToTimespec(t0.UnixNano()), unix.NsecToTimespec(t0.UnixNano())}
	must(tb, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "tmp"), ts, 0))
}

func TestExport(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	sampleTree(t, root)
	var buf bytes.Buffer
	must(t, Export(&buf, root))
	ents := readTar(t, buf.Bytes())

	wantNames := []string{
		"bin/", "bin/bash", "bin/sh",
		"dev/", "dev/null", "dev/pipe",
		"etc/", "etc/localtime", "etc/passwd", "etc/shadow",
		"home/", "home/user/", "home/user/.profile",
		"lib", "rootlink",
		"tmp/",
		"usr/", "usr/bin/", "usr/bin/su", "usr/lib/",
	}
	if got := tarNames(ents); !slices.Equal(got, wantNames) {
		t.Fatalf("names:\n got %q\nwant %q", got, wantNames)
	}
	byName := make(map[string]tarEnt)
	for _, e := range ents {
		byName[e.hdr.Name] = e
		if !e.hdr.ModTime.Equal(t0) {
			t.Errorf("%s: mtime %v, want %v", e.hdr.Name, e.hdr.ModTime, t0)
		}
		if e.hdr.Uname != "" || e.hdr.Gname != "" {
			t.Errorf("%s: uname/gname %q/%q", e.hdr.Name, e.hdr.Uname, e.hdr.Gname)
		}
	}
	tests := []struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		link     string
		body     string
	}{
		{"bin/", tar.TypeDir, 0o755, 0, 0, "", ""},
		{"bin/bash", tar.TypeReg, 0o755, 0, 0, "", "#!shell"}, // first of the two names
		{"bin/sh", tar.TypeLink, 0o755, 0, 0, "bin/bash", ""},
		{"dev/pipe", tar.TypeFifo, 0o620, 0, 0, "", ""},
		{"etc/localtime", tar.TypeSymlink, 0o777, 0, 0, "/usr/share/zoneinfo/UTC", ""},
		{"etc/shadow", tar.TypeReg, 0o640, 0, 42, "", "root:*:1::::::\n"},
		{"home/user/", tar.TypeDir, 0o700, 1000, 1000, "", ""},
		{"lib", tar.TypeSymlink, 0o777, 0, 0, "usr/lib", ""},
		{"rootlink", tar.TypeSymlink, 0o777, 0, 0, "/", ""},
		{"tmp/", tar.TypeDir, 0o1777, 0, 0, "", ""},
		{"usr/bin/su", tar.TypeReg, 0o4755, 0, 0, "", "su"},
	}
	for _, tc := range tests {
		e, ok := byName[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		h := e.hdr
		if h.Typeflag != tc.typ || h.Mode != tc.mode || h.Uid != tc.uid || h.Gid != tc.gid ||
			h.Linkname != tc.link || e.body != tc.body {
			t.Errorf("%s: got type %q mode %#o owner %d:%d link %q body %q", tc.name,
				h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, e.body)
		}
	}
	if n := byName["dev/null"].hdr; n.Typeflag != tar.TypeChar || n.Devmajor != 1 || n.Devminor != 3 || n.Mode != 0o666 {
		t.Errorf("dev/null: %+v", n)
	}
	px := byName["etc/passwd"].hdr.PAXRecords
	if px[fsat.PAXXattrPrefix+"user.note"] != "hello" || px[fsat.PAXXattrPrefix+"trusted.berth"] != "t" {
		t.Errorf("etc/passwd xattrs: %v", px)
	}
	if _, ok := px[fsat.PAXXattrPrefix+"trusted.overlay.origin"]; ok {
		t.Errorf("overlay xattr exported: %v", px)
	}
	if _, ok := byName["etc/"].hdr.PAXRecords[fsat.PAXXattrPrefix+"trusted.overlay.opaque"]; ok {
		t.Errorf("overlay opaque xattr exported")
	}

	// Deterministic.
	var again bytes.Buffer
	must(t, Export(&again, root))
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("two exports of the same tree differ")
	}
}

// TestExportHostile: symlinks pointing at host files are archived as
// symlinks; the host content never appears.
func TestExportHostile(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	mkTree(t, e.rootfs,
		sym("abs", filepath.Join(e.canary, "secret")),
		sym("absdir", e.canary),
		sym("rel", "../canary/secret"),
		sym("proc", "/proc/self/root"+e.canary),
		reg("ok", "fine", 0o644),
	)
	var buf bytes.Buffer
	must(t, Export(&buf, e.rootfs))
	noSecret(t, "", buf.Bytes())
	for _, ent := range readTar(t, buf.Bytes()) {
		if ent.hdr.Name != "ok" && ent.hdr.Typeflag != tar.TypeSymlink {
			t.Errorf("%s: type %q, want a symlink", ent.hdr.Name, ent.hdr.Typeflag)
		}
	}
	e.check(t)
}

package fscopy

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsat"
)

// t0 is the default time of test files; it has nanoseconds so that lost
// precision shows.
var t0 = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

// secret is the content of the host canary file; no copy may ever reveal it.
const secret = "TOP SECRET host canary"

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (chown, mknod, trusted.* xattrs)")
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// fsEnt describes a file to create (in a tree) or found (in a tar).
type fsEnt struct {
	name     string
	typ      byte // tar type flag
	mode     int64
	uid, gid int
	body     string
	link     string // symlink target or hard link target
	major    int64
	minor    int64
	xattrs   map[string]string
}

func reg(name, body string, mode int64) fsEnt {
	return fsEnt{name: name, typ: tar.TypeReg, body: body, mode: mode}
}
func dir(name string, mode int64) fsEnt { return fsEnt{name: name, typ: tar.TypeDir, mode: mode} }
func sym(name, target string) fsEnt {
	return fsEnt{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hard(name, target string) fsEnt { return fsEnt{name: name, typ: tar.TypeLink, link: target} }
func fifo(name string, mode int64) fsEnt {
	return fsEnt{name: name, typ: tar.TypeFifo, mode: mode}
}
func chr(name string, major, minor, mode int64) fsEnt {
	return fsEnt{name: name, typ: tar.TypeChar, major: major, minor: minor, mode: mode}
}

func (e fsEnt) owner(uid, gid int) fsEnt { e.uid, e.gid = uid, gid; return e }

func (e fsEnt) xattr(k, v string) fsEnt {
	m := make(map[string]string, len(e.xattrs)+1)
	for k2, v2 := range e.xattrs {
		m[k2] = v2
	}
	m[k] = v
	e.xattrs = m
	return e
}

// mkTree creates ents below root, parents first, with times t0.
func mkTree(tb testing.TB, root string, ents ...fsEnt) {
	tb.Helper()
	var dirs []string
	for _, e := range ents {
		p := filepath.Join(root, e.name)
		must(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		switch e.typ {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
				tb.Fatal(err)
			}
			dirs = append(dirs, p)
		case tar.TypeReg:
			must(tb, os.WriteFile(p, []byte(e.body), 0o600))
		case tar.TypeSymlink:
			must(tb, os.Symlink(e.link, p))
		case tar.TypeLink:
			must(tb, os.Link(filepath.Join(root, e.link), p))
			continue
		case tar.TypeFifo:
			must(tb, unix.Mkfifo(p, 0o600))
		case tar.TypeChar:
			must(tb, unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(uint32(e.major), uint32(e.minor)))))
		default:
			tb.Fatalf("mkTree: type %q", e.typ)
		}
		must(tb, os.Lchown(p, e.uid, e.gid))
		if e.typ != tar.TypeSymlink {
			must(tb, unix.Fchmodat(unix.AT_FDCWD, p, uint32(e.mode), 0))
		}
		for k, v := range e.xattrs {
			must(tb, unix.Lsetxattr(p, k, []byte(v), 0))
		}
		ts := []unix.Timespec{unix.NsecToTimespec(t0.UnixNano()), unix.NsecToTimespec(t0.UnixNano())}
		must(tb, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	// Creating children changed the directories' times.
	for i := len(dirs) - 1; i >= 0; i-- {
		ts := []unix.Timespec{unix.NsecToTimespec(t0.UnixNano()), unix.NsecToTimespec(t0.UnixNano())}
		must(tb, unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// mkTar builds an archive of ents.
func mkTar(tb testing.TB, ents ...fsEnt) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{
			Typeflag: e.typ, Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, Devmajor: e.major, Devminor: e.minor, ModTime: t0,
			Size: int64(len(e.body)), Format: tar.FormatPAX,
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = make(map[string]string)
			}
			hdr.PAXRecords[fsat.PAXXattrPrefix+k] = v
		}
		must(tb, tw.WriteHeader(hdr))
		if _, err := tw.Write([]byte(e.body)); err != nil {
			tb.Fatal(err)
		}
	}
	must(tb, tw.Close())
	return buf.Bytes()
}

// tarEnt is an entry read back from a tar.
type tarEnt struct {
	hdr  tar.Header
	body string
}

func readTar(tb testing.TB, data []byte) []tarEnt {
	tb.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out []tarEnt
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(tb, err)
		b, err := io.ReadAll(tr)
		must(tb, err)
		out = append(out, tarEnt{hdr: *hdr, body: string(b)})
	}
}

func tarNames(ents []tarEnt) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.hdr.Name)
	}
	return out
}

// fileState is what a test compares of a file.
type fileState struct {
	mode     uint32
	uid, gid uint32
	size     int64
	nlink    uint64
	mtime    int64
	body     string
	link     string
	xattrs   string
}

// snapshot records every file below dir (without following symlinks).
func snapshot(tb testing.TB, dir string) map[string]fileState {
	tb.Helper()
	out := make(map[string]fileState)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, nlink: st.Nlink,
			mtime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.body = string(b)
		case unix.S_IFLNK:
			s.link, _ = os.Readlink(p)
		case unix.S_IFDIR:
			s.size = 0
		}
		buf := make([]byte, 64<<10)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			names := strings.Split(string(buf[:n]), "\x00")
			slices.Sort(names)
			for _, k := range names {
				if k == "" {
					continue
				}
				v := make([]byte, 64<<10)
				m, _ := unix.Lgetxattr(p, k, v)
				s.xattrs += k + "=" + string(v[:max(m, 0)]) + ";"
			}
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = s
		return nil
	})
	must(tb, err)
	return out
}

func sameSnapshot(tb testing.TB, what string, before, after map[string]fileState) {
	tb.Helper()
	for k, b := range before {
		a, ok := after[k]
		if !ok {
			tb.Errorf("%s: %s disappeared", what, k)
			continue
		}
		if a != b {
			tb.Errorf("%s: %s changed: %+v -> %+v", what, k, b, a)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			tb.Errorf("%s: %s appeared", what, k)
		}
	}
}

// hostEnv is a rootfs next to a host canary tree that hostile content aims
// at, and a host output directory.
type hostEnv struct {
	base, rootfs, canary, out string
	before                    map[string]fileState
}

func newHostEnv(tb testing.TB) *hostEnv {
	tb.Helper()
	base := tb.TempDir()
	e := &hostEnv{
		base:   base,
		rootfs: filepath.Join(base, "rootfs"),
		canary: filepath.Join(base, "canary"),
		out:    filepath.Join(base, "out"),
	}
	must(tb, os.Mkdir(e.rootfs, 0o755))
	must(tb, os.Mkdir(e.out, 0o755))
	mkTree(tb, e.canary,
		dir("", 0o755),
		reg("secret", secret, 0o600),
		dir("dir", 0o755),
		reg("dir/inner", secret, 0o644),
		sym("link", "secret"),
	)
	e.before = snapshot(tb, e.canary)
	return e
}

// check asserts that the canary is untouched.
func (e *hostEnv) check(tb testing.TB) {
	tb.Helper()
	sameSnapshot(tb, "canary", e.before, snapshot(tb, e.canary))
	ents, err := os.ReadDir(e.base)
	must(tb, err)
	for _, d := range ents {
		switch d.Name() {
		case "rootfs", "canary", "out", "src":
		default:
			tb.Errorf("%s appeared next to the container root", d.Name())
		}
	}
}

// noSecret asserts that the secret appears nowhere below dir nor in data.
func noSecret(tb testing.TB, dir string, data []byte) {
	tb.Helper()
	if bytes.Contains(data, []byte(secret)) {
		tb.Errorf("the host secret was revealed in a tar")
	}
	if dir == "" {
		return
	}
	for p, s := range snapshot(tb, dir) {
		if strings.Contains(s.body, secret) {
			tb.Errorf("the host secret was revealed in %s", p)
		}
	}
}

func readFile(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	must(tb, err)
	return string(b)
}

func lstat(tb testing.TB, p string) unix.Stat_t {
	tb.Helper()
	var st unix.Stat_t
	must(tb, unix.Lstat(p, &st))
	return st
}

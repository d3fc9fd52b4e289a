package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// t0 is the default entry time; it has nanoseconds so that lost precision
// shows.
var t0 = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)

// entry is one tar entry of a test archive.
type entry struct {
	hdr  tar.Header
	body []byte
}

func newEntry(typ byte, name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: t0, Format: tar.FormatPAX}}
}

func regE(name, body string, mode int64) entry {
	e := newEntry(tar.TypeReg, name, mode)
	e.body = []byte(body)
	e.hdr.Size = int64(len(body))
	return e
}

func dirE(name string, mode int64) entry { return newEntry(tar.TypeDir, name, mode) }

func symE(name, target string) entry {
	e := newEntry(tar.TypeSymlink, name, 0o777)
	e.hdr.Linkname = target
	return e
}

func linkE(name, target string) entry {
	e := newEntry(tar.TypeLink, name, 0o644)
	e.hdr.Linkname = target
	return e
}

func devE(typ byte, name string, major, minor, mode int64) entry {
	e := newEntry(typ, name, mode)
	e.hdr.Devmajor, e.hdr.Devminor = major, minor
	return e
}

func (e entry) owner(uid, gid int) entry {
	e.hdr.Uid, e.hdr.Gid = uid, gid
	return e
}

func (e entry) xattr(name, value string) entry {
	recs := make(map[string]string, len(e.hdr.PAXRecords)+1)
	for k, v := range e.hdr.PAXRecords {
		recs[k] = v
	}
	recs["SCHILY.xattr."+name] = value
	e.hdr.PAXRecords = recs
	return e
}

func (e entry) times(mtime, atime time.Time) entry {
	e.hdr.ModTime, e.hdr.AccessTime = mtime, atime
	return e
}

// mkTar builds an uncompressed tar of ents.
func mkTar(tb testing.TB, ents ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatalf("tar header %q: %v", e.hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			tb.Fatalf("tar body %q: %v", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// fileInfo is everything the tests look at for one file.
type fileInfo struct {
	Type         string
	Perm         uint32 // permission bits incl. setuid/setgid/sticky
	UID, GID     uint32
	Content      string // regular files: sha256 of the content
	Target       string // symlinks
	Major, Minor uint32
	Xattrs       map[string]string
	Mtime        int64 // ns
	Ctime        int64 // ns
	Ino, Nlink   uint64
	Size         int64
}

func fileType(mode uint32, rdev uint64) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		if rdev == 0 {
			return "whiteout"
		}
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFIFO:
		return "fifo"
	}
	return "other"
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func lxattrs(tb testing.TB, p string) map[string]string {
	tb.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		tb.Fatalf("llistxattr %s: %v", p, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		sz, err := unix.Lgetxattr(p, name, buf)
		if err != nil {
			tb.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		out[name] = string(buf[:sz])
	}
	return out
}

func statInfo(tb testing.TB, p string) fileInfo {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		tb.Fatalf("lstat %s: %v", p, err)
	}
	fi := fileInfo{
		Type:   fileType(st.Mode, st.Rdev),
		Perm:   st.Mode & 0o7777,
		UID:    st.Uid,
		GID:    st.Gid,
		Xattrs: lxattrs(tb, p),
		Mtime:  st.Mtim.Nano(),
		Ctime:  st.Ctim.Nano(),
		Ino:    st.Ino,
		Nlink:  st.Nlink,
		Size:   st.Size,
	}
	switch fi.Type {
	case "file":
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		fi.Content = sha(b)
	case "symlink":
		t, err := os.Readlink(p)
		if err != nil {
			tb.Fatal(err)
		}
		fi.Target = t
	case "char", "block":
		fi.Major, fi.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	return fi
}

// scanTree returns every entry under root (root itself as ".").
func scanTree(tb testing.TB, root string) map[string]fileInfo {
	tb.Helper()
	out := map[string]fileInfo{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out[rel] = statInfo(tb, p)
		return nil
	})
	if err != nil {
		tb.Fatalf("scanning %s: %v", root, err)
	}
	return out
}

// want describes an expected entry. Type and owner are always checked;
// other zero fields (and nil Xattrs) are not.
type want struct {
	Type     string
	Perm     uint32
	UID, GID uint32
	Content  *string
	Target   string
	Major    uint32
	Minor    uint32
	Xattrs   map[string]string
	Mtime    time.Time
	SameAs   string // must be the same inode as this path
}

func str(s string) *string { return &s }

// checkTree asserts that root holds exactly the paths in w (root itself
// excluded unless listed as ".") with the described properties.
func checkTree(t *testing.T, root string, w map[string]want) {
	t.Helper()
	got := scanTree(t, root)
	if _, ok := w["."]; !ok {
		delete(got, ".")
	}
	for p := range got {
		if _, ok := w[p]; !ok {
			t.Errorf("unexpected entry %q (%s)", p, got[p].Type)
		}
	}
	for p, e := range w {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing entry %q", p)
			continue
		}
		if g.Type != e.Type {
			t.Errorf("%q: type %s, want %s", p, g.Type, e.Type)
			continue
		}
		if e.Perm != 0 && g.Perm != e.Perm {
			t.Errorf("%q: perm %#o, want %#o", p, g.Perm, e.Perm)
		}
		if g.UID != e.UID || g.GID != e.GID {
			t.Errorf("%q: owner %d:%d, want %d:%d", p, g.UID, g.GID, e.UID, e.GID)
		}
		if e.Content != nil && g.Content != sha([]byte(*e.Content)) {
			b, _ := os.ReadFile(filepath.Join(root, p))
			t.Errorf("%q: content %q, want %q", p, b, *e.Content)
		}
		if e.Target != "" && g.Target != e.Target {
			t.Errorf("%q: symlink target %q, want %q", p, g.Target, e.Target)
		}
		if (e.Major != 0 || e.Minor != 0) && (g.Major != e.Major || g.Minor != e.Minor) {
			t.Errorf("%q: device %d:%d, want %d:%d", p, g.Major, g.Minor, e.Major, e.Minor)
		}
		if e.Xattrs != nil && !equalMaps(g.Xattrs, e.Xattrs) {
			t.Errorf("%q: xattrs %v, want %v", p, g.Xattrs, e.Xattrs)
		}
		if !e.Mtime.IsZero() && g.Mtime != e.Mtime.UnixNano() {
			t.Errorf("%q: mtime %v, want %v", p, time.Unix(0, g.Mtime).UTC(), e.Mtime.UTC())
		}
		if e.SameAs != "" {
			if o, ok := got[e.SameAs]; !ok || o.Ino != g.Ino {
				t.Errorf("%q: not a hard link of %q", p, e.SameAs)
			}
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (chown, mknod, trusted.* xattrs)")
	}
}

// applyBytes applies an in-memory tar into a fresh directory.
func applyBytes(t *testing.T, data []byte) (string, ApplyResult, error) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := ApplyLayer(root, bytes.NewReader(data))
	return root, res, err
}

package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fileCaps is a VFS_CAP_REVISION_2 security.capability value granting
// CAP_NET_RAW (permitted, effective).
const fileCaps = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

var (
	t1 = time.Date(2019, 1, 2, 3, 4, 5, 987654321, time.UTC)
	t2 = time.Date(2020, 6, 7, 8, 9, 10, 111222333, time.UTC)
)

func TestApplyLayerRoundTrip(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		ents  []entry
		want  map[string]want
		links []Link
	}{
		{
			name: "every type with metadata",
			ents: []entry{
				dirE("etc/", 0o755),
				regE("etc/passwd", "root:x:0:0\n", 0o644),
				dirE("home/user/", 0o750).owner(1000, 1000),
				regE("home/user/.profile", "export A=1\n", 0o600).owner(1000, 1001),
				regE("usr/bin/sudo", "sudo binary", 0o4755),
				regE("usr/bin/wall", "wall binary", 0o2755).owner(0, 5),
				dirE("tmp/", 0o1777),
				dirE("srv/", 0o2775).owner(0, 50),
				symE("etc/localtime", "/usr/share/zoneinfo/UTC").owner(3, 4),
				linkE("usr/bin/sudoedit", "usr/bin/sudo"),
				devE(tar.TypeChar, "dev/null", 1, 3, 0o666),
				devE(tar.TypeBlock, "dev/loop0", 7, 0, 0o660).owner(0, 6),
				newEntry(tar.TypeFifo, "run/initctl", 0o620),
				regE("usr/bin/ping", "ping binary", 0o755).owner(0, 2).xattr("security.capability", fileCaps),
				regE("srv/doc.txt", "hello", 0o644).xattr("user.mime", "text/plain").xattr("trusted.note", "t"),
				dirE("srv/x/", 0o755).xattr("user.dir", "d"),
			},
			want: map[string]want{
				"etc":                {Type: "dir", Perm: 0o755, Mtime: t0},
				"etc/passwd":         {Type: "file", Perm: 0o644, Content: str("root:x:0:0\n"), Mtime: t0},
				"etc/localtime":      {Type: "symlink", Target: "/usr/share/zoneinfo/UTC", UID: 3, GID: 4, Mtime: t0},
				"home":               {Type: "dir", Perm: 0o755},
				"home/user":          {Type: "dir", Perm: 0o750, UID: 1000, GID: 1000, Mtime: t0},
				"home/user/.profile": {Type: "file", Perm: 0o600, UID: 1000, GID: 1001, Content: str("export A=1\n")},
				"usr":                {Type: "dir", Perm: 0o755},
				"usr/bin":            {Type: "dir", Perm: 0o755},
				"usr/bin/sudo":       {Type: "file", Perm: 0o4755, Content: str("sudo binary"), Xattrs: map[string]string{}},
				"usr/bin/sudoedit":   {Type: "file", Perm: 0o4755, SameAs: "usr/bin/sudo"},
				"usr/bin/wall":       {Type: "file", Perm: 0o2755, GID: 5, Content: str("wall binary")},
				"usr/bin/ping": {Type: "file", Perm: 0o755, GID: 2, Content: str("ping binary"),
					Xattrs: map[string]string{"security.capability": fileCaps}},
				"tmp": {Type: "dir", Perm: 0o1777, Mtime: t0},
				"srv": {Type: "dir", Perm: 0o2775, GID: 50, Mtime: t0},
				"srv/doc.txt": {Type: "file", Perm: 0o644, Content: str("hello"),
					Xattrs: map[string]string{"user.mime": "text/plain", "trusted.note": "t"}},
				"srv/x":       {Type: "dir", Perm: 0o755, Xattrs: map[string]string{"user.dir": "d"}},
				"dev":         {Type: "dir", Perm: 0o755},
				"dev/null":    {Type: "char", Perm: 0o666, Major: 1, Minor: 3, Mtime: t0},
				"dev/loop0":   {Type: "block", Perm: 0o660, GID: 6, Major: 7, Minor: 0},
				"run":         {Type: "dir", Perm: 0o755},
				"run/initctl": {Type: "fifo", Perm: 0o620, Mtime: t0},
			},
		},
		{
			name: "whiteouts and opaque directories",
			ents: []entry{
				dirE("a/", 0o755),
				regE("a/keep", "k", 0o644),
				regE(".wh.gone", "", 0o644),
				regE("a/.wh.old", "", 0o644),
				dirE("b/", 0o700),
				regE("b/.wh..wh..opq", "", 0o644),
				regE("b/new", "n", 0o644),
				regE("c/.wh..wh..opq", "", 0o644),
				regE(".wh..wh.plnk/123.45", "aufs", 0o644),
				regE(".wh..wh.aufs", "", 0o644),
				regE("a/.wh..wh.orph", "", 0o644),
			},
			want: map[string]want{
				"a":      {Type: "dir", Xattrs: map[string]string{}},
				"a/keep": {Type: "file", Content: str("k")},
				"gone":   {Type: "whiteout"},
				"a/old":  {Type: "whiteout"},
				"b":      {Type: "dir", Perm: 0o700, Xattrs: map[string]string{opaqueXattr: "y"}, Mtime: t0},
				"b/new":  {Type: "file", Content: str("n")},
				"c":      {Type: "dir", Perm: 0o755, Xattrs: map[string]string{opaqueXattr: "y"}},
			},
		},
		{
			name: "later entries replace earlier ones",
			ents: []entry{
				regE("f2d", "file", 0o644),
				dirE("f2d/", 0o711),
				dirE("d2f/", 0o755),
				regE("d2f/child", "c", 0o644),
				dirE("d2f/sub/", 0o755),
				regE("d2f/sub/deep", "c", 0o644),
				regE("d2f", "now a file", 0o640),
				regE("f2s", "file", 0o644),
				symE("f2s", "target"),
				symE("s2f", "/etc/passwd"),
				regE("s2f", "plain", 0o600),
				dirE("dd/", 0o700),
				regE("dd/f", "f", 0o644),
				dirE("dd/", 0o755).owner(7, 8).times(t1, t1),
				regE("wf", "file", 0o644),
				regE(".wh.wf", "", 0o644),
				dirE("wd/", 0o755),
				regE("wd/inner", "i", 0o644),
				regE(".wh.wd", "", 0o644),
				regE(".wh.again", "", 0o644),
				regE("again", "back", 0o644),
				regE("t", "T", 0o644),
				regE("l", "old", 0o644),
				linkE("l", "t"),
				linkE("l", "t"),
				devE(tar.TypeChar, "dev", 1, 5, 0o600),
				devE(tar.TypeChar, "dev", 1, 7, 0o644),
				dirE("r/", 0o755).times(t1, t1),
				regE("r/x", "x", 0o644),
				regE("r", "file", 0o644).times(t2, t2),
				dirE("q/", 0o755).times(t1, t1),
				regE(".wh.q", "", 0o644),
				dirE("q/", 0o750).times(t2, t2),
				dirE("q2/", 0o755).times(t1, t1),
				regE("q2", "", 0o644),
				dirE("q2/", 0o750),
			},
			want: map[string]want{
				"f2d":   {Type: "dir", Perm: 0o711, Mtime: t0},
				"d2f":   {Type: "file", Perm: 0o640, Content: str("now a file")},
				"f2s":   {Type: "symlink", Target: "target"},
				"s2f":   {Type: "file", Perm: 0o600, Content: str("plain")},
				"dd":    {Type: "dir", Perm: 0o755, UID: 7, GID: 8, Mtime: t1},
				"dd/f":  {Type: "file", Content: str("f")},
				"wf":    {Type: "whiteout"},
				"wd":    {Type: "whiteout"},
				"again": {Type: "file", Content: str("back")},
				"t":     {Type: "file", Content: str("T")},
				"l":     {Type: "file", SameAs: "t"},
				"dev":   {Type: "char", Perm: 0o644, Major: 1, Minor: 7},
				"r":     {Type: "file", Content: str("file"), Mtime: t2},
				"q":     {Type: "dir", Perm: 0o750, Mtime: t2, Xattrs: map[string]string{opaqueXattr: "y"}},
				"q2":    {Type: "dir", Perm: 0o750, Mtime: t0, Xattrs: map[string]string{}},
			},
		},
		{
			name: "directory over a whiteout of the same layer is opaque",
			ents: []entry{
				regE(".wh.d", "", 0o644),
				regE("d/x", "x", 0o644),
				regE(".wh.e", "", 0o644),
				dirE("e/", 0o700),
				dirE("f/", 0o755),
				regE("f/.wh.g", "", 0o644),
				symE("f/g", "elsewhere"),
			},
			want: map[string]want{
				"d":   {Type: "dir", Perm: 0o755, Xattrs: map[string]string{opaqueXattr: "y"}},
				"d/x": {Type: "file", Content: str("x")},
				"e":   {Type: "dir", Perm: 0o700, Xattrs: map[string]string{opaqueXattr: "y"}, Mtime: t0},
				"f":   {Type: "dir", Xattrs: map[string]string{}},
				"f/g": {Type: "symlink", Target: "elsewhere"},
			},
		},
		{
			name: "root entry and implicit parents",
			ents: []entry{
				dirE("./", 0o711).times(t1, t2),
				regE("a/b/c/file", "x", 0o644),
				dirE("a/b/", 0o700).owner(1, 1),
			},
			want: map[string]want{
				".":          {Type: "dir", Perm: 0o711, Mtime: t1},
				"a":          {Type: "dir", Perm: 0o755},
				"a/b":        {Type: "dir", Perm: 0o700, UID: 1, GID: 1, Mtime: t0},
				"a/b/c":      {Type: "dir", Perm: 0o755},
				"a/b/c/file": {Type: "file", Content: str("x")},
			},
		},
		{
			name: "absolute root entry",
			ents: []entry{dirE("/", 0o700), regE("/abs", "a", 0o644)},
			want: map[string]want{
				".":   {Type: "dir", Perm: 0o700, Mtime: t0},
				"abs": {Type: "file", Content: str("a")},
			},
		},
		{
			name: "hard links to lower layers are reported",
			ents: []entry{
				dirE("bin/", 0o755),
				linkE("bin/sh", "bin/bash"),
				linkE("bin/rbash", "bin/sh"),
				linkE("p", "../../etc/passwd"),
				linkE("x", "lower/t"),
				regE("x", "replaced", 0o644),
				linkE("d/y", "lower/t"),
				regE("d", "replaced", 0o644),
				linkE("w", "lower/t"),
				regE(".wh.w", "", 0o644),
				linkE("keep/y", "lower/t"),
				dirE("keep/", 0o755),
				linkE("e", "lower/t"),
				dirE("e/", 0o755),
			},
			want: map[string]want{
				"bin":  {Type: "dir"},
				"x":    {Type: "file", Content: str("replaced")},
				"d":    {Type: "file", Content: str("replaced")},
				"w":    {Type: "whiteout"},
				"keep": {Type: "dir"},
				"e":    {Type: "dir"},
			},
			links: []Link{{"bin/sh", "bin/bash"}, {"bin/rbash", "bin/bash"}, {"p", "etc/passwd"}, {"keep/y", "lower/t"}},
		},
		{
			name: "overlay xattrs from the tar are dropped",
			ents: []entry{
				regE("f", "f", 0o644).
					xattr("trusted.overlay.redirect", "/etc").
					xattr("trusted.overlay.opaque", "y").
					xattr("user.overlay.origin", "o").
					xattr("user.ok", "1"),
				dirE("d/", 0o755).xattr("trusted.overlay.opaque", "y").xattr("trusted.overlay.metacopy", ""),
			},
			want: map[string]want{
				"f": {Type: "file", Xattrs: map[string]string{"user.ok": "1"}},
				"d": {Type: "dir", Xattrs: map[string]string{}},
			},
		},
		{
			name: "times with nanoseconds, atime, and directory times set last",
			ents: []entry{
				dirE("d/", 0o755).times(t1, t2),
				regE("d/f", "f", 0o644).times(t2, t1),
				symE("d/s", "f").times(t1, t1),
				dirE("d/sub/", 0o755).times(t2, t2),
				regE("d/sub/g", "g", 0o644),
			},
			want: map[string]want{
				"d":       {Type: "dir", Mtime: t1},
				"d/f":     {Type: "file", Mtime: t2},
				"d/s":     {Type: "symlink", Mtime: t1},
				"d/sub":   {Type: "dir", Mtime: t2},
				"d/sub/g": {Type: "file", Mtime: t0},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, res, err := applyBytes(t, mkTar(t, tc.ents...))
			if err != nil {
				t.Fatalf("ApplyLayer: %v", err)
			}
			checkTree(t, root, tc.want)
			if !slices.Equal(res.Links, tc.links) {
				t.Errorf("links = %v, want %v", res.Links, tc.links)
			}
		})
	}
}

func TestApplyLayerAtime(t *testing.T) {
	requireRoot(t)
	root, _, err := applyBytes(t, mkTar(t,
		dirE("d/", 0o755).times(t1, t2),
		regE("d/f", "f", 0o644).times(t1, t2),
	))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "d/f"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Atim.Nano() != t2.UnixNano() || st.Mtim.Nano() != t1.UnixNano() {
			t.Errorf("%s: atime %v mtime %v, want %v %v", p,
				time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()), t2, t1)
		}
	}
}

func TestApplyLayerContent(t *testing.T) {
	requireRoot(t)
	rnd := make([]byte, 3*copyBufSize+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(rng.Uint32())
	}
	sparse := make([]byte, 3*copyBufSize+3)
	copy(sparse[len(sparse)-3:], "end")
	zeros := make([]byte, 2*copyBufSize)
	root, res, err := applyBytes(t, mkTar(t,
		regE("random", string(rnd), 0o644),
		regE("sparse", string(sparse), 0o644),
		regE("zeros", string(zeros), 0o644),
		regE("empty", "", 0o644),
		linkE("random2", "random"),
	))
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, root, map[string]want{
		"random":  {Type: "file", Content: str(string(rnd))},
		"random2": {Type: "file", SameAs: "random"},
		"sparse":  {Type: "file", Content: str(string(sparse))},
		"zeros":   {Type: "file", Content: str(string(zeros))},
		"empty":   {Type: "file", Content: str("")},
	})
	if want := int64(len(rnd) + len(sparse) + len(zeros)); res.Size != want {
		t.Errorf("Size = %d, want %d", res.Size, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "zeros"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 0 {
		t.Errorf("all-zero file uses %d blocks, want a hole", st.Blocks)
	}
	if err := unix.Stat(filepath.Join(root, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= copyBufSize {
		t.Errorf("sparse file uses %d blocks, want only its last chunk", st.Blocks)
	}
}

// countingReader counts the bytes read through it and whether EOF was seen.
type countingReader struct {
	r   io.Reader
	n   int
	eof bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

func TestApplyLayerReadsToEOF(t *testing.T) {
	requireRoot(t)
	data := mkTar(t, regE("f", "content", 0o644))
	// Record padding as written by tar(1), and then some.
	data = append(data, make([]byte, 10240+777)...)
	cr := &countingReader{r: bytes.NewReader(data)}
	root := t.TempDir()
	if _, err := ApplyLayer(root, cr); err != nil {
		t.Fatal(err)
	}
	if cr.n != len(data) || !cr.eof {
		t.Errorf("read %d of %d bytes (eof %v)", cr.n, len(data), cr.eof)
	}
}

// patchHeader rewrites the header block at off with fn and fixes its
// checksum.
func patchHeader(data []byte, off int, fn func(blk []byte)) []byte {
	out := bytes.Clone(data)
	blk := out[off : off+512]
	fn(blk)
	copy(blk[148:156], "        ")
	sum := 0
	for _, b := range blk {
		sum += int(b)
	}
	copy(blk[148:156], []byte(padOctal(sum, 6)+"\x00 "))
	return out
}

func padOctal(v, width int) string {
	s := strconv.FormatInt(int64(v), 8)
	return strings.Repeat("0", max(0, width-len(s))) + s
}

func TestApplyLayerLegacyTypes(t *testing.T) {
	requireRoot(t)
	// A USTAR archive with a TypeRegA ('\x00') file and a pax global header.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global",
		PAXRecords: map[string]string{"comment": "hi"}}); err != nil {
		t.Fatal(err)
	}
	off := buf.Len()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "old", Mode: 0o640, Size: 3,
		ModTime: t1.Truncate(time.Second), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := patchHeader(buf.Bytes(), off, func(blk []byte) { blk[156] = tar.TypeRegA })
	root, _, err := applyBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, root, map[string]want{
		"old": {Type: "file", Perm: 0o640, Content: str("abc"), Mtime: t1.Truncate(time.Second)},
	})
}

func TestApplyLayerErrors(t *testing.T) {
	requireRoot(t)
	long := strings.Repeat("a/", 2100) + "f"
	tests := []struct {
		name  string
		data  func(t *testing.T) []byte
		entry string // the error must name this entry
		msg   string // and contain this
	}{
		{"unknown type", func(t *testing.T) []byte {
			return patchHeader(mkTar(t, ustar(regE("weird", "", 0o644))), 0, func(b []byte) { b[156] = 'Z' })
		}, "weird", "unsupported entry type"},
		{"file as root", func(t *testing.T) []byte { return mkTar(t, regE(".", "", 0o644)) }, ".", "layer root"},
		{"dotdot file as root", func(t *testing.T) []byte { return mkTar(t, regE("a/../..", "", 0o644)) }, "a/../..", "layer root"},
		{"symlink as root", func(t *testing.T) []byte { return mkTar(t, symE("/", "x")) }, "/", "layer root"},
		{"name too long", func(t *testing.T) []byte { return mkTar(t, regE(long, "", 0o644)) }, long[:256], "4096"},
		{"component too long", func(t *testing.T) []byte {
			return mkTar(t, regE("d/"+strings.Repeat("x", 256), "", 0o644))
		}, "d/xxxx", "255"},
		{"empty whiteout", func(t *testing.T) []byte { return mkTar(t, regE("d/.wh.", "", 0o644)) }, "d/.wh.", "invalid whiteout"},
		{"dot whiteout", func(t *testing.T) []byte { return mkTar(t, regE("d/.wh..", "", 0o644)) }, "d/.wh..", "invalid whiteout"},
		{"dotdot whiteout", func(t *testing.T) []byte { return mkTar(t, regE(".wh...", "", 0o644)) }, ".wh...", "invalid whiteout"},
		{"hard link to directory", func(t *testing.T) []byte {
			return mkTar(t, dirE("d/", 0o755), linkE("l", "d"))
		}, "l", "directory"},
		{"hard link to whiteout", func(t *testing.T) []byte {
			return mkTar(t, regE(".wh.x", "", 0o644), linkE("l", "x"))
		}, "l", "whites out"},
		{"hard link to itself", func(t *testing.T) []byte { return mkTar(t, linkE("l", "./l")) }, "l", "inside itself"},
		{"hard link to root", func(t *testing.T) []byte { return mkTar(t, linkE("l", "/")) }, "l", "layer root"},
		{"uid out of range", func(t *testing.T) []byte {
			return mkTar(t, regE("f", "", 0o644).owner(1<<33, 0))
		}, "f", "out of range"},
		{"symlink loop", func(t *testing.T) []byte {
			return mkTar(t, symE("a", "b"), symE("b", "a"), regE("a/x", "", 0o644))
		}, "a/x", "too many levels"},
		{"file under a file", func(t *testing.T) []byte {
			return mkTar(t, regE("f", "", 0o644), regE("f/x", "", 0o644))
		}, "f/x", "not a directory"},
		{"truncated content", func(t *testing.T) []byte {
			d := mkTar(t, regE("ok", "", 0o644), regE("big", strings.Repeat("x", 5000), 0o644))
			return d[:len(d)-1024-3000]
		}, "big", "unexpected EOF"},
		{"truncated header", func(t *testing.T) []byte {
			d := mkTar(t, regE("ok", "", 0o644), regE("next", "", 0o644))
			return d[:len(d)-1024-100]
		}, "ok", "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := applyBytes(t, tc.data(t))
			if err == nil {
				t.Fatal("ApplyLayer succeeded")
			}
			if !strings.Contains(err.Error(), strconv.Quote(tc.entry)[:len(tc.entry)+1]) {
				t.Errorf("error %q does not name entry %q", err, tc.entry)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestApplyLayerRootMustExist(t *testing.T) {
	_, err := ApplyLayer(filepath.Join(t.TempDir(), "missing"), bytes.NewReader(nil))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

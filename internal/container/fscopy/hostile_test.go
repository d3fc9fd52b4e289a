package fscopy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileTree fills the container root with symlinks that aim at the host
// canary in every way a container can try.
func hostileTree(tb testing.TB, e *hostEnv) {
	tb.Helper()
	rel := strings.Repeat("../", 20) + strings.TrimPrefix(e.canary, "/")
	mkTree(tb, e.rootfs,
		sym("abs", filepath.Join(e.canary, "secret")),
		sym("rel", rel+"/secret"),
		sym("absdir", e.canary),
		sym("reldir", "../canary"), // from rootfs/, the host's base/canary
		sym("relup", rel),
		sym("proc", "/proc/self/root"+e.canary+"/secret"),
		sym("procdir", "/proc/self/root"+e.canary),
		sym("fd", "/proc/self/fd/3"),
		dir("mid", 0o755),
		sym("mid/up", "/"),
		sym("mid/dotdot", "../.."),
		sym("loop", "loop"),
		reg("plain", "plain", 0o644),
	)
}

// hostileSources are container paths that must never reach the host canary.
func hostileSources(e *hostEnv) []string {
	return []string{
		"/abs", "/rel", "/absdir", "/absdir/", "/absdir/.", "/absdir/secret", "/reldir", "/reldir/",
		"/reldir/secret", "/relup/secret", "/relup/dir/", "/proc", "/procdir/secret", "/procdir/", "/fd",
		"/fd/", "/../canary/secret", "/../../../canary/", "../canary/dir/inner", e.canary + "/secret",
		e.canary + "/", "/mid/up" + e.canary + "/secret", "/mid/up/../../canary/secret",
		"/mid/dotdot/canary/secret", "/mid/dotdot/../canary/", "/loop", "/loop/", "/", "/mid",
	}
}

func TestHostileCopyFrom(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	hostileTree(t, e)
	for _, src := range hostileSources(e) {
		for _, follow := range []bool{false, true} {
			name := fmt.Sprintf("%s follow=%v", src, follow)
			var buf bytes.Buffer
			err := CopyFrom(e.rootfs, src, "-", &buf, follow)
			noSecret(t, "", buf.Bytes())
			out := filepath.Join(e.out, fmt.Sprintf("%d", len(name))+strings.ReplaceAll(name, "/", "_"))
			must(t, os.Mkdir(out, 0o755))
			herr := CopyFrom(e.rootfs, src, out, nil, follow)
			noSecret(t, out, nil)
			if (err == nil) != (herr == nil) {
				t.Errorf("%s: stdout error %v but host error %v", name, err, herr)
			}
			e.check(t)
		}
	}

	// With the path present inside the container, that is what is read.
	mkTree(t, e.rootfs, dir(strings.TrimPrefix(e.canary, "/"), 0o755),
		reg(strings.TrimPrefix(e.canary, "/")+"/secret", "decoy", 0o600))
	for _, src := range []string{"/abs", "/rel", "/absdir/secret", "/relup/secret", "/mid/up" + e.canary + "/secret"} {
		var buf bytes.Buffer
		must(t, CopyFrom(e.rootfs, src, "-", &buf, true))
		ents := readTar(t, buf.Bytes())
		if len(ents) != 1 || ents[0].body != "decoy" {
			t.Errorf("%s: %q, want the decoy inside the container", src, tarNames(ents))
		}
	}
	// /proc/self/root is never a way out.
	for _, src := range []string{"/proc", "/procdir/secret"} {
		var buf bytes.Buffer
		if err := CopyFrom(e.rootfs, src, "-", &buf, true); err == nil {
			t.Errorf("%s: no error", src)
		}
	}
	e.check(t)
}

func TestHostileCopyTo(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	hostileTree(t, e)
	src := filepath.Join(e.base, "src")
	mkTree(t, src, reg("pwned", "pwned", 0o644), dir("d", 0o755), reg("d/pwned", "pwned", 0o644))
	evil := mkTar(t, reg("pwned", "pwned", 0o644), reg("secret", "pwned", 0o644), dir("dir/", 0o777),
		reg("dir/inner", "pwned", 0o644))
	dsts := append(hostileSources(e), "/absdir/new", "/reldir/new", "/procdir/new", "/mid/up"+e.canary)
	for _, dst := range dsts {
		for _, s := range []string{"pwned", "d", "d/.", "-"} {
			name := dst + " <- " + s
			p := "-"
			if s != "-" {
				p = src + "/" + s
			}
			err := CopyTo(e.rootfs, dst, p, bytes.NewReader(evil), false)
			t.Logf("%s: %v", name, err)
			e.check(t)
		}
	}

	// With the directory present inside the container, writes land there.
	inside := filepath.Join(e.rootfs, e.canary)
	must(t, os.MkdirAll(inside, 0o755))
	for _, dst := range []string{"/abs", "/rel", "/relup/secret", "/mid/up" + e.canary + "/secret"} {
		must(t, os.RemoveAll(filepath.Join(inside, "secret")))
		must(t, CopyTo(e.rootfs, dst, filepath.Join(src, "pwned"), nil, false))
		wantBody(t, inside, "secret", "pwned")
	}
	e.check(t)
}

// TestHostileStdin extracts malicious archives into the container.
func TestHostileStdin(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	crel := strings.TrimPrefix(e.canary, "/")
	up := strings.Repeat("../", 20)
	tests := []struct {
		name    string
		setup   []fsEnt // container content
		ents    []fsEnt
		wantErr bool
		check   func(t *testing.T, root string)
	}{
		{name: "dotdot name", ents: []fsEnt{reg("../../canary/secret", "pwned", 0o644)}, wantErr: true},
		{name: "absolute dotdot name", ents: []fsEnt{reg("/../canary/secret", "pwned", 0o644)}, wantErr: true},
		{name: "absolute name", ents: []fsEnt{reg(e.canary+"/secret", "pwned", 0o644)},
			check: func(t *testing.T, root string) { wantBody(t, root, crel+"/secret", "pwned") }},
		{name: "symlink then write through it", ents: []fsEnt{sym("x", e.canary), reg("x/pwn", "pwned", 0o644)},
			wantErr: true}, // the target does not exist in the container
		{name: "symlink then write through it, target in the container", setup: []fsEnt{dir(crel, 0o755)},
			ents:  []fsEnt{sym("x", e.canary), reg("x/pwn", "pwned", 0o644)},
			check: func(t *testing.T, root string) { wantBody(t, root, crel+"/pwn", "pwned") }},
		{name: "relative symlink then write through it", setup: []fsEnt{dir(crel, 0o755)},
			ents:  []fsEnt{sym("y", up+crel), reg("y/secret", "pwned", 0o644)},
			check: func(t *testing.T, root string) { wantBody(t, root, crel+"/secret", "pwned") }},
		{name: "existing symlink then write through it", setup: []fsEnt{sym("z", e.canary), dir(crel, 0o755)},
			ents:  []fsEnt{reg("z/secret", "pwned", 0o644), reg("z/dir/inner", "pwned", 0o644)},
			check: func(t *testing.T, root string) { wantBody(t, root, crel+"/dir/inner", "pwned") }},
		{name: "symlinked dir in the middle", ents: []fsEnt{dir("a/", 0o755), sym("a/b", up), reg("a/b/"+crel+"/dir/inner", "pwned", 0o644)},
			check: func(t *testing.T, root string) { wantBody(t, root, crel+"/dir/inner", "pwned") }},
		{name: "proc symlink then write through it", ents: []fsEnt{sym("p", "/proc/self/root"+e.canary), reg("p/secret", "pwned", 0o644)}},
		{name: "symlink then file over it", ents: []fsEnt{sym("s", e.canary+"/secret"), reg("s", "pwned", 0o644)},
			check: func(t *testing.T, root string) { wantBody(t, root, "s", "pwned") }},
		{name: "symlink then dir over it", ents: []fsEnt{sym("d", e.canary), dir("d/", 0o777)}, wantErr: true},
		{name: "symlink then fifo and device over it", ents: []fsEnt{sym("f", e.canary+"/secret"), fifo("f", 0o666),
			sym("c", e.canary+"/secret"), chr("c", 1, 3, 0o666)}},
		{name: "hard link escaping", ents: []fsEnt{hard("h", "../canary/secret")}, wantErr: true},
		{name: "hard link absolute", ents: []fsEnt{hard("h", e.canary+"/secret")}, wantErr: true},
		{name: "hard link through symlink", ents: []fsEnt{sym("x", e.canary), hard("h", "x/secret")}, wantErr: true},
		{name: "hard link to symlink", ents: []fsEnt{sym("x", e.canary+"/secret"), hard("h", "x"), reg("h", "pwned", 0o644)},
			check: func(t *testing.T, root string) {
				if l, _ := os.Readlink(filepath.Join(root, "x")); l != e.canary+"/secret" {
					t.Errorf("x -> %q", l)
				}
			}},
		{name: "chown and xattrs", ents: []fsEnt{reg("o", "o", 0o6755).owner(4242, 4343).
			xattr("trusted.overlay.redirect", "/etc").xattr("user.overlay.x", "1").xattr("security.selinux", "x")},
			check: func(t *testing.T, root string) {
				st := lstat(t, filepath.Join(root, "o"))
				if st.Uid != 4242 || st.Gid != 4343 || st.Mode&0o7777 != 0o6755 {
					t.Errorf("o: %+v", st)
				}
				if x := snapshot(t, root)["o"].xattrs; x != "" {
					t.Errorf("xattrs %q", x)
				}
			}},
		{name: "root replaced by a file", ents: []fsEnt{reg(".", "x", 0o644)}, wantErr: true},
		{name: "long component", ents: []fsEnt{reg(strings.Repeat("a", 300), "x", 0o644)}, wantErr: true},
		{name: "loop", ents: []fsEnt{sym("l", "l"), reg("l/x", "x", 0o644)}, wantErr: true},
		{name: "owner out of range", ents: []fsEnt{reg("big", "x", 0o644).owner(1<<32, 0)}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(e.base, "rootfs")
			must(t, os.RemoveAll(root))
			must(t, os.Mkdir(root, 0o755))
			mkTree(t, root, tc.setup...)
			err := CopyTo(root, "/", "-", bytes.NewReader(mkTar(t, tc.ents...)), false)
			if tc.wantErr && err == nil {
				t.Errorf("no error")
			}
			if !tc.wantErr && tc.check != nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tc.check(t, root)
			}
			t.Logf("error: %v", err)
			e.check(t)
		})
	}
}

// TestHostileHostExtract extracts malicious archives to the host the way
// CopyFrom does: nothing may leave the copied tree.
func TestHostileHostExtract(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	tests := []struct {
		name    string
		setup   []fsEnt
		ents    []fsEnt
		wantErr bool
		check   func(t *testing.T, out string)
	}{
		{name: "symlink then write through it", ents: []fsEnt{dir("top/", 0o755), sym("top/x", e.canary),
			reg("top/x/secret", "pwned", 0o644)}, wantErr: true},
		{name: "symlink to /etc then passwd", ents: []fsEnt{dir("top/", 0o755), sym("top/x", "/etc"),
			reg("top/x/passwd", "pwned", 0o644)}, wantErr: true},
		{name: "relative symlink then write through it", ents: []fsEnt{sym("top", "../canary"),
			reg("top/secret", "pwned", 0o644)}, wantErr: true},
		{name: "dotdot", ents: []fsEnt{reg("top/../../canary/secret", "pwned", 0o644)}, wantErr: true},
		{name: "outside the tree", ents: []fsEnt{dir("top/", 0o755), reg("other", "pwned", 0o644)}, wantErr: true},
		{name: "sibling via dotdot", ents: []fsEnt{reg("top/../other", "pwned", 0o644)}, wantErr: true},
		{name: "hard link escaping", ents: []fsEnt{hard("top", "../canary/secret")}, wantErr: true},
		{name: "hard link absolute", ents: []fsEnt{hard("top", e.canary+"/secret")}, wantErr: true},
		{name: "device", ents: []fsEnt{dir("top/", 0o755), chr("top/mem", 1, 1, 0o666)}, wantErr: true},
		{name: "existing symlink as top dir", setup: []fsEnt{sym("top", e.canary)},
			ents: []fsEnt{dir("top/", 0o777), reg("top/secret", "pwned", 0o644)}, wantErr: true},
		{name: "existing symlink as parent", setup: []fsEnt{sym("top", e.canary)},
			ents: []fsEnt{reg("top/secret", "pwned", 0o644)}, wantErr: true},
		{name: "file over existing symlink", setup: []fsEnt{sym("top", e.canary+"/secret")},
			ents: []fsEnt{reg("top", "mine", 0o644)}, check: func(t *testing.T, out string) {
				wantBody(t, out, "top", "mine")
			}},
		{name: "privileges dropped", ents: []fsEnt{dir("top/", 0o755), reg("top/s", "s", 0o6755).owner(1000, 1000).
			xattr("security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00").
			xattr("trusted.t", "t").xattr("user.u", "u"), fifo("top/p", 0o644)},
			check: func(t *testing.T, out string) {
				st := lstat(t, filepath.Join(out, "top/s"))
				if st.Mode&0o7777 != 0o755 || st.Uid != 0 || st.Gid != 0 {
					t.Errorf("top/s: mode %#o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
				}
				if x := snapshot(t, out)["top/s"].xattrs; x != "user.u=u;" {
					t.Errorf("xattrs %q", x)
				}
				if st := lstat(t, filepath.Join(out, "top/p")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
					t.Errorf("top/p: %#o", st.Mode)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.RemoveAll(e.out))
			must(t, os.Mkdir(e.out, 0o755))
			mkTree(t, e.out, tc.setup...)
			err := extractHost(bytes.NewReader(mkTar(t, tc.ents...)), e.out, "top")
			if tc.wantErr && err == nil {
				t.Errorf("no error")
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.check != nil {
					tc.check(t, e.out)
				}
			}
			t.Logf("error: %v", err)
			e.check(t)
		})
	}
}

// TestHostileRace swaps a container directory with a symlink to the host
// canary (RENAME_EXCHANGE, as the CVE-2018-15664 exploit did) while copies
// run in both directions.
func TestHostileRace(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	mkTree(t, e.rootfs, dir("w", 0o755), reg("w/secret", "inside", 0o644), dir("w/dir", 0o755),
		reg("w/dir/inner", "inside", 0o644), sym("w.swap", e.canary))
	src := filepath.Join(e.base, "src")
	mkTree(t, src, reg("secret", "pwned", 0o644))
	evil := mkTar(t, reg("secret", "pwned", 0o644), reg("dir/inner", "pwned", 0o644))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var swaps atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		a, b := filepath.Join(e.rootfs, "w"), filepath.Join(e.rootfs, "w.swap")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Error(err)
				return
			}
			swaps.Add(1)
		}
	}()
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	inside := 0
	for i := range iterations {
		var buf bytes.Buffer
		if CopyFrom(e.rootfs, "/w/secret", "-", &buf, false) == nil {
			inside++
		}
		CopyFrom(e.rootfs, "/w", "-", &buf, true)
		CopyFrom(e.rootfs, "/w/dir/", "-", &buf, false)
		noSecret(t, "", buf.Bytes())
		out := filepath.Join(e.out, fmt.Sprint(i))
		must(t, os.Mkdir(out, 0o755))
		CopyFrom(e.rootfs, "/w/.", out, nil, false)
		noSecret(t, out, nil)
		CopyTo(e.rootfs, "/w/secret", filepath.Join(src, "secret"), nil, false)
		CopyTo(e.rootfs, "/w/dir/inner", filepath.Join(src, "secret"), nil, false)
		CopyTo(e.rootfs, "/w", "-", bytes.NewReader(evil), false)
		if t.Failed() {
			break
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d swaps; the container file was read %d times out of %d", swaps.Load(), inside, iterations)
	if swaps.Load() == 0 {
		t.Errorf("the directory was never swapped")
	}
	e.check(t)
}

// TestNotFoundIsContainerSide: only a missing container path matches
// fs.ErrNotExist.
func TestNotFoundIsContainerSide(t *testing.T) {
	requireRoot(t)
	e := newHostEnv(t)
	mkTree(t, e.rootfs, reg("f", "f", 0o644))
	var pe *os.PathError
	err := CopyFrom(e.rootfs, "/nope", e.out, nil, false)
	if !errors.As(err, &pe) || pe.Path != "/nope" {
		t.Errorf("missing source: %v", err)
	}
	if err := CopyFrom(e.rootfs, "/f", filepath.Join(e.base, "nope/x"), nil, false); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing host parent: %v", err)
	}
	if err := CopyTo(e.rootfs, "/", filepath.Join(e.base, "nope"), nil, false); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing host source: %v", err)
	}
	if err := CopyTo(e.rootfs, "/nope/x", filepath.Join(e.canary, "secret"), nil, false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing container parent: %v", err)
	}
	e.check(t)
}

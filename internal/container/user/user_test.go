package user

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const testPasswd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
  alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
nohome:x:1002:1002
# comment:x:7:7::/comment:/bin/sh
badid:x:abc:1::/bad:/bin/sh
short:x:7
dup:x:2000:2000::/first:/bin/sh
dup:x:2001:2001::/second:/bin/sh
1234:x:3000:3000::/numname:/bin/sh
big:x:4294967296:1::/big:/bin/sh
neg:x:-1:1::/neg:/bin/sh
biggid:x:3001:2147483648::/biggid:/bin/sh
huge:x:99999999999999999999:1::/huge:/bin/sh
`

const testGroup = `root:x:0:root
daemon:x:1:
wheel:x:10:root,alice
staff:x:50:alice, bob
docker:x:999:bob,alice
alice:x:1000:
bob:x:1001:
dupg:x:500:
dupg:x:501:
bigg:x:4294967296:
broken:x:notanumber:alice
empty:x:60:,,
`

// writeFiles creates rel -> content files under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, files)
	return root
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// resolveTimeout runs Resolve, failing the test if it does not return
// promptly (a FIFO or device opened for reading could block forever).
func resolveTimeout(t *testing.T, rootfs, spec string, groupAdd []string) (Exec, error) {
	t.Helper()
	type result struct {
		ex  Exec
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ex, err := Resolve(rootfs, spec, groupAdd)
		ch <- result{ex, err}
	}()
	select {
	case r := <-ch:
		return r.ex, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("Resolve(%q) hung", spec)
		return Exec{}, nil
	}
}

type resolveCase struct {
	name     string
	spec     string
	groupAdd []string
	want     Exec
	wantErr  error  // errors.Is target, or nil
	errSub   string // substring of the error message
}

func runCases(t *testing.T, rootfs string, cases []resolveCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveTimeout(t, rootfs, tc.spec, tc.groupAdd)
			if tc.wantErr != nil || tc.errSub != "" {
				if err == nil {
					t.Fatalf("Resolve(%q, %q) = %+v, want error", tc.spec, tc.groupAdd, got)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %q is not %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("error %q does not contain %q", err, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q, %q): %v", tc.spec, tc.groupAdd, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Resolve(%q, %q) = %+v, want %+v", tc.spec, tc.groupAdd, got, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	rootfs := newRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	alice := Exec{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 50, 999}, Home: "/home/alice"}
	runCases(t, rootfs, []resolveCase{
		{name: "empty is root", spec: "", want: Exec{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}, Home: "/root"}},
		{name: "name", spec: "alice", want: alice},
		{name: "uid in passwd", spec: "1000", want: alice},
		{name: "name trailing colon", spec: "alice:", want: alice},
		{name: "membership list not trimmed", spec: "bob", want: Exec{UID: 1001, GID: 1001, AdditionalGids: []uint32{1001, 999}, Home: "/home/bob"}},
		{name: "root by name", spec: "root", want: Exec{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}, Home: "/root"}},
		{name: "name:group", spec: "alice:staff", want: Exec{UID: 1000, GID: 50, AdditionalGids: []uint32{50}, Home: "/home/alice"}},
		{name: "name:gid", spec: "alice:0", want: Exec{UID: 1000, GID: 0, AdditionalGids: []uint32{0}, Home: "/home/alice"}},
		{name: "name:gid not in group", spec: "alice:4242", want: Exec{UID: 1000, GID: 4242, AdditionalGids: []uint32{4242}, Home: "/home/alice"}},
		{name: "uid:gid", spec: "1000:1001", want: Exec{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001}, Home: "/home/alice"}},
		{name: "uid not in passwd", spec: "5000", want: Exec{UID: 5000, GID: 0, AdditionalGids: []uint32{0}, Home: "/"}},
		{name: "uid:gid not in files", spec: "5000:5000", want: Exec{UID: 5000, GID: 5000, AdditionalGids: []uint32{5000}, Home: "/"}},
		{name: "uid:group", spec: "5000:wheel", want: Exec{UID: 5000, GID: 10, AdditionalGids: []uint32{10}, Home: "/"}},
		{name: "empty user with group", spec: ":wheel", want: Exec{UID: 0, GID: 10, AdditionalGids: []uint32{10}, Home: "/root"}},
		{name: "numeric spec is never a name", spec: "1234", want: Exec{UID: 1234, GID: 0, AdditionalGids: []uint32{0}, Home: "/"}},
		{name: "first match wins", spec: "dup", want: Exec{UID: 2000, GID: 2000, AdditionalGids: []uint32{2000}, Home: "/first"}},
		{name: "first group match wins", spec: "5000:dupg", want: Exec{UID: 5000, GID: 500, AdditionalGids: []uint32{500}, Home: "/"}},
		{name: "no home", spec: "nohome", want: Exec{UID: 1002, GID: 1002, AdditionalGids: []uint32{1002}, Home: "/"}},
		{name: "max uid", spec: "2147483647:2147483647", want: Exec{UID: MaxID, GID: MaxID, AdditionalGids: []uint32{MaxID}, Home: "/"}},

		{name: "unknown name", spec: "nobody", wantErr: ErrNoPasswdEntries, errSub: "unable to find user nobody: no matching entries in passwd file"},
		{name: "comment is not a user", spec: "# comment", wantErr: ErrNoPasswdEntries},
		{name: "malformed uid line ignored", spec: "badid", wantErr: ErrNoPasswdEntries},
		{name: "short line ignored", spec: "short", wantErr: ErrNoPasswdEntries},
		{name: "unknown group", spec: "alice:nogroup", wantErr: ErrNoGroupEntries, errSub: "unable to find group nogroup: no matching entries in group file"},
		{name: "malformed group ignored", spec: "alice:broken", wantErr: ErrNoGroupEntries},
		{name: "passwd uid out of range", spec: "big", wantErr: ErrRange},
		{name: "passwd uid negative", spec: "neg", wantErr: ErrRange},
		{name: "passwd uid overflow", spec: "huge", wantErr: ErrRange},
		{name: "passwd gid out of range", spec: "biggid", wantErr: ErrRange},
		{name: "group gid out of range", spec: "alice:bigg", wantErr: ErrRange},
		{name: "negative uid", spec: "-1", wantErr: ErrRange},
		{name: "uid too large", spec: "2147483648", wantErr: ErrRange},
		{name: "uid overflow", spec: "99999999999999999999", wantErr: ErrRange},
		{name: "negative gid", spec: "0:-5", wantErr: ErrRange},
		{name: "gid too large", spec: "0:4294967295", wantErr: ErrRange},

		{name: "group-add", spec: "alice", groupAdd: []string{"docker", "4242", "wheel", "daemon"},
			want: Exec{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10, 50, 999, 4242, 1}, Home: "/home/alice"}},
		{name: "group-add with explicit group", spec: "alice:alice", groupAdd: []string{"staff"},
			want: Exec{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 50}, Home: "/home/alice"}},
		{name: "group-add to unknown uid", spec: "5000", groupAdd: []string{"1000", "1000"},
			want: Exec{UID: 5000, GID: 0, AdditionalGids: []uint32{0, 1000}, Home: "/"}},
		{name: "group-add first match", spec: "5000", groupAdd: []string{"dupg"},
			want: Exec{UID: 5000, GID: 0, AdditionalGids: []uint32{0, 500}, Home: "/"}},
		{name: "group-add unknown", spec: "alice", groupAdd: []string{"nosuch"}, wantErr: ErrNoGroupEntries, errSub: "unable to find group nosuch"},
		{name: "group-add negative", spec: "alice", groupAdd: []string{"-3"}, wantErr: ErrRange},
		{name: "group-add too large", spec: "alice", groupAdd: []string{"2147483648"}, wantErr: ErrRange},
		{name: "group-add gid out of range in file", spec: "alice", groupAdd: []string{"bigg"}, wantErr: ErrRange},
		{name: "group-add empty", spec: "alice", groupAdd: []string{""}, errSub: "empty"},
	})
}

func TestResolveMissingFiles(t *testing.T) {
	t.Run("no etc", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		runCases(t, rootfs, []resolveCase{
			{name: "empty", spec: "", want: Exec{AdditionalGids: []uint32{0}, Home: "/"}},
			{name: "uid", spec: "1000", want: Exec{UID: 1000, AdditionalGids: []uint32{0}, Home: "/"}},
			{name: "uid:gid", spec: "1000:1000", groupAdd: []string{"5"}, want: Exec{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 5}, Home: "/"}},
			{name: "name", spec: "alice", wantErr: ErrNoPasswdEntries, errSub: "/etc/passwd does not exist"},
			{name: "root name", spec: "root", wantErr: ErrNoPasswdEntries},
			{name: "group name", spec: "0:wheel", wantErr: ErrNoGroupEntries, errSub: "/etc/group does not exist"},
			{name: "group-add name", spec: "0", groupAdd: []string{"wheel"}, wantErr: ErrNoGroupEntries},
		})
	})
	t.Run("passwd only", func(t *testing.T) {
		rootfs := newRootfs(t, map[string]string{"etc/passwd": testPasswd})
		runCases(t, rootfs, []resolveCase{
			{name: "name", spec: "alice", want: Exec{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000}, Home: "/home/alice"}},
			{name: "group name", spec: "alice:wheel", wantErr: ErrNoGroupEntries},
		})
	})
	t.Run("etc is a file", func(t *testing.T) {
		rootfs := newRootfs(t, map[string]string{"etc": testPasswd})
		runCases(t, rootfs, []resolveCase{
			{name: "uid", spec: "7:8", want: Exec{UID: 7, GID: 8, AdditionalGids: []uint32{8}, Home: "/"}},
			{name: "name", spec: "alice", wantErr: ErrNoPasswdEntries},
		})
	})
	t.Run("dangling symlinks", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, "nowhere", filepath.Join(rootfs, "etc/passwd"))
		symlink(t, "/nowhere/group", filepath.Join(rootfs, "etc/group"))
		runCases(t, rootfs, []resolveCase{
			{name: "uid", spec: "7", want: Exec{UID: 7, AdditionalGids: []uint32{0}, Home: "/"}},
			{name: "name", spec: "alice", wantErr: ErrNoPasswdEntries},
		})
	})
	t.Run("no rootfs", func(t *testing.T) {
		if _, err := Resolve(filepath.Join(t.TempDir(), "absent"), "0", nil); err == nil {
			t.Fatal("missing rootfs: want error")
		}
		if _, err := Resolve("", "0", nil); err == nil {
			t.Fatal("empty rootfs: want error")
		}
	})
}

const (
	canaryPasswd = "canary:x:4242:4343:host canary:/canary-home:/bin/sh\nroot:x:0:4444::/host-root:/bin/sh\n"
	canaryGroup  = "canarygrp:x:4545:canary,alice,root\n"
	insidePasswd = "canary:x:1111:1112::/inside:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
	insideGroup  = "insidegrp:x:1113:canary\n"
)

// hostCanary writes passwd and group files outside any rootfs and returns
// their absolute paths.
func hostCanary(t *testing.T) (passwd, group string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	writeFiles(t, dir, map[string]string{"passwd": canaryPasswd, "group": canaryGroup})
	return filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
}

// assertNotHost fails if ex or err shows that the host canary was read.
func assertNotHost(t *testing.T, ex Exec, err error) {
	t.Helper()
	if err != nil {
		return
	}
	if ex.GID == 4343 || ex.GID == 4444 || ex.Home == "/canary-home" || ex.Home == "/host-root" {
		t.Fatalf("host file read through rootfs: %+v", ex)
	}
	for _, g := range ex.AdditionalGids {
		if g == 4545 {
			t.Fatalf("host group file read through rootfs: %+v", ex)
		}
	}
}

func TestHostileSymlinks(t *testing.T) {
	hostPasswd, hostGroup := hostCanary(t)

	t.Run("absolute symlink to host path", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, hostPasswd, filepath.Join(rootfs, "etc/passwd"))
		symlink(t, hostGroup, filepath.Join(rootfs, "etc/group"))

		ex, err := resolveTimeout(t, rootfs, "canary", nil)
		assertNotHost(t, ex, err)
		if !errors.Is(err, ErrNoPasswdEntries) {
			t.Fatalf("canary: got %+v, %v; want ErrNoPasswdEntries", ex, err)
		}
		ex, err = resolveTimeout(t, rootfs, "4242", nil)
		assertNotHost(t, ex, err)
		if err != nil || ex.GID != 0 || ex.Home != "/" {
			t.Fatalf("4242: got %+v, %v", ex, err)
		}
		ex, err = resolveTimeout(t, rootfs, "", []string{"canarygrp"})
		assertNotHost(t, ex, err)
		if !errors.Is(err, ErrNoGroupEntries) {
			t.Fatalf("group-add canarygrp: got %+v, %v", ex, err)
		}

		// The same absolute path inside the rootfs is what must be read.
		writeFiles(t, rootfs, map[string]string{hostPasswd: insidePasswd, hostGroup: insideGroup})
		ex, err = resolveTimeout(t, rootfs, "canary", nil)
		assertNotHost(t, ex, err)
		want := Exec{UID: 1111, GID: 1112, AdditionalGids: []uint32{1112, 1113}, Home: "/inside"}
		if err != nil || !reflect.DeepEqual(ex, want) {
			t.Fatalf("canary inside: got %+v, %v; want %+v", ex, err, want)
		}
	})

	t.Run("dotdot escape", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		relPasswd, err := filepath.Rel(filepath.Join(rootfs, "etc"), hostPasswd)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(relPasswd, "../") {
			t.Fatalf("relative path %q does not escape", relPasswd)
		}
		symlink(t, relPasswd, filepath.Join(rootfs, "etc/passwd"))
		symlink(t, "../../../../../../../../../../etc/group", filepath.Join(rootfs, "etc/group"))

		ex, err := resolveTimeout(t, rootfs, "canary", nil)
		assertNotHost(t, ex, err)
		if !errors.Is(err, ErrNoPasswdEntries) {
			t.Fatalf("canary: got %+v, %v", ex, err)
		}
		// The host /etc/group has a root group; it must not be visible.
		// Clamped at the rootfs root, the link points at itself (ELOOP).
		ex, err = resolveTimeout(t, rootfs, "0:root", nil)
		if err == nil {
			t.Fatalf("0:root: got %+v; host /etc/group was read?", ex)
		}
	})

	t.Run("deep dotdot to host etc", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, "../../../../../../../../../../etc/passwd", filepath.Join(rootfs, "etc/passwd"))
		// Clamped at the rootfs root, the link points at itself (ELOOP);
		// it must never reach the host's /etc/passwd and its root entry.
		ex, err := resolveTimeout(t, rootfs, "root", nil)
		if err == nil {
			t.Fatalf("root: got %+v; host /etc/passwd was read?", ex)
		}
		// ".." is clamped at the rootfs root.
		writeFiles(t, rootfs, map[string]string{"etc/passwd.real": "root:x:0:7::/clamped:/bin/sh\n"})
		if err := os.Remove(filepath.Join(rootfs, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		symlink(t, "../../../../../../../../../../etc/passwd.real", filepath.Join(rootfs, "etc/passwd"))
		ex, err = resolveTimeout(t, rootfs, "root", nil)
		if err != nil || ex.GID != 7 || ex.Home != "/clamped" {
			t.Fatalf("clamped: got %+v, %v", ex, err)
		}
	})

	t.Run("etc symlink to slash", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, "/", filepath.Join(rootfs, "etc"))
		ex, err := resolveTimeout(t, rootfs, "root", nil)
		if !errors.Is(err, ErrNoPasswdEntries) {
			t.Fatalf("root: got %+v, %v; host /etc/passwd was read?", ex, err)
		}
		// /etc -> / makes /etc/passwd mean rootfs/passwd.
		writeFiles(t, rootfs, map[string]string{"passwd": "root:x:0:9::/slash:/bin/sh\n"})
		ex, err = resolveTimeout(t, rootfs, "root", nil)
		if err != nil || ex.GID != 9 || ex.Home != "/slash" {
			t.Fatalf("rootfs/passwd: got %+v, %v", ex, err)
		}
	})

	t.Run("etc symlink to host etc", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, filepath.Dir(hostPasswd), filepath.Join(rootfs, "etc"))
		ex, err := resolveTimeout(t, rootfs, "canary", nil)
		assertNotHost(t, ex, err)
		if !errors.Is(err, ErrNoPasswdEntries) {
			t.Fatalf("canary: got %+v, %v", ex, err)
		}
	})

	t.Run("proc self root without procfs", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, "/proc/self/root"+hostPasswd, filepath.Join(rootfs, "etc/passwd"))
		symlink(t, "/proc/1/root/etc/group", filepath.Join(rootfs, "etc/group"))
		ex, err := resolveTimeout(t, rootfs, "canary", nil)
		assertNotHost(t, ex, err)
		if err == nil {
			t.Fatalf("canary: got %+v, want error", ex)
		}
		ex, err = resolveTimeout(t, rootfs, "0:root", nil)
		if err == nil {
			t.Fatalf("0:root: got %+v; host /etc/group was read?", ex)
		}
	})

	t.Run("symlink loop", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		symlink(t, "passwd", filepath.Join(rootfs, "etc/passwd"))
		if _, err := resolveTimeout(t, rootfs, "0", nil); err == nil {
			t.Fatal("symlink loop: want error")
		}
	})
}

// TestMagicLinks mounts a real procfs inside the rootfs (in a private mount
// namespace, so nothing leaks to the host) and checks that magic links such
// as /proc/self/root are refused rather than followed to the host root.
func TestMagicLinks(t *testing.T) {
	hostPasswd, _ := hostCanary(t)
	rootfs := newRootfs(t, nil)
	if err := os.MkdirAll(filepath.Join(rootfs, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/proc/self/root"+hostPasswd, filepath.Join(rootfs, "etc/passwd"))
	symlink(t, "/proc/thread-self/root/etc/group", filepath.Join(rootfs, "etc/group"))

	type result struct {
		skip       string
		ex1, ex2   Exec
		err1, err2 error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, and its mount namespace, die with
		// this goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			ch <- result{skip: "unshare(CLONE_NEWNS): " + err.Error()}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ch <- result{skip: "make / private: " + err.Error()}
			return
		}
		if err := unix.Mount("proc", filepath.Join(rootfs, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			ch <- result{skip: "mount proc: " + err.Error()}
			return
		}
		var r result
		r.ex1, r.err1 = Resolve(rootfs, "canary", nil)
		// With a sane passwd, only the group magic link is in the way.
		p := filepath.Join(rootfs, "etc/passwd")
		if err := os.Remove(p); err != nil {
			ch <- result{skip: err.Error()}
			return
		}
		if err := os.WriteFile(p, []byte(testPasswd), 0o644); err != nil {
			ch <- result{skip: err.Error()}
			return
		}
		r.ex2, r.err2 = Resolve(rootfs, "0:root", nil)
		ch <- r
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("Resolve hung")
	}
	if r.skip != "" {
		t.Skip(r.skip)
	}
	assertNotHost(t, r.ex1, r.err1)
	if r.err1 == nil {
		t.Fatalf("canary through /proc/self/root: got %+v, want error", r.ex1)
	}
	if r.err2 == nil {
		t.Fatalf("0:root through /proc/thread-self/root: got %+v, want error", r.ex2)
	}
}

func TestNonRegularFiles(t *testing.T) {
	t.Run("fifo passwd", func(t *testing.T) {
		rootfs := newRootfs(t, map[string]string{"etc/group": testGroup})
		if err := unix.Mkfifo(filepath.Join(rootfs, "etc/passwd"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, spec := range []string{"", "0", "alice"} {
			if _, err := resolveTimeout(t, rootfs, spec, nil); !errors.Is(err, ErrNotRegular) {
				t.Fatalf("%q: got %v, want ErrNotRegular", spec, err)
			}
		}
	})
	t.Run("fifo group via symlink", func(t *testing.T) {
		rootfs := newRootfs(t, map[string]string{"etc/passwd": testPasswd})
		if err := unix.Mkfifo(filepath.Join(rootfs, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		symlink(t, "/fifo", filepath.Join(rootfs, "etc/group"))
		if _, err := resolveTimeout(t, rootfs, "alice", nil); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("got %v, want ErrNotRegular", err)
		}
		// Numeric ids never need /etc/group.
		if ex, err := resolveTimeout(t, rootfs, "5000:5000", []string{"7"}); err != nil || ex.GID != 5000 {
			t.Fatalf("numeric: got %+v, %v", ex, err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		if err := os.MkdirAll(filepath.Join(rootfs, "etc/passwd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := resolveTimeout(t, rootfs, "0", nil); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("got %v, want ErrNotRegular", err)
		}
	})
	t.Run("socket", func(t *testing.T) {
		rootfs := newRootfs(t, nil)
		if err := os.Mkdir(filepath.Join(rootfs, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd) //nolint:errcheck
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(rootfs, "etc/passwd")}); err != nil {
			t.Skip("bind unix socket:", err)
		}
		if _, err := resolveTimeout(t, rootfs, "0", nil); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("got %v, want ErrNotRegular", err)
		}
	})
	for _, dev := range []struct {
		name         string
		mode         uint32
		major, minor uint32
	}{
		{"char device zero", unix.S_IFCHR, 1, 5},
		{"char device tty", unix.S_IFCHR, 5, 0},
		{"block device", unix.S_IFBLK, 7, 0},
	} {
		t.Run(dev.name, func(t *testing.T) {
			rootfs := newRootfs(t, nil)
			if err := os.Mkdir(filepath.Join(rootfs, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(rootfs, "etc/passwd")
			if err := unix.Mknod(p, dev.mode|0o644, int(unix.Mkdev(dev.major, dev.minor))); err != nil {
				t.Skip("mknod:", err)
			}
			if _, err := resolveTimeout(t, rootfs, "0", nil); !errors.Is(err, ErrNotRegular) {
				t.Fatalf("got %v, want ErrNotRegular", err)
			}
		})
	}
}

func TestFileSizeLimit(t *testing.T) {
	t.Run("oversized sparse", func(t *testing.T) {
		rootfs := newRootfs(t, map[string]string{"etc/passwd": testPasswd})
		if err := os.Truncate(filepath.Join(rootfs, "etc/passwd"), MaxFileSize+1); err != nil {
			t.Fatal(err)
		}
		if _, err := resolveTimeout(t, rootfs, "0", nil); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("oversized group", func(t *testing.T) {
		rootfs := newRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
		if err := os.Truncate(filepath.Join(rootfs, "etc/group"), 1<<40); err != nil {
			t.Fatal(err)
		}
		if _, err := resolveTimeout(t, rootfs, "alice", nil); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		content := "alice:x:1000:1000::/home/alice:/bin/sh\n"
		content += strings.Repeat("#", MaxFileSize-len(content)-1) + "\n"
		rootfs := newRootfs(t, map[string]string{"etc/passwd": content})
		ex, err := resolveTimeout(t, rootfs, "alice", nil)
		if err != nil || ex.UID != 1000 {
			t.Fatalf("got %+v, %v", ex, err)
		}
	})
}

func TestLongLines(t *testing.T) {
	long := "evil:x:1:1::/" + strings.Repeat("a", maxLineLen) + ":/bin/sh"
	passwd := long + "\nalice:x:1000:1000::/home/alice:/bin/sh\n"
	users := parsePasswd([]byte(passwd))
	if len(users) != 1 || users[0].name != "alice" {
		t.Fatalf("parsePasswd: %+v", users)
	}
	members := strings.Repeat("m,", maxLineLen/2) + "alice"
	group := "big:x:5:" + members + "\nsmall:x:6:alice\n"
	groups := parseGroup([]byte(group))
	if len(groups) != 1 || groups[0].name != "small" {
		t.Fatalf("parseGroup: %d entries", len(groups))
	}
}

func TestParse(t *testing.T) {
	users := parsePasswd([]byte("a:x:1:2:g:/h:/s\r\nb:x:3:4\n\n   \n#c:x:5:5\nd::+6:7::\n:x:8:8\ne:x::9\n"))
	want := []passwdEntry{
		{name: "a", uid: 1, gid: 2, home: "/h"},
		{name: "b", uid: 3, gid: 4},
		{name: "d", uid: 6, gid: 7},
	}
	if !reflect.DeepEqual(users, want) {
		t.Fatalf("parsePasswd = %+v, want %+v", users, want)
	}
	groups := parseGroup([]byte("g:x:1:a,b,,c\nh:x:2\ni:x:3:\n:x:4:a\nj:x:five:a\n"))
	wantG := []groupEntry{
		{name: "g", gid: 1, members: []string{"a", "b", "c"}},
		{name: "h", gid: 2},
		{name: "i", gid: 3},
	}
	if !reflect.DeepEqual(groups, wantG) {
		t.Fatalf("parseGroup = %+v, want %+v", groups, wantG)
	}
}

// memSource serves database files from memory, for fuzzing.
type memSource map[string][]byte

func (m memSource) read(path string) ([]byte, bool, error) {
	data, ok := m[path]
	return data, ok, nil
}

func TestTooManyGroups(t *testing.T) {
	var b strings.Builder
	for i := range maxGroups + 1 {
		fmt.Fprintf(&b, "g%d:x:%d:alice\n", i, i+1)
	}
	src := memSource{
		passwdPath: []byte("alice:x:1000:1000::/home/alice:/bin/sh\n"),
		groupPath:  []byte(b.String()),
	}
	if _, err := resolve("alice", nil, src); err == nil || !strings.Contains(err.Error(), "supplementary groups") {
		t.Fatalf("got %v, want too many groups error", err)
	}
}

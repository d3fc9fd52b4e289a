//go:build linux

package test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileContainer runs images and copies that try to reach the host
// through the container: a working directory in /proc/self/fd (runc's
// leaked descriptors, CVE-2024-21626), /dev, a volume target and an
// entrypoint that are symlinks to host paths, and cp through symlinks to a
// host file. The host side is a sentinel tree (see hostile_test.go) plus
// a canary file and script next to it; nothing may change them or show
// their contents.
func TestHostileContainer(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	s := newSentinel(t)
	secretPath := filepath.Join(s.dir, "secret")
	tag := strings.Fields(s.secret[secretPath])[1] // random hex in every sentinel file
	canaryName := "berth-canary-" + tag
	if err := os.WriteFile(filepath.Join(s.base, canaryName), []byte("CANARY "+tag+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A host script a confused engine could run instead of the image's.
	script := filepath.Join(s.base, "evil.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho ESCAPED "+tag+"\necho pwned > "+filepath.Join(s.base, "pwned")+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := fingerprint(t, s.base)

	// leaked fails the test when out shows anything of the host tree.
	leaked := func(t *testing.T, what, out string) {
		t.Helper()
		if strings.Contains(out, tag) || strings.Contains(out, canaryName) {
			t.Errorf("BUG: %s revealed host content (sentinel tag %s):\n%s", what, tag, out)
		}
	}
	intact := func(t *testing.T, when string) {
		t.Helper()
		if d := fpDiff(before, fingerprint(t, s.base)); d != "" {
			t.Errorf("BUG: %s: the host canary tree %s changed:\n%s", when, s.base, d)
		}
		if m := ctrMountsUnder(s.base); len(m) > 0 {
			t.Errorf("BUG: %s: host mounts on the canary tree: %q", when, m)
		}
	}
	importRootfs := func(t *testing.T, ref string, drop []string, extra []hentry, changes ...string) string {
		t.Helper()
		args := []string{}
		for _, c := range changes {
			args = append(args, "-c", c)
		}
		berthImport(t, root, append(args, ctrRewriteRootfs(t, drop, extra), ref)...)
		return ref
	}
	base := ctrImage(t, root, "ctr/hostile-base:1")
	climb := up(12)

	// The probe every escape attempt runs: where is its working directory,
	// and can it reach the host tree from there (a working directory on
	// the host makes ../../.. the host's /).
	probe := `echo CWD=$(readlink /proc/self/cwd); ls -a ` + strings.TrimSuffix(climb, "/") + s.base + `; cat ` + strings.TrimSuffix(climb, "/") + secretPath + `; ls -a ..; true`

	t.Run("workdir-proc-self-fd", func(t *testing.T) {
		// Control: an ordinary WORKDIR works, so that refusals below are
		// not just a broken run.
		ok := importRootfs(t, "ctr/wd-ok:1", nil, nil, "WORKDIR /srv/app")
		if r := ctrB(t, root, "run", "--rm", ok, "pwd"); r.code != 0 || r.stdout != "/srv/app\n" {
			t.Fatalf("control: image with WORKDIR /srv/app: want pwd /srv/app; got %s", r)
		}
		running := ctrRunDetached(t, root, "--name", "hostile-exec", base, "sleep", "300")
		defer ctrB(t, root, "rm", "-f", running)
		for n := 3; n <= 8; n++ {
			fd := fmt.Sprintf("/proc/self/fd/%d", n)
			img := importRootfs(t, fmt.Sprintf("ctr/wd-fd%d:1", n), nil, []hentry{hsym("./wd", fd)}, "WORKDIR "+fd)
			cases := []struct {
				what string
				args []string
			}{
				{"image WORKDIR " + fd, []string{"run", "--rm", img, "sh", "-c", probe}},
				{"run -w " + fd, []string{"run", "--rm", "-w", fd, base, "sh", "-c", probe}},
				{"run -w /wd (a symlink to " + fd + ")", []string{"run", "--rm", "-w", "/wd", img, "sh", "-c", probe}},
				{"exec -w " + fd, []string{"exec", "-w", fd, running, "sh", "-c", probe}},
				{"exec -w /proc/1/fd/" + fmt.Sprint(n), []string{"exec", "-w", fmt.Sprintf("/proc/1/fd/%d", n), running, "sh", "-c", probe}},
			}
			for _, c := range cases {
				r := ctrB(t, root, c.args...)
				leaked(t, c.what, r.stdout+r.stderr)
				if r.code == 0 {
					// It ran: its working directory must be inside the
					// container.
					for _, l := range ctrLines(r.stdout) {
						if cwd, ok := strings.CutPrefix(l, "CWD="); ok && (cwd == "" || strings.HasPrefix(cwd, s.base) || strings.HasPrefix(cwd, "/sys/fs/cgroup") || strings.HasPrefix(cwd, root)) {
							t.Errorf("BUG: %s: the process ran with its working directory at %q", c.what, cwd)
						}
					}
				}
			}
			ctrB(t, root, "rmi", img)
		}
		// A working directory through /proc/self/root to the host tree.
		r := ctrB(t, root, "run", "--rm", "-w", "/proc/self/root"+s.dir, base, "sh", "-c", probe+"; ls -a; echo x > planted")
		leaked(t, "run -w /proc/self/root"+s.dir, r.stdout+r.stderr)
		intact(t, "after the /proc/self/fd working directories")
	})

	t.Run("dev-proc-sys-symlinks", func(t *testing.T) {
		for _, c := range []struct{ dir, target string }{
			{"dev", s.dir},
			{"dev", climb + rel(s.dir)},
			{"proc", s.dir},
			{"sys", s.dir},
			{"dev", "/proc/self/root" + s.dir},
		} {
			img := importRootfs(t, "ctr/link-"+c.dir+":1", []string{c.dir}, []hentry{hsym("./"+c.dir, c.target)})
			r := ctrB(t, root, "run", "--rm", img, "sh", "-c", "ls -a /"+c.dir+"; echo x > /"+c.dir+"/planted; "+probe)
			what := fmt.Sprintf("image with /%s -> %s", c.dir, c.target)
			leaked(t, what, r.stdout+r.stderr)
			intact(t, "after running an "+what)
			ctrB(t, root, "rmi", "-f", img)
		}
	})

	t.Run("volume-target-symlink", func(t *testing.T) {
		img := importRootfs(t, "ctr/link-volume:1", nil, []hentry{
			hsym("./data", s.dir),
			hsym("./reldata", climb+rel(s.dir)+"/sub"),
			hsym("./imgvol", filepath.Join(s.base, "sibling")),
		}, "VOLUME /imgvol")
		bindSrc := t.TempDir()
		if err := os.WriteFile(filepath.Join(bindSrc, "bound"), []byte("bind source\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		write := `for d in /data /reldata /imgvol /bound /tmpfs; do ls -a $d; echo pwned > $d/planted; done; mkdir -p /data/sub/deeper; echo y > /data/sub/inner`
		r := ctrB(t, root, "run", "--rm",
			"-v", "ctrhostile1:/data", "-v", "ctrhostile2:/reldata", "-v", bindSrc+":/bound",
			"--tmpfs", "/tmpfs", img, "sh", "-c", write)
		leaked(t, "volumes mounted on symlinks to the host tree", r.stdout+r.stderr)
		intact(t, "after mounting volumes on symlinks to the host tree")
		if r.code == 0 {
			// It ran: the writes through the links went to the volumes.
			found := false
			for _, v := range []string{"ctrhostile1", "ctrhostile2"} {
				filepath.Walk(filepath.Join(root, "volumes", v), func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.Name() == "planted" {
						found = true
					}
					return nil
				})
			}
			if !found {
				t.Errorf("run -v ctrhostile1:/data (a symlink) exited 0 but no write reached the named volumes\n%s", r)
			}
		}

		// While a container with such mounts runs, the host sees no mount
		// on its tree.
		r = ctrB(t, root, "run", "-d", "--name", "hostile-vol", "-v", "ctrhostile1:/data", "-v", bindSrc+":/reldata:ro", img, "sleep", "300")
		if r.code == 0 {
			if m := ctrMountsUnder(s.base); len(m) > 0 {
				t.Errorf("BUG: while the container runs, host mounts on the canary tree: %q", m)
			}
			e := ctrB(t, root, "exec", "hostile-vol", "sh", "-c", "ls -a /data /reldata /imgvol; cat /reldata/bound")
			leaked(t, "exec in a container with volumes on symlinks", e.stdout+e.stderr)
			ctrB(t, root, "rm", "-f", "hostile-vol")
		}
		intact(t, "after a detached container with volumes on symlinks")
		ctrB(t, root, "rmi", "-f", img)
	})

	t.Run("entrypoint-symlink", func(t *testing.T) {
		img := importRootfs(t, "ctr/link-entrypoint:1", nil, []hentry{
			hsym("./bin/evil", "/proc/self/root"+script),
			hsym("./bin/evil-abs", script),
			hsym("./bin/evil-rel", climb+rel(script)),
			hsym("./bin/evil-pid1", "/proc/1/root"+script),
			hsym("./tmp/echo", "/proc/self/root/bin/busybox"),
		}, `ENTRYPOINT ["/bin/evil"]`)
		// Control: a symlink through /proc/self/root to the image's own
		// busybox runs it, the container's root being its /.
		if r := ctrB(t, root, "run", "--rm", "--entrypoint", "/tmp/echo", img, "inside"); r.code != 0 || r.stdout != "inside\n" {
			t.Errorf("control: --entrypoint /tmp/echo (-> /proc/self/root/bin/busybox): want \"inside\"; got %s", r)
		}
		for _, args := range [][]string{
			{"run", "--rm", img},
			{"run", "--rm", "--entrypoint", "/bin/evil-abs", img},
			{"run", "--rm", "--entrypoint", "/bin/evil-rel", img},
			{"run", "--rm", "--entrypoint", "/bin/evil-pid1", img},
			{"run", "--rm", "--entrypoint", "/proc/self/root" + script, img},
			{"run", "--rm", "--entrypoint", script, img},
			{"run", "--rm", "--entrypoint", "", img, "/bin/evil"},
			{"run", "--rm", "--entrypoint", "", img, "cat", "/proc/self/root" + secretPath, "/proc/1/root" + secretPath, secretPath},
			{"run", "--rm", "--init", img},
		} {
			r := ctrB(t, root, args...)
			what := "berth " + strings.Join(args, " ")
			leaked(t, what, r.stdout+r.stderr)
			if strings.Contains(r.stdout, "ESCAPED") {
				t.Errorf("BUG: %s ran the host's script", what)
			}
			if r.code == 0 {
				t.Errorf("%s: exit 0, want a failure (the target does not exist in the container)\n%s", what, r)
			}
		}
		intact(t, "after symlinked entrypoints")
		ctrB(t, root, "rmi", "-f", img)
	})

	t.Run("cp-through-symlinks", func(t *testing.T) {
		img := importRootfs(t, "ctr/link-cp:1", nil, []hentry{
			hsym("./etc/target", secretPath),
			hsym("./etc/reltarget", climb+rel(secretPath)),
			hsym("./etc/dirlink", s.dir),
			hsym("./etc/reldirlink", climb+rel(s.dir)),
			hsym("./etc/proclink", "/proc/self/root"+s.dir),
		})
		created := strings.TrimSpace(ctrOK(t, root, "create", "--name", "hostile-cp-created", img, "sleep", "300"))
		running := ctrRunDetached(t, root, "--name", "hostile-cp-running", img, "sleep", "300")
		defer ctrB(t, root, "rm", "-f", created, running)

		hostFile := filepath.Join(t.TempDir(), "inject")
		if err := os.WriteFile(hostFile, []byte("INJECTED\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var injectTar bytes.Buffer
		tw := tar.NewWriter(&injectTar)
		for _, name := range []string{"dirlink/pwned", "target", "reltarget", "reldirlink/pwned", "proclink/pwned"} {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: 9})
			tw.Write([]byte("INJECTED\n"))
		}
		tw.Close()

		for _, c := range []string{created, running} {
			c := c
			kind := "created"
			if c == running {
				kind = "running"
			}
			out := t.TempDir()
			// Control: cp of an ordinary file works both ways.
			if r := ctrB(t, root, "cp", c+":/etc/passwd", filepath.Join(out, "passwd")); r.code != 0 {
				t.Fatalf("control: cp %s container:/etc/passwd out: %s", kind, r)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "passwd")); !strings.HasPrefix(string(b), "root:x:0:0:") {
				t.Errorf("control: cp %s container:/etc/passwd gave %q", kind, b)
			}
			if r := ctrB(t, root, "cp", hostFile, c+":/tmp/injected"); r.code != 0 {
				t.Errorf("control: cp host file into the %s container: %s", kind, r)
			}

			// Out of the container: through each link, to a file and to a
			// tar stream.
			for i, src := range []string{"/etc/target", "/etc/reltarget", "/etc/dirlink/secret", "/etc/reldirlink/secret", "/etc/proclink/secret", "/etc/dirlink", "/etc/reldirlink/", "/etc/dirlink/.", "/proc/self/root" + secretPath, secretPath} {
				for _, follow := range []bool{false, true} {
					args := []string{"cp"}
					if follow {
						args = append(args, "-L")
					}
					dst := filepath.Join(out, fmt.Sprintf("out%d-%v", i, follow))
					r := ctrB(t, root, append(args, c+":"+src, dst)...)
					what := fmt.Sprintf("cp %s %s:%s (%s container)", strings.Join(args[1:], " "), "CTR", src, kind)
					leaked(t, what, r.stdout+r.stderr)
					ctrLeakedTree(t, leaked, what, dst)
					r = ctrB(t, root, append(args, c+":"+src, "-")...)
					leaked(t, what+" to stdout", r.stdout+r.stderr)
				}
			}
			r := ctrB(t, root, "cp", c+":/etc", "-")
			leaked(t, "cp CTR:/etc - ("+kind+" container)", r.stdout+r.stderr)
			if r.code != 0 || !strings.Contains(r.stdout, "passwd") {
				t.Errorf("control: cp %s container:/etc -: want a tar stream with etc/passwd; got exit %d, %d bytes", kind, r.code, len(r.stdout))
			}

			// Into the container: onto and through each link.
			for _, dst := range []string{"/etc/target", "/etc/reltarget", "/etc/dirlink/", "/etc/dirlink/new", "/etc/reldirlink/", "/etc/proclink/", "/etc/proclink/new", secretPath, "/proc/self/root" + secretPath} {
				r := ctrB(t, root, "cp", hostFile, c+":"+dst)
				leaked(t, "cp FILE CTR:"+dst, r.stdout+r.stderr)
			}
			for _, dst := range []string{"/etc", "/etc/dirlink", "/etc/reldirlink", "/etc/proclink"} {
				r, err := ctrCmd(root, bytes.NewReader(injectTar.Bytes()), ctrTimeout, "cp", "-", c+":"+dst)
				if err != nil {
					t.Fatal(err)
				}
				leaked(t, "cp - CTR:"+dst, r.stdout+r.stderr)
			}
			intact(t, "after cp through symlinks ("+kind+" container)")
		}
		// The running container still sees the control copy.
		if r := ctrB(t, root, "exec", running, "cat", "/tmp/injected"); r.stdout != "INJECTED\n" {
			t.Errorf("control: the file copied into the running container reads %q", r.stdout)
		}
	})

	// export and diff of a container holding links to the host tree.
	t.Run("export-diff-symlinks", func(t *testing.T) {
		img := importRootfs(t, "ctr/link-export:1", nil, []hentry{hsym("./etc/target", secretPath), hsym("./etc/dirlink", s.dir)})
		c := strings.TrimSpace(ctrOK(t, root, "create", img, "true"))
		defer ctrB(t, root, "rm", "-f", c)
		ctrOK(t, root, "start", "-a", c)
		r := ctrB(t, root, "export", c)
		leaked(t, "export of a container with links to the host", r.stdout+r.stderr)
		if r.code != 0 || len(r.stdout) < 1<<20 {
			t.Errorf("control: export: want a tar of the root filesystem; got exit %d, %d bytes\n%s", r.code, len(r.stdout), r.stderr)
		}
		r = ctrB(t, root, "diff", c)
		leaked(t, "diff of a container with links to the host", r.stdout+r.stderr)
		intact(t, "after export and diff")
	})

	intact(t, "at the end")
	systemCheck(t, root)
}

// ctrLeakedTree reads every regular file at or below p (not following
// symlinks) and hands its content to leaked.
func ctrLeakedTree(t *testing.T, leaked func(*testing.T, string, string), what, p string) {
	t.Helper()
	filepath.Walk(p, func(q string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(q)
		if err != nil {
			return nil
		}
		defer f.Close()
		b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
		leaked(t, what+": copied file "+q, string(b))
		return nil
	})
}

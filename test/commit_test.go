//go:build linux

package test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// commitChanges adds, changes and deletes files in a busybox container;
// Docker's diff of it is commitDiff and Docker's commit layer of it holds
// exactly commitLayer.
const commitChanges = `echo hello-commit > /hello; echo new > /etc/newfile; echo extra >> /etc/passwd; rm /etc/group; rm /bin/vi; mkdir -p /opt/app/sub; echo x > /opt/app/sub/f; mkdir /cache; echo junk > /cache/junk; touch /tmp/t`

var (
	commitDiff = []string{
		"A /cache", "A /cache/junk", "A /hello", "C /tmp", "A /tmp/t", "C /bin", "D /bin/vi", "C /etc",
		"A /etc/newfile", "C /etc/passwd", "D /etc/group", "A /opt", "A /opt/app", "A /opt/app/sub", "A /opt/app/sub/f",
	}
	commitLayer = []string{
		"bin", "bin/.wh.vi", "cache", "cache/junk", "etc", "etc/.wh.group", "etc/newfile", "etc/passwd", "hello",
		"opt", "opt/app", "opt/app/sub", "opt/app/sub/f", "tmp", "tmp/t",
	}
)

// ctrSetDiff compares two lists as sets and describes the difference.
func ctrSetDiff(got, want []string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	for _, s := range want {
		w[s] = true
	}
	var missing, extra []string
	for s := range w {
		if !g[s] {
			missing = append(missing, s)
		}
	}
	for s := range g {
		if !w[s] {
			extra = append(extra, s)
		}
	}
	if len(missing)+len(extra) == 0 && len(got) == len(want) {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return "missing " + strings.Join(ctrQuote(missing), ", ") + "; unexpected " + strings.Join(ctrQuote(extra), ", ") + "; got " + strings.Join(ctrQuote(got), ", ")
}

func ctrQuote(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = `"` + s + `"`
	}
	return out
}

// ctrTarNames lists the entry names of a tar stream without "./" or a
// trailing "/", and the contents of its regular files.
func ctrTarNames(t testing.TB, data []byte) ([]string, map[string]string, map[string]*tar.Header) {
	t.Helper()
	var names []string
	files := map[string]string{}
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." {
			continue
		}
		names = append(names, name)
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = string(b)
		}
	}
	return names, files, hdrs
}

// ctrTopLayer saves ref with berth and returns the entry names of its last
// layer.
func ctrTopLayer(t testing.TB, root, ref string) []string {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "saved.tar")
	ctrOK(t, root, "save", "-o", saved, ref)
	files := tarFiles(t, saved)
	entries := dockerManifest(t, files)
	if len(entries) != 1 || len(entries[0].Layers) == 0 {
		t.Fatalf("berth save %s: manifest %+v", ref, entries)
	}
	names, _, _ := ctrTarNames(t, files[entries[0].Layers[len(entries[0].Layers)-1]])
	return names
}

// TestCommit: diff, commit (with -c, -m, -a, --exclude, of a running
// container), the committed image in berth and in Docker, export into
// docker import, and cp both ways with files, directories and tar streams.
func TestCommit(t *testing.T) {
	t.Parallel()
	root := newRoot(t)
	img := ctrImage(t, root, "ctr/commit-base:1")
	baseID := berthID(t, root, img)
	ctrOK(t, root, "run", "--name", "cm", img, "sh", "-c", commitChanges)
	cid := ctrInspect(t, root, "cm").Id

	t.Run("diff", func(t *testing.T) {
		got := ctrLines(ctrOK(t, root, "diff", "cm"))
		if d := ctrSetDiff(got, commitDiff); d != "" {
			t.Errorf("berth diff cm: %s", d)
		}
		// A container that never ran, and a running one that changed
		// nothing, have no changes (the runtime's mount points and the
		// engine's /etc files are not changes).
		fresh := strings.TrimSpace(ctrOK(t, root, "create", img, "true"))
		if out := ctrOK(t, root, "diff", fresh); out != "" {
			t.Errorf("berth diff of a created container: %q, want nothing", out)
		}
		ctrOK(t, root, "rm", fresh)
		live := ctrRunDetached(t, root, img, "sleep", "300")
		if out := ctrOK(t, root, "diff", live); out != "" {
			t.Errorf("berth diff of a running container that changed nothing: %q, want nothing", out)
		}
		ctrOK(t, root, "exec", live, "sh", "-c", "echo x > /root/added")
		if got := ctrLines(ctrOK(t, root, "diff", live)); strings.Join(got, "|") != "C /root|A /root/added" {
			t.Errorf("berth diff of a running container after exec added /root/added: %q", got)
		}
		ctrOK(t, root, "rm", "-f", live)
		if r := ctrB(t, root, "diff", "nosuchcontainer"); r.code == 0 {
			t.Errorf("berth diff nosuchcontainer exited 0")
		}
	})

	const committed = "ctr/committed:1"
	var committedID string
	t.Run("commit", func(t *testing.T) {
		out := ctrOK(t, root, "commit", "-c", `CMD ["cat","/hello"]`, "-c", "ENV COMMITTED=yes", "-m", "commit message", "-a", "Berth Tester <tester@example.com>", "cm", committed)
		committedID = strings.TrimSpace(out)
		if !idRE.MatchString(committedID) || out != committedID+"\n" {
			t.Fatalf("berth commit printed %q, want one line sha256:<64 hex>", out)
		}
		if got := berthID(t, root, committed); got != committedID {
			t.Fatalf("berth inspect %s: %s, commit printed %s", committed, got, committedID)
		}
		if committedID == baseID {
			t.Fatalf("commit gave the base image's ID")
		}
		if out := ctrOK(t, root, "run", "--rm", committed); out != "hello-commit\n" {
			t.Errorf("berth run %s (CMD cat /hello): %q, want hello-commit", committed, out)
		}
		check := `cat /etc/newfile; tail -n 1 /etc/passwd; test -e /etc/group || echo no-group; test -e /bin/vi || echo no-vi; cat /opt/app/sub/f /cache/junk; echo $COMMITTED`
		if out := ctrOK(t, root, "run", "--rm", committed, "sh", "-c", check); out != "new\nextra\nno-group\nno-vi\nx\njunk\nyes\n" {
			t.Errorf("berth run %s: the container's changes read %q, want new, extra, no-group, no-vi, x, junk, yes", committed, out)
		}

		var insp []struct {
			Id        string
			Author    string
			Comment   string
			Container string
			Config    struct {
				Cmd []string
				Env []string
			}
			RootFS struct{ Layers []string }
		}
		if err := json.Unmarshal([]byte(ctrOK(t, root, "image", "inspect", committed)), &insp); err != nil || len(insp) != 1 {
			t.Fatalf("berth image inspect %s: %v", committed, err)
		}
		ii := insp[0]
		if ii.Author != "Berth Tester <tester@example.com>" || ii.Comment != "commit message" {
			t.Errorf("committed image: Author %q Comment %q, want the -a and -m values", ii.Author, ii.Comment)
		}
		if strings.Join(ii.Config.Cmd, " ") != "cat /hello" {
			t.Errorf("committed image: Cmd %q, want [cat /hello]", ii.Config.Cmd)
		}
		if !strings.Contains(strings.Join(ii.Config.Env, "\n"), "COMMITTED=yes") {
			t.Errorf("committed image: Env %q, want COMMITTED=yes from -c", ii.Config.Env)
		}
		if ii.Container != cid {
			t.Errorf("committed image: Container %q, want the container's ID %s", ii.Container, cid)
		}
		if len(ii.RootFS.Layers) != 2 {
			t.Errorf("committed image: %d layers, want the base's one plus one", len(ii.RootFS.Layers))
		}
		hist := ctrOK(t, root, "history", committed)
		if hl := ctrLines(hist); len(hl) != 3 || !strings.Contains(hl[1], "commit message") {
			t.Errorf("berth history %s: want a header, the commit's row with its message, the base's row; got\n%s", committed, hist)
		}
		// The new layer is the container's changes and nothing else:
		// Docker's names, whiteouts for deletions, and none of the files
		// the engine mounts over (/etc/hosts, /etc/hostname,
		// /etc/resolv.conf).
		if d := ctrSetDiff(ctrTopLayer(t, root, committed), commitLayer); d != "" {
			t.Errorf("committed layer: %s", d)
		}
		saved := filepath.Join(t.TempDir(), "committed.tar")
		ctrOK(t, root, "save", "-o", saved, committed)
		checkBerthArchive(t, saved, committedID, committed)

		// No repository: an untagged image.
		out = strings.TrimSpace(ctrOK(t, root, "commit", "cm"))
		if !idRE.MatchString(out) {
			t.Errorf("berth commit cm (no name) printed %q", out)
		} else if all := ctrOK(t, root, "images", "-a", "-q", "--no-trunc"); !strings.Contains(all, out) {
			t.Errorf("the untagged commit %s is not in berth images -a", out)
		}
		systemCheck(t, root)
	})

	t.Run("exclude", func(t *testing.T) {
		const excl = "ctr/excluded:1"
		ctrOK(t, root, "commit", "--exclude", "cache", "--exclude", "opt/app/sub", "cm", excl)
		out := ctrOK(t, root, "run", "--rm", excl, "sh", "-c", `cat /hello; test -e /cache || echo no-cache; test -d /opt/app && echo has-app; test -e /opt/app/sub || echo no-sub`)
		if out != "hello-commit\nno-cache\nhas-app\nno-sub\n" {
			t.Errorf("berth commit --exclude cache --exclude opt/app/sub: the image shows %q, want hello, no /cache, /opt/app without sub", out)
		}
		var want []string
		for _, n := range commitLayer {
			if n != "cache" && n != "cache/junk" && n != "opt/app/sub" && n != "opt/app/sub/f" {
				want = append(want, n)
			}
		}
		if d := ctrSetDiff(ctrTopLayer(t, root, excl), want); d != "" {
			t.Errorf("layer committed with --exclude: %s", d)
		}
	})

	t.Run("running", func(t *testing.T) {
		live := ctrRunDetached(t, root, "--name", "cm-live", img, "sh", "-c", "echo live > /live; exec sleep 300")
		defer ctrB(t, root, "rm", "-f", live)
		if !ctrWait(10*time.Second, func() bool { return ctrB(t, root, "exec", live, "cat", "/live").stdout == "live\n" }) {
			t.Fatalf("the running container never wrote /live")
		}
		ctrOK(t, root, "commit", "-m", "from a running container", live, "ctr/live:1")
		st := ctrInspect(t, root, live)
		if !st.State.Running || st.State.Paused || st.State.Status != "running" {
			t.Errorf("after commit (pausing by default): Status %q Paused %v, want running and not paused", st.State.Status, st.State.Paused)
		}
		if out := ctrOK(t, root, "run", "--rm", "ctr/live:1", "cat", "/live"); out != "live\n" {
			t.Errorf("image committed from a running container: /live reads %q", out)
		}
		ctrOK(t, root, "commit", "-p=false", live, "ctr/live:2")
		if out := ctrOK(t, root, "run", "--rm", "ctr/live:2", "cat", "/live"); out != "live\n" {
			t.Errorf("image committed with -p=false: /live reads %q", out)
		}
	})

	t.Run("docker-load", func(t *testing.T) {
		if committedID == "" {
			t.Skip("commit failed")
		}
		needDocker(t)
		name := uniqueRepo(t, "committed") + ":1"
		dockerCleanup(t, name)
		ctrOK(t, root, "tag", committed, name)
		saved := filepath.Join(t.TempDir(), "committed.tar")
		ctrOK(t, root, "save", "-o", saved, name)
		assertLoaded(t, run(t, "docker", "load", "-i", saved), name)
		if got := dockerID(t, name); got != committedID {
			t.Errorf("docker load of the committed image: Id %s, berth's %s", got, committedID)
		}
		if out := run(t, "docker", "run", "--rm", "--network", "none", name); out != "hello-commit\n" {
			t.Errorf("docker run of the committed image: %q, want hello-commit", out)
		}
		r, err := execute(nil, nil, "docker", "run", "--rm", "--network", "none", name, "sh", "-c", "test -e /etc/group || test -e /bin/vi || cat /etc/newfile /opt/app/sub/f")
		if err != nil || r.code != 0 || r.stdout != "new\nx\n" {
			t.Errorf("docker run of the committed image: want /etc/group and /bin/vi deleted, /etc/newfile and /opt/app/sub/f added; got %v %s", err, r)
		}
	})

	t.Run("export", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cm.tar")
		if out := ctrOK(t, root, "export", "-o", file, "cm"); out != "" {
			t.Errorf("berth export -o printed %q on stdout", out)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names, files, hdrs := ctrTarNames(t, data)
		has := map[string]bool{}
		for _, n := range names {
			has[n] = true
		}
		if files["hello"] != "hello-commit\n" || files["etc/newfile"] != "new\n" || files["opt/app/sub/f"] != "x\n" || !strings.HasSuffix(files["etc/passwd"], "extra\n") {
			t.Errorf("berth export: hello %q etc/newfile %q opt/app/sub/f %q etc/passwd %q; want the container's files", files["hello"], files["etc/newfile"], files["opt/app/sub/f"], files["etc/passwd"])
		}
		if has["etc/group"] || has["bin/vi"] {
			t.Errorf("berth export: holds etc/group %v bin/vi %v, deleted in the container", has["etc/group"], has["bin/vi"])
		}
		if h := hdrs["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			t.Errorf("berth export: bin/busybox %+v, want an executable file", h)
		}
		if h := hdrs["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("berth export: bin/sh %+v, want a symlink to busybox", h)
		}
		for _, n := range names {
			if strings.Contains(n, ".wh.") {
				t.Errorf("berth export: whiteout %s in a flattened file system", n)
			}
		}
		r := ctrB(t, root, "export", "cm")
		if r.code != 0 {
			t.Fatalf("berth export cm (to stdout): %s", r)
		}
		stdoutNames, _, _ := ctrTarNames(t, []byte(r.stdout))
		if d := ctrSetDiff(stdoutNames, names); d != "" {
			t.Errorf("berth export to stdout and -o differ: %s", d)
		}
		if r := ctrB(t, root, "export", "nosuchcontainer"); r.code == 0 {
			t.Errorf("berth export nosuchcontainer exited 0")
		}

		needDocker(t)
		name := uniqueRepo(t, "exported") + ":1"
		dockerCleanup(t, name)
		run(t, "docker", "import", file, name)
		r2, err := execute(nil, nil, "docker", "run", "--rm", "--network", "none", name, "sh", "-c", "cat /hello /etc/newfile; test -e /etc/group || echo no-group")
		if err != nil || r2.code != 0 || r2.stdout != "hello-commit\nnew\nno-group\n" {
			t.Errorf("docker import of berth export, docker run: want hello-commit, new, no-group; got %v %s", err, r2)
		}
	})

	t.Run("cp", func(t *testing.T) {
		live := ctrRunDetached(t, root, "--name", "cm-cp", img, "sleep", "300")
		defer ctrB(t, root, "rm", "-f", live)
		host := t.TempDir()
		in := filepath.Join(host, "in.txt")
		os.WriteFile(in, []byte("from the host\n"), 0o640)
		os.Chmod(in, 0o640)
		dir := filepath.Join(host, "tree")
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "a"), []byte("A\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "sub", "b"), []byte("B\n"), 0o644)

		// Host -> container: a file to a new name, into a directory, and
		// a directory to a new path.
		ctrOK(t, root, "cp", in, "cm-cp:/tmp/in-renamed.txt")
		ctrOK(t, root, "cp", in, "cm-cp:/tmp/")
		ctrOK(t, root, "cp", dir, "cm-cp:/srv")
		out := ctrOK(t, root, "exec", "cm-cp", "sh", "-c", "cat /tmp/in-renamed.txt /tmp/in.txt /srv/a /srv/sub/b; stat -c %a /tmp/in.txt")
		if out != "from the host\nfrom the host\nA\nB\n640\n" {
			t.Errorf("cp host -> container: the container reads %q, want the two copies, /srv/a, /srv/sub/b and mode 640", out)
		}

		// Container -> host: a file, a directory, a directory's contents.
		ctrOK(t, root, "exec", "cm-cp", "sh", "-c", "mkdir -p /data/d/sub; echo a > /data/d/a; echo b > /data/d/sub/b; ln -s a /data/d/link")
		outDir := t.TempDir()
		ctrOK(t, root, "cp", "cm-cp:/etc/passwd", filepath.Join(outDir, "passwd"))
		want := ctrOK(t, root, "exec", "cm-cp", "cat", "/etc/passwd")
		if b, _ := os.ReadFile(filepath.Join(outDir, "passwd")); string(b) != want {
			t.Errorf("cp container:/etc/passwd: the host copy reads %q, want %q", b, want)
		}
		ctrOK(t, root, "cp", "cm-cp:/data/d", outDir)
		if a, _ := os.ReadFile(filepath.Join(outDir, "d", "a")); string(a) != "a\n" {
			t.Errorf("cp container:/data/d HOSTDIR: d/a reads %q", a)
		}
		if b, _ := os.ReadFile(filepath.Join(outDir, "d", "sub", "b")); string(b) != "b\n" {
			t.Errorf("cp container:/data/d HOSTDIR: d/sub/b reads %q", b)
		}
		if l, err := os.Readlink(filepath.Join(outDir, "d", "link")); err != nil || l != "a" {
			t.Errorf("cp container:/data/d HOSTDIR: d/link -> %q (%v), want the symlink kept", l, err)
		}
		ctrOK(t, root, "cp", "cm-cp:/data/d/.", filepath.Join(outDir, "contents"))
		if a, _ := os.ReadFile(filepath.Join(outDir, "contents", "a")); string(a) != "a\n" {
			t.Errorf("cp container:/data/d/. NEWDIR: contents/a reads %q, want the directory's contents copied into NEWDIR", a)
		}

		// Tar streams: container -> stdout, stdin -> container.
		r := ctrB(t, root, "cp", "cm-cp:/data/d", "-")
		if r.code != 0 {
			t.Fatalf("cp container:/data/d -: %s", r)
		}
		names, files, hdrs := ctrTarNames(t, []byte(r.stdout))
		if d := ctrSetDiff(names, []string{"d", "d/a", "d/link", "d/sub", "d/sub/b"}); d != "" {
			t.Errorf("cp container:/data/d -: tar entries: %s", d)
		}
		if files["d/a"] != "a\n" || files["d/sub/b"] != "b\n" || hdrs["d/link"] == nil || hdrs["d/link"].Linkname != "a" {
			t.Errorf("cp container:/data/d -: contents %q, link %+v", files, hdrs["d/link"])
		}
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "fromtar/", Mode: 0o755})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "fromtar/x", Mode: 0o600, Size: 7})
		tw.Write([]byte("tarred\n"))
		tw.Close()
		ctrOKIn(t, root, &tb, "cp", "-", "cm-cp:/tmp")
		if out := ctrOK(t, root, "exec", "cm-cp", "sh", "-c", "cat /tmp/fromtar/x; stat -c %a /tmp/fromtar/x"); out != "tarred\n600\n" {
			t.Errorf("cp - container:/tmp: /tmp/fromtar/x reads %q, want tarred and mode 600", out)
		}

		// A stopped container: both ways, and diff shows the copy.
		ctrOK(t, root, "cp", in, "cm:/copied")
		ctrOK(t, root, "cp", "cm:/hello", filepath.Join(outDir, "hello"))
		if b, _ := os.ReadFile(filepath.Join(outDir, "hello")); string(b) != "hello-commit\n" {
			t.Errorf("cp stopped-container:/hello: %q", b)
		}
		if d := ctrLines(ctrOK(t, root, "diff", "cm")); !strings.Contains(strings.Join(d, "\n"), "A /copied") {
			t.Errorf("berth diff after cp into the stopped container: no \"A /copied\" in %q", d)
		}
		if m := ctrMountsUnder(filepath.Join(root, "containers", cid)); len(m) > 0 {
			t.Errorf("cp into a stopped container left mounts: %q", m)
		}

		// Errors.
		if r := ctrB(t, root, "cp", "cm-cp:/no/such/file", filepath.Join(outDir, "x")); r.code == 0 {
			t.Errorf("cp of a missing container path exited 0")
		}
		if r := ctrB(t, root, "cp", in, "nosuchcontainer:/tmp"); r.code == 0 {
			t.Errorf("cp into a missing container exited 0")
		}
	})

	ctrOK(t, root, "rm", "cm")
	systemCheck(t, root)
}

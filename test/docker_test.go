//go:build linux

package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dockerCleanup removes the given Docker images when the test ends.
func dockerCleanup(t *testing.T, refs ...string) {
	t.Cleanup(func() {
		for _, ref := range refs {
			execute(nil, nil, "docker", "rmi", "-f", ref)
		}
	})
}

// TestDockerLoadsBerthImage: an image imported into berth and saved by
// berth loads into Docker with the same ID and runs.
func TestDockerLoadsBerthImage(t *testing.T) {
	needDocker(t)
	root := newRoot(t)
	name := uniqueRepo(t, "busybox") + ":1"
	dockerCleanup(t, name)

	id := berthImport(t, root, "-c", `CMD ["sh"]`, busyboxTar(t), name)
	saved := filepath.Join(t.TempDir(), "berth.tar")
	berth(t, root, "save", "-o", saved, name)
	checkBerthArchive(t, saved, id, name)

	out := run(t, "docker", "load", "-i", saved)
	assertLoaded(t, out, name)
	if got := dockerID(t, name); got != id {
		t.Fatalf("docker inspect %s: Id %s, berth's is %s", name, got, id)
	}
	if got := run(t, "docker", "run", "--rm", "--network", "none", name, "echo", "hi"); got != "hi\n" {
		t.Errorf("docker run %s echo hi: printed %q", name, got)
	}
	// The Cmd set by berth import -c is honoured.
	if got := run(t, "docker", "run", "--rm", "--network", "none", "-i", name); got != "" {
		t.Errorf("docker run %s (CMD sh, no input): printed %q", name, got)
	}
}

// TestBerthLoadsDockerImages: images made by Docker (a one-layer import and
// a two-layer commit on top of it) and saved by `docker save` load into
// berth with Docker's IDs, from a file, gzip-compressed and from stdin; and
// berth's save of them goes back into Docker unchanged.
func TestBerthLoadsDockerImages(t *testing.T) {
	needDocker(t)
	bb := busyboxTar(t)
	repo := uniqueRepo(t, "bb")
	base, two := repo+":base", repo+":two"
	ctr := strings.ReplaceAll(strings.ReplaceAll(repo, "/", "-"), ":", "-") + "-ctr"
	dockerCleanup(t, two, base)
	t.Cleanup(func() { execute(nil, nil, "docker", "rm", "-f", ctr) })

	run(t, "docker", "import", "-c", `CMD ["sh"]`, bb, base)
	run(t, "docker", "run", "--network", "none", "--name", ctr, base, "sh", "-c", "echo layer2 > /hello && mkdir -p /etc/berth && echo x > /etc/berth/x && rm /etc/group")
	run(t, "docker", "commit", "-c", `CMD ["cat", "/hello"]`, ctr, two)
	run(t, "docker", "rm", ctr)

	baseID, twoID := dockerID(t, base), dockerID(t, two)
	var dockerLayers []string
	if err := json.Unmarshal([]byte(run(t, "docker", "inspect", "-f", "{{json .RootFS.Layers}}", two)), &dockerLayers); err != nil {
		t.Fatal(err)
	}
	if len(dockerLayers) != 2 {
		t.Fatalf("docker commit gave %d layers, want 2", len(dockerLayers))
	}

	dir := t.TempDir()
	saved := filepath.Join(dir, "docker.tar")
	run(t, "docker", "save", "-o", saved, base, two)
	gz := filepath.Join(dir, "docker.tar.gz")
	gzipFile(t, saved, gz)

	twoFiles := map[string]string{"hello": "layer2\n", "etc/berth/x": "x\n"}
	verify := func(t *testing.T, root, loadOut string) {
		t.Helper()
		assertLoaded(t, loadOut, base, two)
		if got := berthID(t, root, base); got != baseID {
			t.Errorf("berth inspect %s: Id %s, docker's is %s", base, got, baseID)
		}
		if got := berthID(t, root, two); got != twoID {
			t.Errorf("berth inspect %s: Id %s, docker's is %s", two, got, twoID)
		}
		var layers []string
		if err := json.Unmarshal([]byte(berth(t, root, "inspect", "-f", "{{json .RootFS.Layers}}", two)), &layers); err != nil {
			t.Fatalf("berth inspect -f '{{json .RootFS.Layers}}': %v", err)
		}
		if strings.Join(layers, " ") != strings.Join(dockerLayers, " ") {
			t.Errorf("berth RootFS.Layers %q, docker's %q", layers, dockerLayers)
		}
		checkLoaded(t, root, base, map[string]string{"etc/group": "root:x:0:\nnogroup:x:65534:\n"})
		checkLoaded(t, root, two, twoFiles)
		assertAbsent(t, root, two, "etc/group") // whiteout in the top layer
	}

	t.Run("file", func(t *testing.T) {
		root := newRoot(t)
		verify(t, root, berth(t, root, "load", "-i", saved))
	})
	t.Run("gzip", func(t *testing.T) {
		root := newRoot(t)
		verify(t, root, berth(t, root, "load", "-i", gz))
	})
	t.Run("stdin", func(t *testing.T) {
		root := newRoot(t)
		f, err := os.Open(saved)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		verify(t, root, berthIn(t, root, f, "load"))
	})
	t.Run("gzip-stdin", func(t *testing.T) {
		root := newRoot(t)
		f, err := os.Open(gz)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		verify(t, root, berthIn(t, root, f, "load"))
	})

	// Back again: berth's save of the two-layer image replaces Docker's copy
	// with the same ID and the same behaviour.
	t.Run("roundtrip", func(t *testing.T) {
		root := newRoot(t)
		berth(t, root, "load", "-i", saved)
		back := filepath.Join(t.TempDir(), "back.tar")
		berth(t, root, "save", "-o", back, two)
		checkBerthArchive(t, back, twoID, two)
		run(t, "docker", "rmi", two)
		assertLoaded(t, run(t, "docker", "load", "-i", back), two)
		if got := dockerID(t, two); got != twoID {
			t.Errorf("docker load of berth's save: Id %s, want %s", got, twoID)
		}
		if got := run(t, "docker", "run", "--rm", "--network", "none", two); got != "layer2\n" {
			t.Errorf("docker run %s: printed %q, want layer2", two, got)
		}
		r, err := execute(nil, nil, "docker", "run", "--rm", "--network", "none", two, "test", "-e", "/etc/group")
		if err != nil || r.code != 1 {
			t.Errorf("docker run %s test -e /etc/group: %v %s; want exit 1 (deleted in the top layer)", two, err, r)
		}
	})
}

//go:build linux

package test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func podmanCleanup(t *testing.T, refs ...string) {
	t.Cleanup(func() {
		for _, ref := range refs {
			execute(nil, nil, "podman", "rmi", "-f", ref)
		}
	})
}

// TestPodmanLoadsBerthImage: berth's save loads into Podman (which reads the
// archive's OCI layout or its Docker manifest) with the same ID and runs.
func TestPodmanLoadsBerthImage(t *testing.T) {
	needPodman(t)
	root := newRoot(t)
	name := uniqueRepo(t, "busybox") + ":1"

	id := berthImport(t, root, "-c", `CMD ["sh"]`, busyboxTar(t), name)
	hexID := strings.TrimPrefix(id, "sha256:")
	podmanCleanup(t, hexID)
	saved := filepath.Join(t.TempDir(), "berth.tar")
	berth(t, root, "save", "-o", saved, name)
	checkBerthArchive(t, saved, id, name)

	out := run(t, "podman", "load", "-i", saved)
	t.Logf("podman load: %s", strings.TrimSpace(out))
	if got := podmanID(t, hexID); got != id {
		t.Fatalf("podman image inspect %s: Id %s, berth's is %s", hexID, got, id)
	}
	if got := run(t, "podman", "run", "--rm", "--network", "none", hexID, "echo", "hi"); got != "hi\n" {
		t.Errorf("podman run %s echo hi: printed %q", hexID, got)
	}
	var names []string
	if err := json.Unmarshal([]byte(run(t, "podman", "image", "inspect", "-f", "{{json .RepoTags}}", hexID)), &names); err == nil {
		t.Logf("podman names the image %q", names)
	}
}

// TestBerthLoadsPodmanImages: a two-layer image made by Podman and saved as
// a docker-archive (Podman's default) and as an oci-archive loads into berth
// with Podman's ID.
func TestBerthLoadsPodmanImages(t *testing.T) {
	needPodman(t)
	bb := busyboxTar(t)
	repo := "localhost/" + uniqueRepo(t, "bb")
	base, two := repo+":base", repo+":two"
	ctr := strings.ReplaceAll(strings.TrimPrefix(repo, "localhost/"), "/", "-") + "-ctr"
	podmanCleanup(t, two, base)
	t.Cleanup(func() { execute(nil, nil, "podman", "rm", "-f", ctr) })

	run(t, "podman", "import", "-q", "-c", `CMD ["sh"]`, bb, base)
	run(t, "podman", "run", "--network", "none", "--name", ctr, base, "sh", "-c", "echo layer2 > /hello && rm /etc/group")
	run(t, "podman", "commit", "-q", "-c", `CMD ["cat", "/hello"]`, ctr, two)
	run(t, "podman", "rm", ctr)
	if got := run(t, "podman", "run", "--rm", "--network", "none", two); got != "layer2\n" {
		t.Fatalf("podman run %s: printed %q", two, got)
	}
	twoID := podmanID(t, two)

	dir := t.TempDir()
	for _, format := range []string{"docker-archive", "oci-archive"} {
		t.Run(format, func(t *testing.T) {
			saved := filepath.Join(dir, format+".tar")
			run(t, "podman", "save", "-q", "--format", format, "-o", saved, two)
			if format == "oci-archive" {
				if ids := ociConfigDigests(t, saved); len(ids) != 1 || ids[0] != twoID {
					t.Fatalf("podman's oci-archive holds configs %q, expected podman's ID %s", ids, twoID)
				}
			}
			root := newRoot(t)
			assertLoaded(t, berth(t, root, "load", "-i", saved), two)
			if got := berthID(t, root, two); got != twoID {
				t.Errorf("berth inspect %s: Id %s, podman's is %s", two, got, twoID)
			}
			checkLoaded(t, root, two, map[string]string{"hello": "layer2\n"})
			assertAbsent(t, root, two, "etc/group") // whiteout in the top layer
		})
	}
}

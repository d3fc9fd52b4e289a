//go:build linux

package test

import (
	"path/filepath"
	"testing"
)

// TestBerthLoadsSkopeoOCIArchive: skopeo turns a docker-archive into an
// oci-archive (gzip-compressed layers, converted config); berth loads it
// under the name in the OCI ref annotation, with the config digest as ID.
func TestBerthLoadsSkopeoOCIArchive(t *testing.T) {
	needSkopeo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "docker.tar")
	writeDockerArchive(t, src, busyboxTar(t), "busybox:latest")
	oci := filepath.Join(dir, "oci.tar")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+src, "oci-archive:"+oci+":busybox:latest")

	ids := ociConfigDigests(t, oci)
	if len(ids) != 1 {
		t.Fatalf("skopeo's oci-archive holds %d images, want 1", len(ids))
	}
	root := newRoot(t)
	assertLoaded(t, berth(t, root, "load", "-i", oci), "busybox:latest")
	if got := berthID(t, root, "busybox:latest"); got != ids[0] {
		t.Errorf("berth inspect busybox:latest: Id %s, want the OCI config digest %s", got, ids[0])
	}
	checkLoaded(t, root, "busybox:latest", map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"})
}

// TestSkopeoReadsBerthArchive: both halves of berth's save are valid for
// skopeo: read as a docker-archive and as an oci-archive, the image has
// berth's config (so the same ID) and can be copied.
func TestSkopeoReadsBerthArchive(t *testing.T) {
	needSkopeo(t)
	root := newRoot(t)
	id := berthImport(t, root, "-c", `CMD ["sh"]`, busyboxTar(t), "demo/app:1")
	dir := t.TempDir()
	saved := filepath.Join(dir, "berth.tar")
	berth(t, root, "save", "-o", saved, "demo/app:1")

	for _, transport := range []string{"docker-archive", "oci-archive"} {
		t.Run(transport, func(t *testing.T) {
			cfg := run(t, "skopeo", "inspect", "--raw", "--config", transport+":"+saved)
			if got := digestOf([]byte(cfg)); got != id {
				t.Errorf("skopeo inspect --raw --config %s: config digest %s, want berth's ID %s", transport, got, id)
			}
			out := filepath.Join(dir, transport+"-copy.tar")
			run(t, "skopeo", "copy", "-q", transport+":"+saved, "docker-archive:"+out+":demo/app:1")
			other := newRoot(t)
			assertLoaded(t, berth(t, other, "load", "-i", out), "demo/app:1")
			checkLoaded(t, other, "demo/app:1", nil)
		})
	}
}

//go:build linux

package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImageLifecycle drives the image commands on berth alone: import, the
// listing and inspection verbs, tag, save, rmi, load (file and stdin) and
// the store checks.
func TestImageLifecycle(t *testing.T) {
	root := newRoot(t)
	bb := busyboxTar(t)

	out := berth(t, root, "import", "-c", `CMD ["sh"]`, "-m", "busybox base", bb, "busybox:latest")
	id := strings.TrimSpace(out)
	if !idRE.MatchString(id) || out != id+"\n" {
		t.Fatalf("berth import: printed %q, want one line sha256:<64 hex>", out)
	}
	if got := berthID(t, root, "busybox:latest"); got != id {
		t.Fatalf("inspect busybox:latest: Id %s, import printed %s", got, id)
	}
	// A short name means :latest; the ID and its short forms resolve too.
	for _, ref := range []string{"busybox", id, strings.TrimPrefix(id, "sha256:"), strings.TrimPrefix(id, "sha256:")[:12]} {
		if got := berthID(t, root, ref); got != id {
			t.Errorf("inspect %s: Id %s, want %s", ref, got, id)
		}
	}

	// inspect: a Docker-shaped JSON array.
	var insp []struct {
		Id          string
		RepoTags    []string
		RepoDigests []string
		Created     string
		Size        int64
		Comment     string
		Os          string
		Config      struct{ Cmd []string }
		RootFS      struct {
			Type   string
			Layers []string
		}
	}
	if err := json.Unmarshal([]byte(berth(t, root, "inspect", "busybox:latest")), &insp); err != nil {
		t.Fatalf("berth inspect: not a JSON array: %v", err)
	}
	if len(insp) != 1 {
		t.Fatalf("berth inspect: %d objects, want 1", len(insp))
	}
	img := insp[0]
	if img.Id != id || strings.Join(img.RepoTags, ",") != "busybox:latest" {
		t.Errorf("berth inspect: Id %s RepoTags %q, want %s [busybox:latest]", img.Id, img.RepoTags, id)
	}
	if strings.Join(img.Config.Cmd, " ") != "sh" {
		t.Errorf("berth inspect: Config.Cmd %q, want [sh] (from import -c)", img.Config.Cmd)
	}
	if img.RootFS.Type != "layers" || len(img.RootFS.Layers) != 1 || !idRE.MatchString(img.RootFS.Layers[0]) {
		t.Errorf("berth inspect: RootFS %+v, want one sha256 layer", img.RootFS)
	}
	if img.Size <= 1<<20 || img.Created == "" || img.Os != "linux" {
		t.Errorf("berth inspect: Size %d Created %q Os %q: want > 1 MiB (busybox), a date, linux", img.Size, img.Created, img.Os)
	}
	if img.Comment != "busybox base" {
		t.Errorf("berth inspect: Comment %q, want the import -m message", img.Comment)
	}

	// tag, then the listing commands.
	berth(t, root, "tag", "busybox:latest", "demo/app:1")
	if got := berthID(t, root, "demo/app:1"); got != id {
		t.Fatalf("after tag: demo/app:1 is %s, want %s", got, id)
	}
	// Like Docker, -q prints the ID of every row (so once per tag here).
	short := strings.TrimPrefix(id, "sha256:")[:12]
	if got := strings.Fields(berth(t, root, "images", "-q")); len(got) == 0 || !allEqual(got, short) {
		t.Errorf("berth images -q: %q, want only %s", got, short)
	}
	if got := strings.Fields(berth(t, root, "images", "-q", "--no-trunc")); len(got) == 0 || !allEqual(got, id) {
		t.Errorf("berth images -q --no-trunc: %q, want only %s", got, id)
	}
	table := berth(t, root, "images")
	for _, want := range []string{"REPOSITORY", "TAG", "IMAGE ID", "busybox", "demo/app", "latest"} {
		if !strings.Contains(table, want) {
			t.Errorf("berth images: no %q in\n%s", want, table)
		}
	}
	if got := strings.TrimSpace(berth(t, root, "images", "--format", "{{.Repository}}:{{.Tag}}", "demo/app")); got != "demo/app:1" {
		t.Errorf("berth images --format ... demo/app: %q, want demo/app:1", got)
	}
	hist := berth(t, root, "history", "busybox")
	if lines := strings.Split(strings.TrimSpace(hist), "\n"); len(lines) < 2 || !strings.Contains(lines[0], "CREATED") {
		t.Errorf("berth history busybox: want a header and at least one row, got\n%s", hist)
	}

	// save: Docker archive and OCI layout in one tar.
	dir := t.TempDir()
	saved := filepath.Join(dir, "app.tar")
	berth(t, root, "save", "-o", saved, "demo/app:1")
	checkBerthArchive(t, saved, id, "demo/app:1")

	// rmi both tags: the image is gone.
	berth(t, root, "rmi", "demo/app:1", "busybox:latest")
	if got := strings.TrimSpace(berth(t, root, "images", "-q", "-a")); got != "" {
		t.Fatalf("after rmi of every tag: berth images -q -a = %q, want nothing", got)
	}
	if code, _, _ := berthErr(t, root, "inspect", "busybox:latest"); code == 0 {
		t.Errorf("berth inspect of a removed image exited 0")
	}
	systemCheck(t, root)

	// load from a file, then the same archive again from stdin.
	assertLoaded(t, berth(t, root, "load", "-i", saved), "demo/app:1")
	if got := berthID(t, root, "demo/app:1"); got != id {
		t.Errorf("after load: demo/app:1 is %s, want %s", got, id)
	}
	checkLoaded(t, root, "demo/app:1", nil)
	f, err := os.Open(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	assertLoaded(t, berthIn(t, root, f, "load"), "demo/app:1")
	if got := strings.TrimSpace(berth(t, root, "load", "-q", "-i", saved)); got != "" && !strings.HasPrefix(got, "Loaded image") {
		t.Errorf("berth load -q: printed %q", got)
	}
	checkLoaded(t, root, "demo/app:1", nil)

	// import from stdin.
	bbf, err := os.Open(bb)
	if err != nil {
		t.Fatal(err)
	}
	defer bbf.Close()
	if out := strings.TrimSpace(berthIn(t, root, bbf, "import", "-", "stdin:1")); !idRE.MatchString(out) {
		t.Errorf("berth import - stdin:1: printed %q, want sha256:<64 hex>", out)
	} else if got := berthID(t, root, "stdin:1"); got != out {
		t.Errorf("berth inspect stdin:1: %s, import printed %s", got, out)
	}
	checkLoaded(t, root, "stdin:1", nil)

	df := berth(t, root, "system", "df")
	if !strings.Contains(df, "Images") {
		t.Errorf("berth system df: no Images row in\n%s", df)
	}
}

// TestSaveByIDLoadsUntagged: an archive saved by image ID has no tags, and
// load reports the ID the way Docker does.
func TestSaveByIDLoadsUntagged(t *testing.T) {
	root := newRoot(t)
	id := berthImport(t, root, busyboxTar(t), "bb:1")
	saved := filepath.Join(t.TempDir(), "byid.tar")
	berth(t, root, "save", "-o", saved, id)
	checkBerthArchive(t, saved, id)

	other := newRoot(t)
	out := berth(t, other, "load", "-i", saved)
	if strings.TrimSpace(out) != "Loaded image ID: "+id {
		t.Errorf("berth load of an untagged archive: printed %q, want %q", out, "Loaded image ID: "+id)
	}
	if got := berthID(t, other, id); got != id {
		t.Errorf("inspect %s: got %s", id, got)
	}
	checkLoaded(t, other, id, nil)
}

// TestUntaggedAndPrune: an import without a name is dangling; prune removes
// it, and rmi refuses an image that does not exist.
func TestUntaggedAndPrune(t *testing.T) {
	root := newRoot(t)
	bb := busyboxTar(t)
	keep := berthImport(t, root, "-c", `CMD ["sh"]`, bb, "keep:1")
	dangling := berthImport(t, root, "-m", "dangling", bb)
	if !idRE.MatchString(dangling) || dangling == keep {
		t.Fatalf("berth import without a ref: printed %q", dangling)
	}
	ids := berth(t, root, "images", "-q", "-a", "--no-trunc")
	if !strings.Contains(ids, keep) || !strings.Contains(ids, dangling) {
		t.Fatalf("berth images -a -q --no-trunc: %q, want both %s and %s", ids, keep, dangling)
	}

	berth(t, root, "image", "prune", "-f")
	ids = berth(t, root, "images", "-q", "-a", "--no-trunc")
	if strings.Contains(ids, dangling) || !strings.Contains(ids, keep) {
		t.Errorf("after image prune -f: images %q, want only %s", ids, keep)
	}
	systemCheck(t, root)

	if code, _, _ := berthErr(t, root, "rmi", "nosuch:tag"); code == 0 {
		t.Errorf("berth rmi nosuch:tag exited 0")
	}

	berth(t, root, "image", "prune", "-a", "-f")
	if ids = strings.TrimSpace(berth(t, root, "images", "-q", "-a")); ids != "" {
		t.Errorf("after image prune -a -f: images %q, want none", ids)
	}
	systemCheck(t, root)
}

func allEqual(list []string, want string) bool {
	for _, s := range list {
		if s != want {
			return false
		}
	}
	return true
}

func TestImportPlatform(t *testing.T) {
	root := newRoot(t)
	rootfs := busyboxTar(t)
	berthImport(t, root, "--platform", "linux/"+runtime.GOARCH, rootfs, "plat/host:1")
	for _, bad := range []string{"windows/amd64", "linux/s390x", "linux"} {
		code, _, stderr := berthErr(t, root, "import", "--platform", bad, rootfs, "plat/bad:1")
		if code == 0 || !strings.Contains(stderr, "platform") {
			t.Errorf("import --platform %s: exit %d, stderr %q; want a refusal naming the platform", bad, code, stderr)
		}
	}
	if got := strings.TrimSpace(berth(t, root, "images", "-q", "plat/bad")); got != "" {
		t.Errorf("a refused import left image %q", got)
	}
}

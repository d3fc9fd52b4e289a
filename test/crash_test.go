//go:build linux

package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashRounds is how many times each crash test SIGKILLs berth.
const crashRounds = 24

var (
	imagegenOnce sync.Once
	imagegenBin  string
	imagegenErr  error
)

// imagegenTool returns test/imagegen built once per test binary run. It is
// put next to the berth binary, so TestMain removes it.
func imagegenTool(t testing.TB) string {
	t.Helper()
	needBerth(t)
	imagegenOnce.Do(func() {
		p := filepath.Join(filepath.Dir(berthBin), "imagegen")
		cmd := exec.Command("go", "build", "-o", p, "./test/imagegen")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			imagegenErr = fmt.Errorf("go build ./test/imagegen: %v\n%s", err, out)
			return
		}
		imagegenBin = p
	})
	if imagegenErr != nil {
		t.Fatal(imagegenErr)
	}
	return imagegenBin
}

// genImage writes a synthetic Docker archive: the busybox base plus layers
// generated layers (opt/layer<N>/...) holding mib MiB of content in total
// and small small files each.
func genImage(t testing.TB, out, tag string, layers, mib, small int) {
	t.Helper()
	run(t, imagegenTool(t), "-o", out, "-base", busyboxTar(t),
		"-layers", strconv.Itoa(layers), "-mib", strconv.Itoa(mib),
		"-small", strconv.Itoa(small), "-tag", tag)
}

// crashSeed is the seed of the kill delays: $BERTH_CRASH_SEED when set (to
// replay a failure), else the clock.
func crashSeed(t testing.TB) uint64 {
	t.Helper()
	if s := os.Getenv("BERTH_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BERTH_CRASH_SEED=%q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// killResult is what became of a berth process that was to be SIGKILLed.
type killResult struct {
	killed bool          // SIGKILL ended it while it was still running
	code   int           // its exit code when it finished before the kill
	stderr string        // what it wrote to standard error
	ran    time.Duration // from start to its end
}

func (k killResult) String() string {
	if k.killed {
		return fmt.Sprintf("killed after %v", k.ran.Round(time.Millisecond))
	}
	return fmt.Sprintf("finished (exit %d) after %v before the kill", k.code, k.ran.Round(time.Millisecond))
}

// berthKilled starts berth with args and sends it SIGKILL after delay unless
// it has finished by then. Only the process started here is signalled.
func berthKilled(t testing.TB, root string, delay time.Duration, args ...string) killResult {
	t.Helper()
	needBerth(t)
	cmd := exec.Command(berthBin, berthArgs(root, args)...)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start berth %s: %v", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	// A hung berth is killed too: the limit only bounds the test.
	limit := time.NewTimer(cmdTimeout)
	defer limit.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		// os.Process tracks the child with a pidfd: once Wait has reaped it
		// this is a no-op, never a signal to a recycled pid.
		if serr := cmd.Process.Signal(syscall.SIGKILL); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
			t.Fatalf("SIGKILL berth: %v", serr)
		}
		select {
		case err = <-done:
		case <-limit.C:
			t.Fatalf("berth %s did not die after SIGKILL", strings.Join(args, " "))
		}
	}
	res := killResult{ran: time.Since(start), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.killed = true
		} else {
			res.code = ee.ExitCode()
		}
	default:
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// timeBerth runs berth (which must succeed) and returns how long it took.
func timeBerth(t testing.TB, root string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	berth(t, root, args...)
	return time.Since(start)
}

// randDelay is uniform in [0, 1.2 × d].
func randDelay(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)*6/5 + 1))
}

// dirEntries lists the names in dir; a missing directory has none.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// checkAfterCrash runs `berth system check`, failing the test with the
// round's description unless it exits 0.
func checkAfterCrash(t testing.TB, root, round string) {
	t.Helper()
	code, stdout, stderr := berthErr(t, root, "system", "check")
	if code != 0 {
		t.Fatalf("%s: berth system check: exit %d, want 0\n--- stdout\n%s\n--- stderr\n%s\n--- store\n%s",
			round, code, stdout, stderr, storeListing(root))
	}
	if strings.TrimSpace(stdout) != "ok" {
		t.Fatalf("%s: berth system check exited 0 but printed %q, want \"ok\"", round, stdout)
	}
}

// storeListing describes the in-flight directories of a root, for failure
// messages.
func storeListing(root string) string {
	var b strings.Builder
	for _, d := range []string{"content/ingest", "snapshots", "snapshots/tmp"} {
		es, _ := os.ReadDir(filepath.Join(root, d))
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		fmt.Fprintf(&b, "%s: %s\n", d, strings.Join(names, " "))
	}
	return b.String()
}

// hasImage says whether `berth images -q -a --no-trunc` lists id.
func hasImage(t testing.TB, root, id string) bool {
	t.Helper()
	for _, f := range strings.Fields(berth(t, root, "images", "-q", "-a", "--no-trunc")) {
		if f == id {
			return true
		}
	}
	return false
}

// crashImage is the archive the crash tests kill berth on.
type crashImage struct {
	path  string
	tag   string
	id    string            // the config digest: the image ID
	files map[string]string // sample files of every generated layer -> content
	top   string            // a file of the top layer
}

// makeCrashImage writes the archive (busybox + 5 layers, 60 MiB, many small
// files) and reads back its image ID and some files of every layer.
func makeCrashImage(t *testing.T) crashImage {
	t.Helper()
	const layers = 5
	img := crashImage{path: filepath.Join(t.TempDir(), "crash.tar"), tag: "crash/image:latest"}
	genImage(t, img.path, img.tag, layers, 60, 2000)

	files := tarFiles(t, img.path)
	entries := dockerManifest(t, files)
	if len(entries) != 1 || len(entries[0].Layers) != layers+1 {
		t.Fatalf("imagegen archive: manifest.json %+v, want one image with %d layers", entries, layers+1)
	}
	e := entries[0]
	img.id = "sha256:" + strings.TrimSuffix(e.Config, ".json")
	if !idRE.MatchString(img.id) || digestOf(files[e.Config]) != img.id {
		t.Fatalf("imagegen archive: config member %s has digest %s", e.Config, digestOf(files[e.Config]))
	}
	img.files = map[string]string{}
	for n := range layers {
		layer := files[e.Layers[n+1]]
		regular, contents := imagegenSamples(t, layer, n)
		if len(regular) < 3 {
			t.Fatalf("imagegen layer %d: only %d small files", n, len(regular))
		}
		for _, p := range []string{regular[0], regular[len(regular)/2], regular[len(regular)-1]} {
			img.files[p] = contents[p]
			if n == layers-1 {
				img.top = p
			}
		}
	}
	return img
}

// TestLoadSurvivesSIGKILL kills berth at random moments while it loads (and
// saves) a multi-layer image: after every kill the store must pass
// `system check`, a later load must give the right image, and GC must
// collect whatever the killed processes left behind.
func TestLoadSurvivesSIGKILL(t *testing.T) {
	needBerth(t)
	img := makeCrashImage(t)
	t.Run("load", func(t *testing.T) { testKilledLoads(t, img) })
	t.Run("save", func(t *testing.T) { testKilledSaves(t, img) })
}

func testKilledLoads(t *testing.T, img crashImage) {
	// How long one uninterrupted load takes, into an empty store (cold)
	// and into one that has the image already (warm).
	// The first load also reads the archive from disk: the shortest of
	// three is what the kills race.
	scratch := newRoot(t)
	cold := timeBerth(t, scratch, "load", "-i", img.path)
	warm := timeBerth(t, scratch, "load", "-i", img.path)
	for range 2 {
		cold = min(cold, timeBerth(t, newRoot(t), "load", "-i", img.path))
	}
	t.Logf("one load of %s takes %v cold, %v warm", filepath.Base(img.path), cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	seed := crashSeed(t)
	t.Logf("kill delays: seed %d (BERTH_CRASH_SEED=%d replays them)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	root := newRoot(t)
	var killedCold, killedWarm, leftovers int
	for i := range crashRounds {
		// Every fourth round starts from an empty store, the next one from
		// what the previous kill left, then one where the image is fully
		// there, then again whatever the kill before left.
		mode := [...]string{"cold", "resume", "warm", "resume"}[i%4]
		switch mode {
		case "cold":
			if hasImage(t, root, img.id) {
				berth(t, root, "rmi", "-f", img.tag)
			}
			berth(t, root, "image", "prune", "-a", "-f")
			if hasImage(t, root, img.id) {
				t.Fatalf("round %d: the image is still listed after rmi -f and image prune -a -f", i)
			}
		case "warm":
			if !hasImage(t, root, img.id) {
				assertLoaded(t, berth(t, root, "load", "-i", img.path), img.tag)
			}
		}
		present := hasImage(t, root, img.id)
		d := cold
		if present {
			d = warm
		}
		delay := randDelay(rng, d)
		res := berthKilled(t, root, delay, "load", "-i", img.path)
		round := fmt.Sprintf("round %d (%s, image present before: %v), SIGKILL after %v", i, mode, present, delay.Round(time.Microsecond))
		if !res.killed && res.code != 0 {
			t.Fatalf("%s: berth load was not killed but exited %d:\n%s", round, res.code, res.stderr)
		}
		if res.killed {
			if present {
				killedWarm++
			} else {
				killedCold++
			}
		}
		checkAfterCrash(t, root, round)
		ingest := dirEntries(t, filepath.Join(root, "content", "ingest"))
		tmp := dirEntries(t, filepath.Join(root, "snapshots", "tmp"))
		if len(ingest)+len(tmp) > 0 {
			leftovers++
		}
		after := hasImage(t, root, img.id)
		t.Logf("%s: %v; left %d ingest, %d snapshots/tmp entries; image listed: %v", round, res, len(ingest), len(tmp), after)
		if after {
			// Whatever is listed must be the whole image.
			if got := berthID(t, root, img.tag); got != img.id {
				t.Fatalf("%s: %s is %s, want %s", round, img.tag, got, img.id)
			}
			t.Logf("%s: checking the listed image's files", round)
			checkLoaded(t, root, img.tag, img.files)
		}
	}
	t.Logf("%d of %d loads were killed mid-way (%d cold, %d warm); %d kills left in-flight files", killedCold+killedWarm, crashRounds, killedCold, killedWarm, leftovers)
	if killedCold < crashRounds/4 || killedWarm < 2 {
		t.Errorf("only %d cold and %d warm loads were killed while running: the kills did not exercise load", killedCold, killedWarm)
	}

	// Make sure the GC check below has leftovers to collect: kill cold
	// loads half-way until one leaves in-flight files behind.
	if hasImage(t, root, img.id) {
		berth(t, root, "rmi", "-f", img.tag)
	}
	for try := 0; try < 10; try++ {
		if len(dirEntries(t, filepath.Join(root, "content", "ingest")))+len(dirEntries(t, filepath.Join(root, "snapshots", "tmp"))) > 0 {
			break
		}
		delay := cold/4 + randDelay(rng, cold/2)
		res := berthKilled(t, root, delay, "load", "-i", img.path)
		checkAfterCrash(t, root, fmt.Sprintf("extra kill %d after %v", try, delay))
		t.Logf("extra kill %d after %v: %v", try, delay.Round(time.Microsecond), res)
	}
	ingest := dirEntries(t, filepath.Join(root, "content", "ingest"))
	tmp := dirEntries(t, filepath.Join(root, "snapshots", "tmp"))
	t.Logf("before the final load: content/ingest %q, snapshots/tmp %q", ingest, tmp)

	// A final, uninterrupted load gives the right, complete image.
	assertLoaded(t, berth(t, root, "load", "-i", img.path), img.tag)
	short := strings.TrimPrefix(img.id, "sha256:")[:12]
	if got := strings.Fields(berth(t, root, "images", "-q")); len(got) != 1 || got[0] != short {
		t.Errorf("after the final load: berth images -q = %q, want [%s]", got, short)
	}
	if got := berthID(t, root, img.tag); got != img.id {
		t.Errorf("after the final load: %s is %s, want the archive's config digest %s", img.tag, got, img.id)
	}
	checkLoaded(t, root, img.tag, img.files)
	if img.top == "" || img.files[img.top] == "" {
		t.Fatal("no top-layer file was checked")
	}

	// GC collects what the killed loads left behind.
	assertPrunedEmpty(t, root)
	systemCheck(t, root)
}

func testKilledSaves(t *testing.T, img crashImage) {
	root := newRoot(t)
	assertLoaded(t, berth(t, root, "load", "-i", img.path), img.tag)
	dir := t.TempDir()

	// A reference archive, checked once in full.
	ref := filepath.Join(dir, "ref.tar")
	took := timeBerth(t, root, "save", "-o", ref, img.tag)
	// The first save reads the blobs from disk; the kills race warm ones.
	for range 3 {
		took = min(took, timeBerth(t, root, "save", "-o", filepath.Join(dir, "warm.tar"), img.tag))
	}
	t.Logf("one warm save takes %v", took.Round(time.Millisecond))
	checkBerthArchive(t, ref, img.id, img.tag)
	refSum := fileSum(t, ref)

	seed := crashSeed(t)
	t.Logf("kill delays: seed %d (BERTH_CRASH_SEED=%d replays them)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5a7e))
	out := filepath.Join(dir, "out.tar")
	var killed, valid int
	for i := range crashRounds {
		// Even rounds write a new file, odd ones replace a complete archive.
		old := i%2 == 1
		os.Remove(out)
		if old {
			copyFile(t, ref, out)
		}
		delay := randDelay(rng, took)
		res := berthKilled(t, root, delay, "save", "-o", out, img.tag)
		round := fmt.Sprintf("save round %d (replacing an archive: %v), SIGKILL after %v", i, old, delay.Round(time.Microsecond))
		if !res.killed && res.code != 0 {
			t.Fatalf("%s: berth save was not killed but exited %d:\n%s", round, res.code, res.stderr)
		}
		if res.killed {
			killed++
		}
		state := "absent"
		if _, err := os.Lstat(out); err == nil {
			state = "complete (same bytes as the reference)"
			if fileSum(t, out) != refSum {
				// Not byte-identical: it must still be a whole archive.
				state = "complete (other bytes, loads)"
				checkSavedArchive(t, out, img, round)
			}
			valid++
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		} else if old {
			t.Errorf("%s: the archive that was there before is gone and no new one was written", round)
		}
		var temps []string
		for _, n := range dirEntries(t, dir) {
			if n != "ref.tar" && n != "out.tar" {
				temps = append(temps, n)
				os.Remove(filepath.Join(dir, n))
			}
		}
		t.Logf("%s: %v; -o file %s; other files left in its directory: %q", round, res, state, temps)
		checkAfterCrash(t, root, round)
	}
	t.Logf("%d of %d saves were killed mid-way; %d times the -o file was there afterwards", killed, crashRounds, valid)
	if killed < crashRounds/2 {
		t.Errorf("only %d saves were killed while running: the kills did not exercise save", killed)
	}
}

// checkSavedArchive checks that file is a whole archive of img: its
// contents, and a load into a fresh root.
func checkSavedArchive(t testing.TB, file string, img crashImage, round string) {
	t.Helper()
	t.Logf("%s: checking %s in full", round, file)
	checkBerthArchive(t, file, img.id, img.tag)
	fresh := newRoot(t)
	code, stdout, stderr := berthErr(t, fresh, "load", "-i", file)
	if code != 0 {
		t.Fatalf("%s: the -o file left behind does not load: exit %d\n%s\n%s", round, code, stdout, stderr)
	}
	if got := berthID(t, fresh, img.tag); got != img.id {
		t.Fatalf("%s: the -o file left behind loads as %s, want %s", round, got, img.id)
	}
	checkLoaded(t, fresh, img.tag, img.files)
}

func fileSum(t testing.TB, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

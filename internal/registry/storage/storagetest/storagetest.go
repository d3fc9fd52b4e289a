// Package storagetest is the conformance suite for storage drivers: every
// storage.Driver passes Run, so the registry behaves the same on each.
package storagetest

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/registry/storage"
)

// Run tests the drivers newDriver makes. Each subtest calls it once and
// expects an empty store; it must release what it makes with t.Cleanup.
// Subtests run one at a time.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, storage.Driver)
	}{
		{"RoundTrip", testRoundTrip},
		{"Offsets", testOffsets},
		{"Overwrite", testOverwrite},
		{"UnknownSize", testUnknownSize},
		{"SizeMismatch", testSizeMismatch},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"Concat", testConcat},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentPut", testConcurrentPut},
		{"ConcurrentPutDelete", testConcurrentPutDelete},
		{"Redirect", testRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
}

const mib = 1 << 20

// payload is n reproducible bytes that differ with seed.
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func put(t *testing.T, d storage.Driver, key string, data []byte) {
	t.Helper()
	if err := d.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, d storage.Driver, key string) []byte {
	t.Helper()
	return getAt(t, d, key, 0)
}

func getAt(t *testing.T, d storage.Driver, key string, offset int64) []byte {
	t.Helper()
	rc, err := d.Open(t.Context(), key, offset)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// check fails unless key holds want.
func check(t *testing.T, d storage.Driver, key string, want []byte) {
	t.Helper()
	if got := get(t, d, key); !bytes.Equal(got, want) {
		t.Fatalf("%s holds %s, want %s", key, describe(got), describe(want))
	}
}

func describe(b []byte) string {
	if len(b) <= 32 {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%d bytes %q...", len(b), b[:16])
}

// keys lists what Walk finds under prefix, sorted.
func keys(t *testing.T, d storage.Driver, prefix string) []string {
	t.Helper()
	var ks []string
	err := d.Walk(t.Context(), prefix, func(i storage.Info) error {
		ks = append(ks, i.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %q: %v", prefix, err)
	}
	slices.Sort(ks)
	return ks
}

func wantNotFound(t *testing.T, d storage.Driver, key string) {
	t.Helper()
	if _, err := d.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", key, err)
	} else if !strings.Contains(err.Error(), key) {
		t.Errorf("Stat(%s) error %q does not name the key", key, err)
	}
	rc, err := d.Open(t.Context(), key, 0)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(%s) = %v, want ErrNotFound", key, err)
	} else if !strings.Contains(err.Error(), key) {
		t.Errorf("Open(%s) error %q does not name the key", key, err)
	}
}

func testRoundTrip(t *testing.T, d storage.Driver) {
	start := time.Now()
	for _, tc := range []struct {
		key  string
		data []byte
	}{
		{"top", []byte("hello")},
		{"a/b/c/deep.blob", payload(100_000, 1)},
		{"empty", nil},
		{"Mixed-Case_1.2/x", []byte("x")},
	} {
		put(t, d, tc.key, tc.data)
		check(t, d, tc.key, tc.data)
		info, err := d.Stat(t.Context(), tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != tc.key || info.Size != int64(len(tc.data)) {
			t.Errorf("Stat(%s) = %+v, want key %s size %d", tc.key, info, tc.key, len(tc.data))
		}
		// Generous: the server's clock and second granularity.
		if d := info.ModTime.Sub(start); d < -time.Minute || d > time.Hour {
			t.Errorf("Stat(%s).ModTime = %v, test started at %v", tc.key, info.ModTime, start)
		}
	}
}

// Open takes offsets up to the size; at the size the reader is empty, past
// it (or below 0) Open fails.
func testOffsets(t *testing.T, d storage.Driver) {
	data := payload(10_000, 2)
	put(t, d, "o/blob", data)
	put(t, d, "o/empty", nil)
	for _, off := range []int64{0, 1, 4321, 9999, 10_000} {
		if got := getAt(t, d, "o/blob", off); !bytes.Equal(got, data[off:]) {
			t.Errorf("offset %d: got %s, want %s", off, describe(got), describe(data[off:]))
		}
	}
	if got := getAt(t, d, "o/empty", 0); len(got) != 0 {
		t.Errorf("empty object at offset 0: got %s", describe(got))
	}
	for _, tc := range []struct {
		key string
		off int64
	}{{"o/blob", 10_001}, {"o/blob", 1 << 40}, {"o/blob", -1}, {"o/empty", 1}} {
		rc, err := d.Open(t.Context(), tc.key, tc.off)
		if err == nil {
			rc.Close()
			t.Errorf("Open(%s, %d) succeeded, want an error", tc.key, tc.off)
		} else if errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(%s, %d) = %v, which is not ErrNotFound", tc.key, tc.off, err)
		}
	}
}

func testOverwrite(t *testing.T, d storage.Driver) {
	put(t, d, "k", payload(50_000, 3))
	short := []byte("short")
	put(t, d, "k", short)
	check(t, d, "k", short)
	if info, err := d.Stat(t.Context(), "k"); err != nil || info.Size != int64(len(short)) {
		t.Errorf("Stat = %+v, %v; want size %d", info, err, len(short))
	}
	put(t, d, "k", nil)
	check(t, d, "k", nil)
}

func testUnknownSize(t *testing.T, d storage.Driver) {
	for _, data := range [][]byte{nil, []byte("abc"), payload(3*mib+17, 4)} {
		// io.MultiReader hides bytes.Reader's Len, Seek and WriterTo.
		if err := d.Put(t.Context(), "u/x", io.MultiReader(bytes.NewReader(data)), -1); err != nil {
			t.Fatal(err)
		}
		check(t, d, "u/x", data)
	}
}

// A Put whose reader disagrees with its size fails with ErrSizeMismatch,
// leaving no object (a new key) or the old one (an existing key).
func testSizeMismatch(t *testing.T, d storage.Driver) {
	old := []byte("old value")
	for _, tc := range []struct {
		name string
		data []byte
		size int64
	}{
		{"short", payload(10, 5), 11},
		{"long", payload(10, 5), 9},
		{"empty but some", []byte("x"), 0},
		{"some but empty", nil, 1},
		{"long multipart", payload(17*mib+1, 6), 17 * mib},
		{"short multipart", payload(17*mib-1, 6), 17 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "m/" + strings.ReplaceAll(tc.name, " ", "-") + "/"
			err := d.Put(t.Context(), dir+"new", bytes.NewReader(tc.data), tc.size)
			if !errors.Is(err, storage.ErrSizeMismatch) {
				t.Errorf("Put(%snew, %d bytes, size %d) = %v, want ErrSizeMismatch", dir, len(tc.data), tc.size, err)
			}
			wantNotFound(t, d, dir+"new")

			put(t, d, dir+"old", old)
			err = d.Put(t.Context(), dir+"old", bytes.NewReader(tc.data), tc.size)
			if !errors.Is(err, storage.ErrSizeMismatch) {
				t.Errorf("Put(%sold, %d bytes, size %d) = %v, want ErrSizeMismatch", dir, len(tc.data), tc.size, err)
			}
			check(t, d, dir+"old", old)
			if ks := keys(t, d, dir); !slices.Equal(ks, []string{dir + "old"}) {
				t.Errorf("%s holds %q, want just %sold", dir, ks, dir)
			}
		})
	}
}

func testNotFound(t *testing.T, d storage.Driver) {
	wantNotFound(t, d, "nothing")
	wantNotFound(t, d, "no/such/dir/key")
	put(t, d, "dir/sub/obj", []byte("x"))
	// Neither a directory of the filesystem driver nor a prefix is an object,
	// and nor is a path through an object.
	wantNotFound(t, d, "dir")
	wantNotFound(t, d, "dir/sub")
	wantNotFound(t, d, "dir/sub/obj/below")
	if err := d.Delete(t.Context(), "dir/sub"); err != nil {
		t.Errorf("Delete(dir/sub) = %v; a key that is not an object is no error", err)
	}
	check(t, d, "dir/sub/obj", []byte("x"))
}

func testDelete(t *testing.T, d storage.Driver) {
	put(t, d, "del/a/x", []byte("x"))
	put(t, d, "del/b", []byte("b"))
	for range 2 {
		if err := d.Delete(t.Context(), "del/a/x"); err != nil {
			t.Fatal(err)
		}
		wantNotFound(t, d, "del/a/x")
	}
	if err := d.Delete(t.Context(), "never/was"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	check(t, d, "del/b", []byte("b"))
	if ks := keys(t, d, ""); !slices.Equal(ks, []string{"del/b"}) {
		t.Errorf("store holds %q, want [del/b]", ks)
	}
	// The emptied directory is no obstacle to putting there again.
	put(t, d, "del/a/y", []byte("y"))
	check(t, d, "del/a/y", []byte("y"))
}

func testWalk(t *testing.T, d storage.Driver) {
	sizes := map[string]int{
		"w/a": 1, "w/a.txt": 2, "w/ab/c": 3, "w/b/c/d": 4, "wx": 5, "other/w/a": 6,
	}
	for k, n := range sizes {
		put(t, d, k, payload(n, 7))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"other/w/a", "w/a", "w/a.txt", "w/ab/c", "w/b/c/d", "wx"}},
		{"w", []string{"w/a", "w/a.txt", "w/ab/c", "w/b/c/d", "wx"}},
		{"w/", []string{"w/a", "w/a.txt", "w/ab/c", "w/b/c/d"}},
		{"w/a", []string{"w/a", "w/a.txt", "w/ab/c"}},
		{"w/ab", []string{"w/ab/c"}},
		{"w/ab/", []string{"w/ab/c"}},
		{"w/b/c/d", []string{"w/b/c/d"}},
		{"w/b/c/d/", nil},
		{"w/zz", nil},
		{"nope/", nil},
		{"nope/deeper/still", nil},
		{"wx/below", nil},
	} {
		var got []string
		err := d.Walk(t.Context(), tc.prefix, func(i storage.Info) error {
			got = append(got, i.Key)
			if i.Size != int64(sizes[i.Key]) {
				t.Errorf("walk %q: %s has size %d, want %d", tc.prefix, i.Key, i.Size, sizes[i.Key])
			}
			if i.ModTime.IsZero() {
				t.Errorf("walk %q: %s has no ModTime", tc.prefix, i.Key)
			}
			return nil
		})
		if err != nil {
			t.Errorf("walk %q: %v", tc.prefix, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("walk %q = %q, want %q", tc.prefix, got, tc.want)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := d.Walk(t.Context(), "", func(storage.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("walk whose fn fails: %v after %d calls, want stop after 1", err, calls)
	}
}

func testConcat(t *testing.T, d storage.Driver) {
	big := payload(5*mib+1, 8)
	for _, tc := range []struct {
		name  string
		parts [][]byte
	}{
		{"none", nil},
		{"one", [][]byte{[]byte("only")}},
		{"one empty", [][]byte{nil}},
		{"two", [][]byte{[]byte("ab"), []byte("cd")}},
		{"three with empty middle", [][]byte{[]byte("ab"), nil, []byte("cd")}},
		{"all empty", [][]byte{nil, nil}},
		{"empty first", [][]byte{nil, []byte("x"), []byte("yz")}},
		{"one big", [][]byte{big}},
		{"big first", [][]byte{big, []byte("tail")}},
		{"big first small middle", [][]byte{big, []byte("mid"), []byte("tail")}},
		{"big big small", [][]byte{big, payload(6*mib, 9), []byte("tail")}},
		{"big empty big", [][]byte{big, nil, big}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcs := make([]string, len(tc.parts))
			for i, p := range tc.parts {
				srcs[i] = fmt.Sprintf("c/%s/part%d", strings.ReplaceAll(tc.name, " ", "-"), i)
				put(t, d, srcs[i], p)
			}
			dst := "c/out/" + strings.ReplaceAll(tc.name, " ", "-")
			if err := d.Concat(t.Context(), dst, srcs); err != nil {
				t.Fatal(err)
			}
			check(t, d, dst, bytes.Join(tc.parts, nil))
			for i, src := range srcs {
				check(t, d, src, tc.parts[i])
			}
			// dst is a new object, not an alias: overwriting a part leaves
			// it alone.
			if len(srcs) > 0 {
				put(t, d, srcs[0], []byte("changed"))
				check(t, d, dst, bytes.Join(tc.parts, nil))
			}
		})
	}

	t.Run("dst among srcs", func(t *testing.T) {
		put(t, d, "c/self/a", []byte("a"))
		put(t, d, "c/self/b", []byte("b"))
		for _, tc := range []struct {
			srcs []string
			want string
		}{
			{[]string{"c/self/a", "c/self/b"}, "ab"},
			{[]string{"c/self/a"}, "ab"},
			{[]string{"c/self/b", "c/self/a"}, "bab"},
		} {
			if err := d.Concat(t.Context(), "c/self/a", tc.srcs); err != nil {
				t.Fatal(err)
			}
			check(t, d, "c/self/a", []byte(tc.want))
		}
	})

	t.Run("repeated", func(t *testing.T) {
		put(t, d, "c/rep/src", []byte("same"))
		for range 2 {
			if err := d.Concat(t.Context(), "c/rep/dst", []string{"c/rep/src"}); err != nil {
				t.Fatal(err)
			}
		}
		check(t, d, "c/rep/dst", []byte("same"))
	})

	t.Run("missing src", func(t *testing.T) {
		put(t, d, "c/miss/a", []byte("a"))
		for _, srcs := range [][]string{{"c/miss/nope"}, {"c/miss/a", "c/miss/nope"}} {
			err := d.Concat(t.Context(), "c/miss/dst", srcs)
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Concat from %q = %v, want ErrNotFound", srcs, err)
			} else if !strings.Contains(err.Error(), "c/miss/nope") {
				t.Errorf("Concat error %q does not name the missing key", err)
			}
			wantNotFound(t, d, "c/miss/dst")
		}
	})
}

// Every method rejects a malformed key with an error naming it, and leaves
// nothing behind.
func testInvalidKeys(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "good", []byte("g"))
	rd, redirects := d.(storage.Redirector)
	// Walk takes prefixes: "" and a key followed by "/" too.
	prefixes := []string{"", "a/", "a/b/"}
	for _, key := range []string{
		"../x", "a/../../x", "a//b", "", "/abs", "a/./b", "a\x00b", ".", "..",
		"a/", "a/b/", "sp ace", "back\\slash", "é", "a\nb",
	} {
		q := strconv.Quote(key)
		checkErr := func(op string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s(%s) succeeded", op, q)
			} else if !strings.Contains(err.Error(), q) {
				t.Errorf("%s(%s) = %q, which does not name the key", op, q, err)
			}
		}
		checkErr("Put", d.Put(ctx, key, strings.NewReader("x"), 1))
		rc, err := d.Open(ctx, key, 0)
		if err == nil {
			rc.Close()
		}
		checkErr("Open", err)
		_, err = d.Stat(ctx, key)
		checkErr("Stat", err)
		checkErr("Delete", d.Delete(ctx, key))
		checkErr("Concat to", d.Concat(ctx, key, []string{"good"}))
		checkErr("Concat from", d.Concat(ctx, "dst", []string{"good", key}))
		if !slices.Contains(prefixes, key) {
			checkErr("Walk", d.Walk(ctx, key, func(storage.Info) error { return nil }))
		}
		if redirects {
			_, err := rd.RedirectURL(ctx, key, time.Minute)
			checkErr("RedirectURL", err)
		}
	}
	if ks := keys(t, d, ""); !slices.Equal(ks, []string{"good"}) {
		t.Errorf("store holds %q, want [good]", ks)
	}
}

// Puts racing on one key leave one of the values, whole.
func testConcurrentPut(t *testing.T, d storage.Driver) {
	const writers, size = 8, 256 << 10
	values := make([][]byte, writers)
	var wg sync.WaitGroup
	for i := range writers {
		values[i] = bytes.Repeat([]byte{byte('A' + i)}, size)
		wg.Go(func() {
			for range 3 {
				if err := d.Put(t.Context(), "race/key", bytes.NewReader(values[i]), size); err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	got := get(t, d, "race/key")
	if !slices.ContainsFunc(values, func(v []byte) bool { return bytes.Equal(got, v) }) {
		t.Errorf("race/key holds %s, not one of the values", describe(got))
	}
}

// Deletes that empty a directory race with Puts into it and below it:
// nothing fails, and each Put lands until its own Delete.
func testConcurrentPutDelete(t *testing.T, d storage.Driver) {
	const rounds = 200
	var wg sync.WaitGroup
	for _, dir := range []string{"pd/x/y/", "pd/x/y/", "pd/x/y/z/", "pd/x/"} {
		wg.Go(func() {
			for i := range rounds {
				key := dir + "k" + strconv.Itoa(i) + "-" + crand.Text()[:8]
				if err := d.Put(t.Context(), key, strings.NewReader("v"), 1); err != nil {
					t.Errorf("put: %v", err)
					return
				}
				if _, err := d.Stat(t.Context(), key); err != nil {
					t.Errorf("stat after put: %v", err)
					return
				}
				if err := d.Delete(t.Context(), key); err != nil {
					t.Errorf("delete: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if ks := keys(t, d, "pd/"); len(ks) != 0 {
		t.Errorf("pd/ holds %q, want nothing", ks)
	}
}

// A driver that redirects gives URLs a plain GET fetches.
func testRedirect(t *testing.T, d storage.Driver) {
	rd, ok := d.(storage.Redirector)
	if !ok {
		t.Skip("the driver is not a storage.Redirector")
	}
	data := payload(70_000, 10)
	put(t, d, "r/blob", data)
	u, err := rd.RedirectURL(t.Context(), "r/blob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("GET %s: %s, %s; want 200, %s", u, resp.Status, describe(got), describe(data))
	}
}

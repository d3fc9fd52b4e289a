package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"strings"
	"testing"
)

// FuzzApplyLayer feeds arbitrary tar streams to ApplyLayer with a sentinel
// tree next to the layer root. Seeds are the hostile corpus (aimed at the
// sentinel of the process that generates them; relative escapes such as
// "../sentinel" hit every worker's own sentinel) and a few valid layers.
func FuzzApplyLayer(f *testing.F) {
	requireRoot(f)
	base := f.TempDir()
	sentinel := makeSentinel(f, base)
	for _, c := range hostileCorpus(f, sentinel) {
		f.Add(c.data)
	}
	f.Add(mkTar(f,
		dirE("etc/", 0o755), regE("etc/f", "f", 0o644).xattr("user.x", "1"), linkE("etc/l", "etc/f"),
		symE("etc/s", "f"), devE(tar.TypeChar, "null", 1, 3, 0o666), newEntry(tar.TypeFifo, "p", 0o600),
	))
	f.Add(mkTar(f,
		regE(".wh.x", "", 0o644), dirE("d/", 0o755), regE("d/.wh..wh..opq", "", 0o644), linkE("h", "lower/t"),
	))
	before := captureOutside(f, base, sentinel)

	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := os.MkdirTemp(base, "root")
		if err != nil {
			t.Fatal(err)
		}
		_, applyErr := ApplyLayer(root, bytes.NewReader(data))
		if err := os.RemoveAll(root); err != nil {
			t.Fatalf("removing layer root: %v", err)
		}
		after := captureOutside(t, base, sentinel)
		after.base = before.base // creating and removing root changes base's times
		before.diff(t, after)
		if applyErr != nil {
			msg := applyErr.Error()
			if !strings.HasPrefix(msg, `layer entry "`) &&
				!strings.HasPrefix(msg, `reading layer entry after "`) &&
				!strings.HasPrefix(msg, "reading first layer entry: ") {
				t.Fatalf("error does not name an entry: %v", applyErr)
			}
		}
	})
}

// FuzzLayerEntries builds tar streams from a small grammar of hostile
// names, symlink targets and entry types (random bytes rarely make a tar
// with a valid checksum), so that the applier's logic, not the tar parser,
// is explored. Absolute targets aim at this process's own sentinel.
func FuzzLayerEntries(f *testing.F) {
	requireRoot(f)
	base := f.TempDir()
	sentinel := makeSentinel(f, base)
	components := []string{"a", "b", "..", ".", "sentinel", "file", ".wh.a", ".wh..wh..opq", ".wh.sentinel",
		".wh..", "dir", "link", ".wh..wh.plnk"}
	targets := []string{"/", "..", "../..", "../sentinel", "../sentinel/file", "a", "a/b", "b", "link",
		sentinel, sentinel + "/file", sentinel + "/dir", "/proc/self/root" + sentinel, ".", "", "loop"}
	for _, seed := range [][]byte{
		{2, 1, 4, 3, 0, 1, 2, 4},
		{2, 1, 7, 9, 0, 1, 0, 7, 5},
		{3, 1, 5, 10, 0, 2, 7, 4, 1, 5, 0},
		{4, 2, 6, 0, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	} {
		f.Add(seed)
	}
	before := captureOutside(f, base, sentinel)

	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		pathOf := func() string {
			n := 1 + next()%4
			parts := make([]string, n)
			for i := range parts {
				parts[i] = components[next()%len(components)]
			}
			p := strings.Join(parts, "/")
			switch next() % 4 {
			case 1:
				p = "/" + p
			case 2:
				p = "../../" + p
			case 3:
				p += "/"
			}
			return p
		}
		var ents []entry
		for len(data) > 0 && len(ents) < 24 {
			op := next()
			name := pathOf()
			mode := int64(next()) << 3 & 0o7777
			switch op % 8 {
			case 0:
				ents = append(ents, regE(name, "content", mode))
			case 1:
				ents = append(ents, dirE(name, mode))
			case 2:
				ents = append(ents, symE(name, targets[next()%len(targets)]))
			case 3:
				ents = append(ents, linkE(name, pathOf()))
			case 4:
				ents = append(ents, regE(name, "", mode).xattr("trusted.overlay.opaque", "y").xattr("user.x", "1"))
			case 5:
				ents = append(ents, newEntry(tar.TypeFifo, name, mode))
			case 6:
				ents = append(ents, devE(tar.TypeChar, name, 1, 3, mode))
			default:
				ents = append(ents, dirE(name, mode).owner(next(), next()))
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range ents {
			h := e.hdr
			if tw.WriteHeader(&h) == nil {
				tw.Write(e.body)
			}
		}
		tw.Close()

		root, err := os.MkdirTemp(base, "root")
		if err != nil {
			t.Fatal(err)
		}
		_, applyErr := ApplyLayer(root, &buf)
		if err := os.RemoveAll(root); err != nil {
			t.Fatalf("removing layer root: %v", err)
		}
		after := captureOutside(t, base, sentinel)
		after.base = before.base
		before.diff(t, after)
		if applyErr != nil && !strings.HasPrefix(applyErr.Error(), `layer entry "`) {
			t.Fatalf("error does not name an entry: %v", applyErr)
		}
	})
}

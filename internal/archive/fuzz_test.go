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

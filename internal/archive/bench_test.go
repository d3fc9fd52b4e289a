package archive

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchLayer is a synthetic layer shaped like a distribution image: many
// small files grouped by directory, some symlinks and hard links, a few big
// files.
func benchLayer(b *testing.B) []byte {
	rng := rand.New(rand.NewPCG(5, 6))
	blob := make([]byte, 8<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	var ents []entry
	for d := range 500 {
		dir := fmt.Sprintf("usr/lib/pkg%03d/", d)
		ents = append(ents, dirE(dir, 0o755))
		for f := range 40 {
			size := 1 + rng.IntN(16<<10)
			off := rng.IntN(len(blob) - size)
			ents = append(ents, regE(fmt.Sprintf("%sfile%02d.so", dir, f), string(blob[off:off+size]), 0o644))
		}
		ents = append(ents, symE(dir+"link", "file00.so"), linkE(dir+"hard", dir+"file01.so"))
	}
	for i := range 4 {
		ents = append(ents, regE(fmt.Sprintf("opt/big%d", i), string(blob), 0o755))
	}
	return mkTar(b, ents...)
}

func BenchmarkApplyLayer(b *testing.B) {
	requireRoot(b)
	data := benchLayer(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		root := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := ApplyLayer(root, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

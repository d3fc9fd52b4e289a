package imagearchive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/store"
)

func tarOf(t testing.TB, members map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range members {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

// FuzzLoad feeds arbitrary archives to Load: it must never panic, and
// whatever it does, the store must pass its own check afterwards.
func FuzzLoad(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root to unpack layers")
	}
	layer := tarOf(f, map[string]string{"etc/hostname": "x"})
	f.Add(tarOf(f, map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["a:b"],"Layers":["l/layer.tar"]}]`, "c.json": `{"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}`, "l/layer.tar": string(layer)}))
	f.Add(tarOf(f, map[string]string{"index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`, "oci-layout": `{"imageLayoutVersion":"1.0.0"}`}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		root := t.TempDir()
		st, err := store.Open(filepath.Join(root, "state"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		Load(context.Background(), st, bytes.NewReader(b))
		problems, err := st.Check()
		if err != nil || len(problems) > 0 {
			t.Fatalf("store damaged by a load: %v %v", problems, err)
		}
	})
}

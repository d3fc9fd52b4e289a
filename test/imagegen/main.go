// Command imagegen writes a synthetic multi-layer image as a Docker archive
// (the `docker save` format of Docker ≤ 24) for tests and benchmarks: many
// small files and a few large incompressible binaries per layer, on top of
// an optional root filesystem tarball (the busybox test base).
package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"
)

func main() {
	out := flag.String("o", "image.tar", "output archive")
	base := flag.String("base", "", "root filesystem tar to use as the first layer")
	layers := flag.Int("layers", 5, "number of generated layers")
	mib := flag.Int("mib", 220, "total MiB of generated file content")
	small := flag.Int("small", 2000, "small files per layer")
	tag := flag.String("tag", "bench/image:latest", "RepoTags entry")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*out, *base, *layers, *mib, *small, *tag, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "imagegen:", err)
		os.Exit(1)
	}
}

type layerFile struct {
	name   string
	diffID string
}

func run(out, base string, layers, mib, small int, tag string, seed uint64) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 4<<20)
	tw := tar.NewWriter(bw)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var files []layerFile
	if base != "" {
		b, err := os.ReadFile(base)
		if err != nil {
			return err
		}
		lf, err := addMember(tw, b)
		if err != nil {
			return err
		}
		files = append(files, lf)
	}
	perLayer := int64(mib) << 20 / int64(layers)
	for i := range layers {
		b, err := makeLayer(rng, i, perLayer, small)
		if err != nil {
			return err
		}
		lf, err := addMember(tw, b)
		if err != nil {
			return err
		}
		files = append(files, lf)
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	diffIDs := make([]string, len(files))
	history := make([]map[string]any, len(files))
	for i, lf := range files {
		diffIDs[i] = "sha256:" + lf.diffID
		history[i] = map[string]any{"created": created, "created_by": fmt.Sprintf("imagegen layer %d", i)}
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": created,
		"config":  map[string]any{"Cmd": []string{"sh"}, "Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(sum[:]) + ".json"
	if err := writeMember(tw, cfgName, cfg); err != nil {
		return err
	}
	var layerNames []string
	for _, lf := range files {
		layerNames = append(layerNames, lf.name)
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": layerNames}})
	if err != nil {
		return err
	}
	if err := writeMember(tw, "manifest.json", manifest); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func addMember(tw *tar.Writer, layer []byte) (layerFile, error) {
	sum := sha256.Sum256(layer)
	id := hex.EncodeToString(sum[:])
	lf := layerFile{name: id + "/layer.tar", diffID: id}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: id + "/", Mode: 0o755}); err != nil {
		return lf, err
	}
	return lf, writeMember(tw, lf.name, layer)
}

func writeMember(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// makeLayer builds one layer tar in memory: small text-like files spread
// over directories, then large random binaries for the rest of the budget.
func makeLayer(rng *rand.Rand, n int, budget int64, small int) ([]byte, error) {
	var buf bytesBuffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime})
	}
	file := func(name string, size int64, random bool) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime}); err != nil {
			return err
		}
		var src io.Reader = io.LimitReader(textReader{rng}, size)
		if random {
			src = io.LimitReader(randReader{rng}, size)
		}
		_, err := io.Copy(tw, src)
		return err
	}
	root := fmt.Sprintf("opt/layer%d/", n)
	if err := dir("opt/"); err != nil {
		return nil, err
	}
	if err := dir(root); err != nil {
		return nil, err
	}
	var used int64
	for i := range small {
		if i%100 == 0 {
			if err := dir(fmt.Sprintf("%sd%03d/", root, i/100)); err != nil {
				return nil, err
			}
		}
		size := int64(200 + rng.IntN(6000))
		if err := file(fmt.Sprintf("%sd%03d/f%05d.txt", root, i/100, i), size, false); err != nil {
			return nil, err
		}
		used += size
	}
	for i := 0; used < budget; i++ {
		size := min(budget-used, 16<<20)
		if err := file(fmt.Sprintf("%sbin%02d", root, i), size, true); err != nil {
			return nil, err
		}
		used += size
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.b, nil
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

type randReader struct{ rng *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := r.rng.Uint64()
		for k := range 8 {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	for i := len(p) &^ 7; i < len(p); i++ {
		p[i] = byte(r.rng.Uint32())
	}
	return len(p), nil
}

type textReader struct{ rng *rand.Rand }

func (r textReader) Read(p []byte) (int, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz      \n"
	for i := range p {
		p[i] = alphabet[r.rng.IntN(len(alphabet))]
	}
	return len(p), nil
}

package imagearchive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/store"
)

// saved is one image to write, with the names it is saved under.
type saved struct {
	img   store.Image
	names []string // full names
}

// Save writes the images refs resolve to as one tar holding both Docker's
// archive (manifest.json, repositories) and an OCI image layout (oci-layout,
// index.json), sharing one blobs/ directory — the format of Docker 25+.
// A ref naming a repository without a tag saves every tag of it.
func Save(st *store.Store, refs []string, w io.Writer) error {
	list, err := resolveForSave(st, refs)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	var (
		dockerManifests []dockerManifest
		index           = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
		repositories    = map[string]map[string]string{}
	)
	if err := writeDir(tw, "blobs/"); err != nil {
		return err
	}
	if err := writeDir(tw, "blobs/sha256/"); err != nil {
		return err
	}
	for _, s := range list {
		blobs := append([]ocispec.Descriptor{s.img.Image.Manifest, s.img.Manifest.Config}, s.img.Manifest.Layers...)
		for _, b := range blobs {
			if written[b.Digest] {
				continue
			}
			if err := writeBlob(st, tw, b.Digest); err != nil {
				return err
			}
			written[b.Digest] = true
		}
		dm := dockerManifest{Config: blobPath(s.img.ID)}
		for _, l := range s.img.Manifest.Layers {
			dm.Layers = append(dm.Layers, blobPath(l.Digest))
		}
		desc := s.img.Image.Manifest
		if len(s.names) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, n := range s.names {
			repo, tag := image.SplitName(n)
			dm.RepoTags = append(dm.RepoTags, image.FamiliarName(n))
			d := desc
			d.Annotations = map[string]string{"io.containerd.image.name": n, ocispec.AnnotationRefName: tag}
			index.Manifests = append(index.Manifests, d)
			if repositories[repo] == nil {
				repositories[repo] = map[string]string{}
			}
			if len(s.img.Manifest.Layers) > 0 {
				repositories[repo][tag] = s.img.Manifest.Layers[len(s.img.Manifest.Layers)-1].Digest.Encoded()
			}
		}
		dockerManifests = append(dockerManifests, dm)
	}
	files := []struct {
		name string
		v    any
	}{
		{"index.json", index},
		{"manifest.json", dockerManifests},
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
		{"repositories", repositories},
	}
	for _, f := range files {
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := writeFile(tw, f.name, b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func resolveForSave(st *store.Store, refs []string) ([]saved, error) {
	var out []saved
	pos := map[digest.Digest]int{}
	add := func(img store.Image, names ...string) {
		i, ok := pos[img.ID]
		if !ok {
			pos[img.ID] = len(out)
			out = append(out, saved{img: img})
			i = len(out) - 1
		}
		for _, n := range names {
			if !contains(out[i].names, n) {
				out[i].names = append(out[i].names, n)
			}
		}
	}
	for _, ref := range refs {
		if repo, ok := bareRepository(ref); ok {
			all, err := st.List()
			if err != nil {
				return nil, err
			}
			found := false
			for _, img := range all {
				for _, n := range img.Names {
					if r, _ := image.Repository(n); r == repo {
						add(img, n)
						found = true
					}
				}
			}
			if found {
				continue
			}
		}
		img, err := st.Get(ref)
		if err != nil {
			return nil, err
		}
		if full, err := image.NormalizeName(ref); err == nil && contains(img.Names, full) {
			add(img, full)
		} else {
			add(img)
		}
	}
	for i := range out {
		sort.Strings(out[i].names)
	}
	return out, nil
}

// bareRepository reports whether ref is a repository name without tag or
// digest, returning its full form.
func bareRepository(ref string) (string, bool) {
	if strings.ContainsAny(ref, "@") {
		return "", false
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return "", false
	}
	repo, err := image.Repository(ref)
	return repo, err == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var epoch = time.Unix(0, 0).UTC()

func writeDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
}

func writeFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func writeBlob(st *store.Store, tw *tar.Writer, d digest.Digest) error {
	f, err := st.Content.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("blob %s: only sha256 blobs can be saved", d)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobPath(d), Mode: 0o444, Size: fi.Size(), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	v := d.Verifier()
	if _, err := io.Copy(tw, io.TeeReader(f, v)); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if !v.Verified() {
		return fmt.Errorf("blob %s: content does not match its digest", d)
	}
	return nil
}

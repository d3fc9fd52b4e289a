// Package imagearchive moves images between the store and archive files:
// Docker's `save` format (manifest.json + repositories, old and 25+ style),
// the OCI image layout in a tar (as skopeo, podman and Docker 25+ write it)
// and plain root filesystem tarballs (`import`).
//
// Archives are hostile input: member names are looked up, never extracted;
// every document is size-bounded and every blob verified by the store. A
// failed load leaves no image behind.
package imagearchive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// member is one regular file inside an archive, by position.
type member struct {
	offset, size int64
}

// tarIndex maps the members of a seekable tar archive to their bytes, so
// that layers can be read concurrently without extracting anything.
type tarIndex struct {
	f       *os.File
	members map[string]member
	links   map[string]string
}

// countingReader tracks the offset of the tar reader in the file and lets
// it skip file bodies by seeking.
type countingReader struct {
	f   *os.File
	pos int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.pos += int64(n)
	return n, err
}

func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	n, err := c.f.Seek(off, whence)
	if err == nil {
		c.pos = n
	}
	return n, err
}

const maxMembers = 1 << 16

func cleanMember(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func indexTar(f *os.File) (*tarIndex, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	cr := &countingReader{f: f}
	tr := tar.NewReader(cr)
	idx := &tarIndex{f: f, members: map[string]member{}, links: map[string]string{}}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		if len(idx.members)+len(idx.links) >= maxMembers {
			return nil, fmt.Errorf("archive: more than %d members", maxMembers)
		}
		name := cleanMember(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			if hdr.Size < 0 {
				return nil, fmt.Errorf("archive member %q: negative size", hdr.Name)
			}
			idx.members[name] = member{offset: cr.pos, size: hdr.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			idx.links[name] = cleanMember(target)
		}
	}
	return idx, nil
}

// lookup resolves a member name, following links inside the archive.
func (t *tarIndex) lookup(name string) (member, error) {
	name = cleanMember(name)
	for range 16 {
		if m, ok := t.members[name]; ok {
			return m, nil
		}
		target, ok := t.links[name]
		if !ok {
			return member{}, fmt.Errorf("archive member %q: %w", name, os.ErrNotExist)
		}
		name = target
	}
	return member{}, fmt.Errorf("archive member %q: too many links", name)
}

func (t *tarIndex) has(name string) bool {
	_, err := t.lookup(name)
	return err == nil
}

// open returns a reader of a member's bytes.
func (t *tarIndex) open(name string) (*io.SectionReader, error) {
	m, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(t.f, m.offset, m.size), nil
}

// readAll returns a small member's bytes, refusing more than limit.
func (t *tarIndex) readAll(name string, limit int64) ([]byte, error) {
	r, err := t.open(name)
	if err != nil {
		return nil, err
	}
	if r.Size() > limit {
		return nil, fmt.Errorf("archive member %q: larger than %d bytes", name, limit)
	}
	return io.ReadAll(r)
}

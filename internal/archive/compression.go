package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression of a layer stream.
type Compression int

// Known compressions.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
	Bzip2
)

// String returns the lower-case name of the compression.
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Bzip2:
		return "bzip2"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

var (
	gzipMagic  = []byte{0x1f, 0x8b, 0x08}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	bzip2Magic = []byte("BZh")
	// zstdSkippable is the tail of the skippable-frame magic 0x184D2A5?
	// (little endian); the first byte is 0x50..0x5f.
	zstdSkippable = []byte{0x2a, 0x4d, 0x18}
)

// detectLen is how many leading bytes DetectCompression looks at.
const detectLen = 4

// DetectCompression reports the compression of a stream from its first bytes
// (magic numbers). Anything unrecognised, including a head too short to
// tell, is Uncompressed.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && bytes.Equal(head[1:4], zstdSkippable):
		return Zstd
	case len(head) >= 4 && bytes.HasPrefix(head, bzip2Magic) && head[3] >= '1' && head[3] <= '9':
		return Bzip2
	}
	return Uncompressed
}

// DecompressStream peeks the stream, detects compression and returns a
// reader of the plain bytes. Truncated or corrupt compressed input surfaces
// as an error from Read (io.ErrUnexpectedEOF or a format error), never as a
// silently short stream. Closing the returned reader releases the
// decompressor; it does not close r.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(detectLen)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("reading layer stream header: %w", err)
	}
	c := DetectCompression(head)
	switch c {
	case Gzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("opening gzip layer stream: %w", err)
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("opening zstd layer stream: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), c, nil
	}
	return io.NopCloser(br), c, nil
}

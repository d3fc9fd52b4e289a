package archive

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// bzip2Fixture is `printf 'berth bzip2 fixture\nberth bzip2 fixture\n' | bzip2 -9`
// (the standard library has no bzip2 writer).
var (
	bzip2Plain   = []byte("berth bzip2 fixture\nberth bzip2 fixture\n")
	bzip2Fixture = []byte{
		0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0xd2, 0x87,
		0x27, 0xee, 0x00, 0x00, 0x04, 0xd9, 0x80, 0x00, 0x10, 0x40, 0x00, 0x10,
		0x00, 0x13, 0x60, 0x56, 0x50, 0x20, 0x00, 0x20, 0xaa, 0x83, 0x40, 0x01,
		0x00, 0x00, 0x21, 0x74, 0x32, 0x85, 0x9a, 0x61, 0x46, 0xde, 0x6d, 0xc7,
		0x5d, 0x65, 0xe6, 0x16, 0x69, 0xf1, 0x77, 0x24, 0x53, 0x85, 0x09, 0x0d,
		0x28, 0x72, 0x7e, 0xe0,
	}
)

func gzipBytes(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(tb testing.TB, data []byte) []byte {
	tb.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(data, nil)
}

// testPayload is compressible text followed by incompressible bytes, big
// enough to span several decoder blocks.
func testPayload() []byte {
	p := bytes.Repeat([]byte("berth layer payload "), 100000)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		p = append(p, byte(rng.Uint32()))
	}
	return p
}

func TestCompressionString(t *testing.T) {
	for c, want := range map[Compression]string{
		Uncompressed: "uncompressed", Gzip: "gzip", Zstd: "zstd", Bzip2: "bzip2", Compression(42): "Compression(42)",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(c), got, want)
		}
	}
}

func TestDetectCompression(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Compression
	}{
		{nil, Uncompressed},
		{[]byte{0x1f, 0x8b}, Uncompressed},
		{[]byte{0x1f, 0x8b, 0x08}, Gzip},
		{[]byte{0x1f, 0x8b, 0x08, 0x00, 0x00}, Gzip},
		{[]byte{0x1f, 0x8b, 0x07, 0x00}, Uncompressed},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
		{[]byte{0x28, 0xb5, 0x2f}, Uncompressed},
		{[]byte{0x50, 0x2a, 0x4d, 0x18}, Zstd},
		{[]byte{0x5f, 0x2a, 0x4d, 0x18}, Zstd},
		{[]byte{0x60, 0x2a, 0x4d, 0x18}, Uncompressed},
		{[]byte("BZh9"), Bzip2},
		{[]byte("BZh1rest"), Bzip2},
		{[]byte("BZh0"), Uncompressed},
		{[]byte("BZh"), Uncompressed},
		{[]byte("etc/passwd\x00\x00"), Uncompressed},
		{gzipBytes(t, []byte("x")), Gzip},
		{zstdBytes(t, []byte("x")), Zstd},
		{bzip2Fixture, Bzip2},
	} {
		if got := DetectCompression(tc.head); got != tc.want {
			t.Errorf("DetectCompression(% x) = %v, want %v", tc.head, got, tc.want)
		}
	}
}

func decompressAll(data []byte) ([]byte, Compression, error) {
	rc, c, err := DecompressStream(bytes.NewReader(data))
	if err != nil {
		return nil, c, err
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	return out, c, err
}

func TestDecompressStream(t *testing.T) {
	payload := testPayload()
	twoMembers := append(gzipBytes(t, []byte("first ")), gzipBytes(t, []byte("second"))...)
	for _, tc := range []struct {
		name  string
		in    []byte
		plain []byte
		c     Compression
	}{
		{"empty", nil, nil, Uncompressed},
		{"short", []byte("ab"), []byte("ab"), Uncompressed},
		{"plain", payload, payload, Uncompressed},
		{"gzip", gzipBytes(t, payload), payload, Gzip},
		{"gzip members", twoMembers, []byte("first second"), Gzip},
		{"zstd", zstdBytes(t, payload), payload, Zstd},
		{"zstd empty", zstdBytes(t, nil), nil, Zstd},
		{"bzip2", bzip2Fixture, bzip2Plain, Bzip2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, c, err := decompressAll(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.c {
				t.Errorf("compression %v, want %v", c, tc.c)
			}
			if !bytes.Equal(out, tc.plain) {
				t.Errorf("got %d bytes, want %d", len(out), len(tc.plain))
			}
		})
	}
}

func TestDecompressStreamBroken(t *testing.T) {
	payload := testPayload()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"gzip", gzipBytes(t, payload)},
		{"zstd", zstdBytes(t, payload)},
		{"bzip2", bzip2Fixture},
	} {
		n := len(tc.data)
		cuts := []int{n - 1, n - 4, n - 8, n / 2, 12}
		for _, cut := range cuts {
			if _, _, err := decompressAll(tc.data[:cut]); err == nil {
				t.Errorf("%s truncated to %d of %d bytes: no error", tc.name, cut, n)
			}
		}
		for _, at := range []int{n / 2, n - 6} {
			bad := bytes.Clone(tc.data)
			bad[at] ^= 0x55
			if _, _, err := decompressAll(bad); err == nil {
				t.Errorf("%s with byte %d of %d flipped: no error", tc.name, at, n)
			}
		}
	}
}

func FuzzDecompressStream(f *testing.F) {
	small := []byte("fuzz payload fuzz payload fuzz payload")
	for _, seed := range [][]byte{
		nil, small, gzipBytes(f, small), zstdBytes(f, small), bzip2Fixture,
		gzipBytes(f, nil), zstdBytes(f, nil),
		gzipBytes(f, small)[:20], zstdBytes(f, small)[:10], bzip2Fixture[:30],
		mkTar(f, regE("f", "content", 0o644)),
	} {
		f.Add(seed)
	}
	const limit = 64 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, c, err := DecompressStream(bytes.NewReader(data))
		if want := DetectCompression(data); c != want {
			t.Fatalf("compression %v, DetectCompression says %v", c, want)
		}
		if err != nil {
			if c == Uncompressed {
				t.Fatalf("uncompressed stream failed to open: %v", err)
			}
			return
		}
		defer rc.Close()
		out, err := io.ReadAll(io.LimitReader(rc, limit))
		if c == Uncompressed && (err != nil || !bytes.Equal(out, data)) {
			t.Fatalf("uncompressed stream altered: %v", err)
		}
	})
}

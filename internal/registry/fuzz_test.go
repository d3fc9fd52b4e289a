package registry

import (
	"strings"
	"testing"
)

// FuzzParseRoute checks that any path either is refused or yields a
// repository name of the spec's grammar, never one with dot segments.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x.y",
		"/v2/a/blobs/sha256:00", "/v2/a/tags/list", "/v2/a/referrers/sha256:00", "/v2/../blobs/x",
		"/v2/a/blobs/b/manifests/c", "/v2//manifests/x", "/v2/a/../b/tags/list",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok, err := parseRoute(path)
		if !ok || err != nil || rt.kind == routeBase || rt.kind == routeCatalog {
			return
		}
		if !nameRE.MatchString(rt.name) || len(rt.name) > maxNameLen {
			t.Fatalf("%q: accepted name %q", path, rt.name)
		}
		for _, seg := range strings.Split(rt.name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q: name %q has segment %q", path, rt.name, seg)
			}
		}
	})
}

// FuzzParseManifest checks that the manifest checker never panics and that
// what it accepts names only valid digests.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}`), "")
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1}]}`), mediaOCIIndex)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"x"}`), "y")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		m, aerr := parseManifest(body, contentType)
		if aerr != nil {
			return
		}
		for _, b := range m.Blobs {
			if b.Digest.Validate() != nil || b.Size < 0 {
				t.Fatalf("accepted blob %q size %d", b.Digest, b.Size)
			}
		}
		for _, c := range m.Children {
			if c.Validate() != nil {
				t.Fatalf("accepted child %q", c)
			}
		}
		if m.Subject != "" && m.Subject.Validate() != nil {
			t.Fatalf("accepted subject %q", m.Subject)
		}
	})
}

// FuzzParseContentRange checks that accepted ranges are well-formed.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-99", "bytes 5-9", "bytes=1-2", "-1-2", "9-1", "1-", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := parseContentRange(s)
		if ok && (start < 0 || end < start) {
			t.Fatalf("%q: accepted %d-%d", s, start, end)
		}
	})
}

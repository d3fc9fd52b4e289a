package image

import (
	"encoding/json"
	"testing"
)

var fuzzSeeds = []string{
	`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}]}`,
	`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`,
	`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"]},"config":{"Env":["A=1"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000}}}`,
	`{"schemaVersion":1}`, `{"manifests":null,"config":null}`, `[]`, `{"rootfs":{"type":"layers","diff_ids":["sha512:00"]}}`,
}

// FuzzParseDocuments feeds arbitrary bytes to every document parser: none
// may panic, and whatever a parser accepts must satisfy its invariants.
func FuzzParseDocuments(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseManifest(b); err == nil {
			if m.SchemaVersion != 2 || m.Config.Digest.Validate() != nil || m.Config.Size < 0 {
				t.Fatalf("accepted invalid manifest %s", b)
			}
			for _, l := range m.Layers {
				if l.Digest.Validate() != nil || l.Size < 0 {
					t.Fatalf("accepted invalid layer %+v", l)
				}
			}
		}
		if idx, err := ParseIndex(b); err == nil {
			for _, m := range idx.Manifests {
				if m.Digest.Validate() != nil {
					t.Fatalf("accepted invalid index entry %+v", m)
				}
			}
			if _, err := SelectManifest(idx, Platform()); err == nil && len(idx.Manifests) == 0 {
				t.Fatal("selected a manifest from an empty index")
			}
		}
		if cfg, err := ParseConfig(b); err == nil {
			for _, d := range cfg.RootFS.DiffIDs {
				if d.Validate() != nil {
					t.Fatalf("accepted invalid diff ID %q", d)
				}
			}
			if _, err := json.Marshal(cfg); err != nil {
				t.Fatalf("accepted config does not marshal: %v", err)
			}
			ChainIDs(cfg.RootFS.DiffIDs)
		}
		DetectMediaType(b)
	})
}

// FuzzApplyChanges: arbitrary -c lines never panic.
func FuzzApplyChanges(f *testing.F) {
	for _, s := range []string{`CMD ["sh"]`, `ENV A=1 B="2"`, `LABEL a=b`, `ONBUILD RUN x`, `EXPOSE 80/udp`, `WORKDIR rel`, "ENV A\\\n=1", `ENTRYPOINT []`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c Config
		ApplyChanges(&c, []string{s})
	})
}

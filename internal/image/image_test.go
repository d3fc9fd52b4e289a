package image

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNormalizeAndFamiliar(t *testing.T) {
	tests := []struct {
		in, full, familiar, repo, tag string
		bad                           bool
	}{
		{in: "busybox", full: "docker.io/library/busybox:latest", familiar: "busybox:latest", repo: "busybox", tag: "latest"},
		{in: "busybox:1.36", full: "docker.io/library/busybox:1.36", familiar: "busybox:1.36", repo: "busybox", tag: "1.36"},
		{in: "user/app", full: "docker.io/user/app:latest", familiar: "user/app:latest", repo: "user/app", tag: "latest"},
		{in: "127.0.0.1:5000/x/y:v1", full: "127.0.0.1:5000/x/y:v1", familiar: "127.0.0.1:5000/x/y:v1", repo: "127.0.0.1:5000/x/y", tag: "v1"},
		{in: "Upper", bad: true},
		{in: "a/../b", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			full, err := NormalizeName(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("NormalizeName(%q) accepted", tt.in)
				}
				return
			}
			if err != nil || full != tt.full {
				t.Fatalf("NormalizeName = %q, %v; want %q", full, err, tt.full)
			}
			if f := FamiliarName(full); f != tt.familiar {
				t.Fatalf("FamiliarName = %q, want %q", f, tt.familiar)
			}
			if r, tg := SplitName(full); r != tt.repo || tg != tt.tag {
				t.Fatalf("SplitName = %q %q", r, tg)
			}
		})
	}
}

func TestChainIDs(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	got := ChainIDs([]digest.Digest{a, b, c})
	ab := digest.FromString(a.String() + " " + b.String())
	abc := digest.FromString(ab.String() + " " + c.String())
	want := []digest.Digest{a, ab, abc}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("chain[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestSelectManifest(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		{Digest: d("att"), Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}, Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		{Digest: d("arm"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{Digest: d("arm7"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{Digest: d("amd64"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: d("arm64"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	}}
	tests := []struct {
		want ocispec.Platform
		dgst digest.Digest
		err  bool
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, d("amd64"), false},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, d("arm7"), false},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, d("arm64"), false},
		{ocispec.Platform{OS: "windows", Architecture: "amd64"}, "", true},
	}
	for _, tt := range tests {
		got, err := SelectManifest(idx, tt.want)
		if tt.err != (err != nil) || got.Digest != tt.dgst {
			t.Errorf("%s: got %s, %v", FormatPlatform(tt.want), got.Digest, err)
		}
	}
}

func TestParseDocuments(t *testing.T) {
	good := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2},"layers":[]}`
	tests := []struct {
		name, doc, wantErr string
	}{
		{"good", good, ""},
		{"schema1", `{"schemaVersion":1}`, "schemaVersion"},
		{"bad digest", strings.Replace(good, "sha256:", "sha256:zz", 1), "digest"},
		{"index as manifest", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}`, "mediaType"},
		{"not json", `{`, "manifest"},
		{"huge", `{"schemaVersion":2,"x":"` + strings.Repeat("a", MaxManifestSize) + `"}`, "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.doc))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := ParseConfig([]byte(`{"rootfs":{"type":"layers","diff_ids":["nope"]}}`)); err == nil {
		t.Fatal("bad diff id accepted")
	}
	if mt, err := DetectMediaType([]byte(`{"schemaVersion":2,"manifests":[]}`)); err != nil || mt != ocispec.MediaTypeImageIndex {
		t.Fatalf("DetectMediaType = %q, %v", mt, err)
	}
}

func TestApplyChanges(t *testing.T) {
	tests := []struct {
		change  string
		check   func(Config) bool
		wantErr bool
	}{
		{`CMD ["sh"]`, func(c Config) bool { return len(c.Cmd) == 1 && c.Cmd[0] == "sh" }, false},
		{`CMD echo hi`, func(c Config) bool { return strings.Join(c.Cmd, "|") == "/bin/sh|-c|echo hi" }, false},
		{`ENTRYPOINT ["/bin/app", "-x"]`, func(c Config) bool { return len(c.Entrypoint) == 2 }, false},
		{`ENV A=1 B="two words"`, func(c Config) bool { return strings.Join(c.Env, ",") == "A=1,B=two words" }, false},
		{`ENV PATH /usr/bin`, func(c Config) bool { return c.Env[0] == "PATH=/usr/bin" }, false},
		{`LABEL a=b "c d"=e`, func(c Config) bool { return c.Labels["a"] == "b" && c.Labels["c d"] == "e" }, false},
		{`EXPOSE 80 53/udp`, func(c Config) bool { _, a := c.ExposedPorts["80/tcp"]; _, b := c.ExposedPorts["53/udp"]; return a && b }, false},
		{`VOLUME ["/data"]`, func(c Config) bool { _, ok := c.Volumes["/data"]; return ok }, false},
		{`WORKDIR /srv`, func(c Config) bool { return c.WorkingDir == "/srv" }, false},
		{`USER nobody`, func(c Config) bool { return c.User == "nobody" }, false},
		{`STOPSIGNAL SIGINT`, func(c Config) bool { return c.StopSignal == "SIGINT" }, false},
		{`ONBUILD RUN echo x`, func(c Config) bool { return len(c.OnBuild) == 1 && c.OnBuild[0] == "RUN echo x" }, false},
		{`RUN echo no`, nil, true},
		{`FROM x`, nil, true},
		{`ONBUILD`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.change, func(t *testing.T) {
			var c Config
			err := ApplyChanges(&c, []string{tt.change})
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

func TestOCILayerType(t *testing.T) {
	tests := map[string]string{
		MediaTypeDockerLayer:               ocispec.MediaTypeImageLayer,
		MediaTypeDockerLayerGzip:           ocispec.MediaTypeImageLayerGzip,
		MediaTypeDockerLayerZstd:           ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerGzip:    ocispec.MediaTypeImageLayerGzip,
		"application/vnd.example.artifact": "application/vnd.example.artifact",
	}
	for in, want := range tests {
		if got := OCILayerType(in); got != want {
			t.Errorf("OCILayerType(%q) = %q, want %q", in, got, want)
		}
	}
}

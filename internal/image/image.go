// Package image is berth's image model on the OCI image-spec types: names,
// manifests and indexes in both OCI and Docker media types, platform
// selection, image configs, history and chain IDs.
//
// It only interprets bytes it is given; it never reads or writes the store,
// the network or the filesystem. Every parser bounds its input and rejects
// documents that do not describe what their media type says.
package image

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema2 media types.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Size limits for documents read into memory.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
)

// IsIndex reports whether mt names an index or manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt names an image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsLayer reports whether mt names a filesystem layer berth can unpack.
func IsLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still found in old images
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck // still found in old images
		MediaTypeDockerLayer, MediaTypeDockerLayerGzip, MediaTypeDockerLayerZstd, MediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// OCILayerType is the OCI media type of a layer of media type mt (a Docker
// one is translated; others are returned as they are).
func OCILayerType(mt string) string {
	switch mt {
	case MediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer
	case MediaTypeDockerLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case MediaTypeDockerLayerZstd:
		return ocispec.MediaTypeImageLayerZstd
	case MediaTypeDockerForeignLayer:
		return ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // the OCI name of a foreign layer
	}
	return mt
}

// document is the part every manifest and index shares, used to sniff type.
type document struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
}

// DetectMediaType returns the media type of a manifest or index document,
// from its mediaType field or, when absent (allowed by OCI), its shape.
func DetectMediaType(b []byte) (string, error) {
	var d document
	if err := json.Unmarshal(b, &d); err != nil {
		return "", fmt.Errorf("not a manifest or index: %w", err)
	}
	if d.MediaType != "" {
		return d.MediaType, nil
	}
	switch {
	case d.Manifests != nil && d.Config == nil:
		return ocispec.MediaTypeImageIndex, nil
	case d.Config != nil && d.Manifests == nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("document is neither a manifest nor an index")
}

// ParseManifest decodes and validates an image manifest.
func ParseManifest(b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if len(b) > MaxManifestSize {
		return m, fmt.Errorf("manifest larger than %d bytes", MaxManifestSize)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("manifest: schemaVersion %d is not supported", m.SchemaVersion)
	}
	if m.MediaType != "" && !IsManifest(m.MediaType) {
		return m, fmt.Errorf("manifest: unexpected mediaType %q", m.MediaType)
	}
	if err := validateDescriptor(m.Config); err != nil {
		return m, fmt.Errorf("manifest config: %w", err)
	}
	for i, l := range m.Layers {
		if err := validateDescriptor(l); err != nil {
			return m, fmt.Errorf("manifest layer %d: %w", i, err)
		}
	}
	return m, nil
}

// ParseIndex decodes and validates an index or manifest list.
func ParseIndex(b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if len(b) > MaxManifestSize {
		return idx, fmt.Errorf("index larger than %d bytes", MaxManifestSize)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("index: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return idx, fmt.Errorf("index: schemaVersion %d is not supported", idx.SchemaVersion)
	}
	if idx.MediaType != "" && !IsIndex(idx.MediaType) {
		return idx, fmt.Errorf("index: unexpected mediaType %q", idx.MediaType)
	}
	for i, m := range idx.Manifests {
		if err := validateDescriptor(m); err != nil {
			return idx, fmt.Errorf("index manifest %d: %w", i, err)
		}
	}
	return idx, nil
}

func validateDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s: negative size", d.Digest)
	}
	return nil
}

// Config is the container configuration part of an image config: the OCI
// fields plus the ones Docker adds (Healthcheck, OnBuild, Shell, …).
type Config struct {
	Hostname     string              `json:"Hostname,omitempty"`
	Domainname   string              `json:"Domainname,omitempty"`
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
	OnBuild      []string            `json:"OnBuild,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// HealthConfig is Docker's HEALTHCHECK.
type HealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// Image is an image config document (OCI image config, Docker's superset).
type Image struct {
	Created       *time.Time        `json:"created,omitempty"`
	Author        string            `json:"author,omitempty"`
	Architecture  string            `json:"architecture"`
	Variant       string            `json:"variant,omitempty"`
	OS            string            `json:"os"`
	OSVersion     string            `json:"os.version,omitempty"`
	Config        Config            `json:"config"`
	RootFS        ocispec.RootFS    `json:"rootfs"`
	History       []ocispec.History `json:"history,omitempty"`
	Comment       string            `json:"comment,omitempty"`
	DockerVersion string            `json:"docker_version,omitempty"`
	Container     string            `json:"container,omitempty"`
	Parent        string            `json:"parent,omitempty"`
}

// ParseConfig decodes and validates an image config.
func ParseConfig(b []byte) (Image, error) {
	var img Image
	if len(b) > MaxConfigSize {
		return img, fmt.Errorf("config larger than %d bytes", MaxConfigSize)
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, fmt.Errorf("config: %w", err)
	}
	if img.RootFS.Type != "layers" {
		return img, fmt.Errorf("config: rootfs type %q, expected \"layers\"", img.RootFS.Type)
	}
	for i, d := range img.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return img, fmt.Errorf("config: diff_ids[%d] %q: %w", i, d, err)
		}
	}
	return img, nil
}

// ChainIDs returns the chain ID of every prefix of diffIDs: the key of an
// unpacked layer stack, shared by every image with the same lower layers.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// Platform is the platform berth runs images for.
func Platform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// MatchPlatform reports whether candidate can run on want. An absent
// variant matches, and arm64 "v8" equals no variant.
func MatchPlatform(want, candidate ocispec.Platform) bool {
	if candidate.OS != want.OS || candidate.Architecture != want.Architecture {
		return false
	}
	norm := func(p ocispec.Platform) string {
		if p.Architecture == "arm64" && p.Variant == "v8" {
			return ""
		}
		return p.Variant
	}
	return norm(candidate) == "" || norm(candidate) == norm(want)
}

// SelectManifest picks the manifest for want from an index: the first exact
// match, else the first compatible one. Attestation manifests are skipped.
func SelectManifest(idx ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, error) {
	var fallback *ocispec.Descriptor
	for i, m := range idx.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		if m.Platform == nil {
			if fallback == nil && len(idx.Manifests) == 1 {
				fallback = &idx.Manifests[i]
			}
			continue
		}
		if MatchPlatform(want, *m.Platform) {
			if m.Platform.Variant == want.Variant {
				return m, nil
			}
			if fallback == nil {
				fallback = &idx.Manifests[i]
			}
		}
	}
	if fallback != nil {
		return *fallback, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s in index", FormatPlatform(want))
}

// ParsePlatform reads os/arch[/variant].
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// FormatPlatform renders os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// NewManifest builds an OCI manifest for a config and layers.
func NewManifest(config ocispec.Descriptor, layers []ocispec.Descriptor) ([]byte, error) {
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	return json.Marshal(m)
}

// ShortID is the 12-hex-character form of an image ID.
func ShortID(id digest.Digest) string {
	e := id.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}

// TrimID removes an optional "sha256:" prefix.
func TrimID(s string) string { return strings.TrimPrefix(s, "sha256:") }

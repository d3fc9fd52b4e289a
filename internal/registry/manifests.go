package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/registry/metadata"
	"github.com/opencontainers/go-digest"
)

// The manifest media types the registry accepts.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

type wireDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// wireManifest is the union of the image manifest and index fields the
// registry checks.
type wireManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *wireDescriptor   `json:"config"`
	Layers        []wireDescriptor  `json:"layers"`
	Manifests     []wireDescriptor  `json:"manifests"`
	Subject       *wireDescriptor   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

func (d wireDescriptor) check(what string) (digest.Digest, *apiError) {
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return "", errManifestInvalid("%s: invalid digest %q", what, d.Digest)
	}
	if d.Size < 0 {
		return "", errManifestInvalid("%s %s: negative size", what, dg)
	}
	if d.MediaType == "" {
		return "", errManifestInvalid("%s %s: no mediaType", what, dg)
	}
	return dg, nil
}

// parseManifest checks a pushed manifest and returns its record.
func parseManifest(body []byte, contentType string) (metadata.Manifest, *apiError) {
	var m wireManifest
	if err := json.Unmarshal(body, &m); err != nil {
		return metadata.Manifest{}, errManifestInvalid("manifest is not valid JSON: %v", err)
	}
	mt := m.MediaType
	switch {
	case mt == "" && contentType == "":
		return metadata.Manifest{}, errManifestInvalid("manifest has no mediaType and no Content-Type")
	case mt == "":
		mt = contentType
	case contentType != "" && contentType != mt:
		return metadata.Manifest{}, errManifestInvalid("Content-Type %q does not match the manifest's mediaType %q", contentType, mt)
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return metadata.Manifest{}, errManifestInvalid("manifest schemaVersion must be 2")
	}
	rec := metadata.Manifest{MediaType: mt, Size: int64(len(body)), ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	switch mt {
	case mediaOCIManifest, mediaDockerManifest:
		if m.Config == nil {
			return rec, errManifestInvalid("image manifest has no config")
		}
		if len(m.Manifests) > 0 {
			return rec, errManifestInvalid("image manifest lists manifests")
		}
		dg, aerr := m.Config.check("config")
		if aerr != nil {
			return rec, aerr
		}
		rec.Blobs = append(rec.Blobs, metadata.Descriptor{MediaType: m.Config.MediaType, Digest: dg, Size: m.Config.Size})
		for _, l := range m.Layers {
			dg, aerr := l.check("layer")
			if aerr != nil {
				return rec, aerr
			}
			if len(l.URLs) > 0 {
				continue // a foreign layer lives elsewhere
			}
			rec.Blobs = append(rec.Blobs, metadata.Descriptor{MediaType: l.MediaType, Digest: dg, Size: l.Size})
		}
		if rec.ArtifactType == "" {
			rec.ArtifactType = m.Config.MediaType
		}
	case mediaOCIIndex, mediaDockerList:
		if m.Config != nil || len(m.Layers) > 0 {
			return rec, errManifestInvalid("index has a config or layers")
		}
		for _, c := range m.Manifests {
			dg, aerr := c.check("manifest")
			if aerr != nil {
				return rec, aerr
			}
			rec.Children = append(rec.Children, dg)
		}
	default:
		return rec, errManifestInvalid("unsupported manifest media type %q", mt)
	}
	if m.Subject != nil {
		dg, aerr := m.Subject.check("subject")
		if aerr != nil {
			return rec, aerr
		}
		rec.Subject = dg
	}
	return rec, nil
}

// parseRef splits a manifest reference into a digest or a tag.
func parseRef(ref string) (digest.Digest, string, *apiError) {
	if strings.Contains(ref, ":") {
		dg, aerr := parseDigest(ref)
		return dg, "", aerr
	}
	if !tagRE.MatchString(ref) {
		return "", "", errTagInvalid(ref)
	}
	return "", ref, nil
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	refDigest, tag, aerr := parseRef(rt.ref)
	if aerr != nil {
		return aerr
	}
	limit := r.cfg.Limits.ManifestSize
	if req.ContentLength > limit {
		return errTooLarge("manifest", limit)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return internalError(err)
	}
	if int64(len(body)) > limit {
		return errTooLarge("manifest", limit)
	}
	ct := req.Header.Get("Content-Type")
	if ct != "" {
		if parsed, _, err := mime.ParseMediaType(ct); err == nil {
			ct = parsed
		}
	}
	rec, aerr := parseManifest(body, ct)
	if aerr != nil {
		return aerr
	}
	alg := digest.SHA256
	if refDigest != "" {
		alg = refDigest.Algorithm()
	}
	dg := alg.FromBytes(body)
	if refDigest != "" && dg != refDigest {
		return errDigestInvalid("manifest digest is %s, not %s", dg, refDigest)
	}
	err = r.db.PutManifest(rt.name, dg, rec, body, tag)
	var missing *metadata.MissingError
	var sizeErr *metadata.SizeError
	switch {
	case errors.As(err, &missing):
		return errManifestBlobUnknown(missing.Digest)
	case errors.As(err, &sizeErr):
		return errManifestInvalid("%v", sizeErr)
	case err != nil:
		return internalError(err)
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/manifests/"+dg.String())
	h.Set("Docker-Content-Digest", dg.String())
	if rec.Subject != "" {
		h.Set("OCI-Subject", rec.Subject.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	if _, _, aerr := parseRef(rt.ref); aerr != nil {
		return aerr
	}
	dg, m, content, err := r.db.GetManifest(rt.name, rt.ref)
	if errors.Is(err, metadata.ErrNotFound) {
		return errManifestUnknown(rt.ref)
	}
	if err != nil {
		return internalError(err)
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", dg.String())
	h.Set("ETag", `"`+dg.String()+`"`)
	h.Set("Content-Length", strconv.Itoa(len(content)))
	if match := req.Header.Get("If-None-Match"); match != "" && strings.Contains(match, dg.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = io.Copy(w, bytes.NewReader(content))
	}
	return nil
}

func (r *Registry) deleteManifest(w http.ResponseWriter, _ *http.Request, rt route) *apiError {
	dg, tag, aerr := parseRef(rt.ref)
	if aerr != nil {
		return aerr
	}
	var err error
	if tag != "" {
		err = r.db.DeleteTag(rt.name, tag)
	} else {
		err = r.db.DeleteManifest(rt.name, dg)
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return errManifestUnknown(rt.ref)
	}
	if err != nil {
		return internalError(err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

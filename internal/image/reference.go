package image

import (
	"fmt"

	"github.com/distribution/reference"
)

// NormalizeName parses a user-supplied image name and returns its full form
// with a tag ("busybox" → "docker.io/library/busybox:latest"). A name that
// pins a digest keeps it and gets no default tag.
func NormalizeName(s string) (string, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", fmt.Errorf("invalid reference %q: %w", s, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// FamiliarName renders a full name the way Docker shows it
// ("docker.io/library/busybox:latest" → "busybox:latest").
func FamiliarName(full string) string {
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return full
	}
	return reference.FamiliarString(named)
}

// SplitName returns the familiar repository and the tag (or digest) of a
// full name, for REPOSITORY and TAG columns.
func SplitName(full string) (repo, tag string) {
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return full, ""
	}
	repo = reference.FamiliarName(named)
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return repo, tag
}

// Repository returns the full repository part of a name, without tag or digest.
func Repository(full string) (string, error) {
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return "", err
	}
	return named.Name(), nil
}

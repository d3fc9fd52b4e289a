package remote

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/berth-dev/berth/internal/image"
)

// DefaultRegistriesConf is where berth reads registry settings; the
// BERTH_REGISTRIES_CONF environment variable names another file. The format
// is the one of containers-registries.conf(5) (version 2), the subset
// berth uses:
//
//	unqualified-search-registries = ["docker.io"]
//	[[registry]]
//	location = "registry.local:5000"
//	insecure = true
//	[[registry.mirror]]
//	location = "mirror.local:5000"
//	insecure = true
const DefaultRegistriesConf = "/etc/berth/registries.conf"

// RegistryConf is one [[registry]] table.
type RegistryConf struct {
	Location string         `toml:"location"`
	Insecure bool           `toml:"insecure"`
	Mirrors  []RegistryConf `toml:"mirror"`
}

// Registries is the parsed registries configuration.
type Registries struct {
	Search     []string       `toml:"unqualified-search-registries"`
	Registries []RegistryConf `toml:"registry"`
}

// LoadRegistries reads the configuration; a missing file means Docker's
// defaults (search docker.io only, nothing insecure, no mirrors).
func LoadRegistries() (Registries, error) {
	path := os.Getenv("BERTH_REGISTRIES_CONF")
	if path == "" {
		path = DefaultRegistriesConf
	}
	var r Registries
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Registries{Search: []string{"docker.io"}}, nil
	}
	if err != nil {
		return r, err
	}
	md, err := toml.Decode(string(b), &r)
	if err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return r, fmt.Errorf("%s: unknown setting %s", path, undecoded[0])
	}
	if len(r.Search) == 0 {
		r.Search = []string{"docker.io"}
	}
	return r, nil
}

// lookup returns the table for a registry host.
func (r Registries) lookup(host string) (RegistryConf, bool) {
	for _, reg := range r.Registries {
		if reg.Location == host || (host == "index.docker.io" && reg.Location == "docker.io") {
			return reg, true
		}
	}
	return RegistryConf{}, false
}

// Insecure reports whether host may be reached over plain HTTP or
// unverified TLS.
func (r Registries) Insecure(host string) bool {
	reg, ok := r.lookup(host)
	if ok && reg.Insecure {
		return true
	}
	for _, any := range r.Registries {
		for _, m := range any.Mirrors {
			if m.Location == host && m.Insecure {
				return true
			}
		}
	}
	return false
}

// Candidate is one place to pull a reference from.
type Candidate struct {
	Name   string // the image's name in the store
	Source string // where it is fetched from (a mirror or Name itself)
}

// Candidates expands a user reference into the places to try, in order: a
// short name ("busybox", "library/busybox") once per search registry, each
// through its registry's mirrors first.
func (r Registries) Candidates(ref string) []Candidate {
	search := r.Search
	if len(search) == 0 {
		search = []string{"docker.io"}
	}
	var names []string
	if isShortName(ref) {
		for _, reg := range search {
			names = append(names, reg+"/"+ref)
		}
	} else {
		names = []string{ref}
	}
	var out []Candidate
	for _, n := range names {
		if full, err := image.NormalizeName(n); err == nil {
			n = full
		}
		host, rest, _ := strings.Cut(n, "/")
		if reg, ok := r.lookup(host); ok {
			for _, m := range reg.Mirrors {
				out = append(out, Candidate{Name: n, Source: m.Location + "/" + rest})
			}
		}
		out = append(out, Candidate{Name: n, Source: n})
	}
	return out
}

// isShortName reports whether ref names no registry: its first path
// component is not a host (no dot, no port, not localhost).
func isShortName(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	if !found {
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != "localhost"
}

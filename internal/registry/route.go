package registry

import (
	"regexp"
	"strings"

	"github.com/berth-dev/berth/internal/registry/auth"
)

// kind is what a /v2/ path addresses.
type kind int

const (
	routeBase kind = iota
	routeCatalog
	routeManifest
	routeBlob
	routeUploads // POST: start an upload
	routeUpload  // one upload session
	routeTags
	routeReferrers
)

var routeNames = map[kind]string{
	routeBase: "base", routeCatalog: "catalog", routeManifest: "manifest", routeBlob: "blob",
	routeUploads: "uploads", routeUpload: "upload", routeTags: "tags", routeReferrers: "referrers",
}

// route is a parsed /v2/ path.
type route struct {
	kind kind
	name string // repository
	ref  string // tag or digest, blob digest, or upload id
}

var (
	// nameRE is the spec's repository name grammar.
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

const maxNameLen = 255

// parseRoute splits a path under /v2/ into what it addresses. ok is false
// for paths that are not API routes; a route with an invalid repository name
// is returned with err set.
func parseRoute(path string) (rt route, ok bool, err *apiError) {
	rest, found := strings.CutPrefix(path, "/v2/")
	if !found {
		if path == "/v2" {
			return route{kind: routeBase}, true, nil
		}
		return route{}, false, nil
	}
	switch rest {
	case "":
		return route{kind: routeBase}, true, nil
	case "_catalog":
		return route{kind: routeCatalog}, true, nil
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt = route{kind: routeTags, name: strings.Join(segs[:n-2], "/")}
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		rt = route{kind: routeUpload, name: strings.Join(segs[:n-3], "/"), ref: segs[n-1]}
		if rt.ref == "" {
			rt.kind = routeUploads
		}
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		rt = route{kind: routeUploads, name: strings.Join(segs[:n-2], "/")}
	case n >= 3 && segs[n-2] == "manifests":
		rt = route{kind: routeManifest, name: strings.Join(segs[:n-2], "/"), ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "blobs":
		rt = route{kind: routeBlob, name: strings.Join(segs[:n-2], "/"), ref: segs[n-1]}
	case n >= 3 && segs[n-2] == "referrers":
		rt = route{kind: routeReferrers, name: strings.Join(segs[:n-2], "/"), ref: segs[n-1]}
	default:
		return route{}, false, nil
	}
	if len(rt.name) > maxNameLen || !nameRE.MatchString(rt.name) {
		return rt, true, errNameInvalid(rt.name)
	}
	return rt, true, nil
}

// access is what a request on rt needs: pull to read, push to write,
// delete to delete. (A mount also needs pull on the repository it mounts
// from; startUpload asks for that separately.)
func (rt route) access(method string) []auth.Access {
	switch rt.kind {
	case routeBase:
		return nil
	case routeCatalog:
		return []auth.Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}
	}
	var action string
	switch method {
	case "GET", "HEAD":
		action = "pull"
	case "DELETE":
		action = "delete"
		if rt.kind == routeUpload {
			action = "push"
		}
	default:
		action = "push"
	}
	return []auth.Access{{Type: "repository", Name: rt.name, Actions: []string{action}}}
}

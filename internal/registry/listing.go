package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/berth-dev/berth/internal/registry/metadata"
)

// maxPage bounds a catalog page when the client asks for none.
const maxPage = 1000

// pageParams reads n (-1 when absent) and last.
func pageParams(req *http.Request) (int, string, *apiError) {
	q := req.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, "", errPaginationInvalid(s)
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// linkNext sets the Link header of a page that may have more after last.
func linkNext(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, contentType string, v any) *apiError {
	body, err := json.Marshal(v)
	if err != nil {
		return internalError(err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

func (r *Registry) tags(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	n, last, aerr := pageParams(req)
	if aerr != nil {
		return aerr
	}
	want := n
	if n > 0 {
		want = n + 1
	}
	tags, err := r.db.Tags(rt.name, last, want)
	if errors.Is(err, metadata.ErrNotFound) {
		return errNameUnknown(rt.name)
	}
	if err != nil {
		return internalError(err)
	}
	if n > 0 && len(tags) > n {
		tags = tags[:n]
		linkNext(w, req.URL.Path, n, tags[n-1])
	}
	return writeJSON(w, "application/json", map[string]any{"name": rt.name, "tags": tags})
}

func (r *Registry) catalog(w http.ResponseWriter, req *http.Request, user string) *apiError {
	n, last, aerr := pageParams(req)
	if aerr != nil {
		return aerr
	}
	size := n
	if size < 0 {
		size = maxPage
	}
	if size == 0 {
		return writeJSON(w, "application/json", map[string]any{"repositories": []string{}})
	}
	repos, err := r.db.Repositories(last, size+1, func(name string) bool {
		acts := r.authz.Actions(user, name)
		return slices.Contains(acts, "pull") || slices.Contains(acts, "*")
	})
	if err != nil {
		return internalError(err)
	}
	if len(repos) > size {
		repos = repos[:size]
		linkNext(w, req.URL.Path, size, repos[size-1])
	}
	return writeJSON(w, "application/json", map[string]any{"repositories": repos})
}

func (r *Registry) referrers(w http.ResponseWriter, req *http.Request, rt route) *apiError {
	dg, aerr := parseDigest(rt.ref)
	if aerr != nil {
		return aerr
	}
	refs, err := r.db.Referrers(rt.name, dg)
	if err != nil {
		return internalError(err)
	}
	if at := req.URL.Query().Get("artifactType"); at != "" {
		refs = slices.DeleteFunc(refs, func(d metadata.Descriptor) bool { return d.ArtifactType != at })
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, mediaOCIIndex, map[string]any{
		"schemaVersion": 2, "mediaType": mediaOCIIndex, "manifests": refs,
	})
}

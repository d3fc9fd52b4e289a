package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is one of the distribution spec's error codes with the HTTP
// status it is sent with.
type apiError struct {
	Status  int
	Code    string
	Message string
	Detail  any
	header  http.Header
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The spec's codes, each with its usual status.
func errBlobUnknown(d any) *apiError {
	return errorf(http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry: %v", d)
}
func errUploadUnknown(id string) *apiError {
	return errorf(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry: %s", id)
}
func errUploadInvalid(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "BLOB_UPLOAD_INVALID", format, args...)
}
func errDigestInvalid(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "DIGEST_INVALID", format, args...)
}
func errManifestBlobUnknown(d any) *apiError {
	return errorf(http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "manifest references an unknown blob: %v", d)
}
func errManifestInvalid(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "MANIFEST_INVALID", format, args...)
}
func errManifestUnknown(ref string) *apiError {
	return errorf(http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown: %s", ref)
}
func errNameInvalid(name string) *apiError {
	return errorf(http.StatusBadRequest, "NAME_INVALID", "invalid repository name: %q", name)
}
func errNameUnknown(name string) *apiError {
	return errorf(http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry: %s", name)
}
func errTagInvalid(tag string) *apiError {
	return errorf(http.StatusBadRequest, "TAG_INVALID", "invalid tag: %q", tag)
}
func errSizeInvalid(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "SIZE_INVALID", format, args...)
}
func errTooLarge(what string, limit int64) *apiError {
	return errorf(http.StatusRequestEntityTooLarge, "SIZE_INVALID", "%s is larger than %d bytes", what, limit)
}
func errRangeInvalid(offset int64) *apiError {
	e := errorf(http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", "chunk does not start at the upload's offset %d", offset)
	e.header = http.Header{"Range": {rangeHeader(offset)}}
	return e
}
func errPaginationInvalid(v string) *apiError {
	return errorf(http.StatusBadRequest, "UNSUPPORTED", "invalid number of results requested: %q", v)
}
func errUnsupported(format string, args ...any) *apiError {
	return errorf(http.StatusMethodNotAllowed, "UNSUPPORTED", format, args...)
}
func errTooManyRequests() *apiError {
	return errorf(http.StatusTooManyRequests, "TOOMANYREQUESTS", "too many requests")
}
func errUnavailable(format string, args ...any) *apiError {
	return errorf(http.StatusServiceUnavailable, "UNAVAILABLE", format, args...)
}

// rangeHeader is the Range header of an upload holding offset bytes: the
// spec's inclusive "0-<last byte>", "0-0" for none.
func rangeHeader(offset int64) string {
	end := offset - 1
	if end < 0 {
		end = 0
	}
	return "0-" + strconv.FormatInt(end, 10)
}

// writeError answers with err's status and the spec's JSON error body.
func writeError(w http.ResponseWriter, err *apiError) {
	for k, vs := range err.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{
		"code": err.Code, "message": err.Message, "detail": err.Detail,
	}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(err.Status)
	_, _ = w.Write(body)
}

package registry_test

// Helpers for the OCI distribution-spec v1.1 conformance suite in
// conformance_test.go: a registry behind httptest, a small HTTP client that
// never follows redirects, push helpers, manifest builders and assertions
// on status codes, headers and the spec's JSON error bodies.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	_ "crypto/sha512" // go-digest needs the hash registered
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/registry"
)

// Media types used throughout the suite.
const (
	mtOCIManifest    = v1.MediaTypeImageManifest
	mtOCIIndex       = v1.MediaTypeImageIndex
	mtOCIConfig      = v1.MediaTypeImageConfig
	mtOCILayer       = v1.MediaTypeImageLayerGzip
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// specErrorCodes are the codes the spec allows in an error body (plus the
// legacy TAG_INVALID it mentions).
var specErrorCodes = []string{
	"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
	"MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
	"NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
	"TOOMANYREQUESTS", "TAG_INVALID",
}

// ---------------------------------------------------------------------------
// Registry under test

type testRegistry struct {
	reg *registry.Registry
	srv *httptest.Server
	cfg registry.Config
}

// storageEnv points a registry's config at the storage under test; nil
// means the default filesystem driver under the root.
type storageEnv func(t *testing.T, cfg *registry.Config)

// newTestRegistry starts a registry rooted in a fresh temporary directory
// over st's storage; opts adjust the config first. Set
// BERTH_REGISTRY_TEST_LOG=1 to see the server's log on stderr.
func newTestRegistry(t *testing.T, st storageEnv, opts ...func(*registry.Config)) *testRegistry {
	t.Helper()
	cfg := registry.Config{Root: t.TempDir()}
	if st != nil {
		st(t, &cfg)
	}
	for _, o := range opts {
		o(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BERTH_REGISTRY_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg, err := registry.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("registry.Close: %v", err)
		}
	})
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &testRegistry{reg: reg, srv: srv, cfg: cfg}
}

// client returns an anonymous client for the registry.
func (r *testRegistry) client() *client {
	base, _ := url.Parse(r.srv.URL)
	return &client{
		base: base,
		hc: &http.Client{
			Timeout: 60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// writeHtpasswd writes user:bcrypt(password) lines (bcrypt.MinCost) and
// returns the file's path.
func writeHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeECKey writes a new P-256 key as a PKCS#8 PEM file.
func writeECKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "token-key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, p
}

// ---------------------------------------------------------------------------
// HTTP client

type client struct {
	base       *url.URL
	hc         *http.Client
	user, pass string
	basic      bool
	token      string
}

// withBasic returns a copy of c sending basic auth.
func (c *client) withBasic(user, pass string) *client {
	cc := *c
	cc.user, cc.pass, cc.basic, cc.token = user, pass, true, ""
	return &cc
}

// withToken returns a copy of c sending a bearer token.
func (c *client) withToken(tok string) *client {
	cc := *c
	cc.basic, cc.token = false, tok
	return &cc
}

// hdrs are request headers. "Transfer-Encoding: chunked" sends the body
// without a Content-Length; "Content-Length" is ignored, as the Go client
// always declares the body's true length (see rawRequest for lying).
type hdrs map[string]string

type response struct {
	method string
	url    string
	reqURL *url.URL
	status int
	header http.Header
	body   []byte
}

func (r *response) String() string {
	b := string(r.body)
	if len(b) > 600 {
		b = b[:600] + "..."
	}
	return fmt.Sprintf("%s %s -> %d %q", r.method, r.url, r.status, b)
}

// resolve turns target (absolute URL, or path with optional query) into a
// URL on the server without cleaning dot segments, so hostile paths reach
// the server as written.
func (c *client) resolve(t testing.TB, target string) *url.URL {
	t.Helper()
	u, err := c.resolveErr(target)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (c *client) resolveErr(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %v", target, err)
	}
	if u.IsAbs() {
		return u, nil
	}
	if !strings.HasPrefix(u.Path, "/") {
		return c.base.ResolveReference(u), nil
	}
	u.Scheme, u.Host = c.base.Scheme, c.base.Host
	return u, nil
}

// do sends one request. body nil means no body.
func (c *client) do(t testing.TB, method, target string, body []byte, h hdrs) *response {
	t.Helper()
	r, err := c.doErr(method, target, body, h)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// doErr is do for goroutines other than the test's.
func (c *client) doErr(method, target string, body []byte, h hdrs) (*response, error) {
	u, err := c.resolveErr(target)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", method, target, err)
	}
	req.URL = u // keep RawPath exactly as given
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	for k, v := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Transfer-Encoding":
			req.ContentLength = -1
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.GetBody = nil
		case "Content-Length":
			// The Go client derives the header from ContentLength.
		default:
			req.Header.Set(k, v)
		}
	}
	if c.basic {
		req.SetBasicAuth(c.user, c.pass)
	} else if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %v", method, u, err)
	}
	return &response{method: method, url: u.RequestURI(), reqURL: u, status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// location returns the response's Location header resolved against the
// request URL (it may be relative), failing the test when it is missing.
func (c *client) location(t testing.TB, r *response) string {
	t.Helper()
	loc := r.header.Get("Location")
	if loc == "" {
		t.Fatalf("%v: no Location header", r)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("%v: bad Location %q: %v", r, loc, err)
	}
	base := r.reqURL
	if base == nil {
		base = c.base
	}
	return base.ResolveReference(u).String()
}

// withQuery adds query parameters to target, keeping the ones it has (an
// upload Location may carry state in its query).
func withQuery(target string, kv ...string) string {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// rawRequest writes head (request line and headers, CRLF-separated, without
// the blank line) and body on a fresh connection, half-closes it when
// closeWrite is set, and reads the response. It is for requests the Go
// client refuses to send, such as a body shorter than its Content-Length.
func (c *client) rawRequest(t testing.TB, head string, body []byte, closeWrite bool) *response {
	t.Helper()
	conn, err := net.Dial("tcp", c.base.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	var auth string
	if c.basic {
		auth = "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass)) + "\r\n"
	}
	msg := head + "\r\nHost: " + c.base.Host + "\r\n" + auth + "Connection: close\r\n\r\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw %q: reading response: %v", strings.SplitN(head, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{method: "RAW", url: strings.SplitN(head, "\r\n", 2)[0], status: resp.StatusCode, header: resp.Header, body: b}
}

// ---------------------------------------------------------------------------
// Assertions

// expectStatus stops the test unless r's status is one of want.
func expectStatus(t testing.TB, r *response, want ...int) {
	t.Helper()
	if !slices.Contains(want, r.status) {
		t.Fatalf("%v: status %d, want %v", r, r.status, want)
	}
}

// expectHeader checks a header's exact value ("" means absent).
func expectHeader(t testing.TB, r *response, name, want string) {
	t.Helper()
	if got := r.header.Get(name); got != want {
		t.Errorf("%v: header %s = %q, want %q", r, name, got, want)
	}
}

// expectHeaderSet checks that a header is present and not empty.
func expectHeaderSet(t testing.TB, r *response, name string) string {
	t.Helper()
	v := r.header.Get(name)
	if v == "" {
		t.Errorf("%v: header %s missing", r, name)
	}
	return v
}

type errorBody struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

var errorCodeRE = regexp.MustCompile(`^[A-Z_]+$`)

// expectError checks r's status and, for requests that carry a body (not
// HEAD), a JSON error body in the spec's format holding one of codes.
func expectError(t testing.TB, r *response, status int, codes ...string) {
	t.Helper()
	expectErrorIn(t, r, []int{status}, codes...)
}

// expectErrorIn is expectError accepting any of several statuses.
func expectErrorIn(t testing.TB, r *response, statuses []int, codes ...string) {
	t.Helper()
	if !slices.Contains(statuses, r.status) {
		t.Errorf("%v: status %d, want %v (error %v)", r, r.status, statuses, codes)
		return
	}
	if r.method == http.MethodHead {
		return
	}
	got := errorCodes(t, r)
	for _, c := range got {
		if slices.Contains(codes, c) {
			return
		}
	}
	t.Errorf("%v: error codes %v, want one of %v", r, got, codes)
}

// errorCodes parses r's body as the spec's error JSON and returns its codes,
// reporting any malformed part.
func errorCodes(t testing.TB, r *response) []string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%v: error Content-Type %q, want application/json", r, ct)
	}
	var eb errorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Errorf("%v: error body is not JSON: %v", r, err)
		return nil
	}
	if len(eb.Errors) == 0 {
		t.Errorf("%v: error body has no errors", r)
	}
	var codes []string
	for _, e := range eb.Errors {
		if !errorCodeRE.MatchString(e.Code) || !slices.Contains(specErrorCodes, e.Code) {
			t.Errorf("%v: error code %q is not one of the spec's codes", r, e.Code)
		}
		codes = append(codes, e.Code)
	}
	return codes
}

// expectSpecErrorBody checks a 4xx body that claims to be JSON: it must be
// the spec's error format with the spec's codes (other formats are allowed).
func expectSpecErrorBody(t testing.TB, r *response) {
	t.Helper()
	if r.status < 400 || r.status >= 500 || r.method == http.MethodHead {
		return
	}
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		errorCodes(t, r)
	}
}

// expectBody checks the body's exact bytes.
func expectBody(t testing.TB, r *response, want []byte) {
	t.Helper()
	if !bytes.Equal(r.body, want) {
		t.Errorf("%v: body differs from what was pushed (%d bytes, want %d)", r, len(r.body), len(want))
	}
}

// decodeJSON decodes r's body into v, failing the test when it can't.
func decodeJSON(t testing.TB, r *response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%v: body is not the expected JSON: %v", r, err)
	}
}

var linkRE = regexp.MustCompile(`^<([^>]+)>;\s*rel="next"$`)

// nextLink parses an RFC 5988 Link header with rel="next"; "" when absent.
func nextLink(t testing.TB, r *response) string {
	t.Helper()
	l := r.header.Get("Link")
	if l == "" {
		return ""
	}
	m := linkRE.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("%v: Link header %q is not `<url>; rel=\"next\"`", r, l)
	}
	return m[1]
}

// parseChallenge splits a WWW-Authenticate value into its scheme and
// parameters (quoted values may hold commas).
func parseChallenge(h string) (scheme string, params map[string]string) {
	params = map[string]string{}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(strings.TrimSpace(rest), ",") {
		rest = strings.TrimSpace(rest)
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k] = v[1 : end+1]
			rest = v[end+2:]
		} else {
			val, after, _ := strings.Cut(v, ",")
			params[k] = strings.TrimSpace(val)
			rest = after
		}
	}
	return scheme, params
}

// ---------------------------------------------------------------------------
// Content builders

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randHex(n int) string {
	return fmt.Sprintf("%x", randBytes(n))[:n]
}

// randDigest is a well-formed digest nothing in the registry has.
func randDigest() digest.Digest { return digest.FromBytes(randBytes(32)) }

// testImage is an image (or any manifest) with the blobs it needs.
type testImage struct {
	MediaType string
	Manifest  []byte
	Digest    digest.Digest
	Blobs     [][]byte // config first, then layers
	Children  []*testImage
}

func (img *testImage) desc() v1.Descriptor {
	return v1.Descriptor{MediaType: img.MediaType, Digest: img.Digest, Size: int64(len(img.Manifest))}
}

func blobDesc(mediaType string, b []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func newConfig() []byte {
	return mustJSON(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Now().UTC().Format(time.RFC3339Nano),
		"config":       map[string]any{"Labels": map[string]string{"nonce": randHex(16)}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{}},
	})
}

// newImage builds an OCI image manifest with a config and nLayers random
// layers of layerSize bytes.
func newImage(nLayers, layerSize int) *testImage {
	return buildImage(mtOCIManifest, mtOCIConfig, mtOCILayer, nLayers, layerSize, nil)
}

// newDockerImage builds a Docker schema 2 manifest.
func newDockerImage(nLayers, layerSize int) *testImage {
	return buildImage(mtDockerManifest, mtDockerConfig, mtDockerLayer, nLayers, layerSize, nil)
}

func buildImage(mt, configMT, layerMT string, nLayers, layerSize int, edit func(*v1.Manifest)) *testImage {
	cfg := newConfig()
	img := &testImage{MediaType: mt, Blobs: [][]byte{cfg}}
	m := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mt,
		Config:    blobDesc(configMT, cfg),
		Layers:    []v1.Descriptor{},
	}
	for range nLayers {
		l := randBytes(layerSize)
		img.Blobs = append(img.Blobs, l)
		m.Layers = append(m.Layers, blobDesc(layerMT, l))
	}
	if edit != nil {
		edit(&m)
	}
	img.Manifest = mustJSON(m)
	img.Digest = digest.FromBytes(img.Manifest)
	return img
}

// newIndex builds an index (OCI or Docker manifest list, by mt) over
// children.
func newIndex(mt string, children ...*testImage) *testImage {
	return buildIndex(mt, nil, children...)
}

func buildIndex(mt string, edit func(*v1.Index), children ...*testImage) *testImage {
	idx := v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mt,
		Manifests: []v1.Descriptor{},
	}
	archs := []string{"amd64", "arm64", "riscv64", "s390x", "ppc64le"}
	for i, c := range children {
		d := c.desc()
		d.Platform = &v1.Platform{OS: "linux", Architecture: archs[i%len(archs)]}
		idx.Manifests = append(idx.Manifests, d)
	}
	if edit != nil {
		edit(&idx)
	}
	img := &testImage{MediaType: mt, Manifest: mustJSON(idx), Children: children}
	img.Digest = digest.FromBytes(img.Manifest)
	return img
}

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// newArtifact builds an OCI image manifest used as an artifact: artifactType
// (may be empty), a config of configMT (the empty descriptor when it is
// v1.MediaTypeEmptyJSON), one layer, a subject and annotations.
func newArtifact(artifactType, configMT string, subject *v1.Descriptor, annotations map[string]string) *testImage {
	cfg := emptyJSON
	if configMT != v1.MediaTypeEmptyJSON {
		cfg = mustJSON(map[string]string{"nonce": randHex(8)})
	}
	layer := []byte(`{"sbom":"` + randHex(16) + `"}`)
	m := v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    mtOCIManifest,
		ArtifactType: artifactType,
		Config:       blobDesc(configMT, cfg),
		Layers:       []v1.Descriptor{blobDesc("application/json", layer)},
		Subject:      subject,
		Annotations:  annotations,
	}
	img := &testImage{MediaType: mtOCIManifest, Manifest: mustJSON(m), Blobs: [][]byte{cfg, layer}}
	img.Digest = digest.FromBytes(img.Manifest)
	return img
}

// ---------------------------------------------------------------------------
// Push helpers

// startUpload opens an upload session (POST, 202) and returns its absolute
// Location.
func (c *client) startUpload(t testing.TB, repo string) string {
	t.Helper()
	r := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	expectStatus(t, r, http.StatusAccepted)
	return c.location(t, r)
}

// pushBlob uploads data with POST then PUT and returns its digest.
func (c *client) pushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	loc := c.startUpload(t, repo)
	r := c.do(t, http.MethodPut, withQuery(loc, "digest", d.String()), data,
		hdrs{"Content-Type": "application/octet-stream"})
	expectStatus(t, r, http.StatusCreated)
	return d
}

// putManifest PUTs a manifest and returns the response unchecked.
func (c *client) putManifest(t testing.TB, repo, ref, mediaType string, body []byte) *response {
	t.Helper()
	h := hdrs{}
	if mediaType != "" {
		h["Content-Type"] = mediaType
	}
	return c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, h)
}

// pushManifest PUTs a manifest, expecting 201 and the right digest.
func (c *client) pushManifest(t testing.TB, repo, ref, mediaType string, body []byte) *response {
	t.Helper()
	r := c.putManifest(t, repo, ref, mediaType, body)
	expectStatus(t, r, http.StatusCreated)
	expectHeader(t, r, "Docker-Content-Digest", digest.FromBytes(body).String())
	return r
}

// pushImage uploads img's blobs (and its children, for an index) and then
// its manifest under ref ("" means by digest).
func (c *client) pushImage(t testing.TB, repo, ref string, img *testImage) {
	t.Helper()
	for _, ch := range img.Children {
		c.pushImage(t, repo, "", ch)
	}
	for _, b := range img.Blobs {
		c.pushBlob(t, repo, b)
	}
	if ref == "" {
		ref = img.Digest.String()
	}
	c.pushManifest(t, repo, ref, img.MediaType, img.Manifest)
}

// tagList is the body of GET /v2/<name>/tags/list.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// catalog is the body of GET /v2/_catalog.
type catalog struct {
	Repositories []string `json:"repositories"`
}

// ---------------------------------------------------------------------------
// Tokens

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

func (tr tokenResponse) token() string {
	if tr.Token != "" {
		return tr.Token
	}
	return tr.AccessToken
}

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type tokenClaims struct {
	Iss    string          `json:"iss"`
	Sub    string          `json:"sub"`
	Aud    json.RawMessage `json:"aud"`
	Exp    int64           `json:"exp"`
	Nbf    int64           `json:"nbf"`
	Iat    int64           `json:"iat"`
	Jti    string          `json:"jti"`
	Access []accessEntry   `json:"access"`
}

// audiences returns aud as a list (it may be a string or an array).
func (c tokenClaims) audiences() []string {
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(c.Aud, &many)
	return many
}

// decodeJWT splits a compact JWS and decodes its header and claims (no
// signature check: that is the registry's job).
func decodeJWT(t testing.TB, tok string) (header map[string]any, claims tokenClaims) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", tok)
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatalf("token header: %v", err)
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	if err := json.Unmarshal(cb, &claims); err != nil {
		t.Fatalf("token claims %s: %v", cb, err)
	}
	return header, claims
}

// es256Sign returns the compact JWS of header and claims signed with key
// (ES256: r||s, 32 bytes each).
func es256Sign(key *ecdsa.PrivateKey, header, claims any) string {
	in := b64JSON(header) + "." + b64JSON(claims)
	h := sha256.Sum256([]byte(in))
	rr, ss, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64JSON(v any) string { return base64.RawURLEncoding.EncodeToString(mustJSON(v)) }

package buildctx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// HTTPClient is the client FetchURL uses.
var HTTPClient = http.DefaultClient

// URLFileName is the name ADD gives a file downloaded from rawURL: the last
// element of the URL's path, or "__unnamed__" when it has none (BuildKit).
func URLFileName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "__unnamed__"
	}
	base := path.Base(u.Path)
	if base == "." || base == "/" || base == ".." || base == "" || strings.ContainsRune(base, 0) {
		return "__unnamed__"
	}
	return base
}

// FetchURL downloads an ADD URL source (http or https) into dir, at most
// maxBytes of it, verifying checksum ("sha256:<hex>" or another digest
// algorithm go-digest knows; "" for none). It returns the file's path
// (dir/name), the name ADD uses (see URLFileName) and the Last-Modified time
// (zero if none), which the file also gets as its mtime. The file is mode
// 0600, as Docker writes it; an existing file of that name is replaced.
func FetchURL(ctx context.Context, rawURL, checksum, dir string, maxBytes int64) (p, name string, modTime time.Time, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", time.Time{}, fmt.Errorf("unsupported URL scheme %q", u.Scheme)
	}
	var want digest.Digest
	if checksum != "" {
		if want, err = digest.Parse(checksum); err != nil {
			return "", "", time.Time{}, fmt.Errorf("invalid checksum %q: %w", checksum, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", "", time.Time{}, err
	}
	resp, err := HTTPClient.Do(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", time.Time{}, fmt.Errorf("GET %s: %s", redact(u), resp.Status)
	}
	if maxBytes > 0 && resp.ContentLength > maxBytes {
		return "", "", time.Time{}, fmt.Errorf("GET %s: %d bytes is more than the limit of %d", redact(u), resp.ContentLength, maxBytes)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			modTime = t
		}
	}

	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return "", "", time.Time{}, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var body io.Reader = resp.Body
	if maxBytes > 0 {
		body = io.LimitReader(resp.Body, maxBytes+1)
	}
	var verifier digest.Verifier
	w := io.Writer(tmp)
	if want != "" {
		if !want.Algorithm().Available() {
			return "", "", time.Time{}, fmt.Errorf("unsupported checksum algorithm %q", want.Algorithm())
		}
		verifier = want.Verifier()
		w = io.MultiWriter(tmp, verifier)
	}
	n, err := io.Copy(w, body)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	if maxBytes > 0 && n > maxBytes {
		return "", "", time.Time{}, fmt.Errorf("GET %s: more than the limit of %d bytes", redact(u), maxBytes)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", "", time.Time{}, fmt.Errorf("GET %s: got %d bytes of %d", redact(u), n, resp.ContentLength)
	}
	if verifier != nil && !verifier.Verified() {
		return "", "", time.Time{}, fmt.Errorf("GET %s: checksum mismatch: want %s", redact(u), want)
	}
	if err = tmp.Chmod(0o600); err != nil {
		return "", "", time.Time{}, err
	}
	if err = tmp.Close(); err != nil {
		return "", "", time.Time{}, err
	}
	if !modTime.IsZero() {
		if err = os.Chtimes(tmp.Name(), modTime, modTime); err != nil {
			return "", "", time.Time{}, err
		}
	}
	name = URLFileName(rawURL)
	p = filepath.Join(dir, name)
	if err = os.Rename(tmp.Name(), p); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%s: a directory is in the way", p)
		}
		return "", "", time.Time{}, err
	}
	return p, name, modTime, nil
}

// redact drops credentials from a URL for messages.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = url.User("xxxxx")
	return c.String()
}

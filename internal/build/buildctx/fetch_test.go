package buildctx

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFetchURL(t *testing.T) {
	body := "downloaded content"
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(body)))
	lm := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
			return
		case "/big":
			w.Write([]byte(strings.Repeat("x", 1000)))
			return
		case "/chunked-big":
			for range 10 {
				w.Write([]byte(strings.Repeat("x", 100)))
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Last-Modified", lm.Format(http.TimeFormat))
		w.Write([]byte(body))
	}))
	defer srv.Close()

	tests := []struct {
		name, url, checksum string
		max                 int64
		wantName, wantErr   string
	}{
		{name: "plain", url: "/dir/file.txt", wantName: "file.txt"},
		{name: "query ignored", url: "/dir/file.tgz?x=1#frag", wantName: "file.tgz"},
		{name: "no name", url: "/", wantName: "__unnamed__"},
		{name: "checksum ok", url: "/f", checksum: sum, wantName: "f"},
		{name: "checksum mismatch", url: "/f", checksum: "sha256:" + strings.Repeat("0", 64), wantErr: "checksum mismatch"},
		{name: "bad checksum", url: "/f", checksum: "md5:abc", wantErr: "invalid checksum"},
		{name: "404", url: "/missing", wantErr: "404"},
		{name: "too big", url: "/big", max: 100, wantErr: "limit"},
		{name: "too big, no length", url: "/chunked-big", max: 100, wantErr: "limit"},
		{name: "exactly max", url: "/big", max: 1000, wantName: "big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p, name, mt, err := FetchURL(context.Background(), srv.URL+tt.url, tt.checksum, dir, tt.max)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("left %v behind", ents)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tt.wantName || p != filepath.Join(dir, name) {
				t.Errorf("path %q name %q", p, name)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi.Mode())
			}
			if tt.url != "/big" && (!mt.Equal(lm) || !fi.ModTime().Equal(lm)) {
				t.Errorf("modtime %v, file %v", mt, fi.ModTime())
			}
		})
	}
	if _, _, _, err := FetchURL(context.Background(), "file:///etc/passwd", "", t.TempDir(), 0); err == nil {
		t.Error("file URL accepted")
	}
}

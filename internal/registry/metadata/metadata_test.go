package metadata

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// live puts blob content into repo as a committed blob at time at.
func live(t *testing.T, db *DB, repo, content string, at time.Time) Descriptor {
	t.Helper()
	dg := digest.FromString(content)
	if err := db.CommitBlob(repo, dg, int64(len(content)), at, ""); err != nil {
		t.Fatal(err)
	}
	return Descriptor{MediaType: "application/octet-stream", Digest: dg, Size: int64(len(content))}
}

func TestCondemnSparesReferencedAndRecent(t *testing.T) {
	db := open(t)
	old := time.Now().Add(-2 * time.Hour)
	used := live(t, db, "a", "used", old)
	unused := live(t, db, "a", "unused", old)
	fresh := live(t, db, "a", "fresh", time.Now())
	touched := live(t, db, "a", "touched", old)
	if err := db.Touch([]digest.Digest{touched.Digest}, time.Now()); err != nil {
		t.Fatal(err)
	}
	m := Manifest{MediaType: "m", Size: 1, Blobs: []Descriptor{used}}
	if err := db.PutManifest("a", digest.FromString("m"), m, []byte("m"), "v1"); err != nil {
		t.Fatal(err)
	}
	got, err := db.Condemn(time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := []digest.Digest{unused.Digest}; !slices.Equal(got, want) {
		t.Fatalf("condemned %v, want %v", got, want)
	}
	// Condemned blobs are invisible, refuse new uploads and manifests
	// until forgotten.
	if _, err := db.RepoBlob("a", unused.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("RepoBlob of a condemned blob: %v, want ErrNotFound", err)
	}
	if _, err := db.BlobState(unused.Digest); !errors.Is(err, ErrBusy) {
		t.Errorf("BlobState of a condemned blob: %v, want ErrBusy", err)
	}
	if err := db.CommitBlob("a", unused.Digest, unused.Size, time.Now(), ""); !errors.Is(err, ErrBusy) {
		t.Errorf("CommitBlob of a condemned blob: %v, want ErrBusy", err)
	}
	var missing *MissingError
	err = db.PutManifest("a", digest.FromString("m2"), Manifest{MediaType: "m", Blobs: []Descriptor{unused}}, []byte("m2"), "")
	if !errors.As(err, &missing) || missing.Digest != unused.Digest {
		t.Errorf("PutManifest referencing a condemned blob: %v, want MissingError", err)
	}
	if _, err := db.LinkBlob("b", unused.Digest, time.Now(), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("LinkBlob of a condemned blob: %v, want ErrNotFound", err)
	}
	if err := db.Forget(got); err != nil {
		t.Fatal(err)
	}
	if db.KnownBlob(unused.Digest) {
		t.Error("forgotten blob still known")
	}
	for _, d := range []Descriptor{used, fresh, touched} {
		if _, err := db.RepoBlob("a", d.Digest); err != nil {
			t.Errorf("blob %s: %v after GC", d.Digest, err)
		}
	}
	// After it is forgotten, the blob can be uploaded again.
	if isLive, err := db.BlobState(unused.Digest); err != nil || isLive {
		t.Errorf("BlobState after Forget = %v, %v; want not live", isLive, err)
	}
	if err := db.CommitBlob("a", unused.Digest, unused.Size, time.Now(), ""); err != nil {
		t.Errorf("CommitBlob after Forget: %v", err)
	}
}

func TestPutManifestChecks(t *testing.T) {
	db := open(t)
	now := time.Now()
	cfg := live(t, db, "a", "config", now)
	other := live(t, db, "b", "layer", now)
	tests := []struct {
		name string
		m    Manifest
		want string // "", "missing", "size", "child"
	}{
		{"ok", Manifest{Blobs: []Descriptor{cfg}}, ""},
		{"blob of another repository", Manifest{Blobs: []Descriptor{cfg, other}}, "missing"},
		{"unknown blob", Manifest{Blobs: []Descriptor{{Digest: digest.FromString("nope"), Size: 4}}}, "missing"},
		{"wrong size", Manifest{Blobs: []Descriptor{{Digest: cfg.Digest, Size: cfg.Size + 1}}}, "size"},
		{"unknown child", Manifest{Children: []digest.Digest{digest.FromString("child")}}, "child"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dg := digest.FromString(tt.name)
			err := db.PutManifest("a", dg, tt.m, []byte{byte(i)}, "")
			var missing *MissingError
			var size *SizeError
			switch tt.want {
			case "":
				if err != nil {
					t.Fatal(err)
				}
			case "missing":
				if !errors.As(err, &missing) || missing.Manifest {
					t.Fatalf("err = %v, want a missing blob", err)
				}
			case "child":
				if !errors.As(err, &missing) || !missing.Manifest {
					t.Fatalf("err = %v, want a missing manifest", err)
				}
			case "size":
				if !errors.As(err, &size) {
					t.Fatalf("err = %v, want SizeError", err)
				}
			}
			if tt.want != "" {
				if _, _, _, err := db.GetManifest("a", dg.String()); !errors.Is(err, ErrNotFound) {
					t.Fatalf("refused manifest stored anyway: %v", err)
				}
			}
		})
	}
}

func TestTagsReferrersAndDelete(t *testing.T) {
	db := open(t)
	cfg := live(t, db, "r", "cfg", time.Now())
	subject := digest.FromString("subject")
	img := Manifest{MediaType: "m", Blobs: []Descriptor{cfg}}
	if err := db.PutManifest("r", subject, img, []byte("s"), "latest"); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"c", "a", "b"} {
		if err := db.PutManifest("r", subject, img, []byte("s"), tag); err != nil {
			t.Fatal(err)
		}
	}
	sig := Manifest{MediaType: "m", Size: 9, Blobs: []Descriptor{cfg}, Subject: subject, ArtifactType: "sig"}
	sigDigest := digest.FromString("sig")
	if err := db.PutManifest("r", sigDigest, sig, []byte("sig"), ""); err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		last string
		n    int
		want []string
	}{
		{"", -1, []string{"a", "b", "c", "latest"}},
		{"", 2, []string{"a", "b"}},
		{"b", 2, []string{"c", "latest"}},
		{"bb", -1, []string{"c", "latest"}},
		{"latest", 5, []string{}},
	}
	for _, p := range pages {
		got, err := db.Tags("r", p.last, p.n)
		if err != nil || !slices.Equal(got, p.want) {
			t.Errorf("Tags(last=%q, n=%d) = %v, %v; want %v", p.last, p.n, got, err, p.want)
		}
	}
	refs, err := db.Referrers("r", subject)
	if err != nil || len(refs) != 1 || refs[0].Digest != sigDigest || refs[0].ArtifactType != "sig" {
		t.Fatalf("Referrers = %+v, %v", refs, err)
	}
	if err := db.DeleteTag("r", "a"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTag("r", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteTag: %v", err)
	}
	if err := db.DeleteManifest("r", sigDigest); err != nil {
		t.Fatal(err)
	}
	if refs, _ := db.Referrers("r", subject); len(refs) != 0 {
		t.Fatalf("referrer kept after its manifest was deleted: %+v", refs)
	}
	if err := db.DeleteManifest("r", subject); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Tags("r", "", -1); len(got) != 0 {
		t.Fatalf("tags of a deleted manifest remain: %v", got)
	}
	if _, err := db.Tags("nope", "", -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Tags of an unknown repository: %v", err)
	}
}

func TestSaveUploadConflicts(t *testing.T) {
	db := open(t)
	now := time.Now()
	u := Upload{Repo: "r", Offset: 10, Parts: []string{"p0"}, Started: now, Updated: now}
	if err := db.SaveUpload("id", 0, u); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveUpload("id", 0, Upload{Repo: "r", Offset: 5}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale SaveUpload: %v, want ErrConflict", err)
	}
	if err := db.CloseUpload("gone", "r", now); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveUpload("gone", 0, u); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SaveUpload of a closed upload: %v, want ErrNotFound", err)
	}
	got, err := db.Upload("id")
	if err != nil || got.Offset != 10 || !slices.Equal(got.Parts, []string{"p0"}) {
		t.Fatalf("Upload = %+v, %v", got, err)
	}
}

package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// applyInto applies a tar built from ents into a new directory under base.
func applyInto(t *testing.T, base, name string, ents ...entry) string {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := ApplyLayer(dir, bytes.NewReader(mkTar(t, ents...)))
	if err != nil {
		t.Fatalf("applying %s: %v", name, err)
	}
	if len(res.Links) != 0 {
		t.Fatalf("applying %s: unexpected pending links %v", name, res.Links)
	}
	return dir
}

func TestLinkFromLowers(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	sentinel := makeSentinel(t, base)
	bottom := applyInto(t, base, "bottom",
		regE("usr/bin/bash", "bash-content", 0o4755).owner(0, 7).times(t1, t2).
			xattr("user.a", "1").xattr("security.capability", fileCaps),
		regE("deleted/file", "x", 0o644),
		regE("parentgone/sub/file", "x", 0o644),
		regE("opq/hidden", "h", 0o644),
		regE("opq/shown", "s-bottom", 0o644),
		symE("sym", sentinel+"/secret").owner(3, 3).times(t1, t1),
		symE("relsym", "../../sentinel/secret"),
		symE("esc", "../../../"),
		devE(tar.TypeChar, "dev/null", 1, 3, 0o666),
		newEntry(tar.TypeFifo, "dev/fifo", 0o600),
		symE("lib", "usr/lib"),
		regE("usr/lib/libc.so", "libc", 0o755),
		regE("notdir", "file", 0o644),
	)
	middle := applyInto(t, base, "middle",
		regE("deleted/.wh.file", "", 0o644),
		regE(".wh.parentgone", "", 0o644),
		dirE("opq/", 0o755),
		regE("opq/.wh..wh..opq", "", 0o644),
		regE("opq/shown", "s-middle", 0o644),
		regE("usr/bin/tool", "tool", 0o700).owner(5, 5),
	)
	top := applyInto(t, base, "top", regE("usr/bin/topfile", "top", 0o644))
	lowers := []string{top, middle, bottom}

	tests := []struct {
		name  string
		links []Link
		want  map[string]want // nil when an error is expected
		err   string
	}{
		{name: "target in the bottom lower",
			links: []Link{{"bin/sh", "usr/bin/bash"}},
			want: map[string]want{
				"bin": {Type: "dir"},
				"bin/sh": {Type: "file", Perm: 0o4755, GID: 7, Content: str("bash-content"), Mtime: t1,
					Xattrs: map[string]string{"user.a": "1", "security.capability": fileCaps}},
			}},
		{name: "links sharing a target become one inode",
			links: []Link{{"a", "usr/bin/bash"}, {"d/b", "/usr/bin/bash"}, {"c", "usr/bin/tool"}},
			want: map[string]want{
				"a":   {Type: "file", Content: str("bash-content"), Perm: 0o4755, GID: 7},
				"d":   {Type: "dir"},
				"d/b": {Type: "file", SameAs: "a", Perm: 0o4755, GID: 7},
				"c":   {Type: "file", Content: str("tool"), Perm: 0o700, UID: 5, GID: 5},
			}},
		{name: "target in the top lower",
			links: []Link{{"x", "usr/bin/topfile"}},
			want:  map[string]want{"x": {Type: "file", Content: str("top")}}},
		{name: "opaque directory in a middle lower shadows the bottom",
			links: []Link{{"x", "opq/shown"}},
			want:  map[string]want{"x": {Type: "file", Content: str("s-middle")}}},
		{name: "symlink target pointing outside is copied as a symlink",
			links: []Link{{"x", "sym"}, {"y", "relsym"}},
			want: map[string]want{
				"x": {Type: "symlink", Target: sentinel + "/secret", UID: 3, GID: 3, Mtime: t1},
				"y": {Type: "symlink", Target: "../../sentinel/secret"},
			}},
		{name: "path through a symlinked directory of the lower",
			links: []Link{{"x", "lib/libc.so"}},
			want:  map[string]want{"x": {Type: "file", Content: str("libc"), Perm: 0o755}}},
		{name: "device and fifo",
			links: []Link{{"n", "dev/null"}, {"f", "dev/fifo"}},
			want: map[string]want{
				"n": {Type: "char", Major: 1, Minor: 3, Perm: 0o666},
				"f": {Type: "fifo", Perm: 0o600},
			}},
		{name: "target whited out in a middle lower", links: []Link{{"x", "deleted/file"}}, err: "whited out"},
		{name: "parent whited out in a middle lower", links: []Link{{"x", "parentgone/sub/file"}}, err: "whited out"},
		{name: "target hidden by an opaque directory", links: []Link{{"x", "opq/hidden"}}, err: "hidden"},
		{name: "target below a file", links: []Link{{"x", "notdir/file"}}, err: "hidden"},
		{name: "missing target", links: []Link{{"x", "no/such"}}, err: "not found"},
		{name: "directory target", links: []Link{{"x", "usr/bin"}}, err: "directory"},
		{name: "escaping symlink in the lower", links: []Link{{"x", "esc" + sentinel + "/secret"}}, err: "not found"},
		{name: "escaping absolute target", links: []Link{{"x", sentinel + "/secret"}}, err: "not found"},
		{name: "dotdot target", links: []Link{{"x", "../../sentinel/secret"}}, err: "not found"},
		{name: "empty name", links: []Link{{"", "usr/bin/bash"}}, err: "layer root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			before := captureOutside(t, base, sentinel)
			err := LinkFromLowers(root, tc.links, lowers)
			before.diff(t, captureOutside(t, base, sentinel))
			if tc.want == nil {
				if err == nil {
					t.Fatal("LinkFromLowers succeeded, want an error")
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `layer entry "`+tc.links[0].Name+`"`) {
					t.Errorf("error %q: want it to name the entry and contain %q", err, tc.err)
				}
				checkTree(t, root, map[string]want{})
				return
			}
			if err != nil {
				t.Fatalf("LinkFromLowers: %v", err)
			}
			checkTree(t, root, tc.want)
		})
	}
}

func TestLinkFromLowersNameExists(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	lower := applyInto(t, base, "lower", regE("t", "lower", 0o644))
	root := applyInto(t, base, "root", regE("x", "mine", 0o644))
	err := LinkFromLowers(root, []Link{{"x", "t"}}, []string{lower})
	if err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("err = %v, want an error naming x", err)
	}
	checkTree(t, root, map[string]want{"x": {Type: "file", Content: str("mine")}})
}

// TestApplyThenLinkFromLowers is the intended flow: a layer hard-links a file
// of a lower layer.
func TestApplyThenLinkFromLowers(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	lower := applyInto(t, base, "lower", regE("usr/bin/python3.11", "python", 0o755))
	root := filepath.Join(base, "upper")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := ApplyLayer(root, bytes.NewReader(mkTar(t,
		dirE("usr/", 0o755), dirE("usr/bin/", 0o755),
		linkE("usr/bin/python3", "usr/bin/python3.11"),
		linkE("usr/bin/python", "usr/bin/python3"),
		regE("usr/bin/pip", "pip", 0o755),
	)))
	if err != nil {
		t.Fatal(err)
	}
	wantLinks := []Link{{"usr/bin/python3", "usr/bin/python3.11"}, {"usr/bin/python", "usr/bin/python3.11"}}
	if !slices.Equal(res.Links, wantLinks) {
		t.Fatalf("links = %v, want %v", res.Links, wantLinks)
	}
	if err := LinkFromLowers(root, res.Links, []string{lower}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, root, map[string]want{
		"usr":             {Type: "dir"},
		"usr/bin":         {Type: "dir"},
		"usr/bin/python3": {Type: "file", Content: str("python"), Perm: 0o755},
		"usr/bin/python":  {Type: "file", SameAs: "usr/bin/python3"},
		"usr/bin/pip":     {Type: "file", Content: str("pip")},
	})
}

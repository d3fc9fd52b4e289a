package fscopy

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzRoot recreates the container root with symlinks aiming at the canary
// (so that archives can combine them with their own entries).
func fuzzRoot(tb testing.TB, e *hostEnv) {
	tb.Helper()
	must(tb, os.RemoveAll(e.rootfs))
	must(tb, os.Mkdir(e.rootfs, 0o755))
	mkTree(tb, e.rootfs,
		dir("d", 0o755),
		sym("d/abs", e.canary),
		sym("d/rel", strings.Repeat("../", 10)+strings.TrimPrefix(e.canary, "/")),
		sym("d/file", e.canary+"/secret"),
		sym("d/proc", "/proc/self/root"+e.canary),
		reg("d/plain", "plain", 0o644),
	)
}

// FuzzCopyTo feeds arbitrary tar streams to CopyTo (as `berth cp -
// CONTAINER:/d`) next to a host canary; the canary must stay untouched and
// nothing may appear outside the container root.
func FuzzCopyTo(f *testing.F) {
	requireRoot(f)
	e := newHostEnv(f)
	for _, seed := range [][]fsEnt{
		{dir("a/", 0o755), reg("a/f", "f", 0o644).xattr("user.x", "1"), hard("a/h", "a/f"), sym("a/s", "f"),
			fifo("a/p", 0o600), chr("a/c", 1, 3, 0o666)},
		{sym("x", e.canary), reg("x/secret", "pwned", 0o644)},
		{reg("abs/secret", "pwned", 0o644), reg("rel/secret", "pwned", 0o644), reg("file", "pwned", 0o644)},
		{reg("../canary/secret", "pwned", 0o644)},
		{hard("h", "abs/secret"), hard("h2", "../canary/secret"), hard("h3", "file")},
		{sym("y", "../../../../../.."), reg("y"+e.canary+"/secret", "pwned", 0o644)},
		{dir("abs/", 0o777), dir("proc/dir/", 0o777), reg("proc/secret", "pwned", 0o644)},
		{reg(".", "x", 0o644)},
	} {
		f.Add(mkTar(f, seed...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoot(t, e)
		CopyTo(e.rootfs, "/d", "-", bytes.NewReader(data), false)
		e.check(t)
	})
}

// FuzzCopyToEntries builds archives from a small grammar of hostile names,
// link targets and entry types (random bytes rarely make a tar with a valid
// checksum), so that the extraction logic rather than the tar parser is
// explored.
func FuzzCopyToEntries(f *testing.F) {
	requireRoot(f)
	e := newHostEnv(f)
	components := []string{"a", "b", "..", ".", "abs", "rel", "file", "proc", "canary", "secret", "dir", "plain"}
	targets := []string{"/", "..", "../..", "../canary", "../canary/secret", "a", "a/b", "abs", e.canary,
		e.canary + "/secret", "/proc/self/root" + e.canary, "/proc/self/cwd", ".", "", "loop", "../../../../../../.."}
	for _, seed := range [][]byte{
		{2, 1, 4, 3, 0, 1, 2, 4},
		{2, 1, 7, 9, 0, 1, 0, 7, 5},
		{3, 1, 5, 10, 0, 2, 7, 4, 1, 5, 0},
		{4, 2, 6, 0, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		pathOf := func() string {
			parts := make([]string, 1+next()%4)
			for i := range parts {
				parts[i] = components[next()%len(components)]
			}
			p := strings.Join(parts, "/")
			switch next() % 4 {
			case 1:
				p = "/" + p
			case 2:
				p = "../../" + p
			case 3:
				p += "/"
			}
			return p
		}
		var ents []fsEnt
		for len(data) > 0 && len(ents) < 24 {
			op, name, mode := next(), pathOf(), int64(next())<<3&0o7777
			switch op % 7 {
			case 0:
				ents = append(ents, reg(name, "pwned", mode))
			case 1:
				ents = append(ents, dir(name, mode))
			case 2:
				ents = append(ents, sym(name, targets[next()%len(targets)]))
			case 3:
				ents = append(ents, hard(name, pathOf()))
			case 4:
				ents = append(ents, fifo(name, mode))
			case 5:
				ents = append(ents, chr(name, 1, 3, mode))
			default:
				ents = append(ents, dir(name, mode).owner(next(), next()).xattr("trusted.overlay.opaque", "y"))
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, en := range ents {
			hdr := &tar.Header{Typeflag: en.typ, Name: en.name, Mode: en.mode, Uid: en.uid, Gid: en.gid,
				Linkname: en.link, Devmajor: en.major, Devminor: en.minor, Size: int64(len(en.body)),
				ModTime: t0, Format: tar.FormatPAX}
			if tw.WriteHeader(hdr) == nil {
				tw.Write([]byte(en.body))
			}
		}
		tw.Close()
		fuzzRoot(t, e)
		dst := []string{"/", "/d", "/d/abs", "/d/rel/"}[next()%4]
		CopyTo(e.rootfs, dst, "-", &buf, false)
		e.check(t)
		// Whatever was extracted can be copied back out without revealing
		// the canary.
		out := filepath.Join(e.out, "x")
		must(t, os.RemoveAll(out))
		must(t, os.Mkdir(out, 0o755))
		var tarOut bytes.Buffer
		CopyFrom(e.rootfs, "/", "-", &tarOut, false)
		noSecret(t, "", tarOut.Bytes())
		CopyFrom(e.rootfs, "/d/.", out, nil, false)
		noSecret(t, out, nil)
		e.check(t)
	})
}

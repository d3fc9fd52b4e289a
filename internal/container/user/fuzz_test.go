package user

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that the passwd and group parsers never panic and only
// return well-formed entries.
func FuzzParse(f *testing.F) {
	f.Add([]byte(testPasswd), []byte(testGroup))
	f.Add([]byte("a:x:1:2\n\r\n#x\n:::\n"), []byte("g:x:1:a,,b\ng:x:-1:\n"))
	f.Add([]byte("a:x:99999999999999999999:0:::\x00"), []byte("g:x:+1:a:b:c"))
	f.Fuzz(func(t *testing.T, passwd, group []byte) {
		for _, u := range parsePasswd(passwd) {
			if u.name == "" || strings.ContainsAny(u.name, ":\n") {
				t.Fatalf("bad user name %q", u.name)
			}
			if strings.ContainsAny(u.home, ":\n") {
				t.Fatalf("bad home %q", u.home)
			}
			if !bytes.Contains(passwd, []byte(u.name)) {
				t.Fatalf("user %q not in input", u.name)
			}
		}
		for _, g := range parseGroup(group) {
			if g.name == "" || strings.ContainsAny(g.name, ":\n") {
				t.Fatalf("bad group name %q", g.name)
			}
			for _, m := range g.members {
				if m == "" || strings.ContainsAny(m, ":,\n") {
					t.Fatalf("bad member %q", m)
				}
			}
		}
	})
}

// FuzzResolve checks Resolve's invariants on arbitrary specs and files.
func FuzzResolve(f *testing.F) {
	f.Add("alice", "docker", []byte(testPasswd), []byte(testGroup), true)
	f.Add("", "", []byte(testPasswd), []byte(testGroup), true)
	f.Add("1000:wheel", "5", []byte(testPasswd), []byte(testGroup), false)
	f.Add("big", "bigg", []byte(testPasswd), []byte(testGroup), true)
	f.Add(":", "-1", []byte{}, []byte{}, false)
	f.Fuzz(func(t *testing.T, spec, add string, passwd, group []byte, present bool) {
		src := memSource{}
		if present {
			src[passwdPath], src[groupPath] = passwd, group
		}
		var groupAdd []string
		if add != "" {
			groupAdd = strings.Split(add, ",")
		}
		ex, err := resolve(spec, groupAdd, src)
		if err != nil {
			if errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected file error from memory source: %v", err)
			}
			return
		}
		if ex.UID > MaxID || ex.GID > MaxID {
			t.Fatalf("id out of range: %+v", ex)
		}
		if len(ex.AdditionalGids) == 0 || ex.AdditionalGids[0] != ex.GID {
			t.Fatalf("primary gid not first: %+v", ex)
		}
		seen := map[uint32]bool{}
		for _, g := range ex.AdditionalGids {
			if g > MaxID || seen[g] {
				t.Fatalf("bad or duplicate additional gid %d: %+v", g, ex)
			}
			seen[g] = true
		}
		if ex.Home == "" {
			t.Fatalf("empty home: %+v", ex)
		}
		usr, _, _ := strings.Cut(spec, ":")
		if _, numeric, _ := parseArg(usr); usr != "" && !numeric {
			found := false
			for _, u := range parsePasswd(passwd) {
				if u.name == usr && u.uid == int64(ex.UID) {
					found = true
					break
				}
			}
			if !present || !found {
				t.Fatalf("name %q resolved without a passwd entry: %+v", usr, ex)
			}
		}
	})
}

package user

import (
	"bytes"
	"errors"
	"strconv"
)

const (
	// MaxID is the largest uid or gid accepted, as in runc and Docker
	// (kept to 2^31-1 for compatibility with 32-bit id handling).
	MaxID = 1<<31 - 1

	// MaxFileSize bounds how much of /etc/passwd or /etc/group is read.
	// A larger file is rejected rather than silently truncated.
	MaxFileSize = 4 << 20

	// maxLineLen bounds a single database line; longer lines are skipped.
	// Group member lists can be long, hence the generous value.
	maxLineLen = 1 << 20

	// badID marks a numeric field that parsed as an integer but does not fit
	// in an int64; it is rejected as out of range when the entry is used.
	badID = -1
)

// passwdEntry is the part of a passwd line this package uses.
//
//	name:password:UID:GID:GECOS:directory:shell
type passwdEntry struct {
	name string
	uid  int64
	gid  int64
	home string
}

// groupEntry is the part of a group line this package uses.
//
//	group_name:password:GID:user_list
type groupEntry struct {
	name    string
	gid     int64
	members []string
}

// forEachLine calls fn for each non-blank, non-comment line of data, with
// surrounding white space removed. Lines longer than maxLineLen are skipped.
func forEachLine(data []byte, fn func(line []byte)) {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) > maxLineLen {
			continue
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fn(line)
	}
}

// parseFileID parses a uid or gid field from a database file. ok is false
// when the field is not a decimal integer (the line is then ignored); a value
// that is an integer but outside [0, MaxID] is returned as is (or as badID
// when it overflows) so that using it fails with ErrRange.
func parseFileID(b []byte) (id int64, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return badID, true
		}
		return 0, false
	}
	return v, true
}

// parsePasswd parses passwd-formatted data. Lines with fewer than four
// fields, an empty name, or a non-numeric uid or gid are ignored, rather
// than being read as uid 0 the way libcontainer/user does.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	forEachLine(data, func(line []byte) {
		f := bytes.SplitN(line, []byte(":"), 8)
		if len(f) < 4 || len(f[0]) == 0 {
			return
		}
		uid, ok := parseFileID(f[2])
		if !ok {
			return
		}
		gid, ok := parseFileID(f[3])
		if !ok {
			return
		}
		e := passwdEntry{name: string(f[0]), uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = string(f[5])
		}
		out = append(out, e)
	})
	return out
}

// parseGroup parses group-formatted data. Lines with fewer than three
// fields, an empty name, or a non-numeric gid are ignored. Empty member
// names are dropped.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	forEachLine(data, func(line []byte) {
		f := bytes.SplitN(line, []byte(":"), 5)
		if len(f) < 3 || len(f[0]) == 0 {
			return
		}
		gid, ok := parseFileID(f[2])
		if !ok {
			return
		}
		e := groupEntry{name: string(f[0]), gid: gid}
		if len(f) > 3 {
			for m := range bytes.SplitSeq(f[3], []byte(",")) {
				if len(m) > 0 {
					e.members = append(e.members, string(m))
				}
			}
		}
		out = append(out, e)
	})
	return out
}

// inRange reports whether id is a valid uid/gid.
func inRange(id int64) bool { return id >= 0 && id <= MaxID }

// parseArg parses one side of a user specification or a --group-add value
// the way libcontainer/user does: anything strconv.Atoi accepts is an id
// (and must be in range), anything else is a name.
func parseArg(s string) (id uint32, numeric bool, err error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, true, ErrRange
		}
		return 0, false, nil
	}
	if !inRange(v) {
		return 0, true, ErrRange
	}
	return uint32(v), true, nil
}

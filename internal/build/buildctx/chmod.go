package buildctx

import (
	"fmt"
	"strconv"
	"strings"
)

// Permission bits a mode may carry.
const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
	permMask   = 0o7777
)

// ModeSpec is a parsed --chmod value.
type ModeSpec struct {
	octal   bool
	mode    uint32
	clauses []modeClause
	src     string
}

type modeClause struct {
	who     uint32 // mask of the u/g/o rwx bits the clause addresses
	special uint32 // setuid/setgid/sticky bits the clause addresses
	actions []modeAction
}

type modeAction struct {
	op      byte   // '+', '-' or '='
	perm    uint32 // rwx bits in all three positions ("rwx" -> 0777)
	x       bool   // X: execute for directories and already-executable files
	special uint32 // from s and t
	copy    byte   // 'u', 'g' or 'o' to copy that class's bits, else 0
}

// ParseMode parses a --chmod value: an octal number up to 07777 ("755",
// "0644"), or a symbolic mode in chmod(1) syntax ("u+x,g-w", "a=rX",
// "go=u-w"), applied with no umask, as BuildKit does. "" is a nil spec that
// keeps modes.
func ParseMode(s string) (*ModeSpec, error) {
	if s == "" {
		return nil, nil
	}
	if n, err := strconv.ParseUint(s, 8, 32); err == nil {
		if n > permMask {
			return nil, fmt.Errorf("invalid chmod parameter: %q: it should be octal string and between 0 and 07777", s)
		}
		return &ModeSpec{octal: true, mode: uint32(n), src: s}, nil
	}
	if s[0] >= '0' && s[0] <= '9' {
		return nil, fmt.Errorf("invalid chmod parameter: %q: it should be octal string and between 0 and 07777", s)
	}
	spec := &ModeSpec{src: s}
	for _, part := range strings.Split(s, ",") {
		c, err := parseClause(part)
		if err != nil {
			return nil, fmt.Errorf("invalid chmod parameter %q: %w", s, err)
		}
		spec.clauses = append(spec.clauses, c)
	}
	return spec, nil
}

func parseClause(s string) (modeClause, error) {
	var c modeClause
	i := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case 'u':
			c.who |= 0o700
			c.special |= modeSetuid
		case 'g':
			c.who |= 0o070
			c.special |= modeSetgid
		case 'o':
			c.who |= 0o007
			c.special |= modeSticky
		case 'a':
			c.who |= 0o777
			c.special |= modeSetuid | modeSetgid | modeSticky
		default:
			goto ops
		}
	}
ops:
	if c.who == 0 {
		c.who, c.special = 0o777, modeSetuid|modeSetgid|modeSticky
	}
	if i == len(s) {
		return c, fmt.Errorf("clause %q has no operator", s)
	}
	for i < len(s) {
		op := s[i]
		if op != '+' && op != '-' && op != '=' {
			return c, fmt.Errorf("unexpected %q in clause %q", op, s)
		}
		i++
		a := modeAction{op: op}
		if i < len(s) && (s[i] == 'u' || s[i] == 'g' || s[i] == 'o') {
			a.copy = s[i]
			i++
		} else {
		perms:
			for ; i < len(s); i++ {
				switch s[i] {
				case 'r':
					a.perm |= 0o444
				case 'w':
					a.perm |= 0o222
				case 'x':
					a.perm |= 0o111
				case 'X':
					a.x = true
				case 's':
					a.special |= modeSetuid | modeSetgid
				case 't':
					a.special |= modeSticky
				default:
					break perms
				}
			}
		}
		c.actions = append(c.actions, a)
	}
	return c, nil
}

// String is the value the spec was parsed from.
func (m *ModeSpec) String() string {
	if m == nil {
		return ""
	}
	return m.src
}

// Apply returns the permission bits (07777) an entry with permission bits
// old gets; isDir matters for X.
func (m *ModeSpec) Apply(old uint32, isDir bool) uint32 {
	if m == nil {
		return old & permMask
	}
	if m.octal {
		return m.mode
	}
	cur := old & permMask
	for _, c := range m.clauses {
		for _, a := range c.actions {
			var bits uint32
			if a.copy != 0 {
				var src uint32
				switch a.copy {
				case 'u':
					src = (cur >> 6) & 7
				case 'g':
					src = (cur >> 3) & 7
				case 'o':
					src = cur & 7
				}
				bits = src<<6 | src<<3 | src
			} else {
				bits = a.perm
				if a.x && (isDir || cur&0o111 != 0) {
					bits |= 0o111
				}
			}
			bits = bits&c.who | a.special&c.special
			switch a.op {
			case '+':
				cur |= bits
			case '-':
				cur &^= bits
			case '=':
				clear := c.who | c.special
				if isDir {
					// chmod(1) keeps a directory's set-id bits on "=".
					clear = c.who
				}
				cur = cur&^clear | bits
			}
		}
	}
	return cur
}

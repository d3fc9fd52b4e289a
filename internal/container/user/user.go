package user

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrNoPasswdEntries is wrapped when a user name is not in /etc/passwd.
	ErrNoPasswdEntries = errors.New("no matching entries in passwd file")
	// ErrNoGroupEntries is wrapped when a group name is not in /etc/group.
	ErrNoGroupEntries = errors.New("no matching entries in group file")
	// ErrRange is wrapped when a uid or gid is outside [0, MaxID].
	ErrRange = fmt.Errorf("uids and gids must be in range 0-%d", MaxID)
)

const (
	passwdPath = "/etc/passwd"
	groupPath  = "/etc/group"

	// maxGroups is the kernel's NGROUPS_MAX: setgroups(2) refuses more.
	maxGroups = 65536
)

// Exec is the identity a container process runs as.
type Exec struct {
	UID uint32
	GID uint32
	// AdditionalGids are the supplementary groups: the primary GID first
	// (as Docker does), then the groups whose member list names the user
	// (implicit-group form only), then the --group-add groups, without
	// duplicates.
	AdditionalGids []uint32
	// Home is the user's home directory from passwd, "/" when unknown.
	Home string
}

// Resolve resolves spec ("", "name", "uid", "name:group", "uid:gid",
// "name:gid", "uid:group") against rootfs/etc/passwd and rootfs/etc/group.
// groupAdd is Docker's --group-add list (names or numeric gids).
//
// An empty user part means uid 0 (whose passwd entry, if any, supplies the
// gid and home). A numeric user or group is always an id, never a name, and
// need not exist in the files; a name must exist. Without an explicit group
// the gid comes from the passwd entry (0 if there is none) and every group
// listing the user's name as a member is added to AdditionalGids.
//
// Missing files (or a missing /etc) behave as empty files. A database path
// that resolves to something other than a regular file, that cannot be
// resolved inside rootfs, or that is larger than MaxFileSize is an error.
func Resolve(rootfs, spec string, groupAdd []string) (Exec, error) {
	if rootfs == "" {
		return Exec{}, errors.New("resolve user: empty rootfs path")
	}
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Exec{}, fmt.Errorf("resolve user: open rootfs: %w", err)
	}
	defer root.Close() //nolint:errcheck // O_PATH handle, nothing to flush
	return resolve(spec, groupAdd, &rootSource{root: root})
}

// source supplies the raw content of the database files. present is false
// when the file does not exist.
type source interface {
	read(path string) (data []byte, present bool, err error)
}

// db lazily loads and caches the parsed database files.
type db struct {
	src source

	passwdLoaded, passwdPresent bool
	passwd                      []passwdEntry

	groupLoaded, groupPresent bool
	group                     []groupEntry
}

func (d *db) users() ([]passwdEntry, bool, error) {
	if !d.passwdLoaded {
		data, present, err := d.src.read(passwdPath)
		if err != nil {
			return nil, false, err
		}
		d.passwd, d.passwdPresent, d.passwdLoaded = parsePasswd(data), present, true
	}
	return d.passwd, d.passwdPresent, nil
}

func (d *db) groups() ([]groupEntry, bool, error) {
	if !d.groupLoaded {
		data, present, err := d.src.read(groupPath)
		if err != nil {
			return nil, false, err
		}
		d.group, d.groupPresent, d.groupLoaded = parseGroup(data), present, true
	}
	return d.group, d.groupPresent, nil
}

// missing annotates a lookup failure with the absence of the file.
func missing(present bool, path string) string {
	if present {
		return ""
	}
	return " (" + path + " does not exist in the container)"
}

// lookupGroupName returns the gid of the first group called name.
func (d *db) lookupGroupName(name string) (uint32, error) {
	groups, present, err := d.groups()
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		if g.name == name {
			if !inRange(g.gid) {
				return 0, fmt.Errorf("group %s: %w", name, ErrRange)
			}
			return uint32(g.gid), nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: %w%s", name, ErrNoGroupEntries, missing(present, groupPath))
}

func resolve(spec string, groupAdd []string, src source) (Exec, error) {
	d := &db{src: src}
	usr, grp, _ := strings.Cut(spec, ":")

	uidArg, uidNumeric, err := parseArg(usr)
	if err != nil {
		return Exec{}, fmt.Errorf("invalid user %q: %w", usr, err)
	}
	gidArg, gidNumeric, err := parseArg(grp)
	if err != nil {
		return Exec{}, fmt.Errorf("invalid group %q: %w", grp, err)
	}

	users, passwdPresent, err := d.users()
	if err != nil {
		return Exec{}, err
	}

	ex := Exec{Home: "/"}
	var matched *passwdEntry
	for i := range users {
		u := &users[i]
		switch {
		case usr == "":
			// No user given: uid 0, described by its passwd entry if any.
			if u.uid != 0 {
				continue
			}
		case uidNumeric:
			if u.uid != int64(uidArg) {
				continue
			}
		default:
			if u.name != usr {
				continue
			}
		}
		matched = u // first match wins
		break
	}

	switch {
	case matched != nil:
		if !inRange(matched.uid) || !inRange(matched.gid) {
			return Exec{}, fmt.Errorf("user %s: passwd entry: %w", displayUser(usr), ErrRange)
		}
		ex.UID, ex.GID = uint32(matched.uid), uint32(matched.gid)
		if matched.home != "" {
			ex.Home = matched.home
		}
	case usr == "":
		// uid 0, gid 0.
	case uidNumeric:
		ex.UID = uidArg
	default:
		return Exec{}, fmt.Errorf("unable to find user %s: %w%s", usr, ErrNoPasswdEntries, missing(passwdPresent, passwdPath))
	}

	var sgids []uint32
	switch {
	case grp != "" && gidNumeric:
		// A numeric group is used as is, whether or not /etc/group has it.
		ex.GID = gidArg
	case grp != "":
		if ex.GID, err = d.lookupGroupName(grp); err != nil {
			return Exec{}, err
		}
	case matched != nil:
		// Implicit form: supplementary groups from the member lists.
		groups, _, err := d.groups()
		if err != nil {
			return Exec{}, err
		}
		for _, g := range groups {
			for _, m := range g.members {
				if m != matched.name {
					continue
				}
				if !inRange(g.gid) {
					return Exec{}, fmt.Errorf("group %s of user %s: %w", g.name, matched.name, ErrRange)
				}
				sgids = append(sgids, uint32(g.gid))
				break
			}
		}
	}

	for _, ag := range groupAdd {
		if ag == "" {
			return Exec{}, errors.New("invalid additional group: empty name")
		}
		gid, numeric, err := parseArg(ag)
		if err != nil {
			return Exec{}, fmt.Errorf("invalid additional group %q: %w", ag, err)
		}
		if !numeric {
			if gid, err = d.lookupGroupName(ag); err != nil {
				return Exec{}, err
			}
		}
		sgids = append(sgids, gid)
	}

	ex.AdditionalGids = []uint32{ex.GID}
	seen := map[uint32]struct{}{ex.GID: {}}
	for _, g := range sgids {
		if _, dup := seen[g]; dup {
			continue
		}
		seen[g] = struct{}{}
		ex.AdditionalGids = append(ex.AdditionalGids, g)
	}
	if len(ex.AdditionalGids) > maxGroups {
		return Exec{}, fmt.Errorf("user %s: %d supplementary groups, more than the kernel limit of %d", displayUser(usr), len(ex.AdditionalGids), maxGroups)
	}
	return ex, nil
}

func displayUser(usr string) string {
	if usr == "" {
		return "0"
	}
	return usr
}

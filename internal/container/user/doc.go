// Package user resolves Docker's -u/--user and --group-add values against a
// container's root filesystem, turning "name", "uid", "name:group",
// "uid:gid" (and the mixed forms) into the numeric identity a container
// process runs as ([Resolve], [Exec]).
//
// It owns:
//   - parsing the user specification and the --group-add list with the
//     semantics of Docker and runc's libcontainer/user (numeric values are
//     always ids, never looked up as names; names must exist; the first
//     matching passwd/group line wins; supplementary groups from group
//     membership lists only in the implicit "user" form; the primary gid is
//     also listed among the additional gids, as Docker does);
//   - reading the image's /etc/passwd and /etc/group, and parsing them.
//
// The root filesystem is hostile input. This package must never open a path
// outside the root it was given: the two database files are resolved with the
// pathrs-lite resolver (symlinks, including absolute ones and "..", are
// followed as if the root were "/", magic links such as /proc/self/root are
// refused), the result is first held as an O_PATH handle and checked with
// fstat, and only a regular file is reopened for reading, with O_NONBLOCK and
// O_NOCTTY, so FIFOs, sockets, devices and directories are never opened for
// I/O and can never make it block. Reads are bounded ([MaxFileSize]); over-long
// lines are skipped. It must never consult the host's user database (os/user,
// NSS), never write to, create in or chown anything in the root filesystem,
// never execute anything from the image, and never copy file content into
// error messages.
//
// It does not decide whether a resolved identity is acceptable (for example,
// refusing root), does not apply it to a process, and does not set HOME in an
// environment: those belong to its callers.
package user

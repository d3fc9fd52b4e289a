// Package fscopy copies files between a container's root filesystem and
// the host: `berth cp` in both directions ([CopyFrom], [CopyTo]) and
// `berth export` ([Export]).
//
// It owns:
//   - docker cp's path rules: which container or host path a copy reads
//     and writes, trailing "/" and "/." on SRC and DST, following a final
//     symlink of DST always and of SRC with -L, and the errors for the
//     impossible cases ([ErrCannotCopyDir], [ErrDirNotExists], ...);
//   - the tar streams of cp ("-" as SRC or DST) and export, written in a
//     deterministic order with owners, modes, times, xattrs, symlinks, hard
//     links and device nodes preserved;
//   - extracting such a stream into a container directory or a host
//     directory.
//
// The container's root filesystem is hostile: the container (maybe
// running) controls every name, symlink, FIFO and device in it and can
// change them while a copy runs (CVE-2018-15664). This package must never
// read, write, create, chmod, chown, link or remove anything outside the
// root it was given because of what is inside it: every container path is
// resolved inside the root with the pathrs-lite resolver (symlinks followed
// as if the root were "/", magic links such as /proc/self/root refused),
// and every subsequent operation is a *at system call relative to a
// directory handle obtained that way, without following a symlink in the
// final component. It must never write through an existing file or symlink
// (a non-directory is replaced: removed, then created with O_EXCL, mkdir,
// symlink, mknod or link), never open anything but a regular file or
// directory for reading (so FIFOs and devices are never opened), and never
// follow a symlink while walking a tree. Tar streams (from stdin, or made
// from a container) are hostile too: names cannot climb out of the
// destination, and extraction to the host follows no symlink at all below
// the destination, restores no owner, drops setuid and setgid, sets only
// user.* xattrs and refuses device nodes.
//
// The host side (the caller's own SRC or DST) is trusted: symlinks in it
// are followed as Docker's CLI follows them.
//
// It does not know about containers, their state, mounts, volumes or
// read-only root filesystems, does not phrase user-facing messages that
// name the container (container-side "not found" errors match
// fs.ErrNotExist for the caller to phrase), does not map ownership through
// user namespaces, and does not implement `docker cp -a`.
package fscopy

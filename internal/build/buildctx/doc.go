// Package buildctx owns the file side of a Dockerfile build: the build
// context (a host directory plus its .dockerignore rules), the root
// filesystems of other stages and images that COPY --from reads, matching
// COPY/ADD source arguments against them ([Tree.Match]), the cache key of a
// copy ([Digest]), performing it into a container root filesystem ([Copy]),
// unpacking local archives for ADD, and downloading ADD URLs ([FetchURL]).
//
// Trust model:
//   - The root filesystem being written (the rootfs argument of [Copy]) is
//     hostile: it is an image's filesystem and any symlink in it may point
//     anywhere ("/etc -> /host/etc", "../../.."). Every destination path is
//     resolved inside that root with symlinks interpreted as if the root were
//     "/", by a resolver that opens one component at a time with O_NOFOLLOW
//     relative to directory file descriptors it holds, expands symlinks in
//     user space and handles ".." by dropping a held descriptor, never by
//     opening "..". All writes are *at system calls relative to such
//     descriptors, never follow a symlink in the last component, and never
//     write through an existing file (files are unlinked and re-created with
//     O_EXCL).
//   - Archives unpacked by ADD are hostile: entry names and hard-link targets
//     that escape the destination with ".." are refused, absolute names are
//     taken relative to the destination, and every entry is resolved inside
//     the destination directory (as Docker's chrooted untar does), so a
//     symlink planted by an earlier entry cannot lead a later one outside.
//   - Root filesystems of other stages and images (trees from [OpenRoot]) are
//     hostile too: source arguments are resolved inside them the same way.
//   - The build context is semi-trusted. A source argument may not name
//     anything outside it ("../x" is refused), and symlinks in it are
//     scoped, BuildKit-style: a symlink that is itself a source argument (or a
//     path component of one) is followed as if the context directory were
//     "/", so "link -> /etc/passwd" names "<context>/etc/passwd", never the
//     host's file. Symlinks inside copied directories are copied as symlinks
//     and never followed. Files excluded by .dockerignore cannot be reached
//     through such symlinks either.
//
// This package must never create, change or remove anything outside the
// destination root it is given, never read anything outside a Tree's
// directory, and never follow a symlink it copies. It does not parse
// Dockerfiles, expand variables, resolve user or group names, mount, run
// containers or keep a cache: the executor in package build does those and
// calls into this package with numeric owners and absolute destination paths.
package buildctx

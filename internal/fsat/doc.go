// Package fsat holds the descriptor-relative (*at) filesystem helpers that
// berth's tar readers and writers share: the layer engine
// (internal/archive) and the container copy (internal/container/fscopy).
//
// It owns:
//   - the form of a path below a root: cleaning a tar or container name
//     into a relative path that cannot climb out ([CleanRel]), splitting
//     and joining such paths, and the length limits on names ([CheckName]);
//   - applying an entry's owner, mode, xattrs and times through a [Node]
//     (an open descriptor, or a directory descriptor and a name) without
//     ever following a symlink, and the times of directories applied after
//     their content ([DirTime]);
//   - validating the metadata of a tar entry ([NewMeta], [DeviceNode]) and
//     writing file content with all-zero chunks left as holes
//     ([WriteContent]);
//   - reading xattrs and symlink targets through a directory descriptor or
//     an O_PATH handle ([ReadXattrs], [ReadlinkAt]), and recognising
//     overlayfs' own xattrs ([IsOverlayXattr]);
//   - building tar headers from a stat: owner, mode, mtime, xattrs in PAX
//     records, hard links and special files ([Header], [HardLinks],
//     [SetSpecialType], [WriteRegular]).
//
// Everything here works on descriptors and names its caller obtained inside
// a root; it resolves no path itself, so what a name may reach stays the
// caller's decision.
//
// It does not walk trees, resolve paths inside a root, decide which entries
// or xattrs to keep, nor read or write whole tar streams: those belong to
// its callers.
package fsat

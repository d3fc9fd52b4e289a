// Package archive is berth's layer engine: it owns the translation between
// OCI layer tar streams and on-disk layer directories in overlayfs form.
//
// It owns:
//   - detecting and undoing the compression of a layer stream
//     ([DetectCompression], [DecompressStream]);
//   - unpacking an uncompressed layer tar into an empty per-layer directory,
//     converting OCI whiteouts into overlayfs whiteouts (0/0 character
//     devices) and opaque markers into the trusted.overlay.opaque xattr
//     ([ApplyLayer]);
//   - materialising hard links whose targets live in lower layers
//     ([LinkFromLowers]);
//   - producing a deterministic diff tar from an overlayfs upper directory
//     ([WriteDiff]).
//
// Layer tars are hostile input. This package must never create, modify,
// chmod, chown, link, or remove anything outside the layer root it was given:
// every path from a tar entry is resolved inside the root with the
// pathrs-lite resolver (symlinks are followed as if the root were "/"), and
// every subsequent operation is a *at system call relative to a directory
// handle obtained that way, without following a symlink in the final
// component. It must never honour trusted.overlay.* (or user.overlay.*)
// xattrs coming from a tar, never write file content through an existing
// symlink or hard link, and never follow a symlink when copying from lower
// layers.
//
// It does not mount anything, does not sync the filesystem, does not hash or
// verify digests, and does not clean up a partially written layer root on
// error: those belong to its callers.
package archive

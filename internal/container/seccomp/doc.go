// Package seccomp owns berth's seccomp policy: it turns a profile in Docker's
// seccomp JSON format into the OCI runtime-spec [specs.LinuxSeccomp] that is
// handed to the OCI runtime for one container.
//
// It owns:
//   - berth's default profile ([Default]), which is derived from an embedded,
//     unmodified copy of Docker's default profile (default.json) so that a
//     container gets the same syscall policy under berth as under Docker;
//   - loading a user-supplied profile in Docker's format, as given to
//     `--security-opt seccomp=FILE` ([FromDockerProfile]);
//   - resolving the conditional parts of that format the way moby's
//     profiles/seccomp package does: the archMap entry for the host
//     architecture, and each rule's includes/excludes filters on the
//     container's capabilities, the host architecture and the host kernel
//     version.
//
// Profiles are untrusted input. This package validates every field it passes
// on (actions, operators, argument indexes, architectures, flags, capability
// names, kernel versions) and reports the offending field and syscall rather
// than handing something malformed to the runtime. It must never silently
// weaken a profile: it never drops a rule it cannot interpret, never turns a
// malformed or empty profile into "no seccomp", and never adds rules of its
// own. It must never mutate the embedded default or share memory between the
// profiles it returns.
//
// It does not decide which capabilities a container has, does not install
// filters itself (no seccomp(2), no libseccomp, no cgo), and does not know
// which syscall names exist on which architecture; the OCI runtime ignores
// names it does not know, as it does for Docker. Choosing between the default,
// a custom profile and "unconfined" is its callers' business.
package seccomp

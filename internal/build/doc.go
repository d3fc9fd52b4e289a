// Package build turns a Dockerfile and a build context into an image.
//
// It owns the build: parsing with BuildKit's own Dockerfile packages
// (parser, instructions, shell), the stage graph (only the stages the
// target needs are built, independent ones in parallel), the dispatch of
// every instruction onto an image config, the build cache and the plain
// progress output. Each RUN step is a one-shot container over the parent's
// snapshot (container.Engine.RunStep) whose writable layer becomes the
// step's layer; COPY and ADD write into an overlay of the parent the same
// way, through package buildctx.
//
// A step's cache key is its parent's key, the instruction in canonical
// form, the build arguments it sees and, for COPY and ADD, the digest of
// exactly the files it copies (content, modes, owners, names; never
// times). A hit reuses the stored layer without running anything.
//
// It must never tag anything before the whole build succeeded, never read
// a source outside the build context, and never put a secret into a layer
// or the image history.
package build

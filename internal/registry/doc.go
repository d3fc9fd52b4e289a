// Package registry is berth's registry server: the OCI distribution-spec
// v1.1 API under /v2/ over a storage driver (blob bytes) and an embedded
// metadata store (repositories, tags, manifests, referrers, uploads), with
// auth, online garbage collection, metrics and request logs.
//
// Blobs are content-addressed and shared by every repository; a repository
// sees a blob only once it was uploaded or mounted into it. Every byte
// written is verified against its digest before it becomes visible, and a
// blob is deleted only by the collector, which marks from every manifest
// and never removes a blob touched within its grace period.
package registry

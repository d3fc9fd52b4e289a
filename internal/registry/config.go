package registry

import (
	"time"

	"github.com/berth-dev/berth/internal/registry/auth"
)

// Config is the registry's configuration: the YAML file given with
// --config, with --addr and --root overriding Addr and Root.
type Config struct {
	Addr    string        `yaml:"addr"` // default 127.0.0.1:5000
	Root    string        `yaml:"root"` // metadata DB, and blobs with the filesystem driver
	TLS     TLSConfig     `yaml:"tls"`
	Storage StorageConfig `yaml:"storage"`
	Auth    auth.Config   `yaml:"auth"`
	GC      GCConfig      `yaml:"gc"`
	Limits  LimitsConfig  `yaml:"limits"`
	Log     LogConfig     `yaml:"log"`
}

// TLSConfig names a certificate and its key (PEM files).
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// StorageConfig selects the blob storage driver.
type StorageConfig struct {
	Driver string   `yaml:"driver"` // "filesystem" (default) or "s3"
	S3     S3Config `yaml:"s3"`
}

// S3Config points at an S3-compatible bucket.
type S3Config struct {
	Endpoint  string `yaml:"endpoint"` // host:port
	Region    string `yaml:"region"`
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"`
	AccessKey string `yaml:"accessKey"`
	SecretKey string `yaml:"secretKey"`
	Secure    bool   `yaml:"secure"` // https to the endpoint
	// Redirect answers blob GETs with a 307 to a presigned URL.
	Redirect bool `yaml:"redirect"`
}

// GCConfig schedules online garbage collection.
type GCConfig struct {
	// Interval between collections; 0 disables the schedule.
	Interval time.Duration `yaml:"interval"`
	// Grace keeps blobs that no manifest references for this long after
	// their last upload, mount or HEAD; default 1h.
	Grace time.Duration `yaml:"grace"`
	// UploadTTL purges uploads idle for this long; default 24h.
	UploadTTL time.Duration `yaml:"uploadTTL"`
}

// LimitsConfig bounds what clients may send.
type LimitsConfig struct {
	ManifestSize int64   `yaml:"manifestSize"` // bytes; default 4 MiB
	BlobSize     int64   `yaml:"blobSize"`     // bytes per blob; 0 means no limit
	Rate         float64 `yaml:"rate"`         // requests per second per client IP; 0 means no limit
	Burst        int     `yaml:"burst"`
}

// LogConfig selects request logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

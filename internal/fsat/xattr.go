package fsat

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// PAXXattrPrefix starts the PAX record of an xattr in a tar header.
const PAXXattrPrefix = "SCHILY.xattr."

// IsOverlayXattr reports whether an xattr belongs to overlayfs itself and so
// must never be taken from, or written to, a tar.
func IsOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// ReadXattrs returns the xattrs of the file at p (a /proc/self/fd path),
// sorted by name, keeping only those keep selects (all when keep is nil).
// follow selects listxattr/getxattr (p is a magic link to the file itself)
// over llistxattr/lgetxattr (p names an entry of a directory, a symlink
// included, whose final component is not followed). A filesystem without
// xattrs gives none. buf must hold 64 KiB, the kernel's limit for both the
// name list and a single value.
func ReadXattrs(p string, follow bool, keep func(string) bool, buf []byte) ([]Xattr, error) {
	list, get := unix.Llistxattr, unix.Lgetxattr
	if follow {
		list, get = unix.Listxattr, unix.Getxattr
	}
	n, err := list(p, buf)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	var out []Xattr
	for _, name := range names {
		if name == "" || keep != nil && !keep(name) {
			continue
		}
		sz, err := get(p, name, buf)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %q: %w", name, err)
		}
		out = append(out, Xattr{Name: name, Value: bytes.Clone(buf[:sz])})
	}
	return out, nil
}

// AddPAXXattr records x in a PAX record of hdr.
func AddPAXXattr(hdr *tar.Header, x Xattr) {
	if hdr.PAXRecords == nil {
		hdr.PAXRecords = make(map[string]string)
	}
	hdr.PAXRecords[PAXXattrPrefix+x.Name] = string(x.Value)
}

// PAXXattrs yields the name and value of each xattr in the PAX records of
// hdr, in no particular order. Names are as in the tar: one may be empty.
func PAXXattrs(hdr *tar.Header) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, PAXXattrPrefix); ok && !yield(name, v) {
				return
			}
		}
	}
}

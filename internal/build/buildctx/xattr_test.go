package buildctx

import "golang.org/x/sys/unix"

func setUserXattr(p string) error {
	return unix.Lsetxattr(p, "user.test", []byte("v"), 0)
}

#!/usr/bin/env bash
# Makes a minimal, deterministic root filesystem tar from Debian's
# busybox-static: bin/busybox, one symlink per applet in bin/, a root and a
# nobody user, tmp/, root/ and empty dev/ proc/ sys/. The same busybox gives
# the same bytes every time. This is the base image of berth's tests and demo.
#
# Usage: hack/busybox-rootfs.sh OUT.tar
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUT.tar" >&2
	exit 2
fi
out=$1

if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q '^install ok installed$'; then
	bash "$(dirname "$0")/install-deps.sh" busybox-static
fi
bb=$(dpkg-query -L busybox-static | grep -E '/bin/busybox$' | head -n1)
[ -x "$bb" ] || { echo "busybox-rootfs: busybox-static binary not found" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
r=$work/rootfs
mkdir -p "$r"/{bin,etc,root,tmp,dev,proc,sys}
chmod 0755 "$r" "$r"/{bin,etc,dev,proc,sys}
chmod 0700 "$r/root"
chmod 1777 "$r/tmp"

install -m 0755 "$bb" "$r/bin/busybox"
"$bb" --list | LC_ALL=C sort -u | while read -r applet; do
	case "$applet" in
	busybox | '' | */*) continue ;;
	esac
	ln -s busybox "$r/bin/$applet"
done

printf '%s\n' \
	'root:x:0:0:root:/root:/bin/sh' \
	'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
printf '%s\n' \
	'root:x:0:' \
	'nogroup:x:65534:' >"$r/etc/group"
chmod 0644 "$r/etc/passwd" "$r/etc/group"

mkdir -p "$(dirname "$out")"
tmp_out=$(mktemp "$(dirname "$out")/.busybox-rootfs.XXXXXX")
LC_ALL=C tar -C "$r" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
	--format=gnu -cf "$tmp_out" .
chmod 0644 "$tmp_out"
mv -f "$tmp_out" "$out"

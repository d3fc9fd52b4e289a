#!/usr/bin/env bash
# Installs the peers berth's tests and demo use (Docker, Podman, skopeo, runc,
# a static busybox) and configures them for this kind of machine: no systemd,
# no container networking, cgroups v1, runc as the OCI runtime.
#
# Usage: hack/install-deps.sh [PACKAGE...]   (default: the full set)
# Idempotent and quiet when everything is already in place.
set -euo pipefail

if [ "$#" -gt 0 ]; then
	pkgs=("$@")
else
	pkgs=(docker.io podman skopeo runc tini busybox-static docker-registry apache2-utils)
fi

log() { echo "install-deps: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	log "must run as root"
	exit 1
fi

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${pkgs[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
	apt_log=$(mktemp)
	# Keep package scripts from starting daemons (dockerd, containerd) with
	# their stock configuration: we start what we need ourselves.
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
	fi
	trap 'rm -f "$apt_log" ${policy:+"$policy"}' EXIT
	ok=
	for attempt in 1 2 3; do
		if { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >>"$apt_log" 2>&1; then
			ok=1
			break
		fi
		[ "$attempt" -lt 3 ] && sleep $((attempt * 5))
	done
	if [ -z "$ok" ]; then
		cat "$apt_log" >&2
		log "apt-get failed"
		exit 1
	fi
	rm -f "$apt_log" ${policy:+"$policy"}
	trap - EXIT
fi

want() { # is PKG among the packages we manage (and installed)?
	local p
	for p in "${pkgs[@]}"; do [ "$p" = "$1" ] && return 0; done
	return 1
}

# --- Docker: no bridge, no iptables (this sandbox has neither) -------------
if want docker.io; then
	mkdir -p /etc/docker
	f=/etc/docker/daemon.json
	if [ ! -s "$f" ]; then
		printf '{\n  "bridge": "none",\n  "iptables": false\n}\n' >"$f"
	elif command -v python3 >/dev/null 2>&1; then
		python3 - "$f" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as fh:
    cfg = json.load(fh)
want = {"bridge": "none", "iptables": False}
if any(cfg.get(k) != v for k, v in want.items()):
    cfg.update(want)
    with open(path, "w") as fh:
        json.dump(cfg, fh, indent=2)
        fh.write("\n")
    print("install-deps: updated " + path, file=sys.stderr)
PY
	elif command -v jq >/dev/null 2>&1; then
		if [ "$(jq -c '[.bridge, .iptables]' "$f")" != '["none",false]' ]; then
			tmp=$(mktemp)
			jq '.bridge = "none" | .iptables = false' "$f" >"$tmp"
			cat "$tmp" >"$f"
			rm -f "$tmp"
			log "updated $f"
		fi
	else
		log "cannot merge $f (no python3 or jq); leaving it as is"
	fi
fi

# --- Podman: runc (crun fails on this kernel), cgroupfs (no systemd) --------
if want podman; then
	mkdir -p /etc/containers
	f=/etc/containers/containers.conf
	marker='# Written by berth hack/install-deps.sh'
	conf="$marker
[containers]
default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]
netns = \"none\"

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
"
	if [ ! -e "$f" ] || [ "$(cat "$f")" != "$(printf '%s' "$conf")" ]; then
		if [ -e "$f" ] && ! grep -qF "$marker" "$f"; then
			cp -a "$f" "$f.orig-$(date +%s)"
			log "replaced $f (old copy kept beside it)"
		fi
		printf '%s' "$conf" >"$f"
	fi
fi

#!/usr/bin/env bash
# Installs the peers berth's tests and demo use (Docker, Podman, buildah,
# skopeo, runc, a static busybox) and configures them for this kind of
# machine: no systemd, no container networking, cgroups v1, runc as the OCI
# runtime.
#
# Usage: hack/install-deps.sh [PACKAGE...]   (default: the full set)
# Idempotent and quiet when everything is already in place.
#
# Every name is a Debian package except dockerfile-frontend and minio.
#
# dockerfile-frontend is BuildKit's Dockerfile frontend (moby/buildkit
# $BUILDKIT_FRONTEND_VERSION, labs features on), built from the Go module
# proxy and, when a Docker engine answers, imported into it as
# docker/dockerfile:1 and docker/dockerfile:1-labs.
# Docker 20.10's built-in BuildKit frontend lacks heredocs, COPY --link,
# --parents and --exclude, ADD --checksum and RUN --network; with this image
# `DOCKER_BUILDKIT=1 docker build --build-arg BUILDKIT_SYNTAX=docker/dockerfile:1-labs`
# (or a `# syntax=docker/dockerfile:1` line) has them, offline.
#
# minio is the MinIO server ($MINIO_VERSION, the last commit of the archived
# github.com/minio/minio, a few fixes past RELEASE.2025-10-15T17-29-55Z),
# built from the Go module proxy into /usr/local/lib/berth/minio: the S3
# endpoint the registry's s3 storage driver is tested against.
set -euo pipefail

if [ "$#" -gt 0 ]; then
	pkgs=("$@")
else
	pkgs=(docker.io podman buildah skopeo runc tini busybox-static docker-registry apache2-utils dockerfile-frontend minio)
fi
BUILDKIT_FRONTEND_VERSION=${BUILDKIT_FRONTEND_VERSION:-v0.16.0}
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}

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
	case "$p" in
	dockerfile-frontend | minio) ;; # not Debian packages: see the end of this script
	*) installed "$p" || missing+=("$p") ;;
	esac
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

# --- BuildKit's Dockerfile frontend for Docker 20.10 (see the top) ---------
if want dockerfile-frontend; then
	v=$BUILDKIT_FRONTEND_VERSION
	bin=/usr/local/lib/berth/dockerfile-frontend-$v
	built=
	if [ ! -x "$bin" ]; then
		if ! command -v go >/dev/null 2>&1; then
			log "dockerfile-frontend: go is not installed"
			exit 1
		fi
		log "building BuildKit's Dockerfile frontend $v (labs) from the Go module proxy"
		gobin=$(mktemp -d)
		if ! GOBIN="$gobin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
			-ldflags "-X main.Version=$v-labs-berth" \
			-tags "dfrunsecurity dfparents dfexcludepatterns netgo osusergo static_build" \
			"github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend@$v" >"$gobin/log" 2>&1; then
			cat "$gobin/log" >&2
			rm -rf "$gobin"
			log "go install of the Dockerfile frontend failed"
			exit 1
		fi
		mkdir -p "$(dirname "$bin")"
		install -m 0755 "$gobin/dockerfile-frontend" "$bin.tmp"
		mv -f "$bin.tmp" "$bin"
		rm -rf "$gobin"
		built=1
	fi
	# Docker's own client (docker.io's) speaks to the 20.10 daemon's BuildKit.
	docker=docker
	[ -x /usr/bin/docker ] && docker=/usr/bin/docker
	if "$docker" info >/dev/null 2>&1; then
		label=org.berth.dockerfile-frontend
		for tag in docker/dockerfile:1-labs docker/dockerfile:1; do
			have=$("$docker" image inspect -f "{{index .Config.Labels \"$label\"}}" "$tag" 2>/dev/null || true)
			[ "$have" = "$v" ] && continue
			if [ "$tag" = docker/dockerfile:1-labs ]; then
				img=$(mktemp -d)
				mkdir -p "$img/rootfs/bin"
				cp "$bin" "$img/rootfs/bin/dockerfile-frontend"
				tar -C "$img/rootfs" --owner=0 --group=0 --numeric-owner -cf "$img/rootfs.tar" bin
				"$docker" import \
					-c 'ENTRYPOINT ["/bin/dockerfile-frontend"]' \
					-c 'LABEL moby.buildkit.frontend.network.none="true"' \
					-c 'LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"' \
					-c "LABEL $label=$v" \
					"$img/rootfs.tar" "$tag" >/dev/null
				rm -rf "$img"
			else
				"$docker" tag docker/dockerfile:1-labs "$tag"
			fi
			log "loaded the Dockerfile frontend $v into Docker as $tag"
		done
	elif [ -n "$built" ]; then
		log "dockerfile-frontend: no Docker engine answers; built $bin only (run again after hack/start-dockerd.sh)"
	fi
fi

# --- MinIO, for the registry's s3 storage driver tests (see the top) --------
if want minio; then
	v=$MINIO_VERSION
	bin=/usr/local/lib/berth/minio
	# The version is stamped into the binary, so a new pin rebuilds it.
	if ! { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF "version $v "; }; then
		if ! command -v go >/dev/null 2>&1; then
			log "minio: go is not installed"
			exit 1
		fi
		log "building MinIO $v from the Go module proxy (a few minutes)"
		gobin=$(mktemp -d)
		pkg=github.com/minio/minio
		if ! GOBIN="$gobin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
			-ldflags "-s -w -X $pkg/cmd.ReleaseTag=$v -X $pkg/cmd.CommitID=${v##*-} -X $pkg/cmd.ShortCommitID=${v##*-}" \
			"$pkg@$v" >"$gobin/log" 2>&1; then
			cat "$gobin/log" >&2
			rm -rf "$gobin"
			log "go install of MinIO failed"
			exit 1
		fi
		mkdir -p "$(dirname "$bin")"
		install -m 0755 "$gobin/minio" "$bin.tmp"
		mv -f "$bin.tmp" "$bin"
		rm -rf "$gobin"
	fi
fi

# --- crane and regctl, the registry clients Debian lacks ---------------------
if [ "$#" -eq 0 ]; then
	bash "$(dirname "$0")/install-gotools.sh"
fi

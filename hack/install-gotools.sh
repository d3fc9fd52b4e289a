#!/usr/bin/env bash
# Installs the registry clients berth's registry server tests use that Debian
# does not package, built from the Go module proxy:
#
#   crane   github.com/google/go-containerregistry/cmd/crane  $CRANE_VERSION
#           (the go-containerregistry version go.mod requires)
#   regctl  github.com/regclient/regclient/cmd/regctl         $REGCTL_VERSION
#
# into $GOTOOLS_BIN (default /usr/local/lib/berth/bin, beside the other
# tools hack/install-deps.sh builds; it is not put on PATH, callers use the
# full path).
#
# Usage: hack/install-gotools.sh [crane|regctl]...   (default: both)
# Idempotent and quiet when the pinned versions are already in place; a new
# pin rebuilds (the version is read back from the binary).
set -euo pipefail

CRANE_VERSION=${CRANE_VERSION:-v0.22.1}
REGCTL_VERSION=${REGCTL_VERSION:-v0.11.7}
GOTOOLS_BIN=${GOTOOLS_BIN:-/usr/local/lib/berth/bin}

log() { echo "install-gotools: $*" >&2; }

if [ "$#" -gt 0 ]; then
	tools=("$@")
else
	tools=(crane regctl)
fi

# installed_version TOOL prints the version the installed binary reports.
installed_version() {
	local bin=$GOTOOLS_BIN/$1
	[ -x "$bin" ] || return 0
	case "$1" in
	crane) "$bin" version 2>/dev/null || true ;;
	regctl) "$bin" version --format '{{.VCSTag}}' 2>/dev/null || true ;;
	esac
}

# build TOOL PACKAGE VERSION
build() {
	local tool=$1 pkg=$2 v=$3
	if [ "$(installed_version "$tool")" = "$v" ]; then
		return 0
	fi
	if ! command -v go >/dev/null 2>&1; then
		log "$tool: go is not installed"
		exit 1
	fi
	log "building $tool $v from the Go module proxy"
	local gobin
	gobin=$(mktemp -d)
	if ! GOBIN="$gobin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off go install -trimpath \
		"$pkg@$v" >"$gobin/log" 2>&1; then
		cat "$gobin/log" >&2
		rm -rf "$gobin"
		log "go install $pkg@$v failed"
		exit 1
	fi
	mkdir -p "$GOTOOLS_BIN"
	install -m 0755 "$gobin/$tool" "$GOTOOLS_BIN/$tool.tmp"
	mv -f "$GOTOOLS_BIN/$tool.tmp" "$GOTOOLS_BIN/$tool"
	rm -rf "$gobin"
	if [ "$(installed_version "$tool")" != "$v" ]; then
		log "$tool: built $GOTOOLS_BIN/$tool reports version '$(installed_version "$tool")', want $v"
		exit 1
	fi
}

for tool in "${tools[@]}"; do
	case "$tool" in
	crane) build crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" ;;
	regctl) build regctl github.com/regclient/regclient/cmd/regctl "$REGCTL_VERSION" ;;
	*)
		log "unknown tool $tool (want crane or regctl)"
		exit 1
		;;
	esac
done

#!/usr/bin/env bash
# Starts dockerd in the background (there is no systemd here) unless a Docker
# engine already answers, then waits up to 60 s for it. Logs to
# /var/log/dockerd.log. Run hack/install-deps.sh first.
set -euo pipefail

log() { echo "start-dockerd: $*" >&2; }

# Prefer the client that ships with the daemon (docker.io), if present.
docker=docker
[ -x /usr/bin/docker ] && docker=/usr/bin/docker

if "$docker" info >/dev/null 2>&1; then
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
	log "dockerd not installed (run hack/install-deps.sh docker.io)"
	exit 1
fi
dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)

if [ ! -e /var/run/docker.pid ] || ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
	rm -f /var/run/docker.pid
	# setsid + nohup: the daemon outlives this script and the caller's session.
	setsid nohup "$dockerd_bin" >>/var/log/dockerd.log 2>&1 </dev/null &
fi

for _ in $(seq 1 120); do
	if "$docker" info >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.5
done
log "dockerd did not answer within 60 s; last lines of /var/log/dockerd.log:"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1

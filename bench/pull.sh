#!/usr/bin/env bash
# Pull and push of one ≥200 MB, 6-layer image through a local Distribution
# registry (Debian's docker-registry) by berth, docker and podman in one
# run. Pulls start from a store without the image; pushes go to an empty
# registry each time. Prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MIB=${MIB:-220}
SMALL=${SMALL:-2000}
PORT=${PORT:-5077}

bash hack/install-deps.sh docker.io podman skopeo runc busybox-static bc docker-registry
bash hack/start-dockerd.sh
go build -o bin/berth ./cmd/berth
work=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
reg=127.0.0.1:$PORT
cat >"$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
YML
regpid=
start_registry() {
	[ -z "$regpid" ] || { kill "$regpid"; wait "$regpid" 2>/dev/null || true; }
	rm -rf "$work/registry"
	docker-registry serve "$work/registry.yml" >>"$work/registry.log" 2>&1 &
	regpid=$!
	for _ in $(seq 50); do curl -sf "http://$reg/v2/" >/dev/null && return; sleep 0.1; done
}
cleanup() {
	[ -z "$regpid" ] || kill "$regpid" 2>/dev/null || true
	# By ID, so every tag the run made goes with it.
	[ -z "${imgid:-}" ] || docker rmi -f "$imgid" >/dev/null 2>&1 || true
	[ -z "${imgid:-}" ] || podman rmi -f "$imgid" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
start_registry

bash hack/busybox-rootfs.sh "$work/rootfs.tar"
go run ./test/imagegen -o "$work/image.tar" -base "$work/rootfs.tar" -layers 5 -mib "$MIB" -small "$SMALL" -tag "$reg/bench/pull:latest"
seed="$work/seed-root"
bin/berth --root "$seed" load -i "$work/image.tar" >/dev/null
bin/berth --root "$seed" push -q "$reg/bench/pull:latest" >/dev/null
img="$reg/bench/pull:latest"
imgid=$(bin/berth --root "$seed" inspect -f '{{.Id}}' "$img")
echo "image: $(du -m "$work/image.tar" | cut -f1) MiB unpacked, 6 layers, in $reg"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
elapsed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }

# Removing by ID drops every tag, so the next pull really downloads.
pull_berth() { rm -rf "$work/pull-root"; elapsed bin/berth --root "$work/pull-root" pull -q "$img"; }
pull_docker() {
	docker rmi -f $(docker images -q "$img") >/dev/null 2>&1 || true
	elapsed docker pull -q "$img"
}
pull_podman() {
	podman rmi -f $(podman images -q "$img") >/dev/null 2>&1 || true
	elapsed podman pull -q --tls-verify=false "$img"
}
n=0
# Each tool pushes the image it pulled last.
push_berth() { n=$((n + 1)); bin/berth --root "$work/pull-root" tag "$img" "$reg/push/berth$n:latest"; elapsed bin/berth --root "$work/pull-root" push -q "$reg/push/berth$n:latest"; }
push_docker() { n=$((n + 1)); docker tag "$img" "$reg/push/docker$n:latest"; elapsed docker push -q "$reg/push/docker$n:latest"; }
push_podman() { n=$((n + 1)); podman tag "$img" "$reg/push/podman$n:latest"; elapsed podman push -q --tls-verify=false "$reg/push/podman$n:latest"; }

settle() { sync; sleep "${SETTLE:-5}"; }
declare -A samples
for _ in $(seq "$RUNS"); do
	for tool in berth docker podman; do
		settle
		samples[pull_$tool]+="$(pull_$tool) "
	done
done
# Every push goes to an empty registry, so each tool uploads every layer
# (compressing it as it would); the registry is restarted with no data.
for _ in $(seq "$RUNS"); do
	for tool in berth docker podman; do
		start_registry
		settle
		samples[push_$tool]+="$(push_$tool) "
	done
done
declare -A med
for op in pull push; do
	for tool in berth docker podman; do
		med[${op}_$tool]=$(printf '%s\n' ${samples[${op}_$tool]} | median)
		printf '%s %-7s %6.2f s  (runs: %s)\n' "$op" "$tool" "${med[${op}_$tool]}" "${samples[${op}_$tool]}"
	done
	best=$(printf '%s\n' "${med[${op}_docker]}" "${med[${op}_podman]}" | sort -n | head -1)
	printf '%s ratio docker/berth: %.2fx, podman/berth: %.2fx, fastest-peer/berth: %.2fx\n' "$op" \
		"$(echo "${med[${op}_docker]} / ${med[${op}_berth]}" | bc -l)" \
		"$(echo "${med[${op}_podman]} / ${med[${op}_berth]}" | bc -l)" \
		"$(echo "$best / ${med[${op}_berth]}" | bc -l)"
done

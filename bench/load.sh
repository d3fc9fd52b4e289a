#!/usr/bin/env bash
# Load + unpack of one ≥200 MB, 6-layer image archive by berth, `docker load`
# and `podman load`, side by side in one run; each load starts from a store
# without the image. Prints the median of RUNS loads per tool and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SMALL=${SMALL:-2000}
MIB=${MIB:-220}

bash hack/install-deps.sh docker.io podman skopeo runc busybox-static bc
bash hack/start-dockerd.sh
go build -o bin/berth ./cmd/berth
work=$(mktemp -d /var/tmp/berth-bench-load.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash hack/busybox-rootfs.sh "$work/rootfs.tar"
go run ./test/imagegen -o "$work/image.tar" -base "$work/rootfs.tar" -layers 5 -mib "$MIB" -small "$SMALL" -tag bench/load:latest
size=$(du -m "$work/image.tar" | cut -f1)
# Peers are cleaned by image ID: removing by name only untags an image that
# other tags (from another benchmark, say) still hold, and the next load
# would then be a no-op.
id=$(tar -xOf "$work/image.tar" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Config"].split(".")[0])')
echo "archive: ${size} MiB, $((5 + 1)) layers"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

time_berth() {
	local root="$work/berth-root"
	rm -rf "$root"
	local t0 t1
	t0=$(now); bin/berth --root "$root" load -i "$work/image.tar" >/dev/null; t1=$(now)
	echo "$t1 - $t0" | bc
	bin/berth --root "$root" image prune -a -f >/dev/null
	rm -rf "$root"
}
time_docker() {
	docker rmi -f "$id" >/dev/null 2>&1 || true
	local t0 t1
	t0=$(now); docker load -i "$work/image.tar" >/dev/null; t1=$(now)
	echo "$t1 - $t0" | bc
	docker rmi -f "$id" >/dev/null
}
time_podman() {
	podman rmi -f "$id" >/dev/null 2>&1 || true
	local t0 t1
	t0=$(now); podman load -q -i "$work/image.tar" >/dev/null; t1=$(now)
	echo "$t1 - $t0" | bc
	podman rmi -f "$id" >/dev/null
}

# Rounds interleave the tools, and every timed load starts after the
# previous removal has been flushed and the disk has settled, with the archive
# in the page cache: file creation on this kind of VM slows down for a while
# after heavy deletes, and no tool should pay for another's.
declare -A samples
settle() { sync; sleep "${SETTLE:-8}"; cat "$work/image.tar" >/dev/null; }
for _ in $(seq "$RUNS"); do
	for tool in berth docker podman; do
		settle
		samples[$tool]+="$(time_$tool) "
	done
done
declare -A med
for tool in berth docker podman; do
	med[$tool]=$(printf '%s\n' ${samples[$tool]} | median)
	printf '%-7s load: %6.2f s  (runs: %s)\n' "$tool" "${med[$tool]}" "${samples[$tool]}"
done
best=$(printf '%s\n' "${med[docker]}" "${med[podman]}" | sort -n | head -1)
printf 'ratio docker/berth: %.2fx\n' "$(echo "${med[docker]} / ${med[berth]}" | bc -l)"
printf 'ratio podman/berth: %.2fx\n' "$(echo "${med[podman]} / ${med[berth]}" | bc -l)"
printf 'ratio fastest-peer/berth: %.2fx (goal >= 2x)\n' "$(echo "$best / ${med[berth]}" | bc -l)"

#!/usr/bin/env bash
# Container start-up: `berth run --rm IMAGE true` against `docker run --rm`,
# `podman run --rm` and a bare `runc run` of the same root filesystem (with
# runc's own default spec), side by side in one run. Prints the median of
# RUNS runs per tool and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}

bash hack/install-deps.sh docker.io podman runc busybox-static
bash hack/start-dockerd.sh
go build -o bin/berth ./cmd/berth
work=$(mktemp -d /var/tmp/berth-bench-run.XXXXXX)
root="$work/berth-root"
tag=berth-bench/run:latest
cleanup() {
	set +e
	docker rmi -f "$tag" >/dev/null 2>&1
	podman rmi -f "$tag" >/dev/null 2>&1
	bin/berth --root "$root" image prune -a -f >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
bash hack/busybox-rootfs.sh "$work/rootfs.tar"
bin/berth --root "$root" import "$work/rootfs.tar" "$tag" >/dev/null
docker import "$work/rootfs.tar" "$tag" >/dev/null
podman import -q "$work/rootfs.tar" "$tag" >/dev/null
mkdir -p "$work/bundle/rootfs"
tar -C "$work/bundle/rootfs" -xf "$work/rootfs.tar"
(cd "$work/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/' config.json)

ms() { echo "$EPOCHREALTIME"; }
run_berth() { bin/berth --root "$root" run --rm "$tag" true; }
run_docker() { docker run --rm --network none "$tag" true; }
run_podman() { podman run --rm --network none "$tag" true; }
run_runc() { runc run --bundle "$work/bundle" "bench-$RANDOM$RANDOM" </dev/null; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

tools=(runc berth docker podman)
for t in "${tools[@]}"; do run_"$t" >/dev/null; done # warm caches
declare -A samples
for _ in $(seq "$RUNS"); do
	for t in "${tools[@]}"; do
		t0=$(ms)
		run_"$t" >/dev/null
		t1=$(ms)
		samples[$t]+="$(echo "($t1 - $t0) * 1000" | bc) "
	done
done
declare -A med
for t in "${tools[@]}"; do
	med[$t]=$(printf '%s\n' ${samples[$t]} | median)
	printf '%-7s run --rm true: %8.1f ms (median of %d)\n' "$t" "${med[$t]}" "$RUNS"
done
printf 'ratio berth/runc:   %.2fx (goal <= 1.3x)\n' "$(echo "${med[berth]} / ${med[runc]}" | bc -l)"
printf 'ratio docker/berth: %.2fx\n' "$(echo "${med[docker]} / ${med[berth]}" | bc -l)"
printf 'ratio podman/berth: %.2fx (goal >= 5x for both)\n' "$(echo "${med[podman]} / ${med[berth]}" | bc -l)"

#!/usr/bin/env bash
# Commit of a container that changed 100 MB in 2000 files: `berth commit`
# against `docker commit` and `podman commit`, side by side in one run.
# Each tool commits its own stopped container with the same changes; prints
# the median of RUNS commits per tool and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
FILES=${FILES:-2000}
KIB=${KIB:-50}

bash hack/install-deps.sh docker.io podman runc busybox-static bc
bash hack/start-dockerd.sh
go build -o bin/berth ./cmd/berth
work=$(mktemp -d /var/tmp/berth-bench-commit.XXXXXX)
root="$work/berth-root"
tag=berth-bench/commit:latest
out=berth-bench/committed
name=berth-bench-commit-$$
cleanup() {
	set +e
	docker rm -f "$name" >/dev/null 2>&1
	podman rm -f "$name" >/dev/null 2>&1
	for i in $(seq "$RUNS"); do
		docker rmi -f "$out:$i" >/dev/null 2>&1
		podman rmi -f "$out:$i" >/dev/null 2>&1
	done
	docker rmi -f "$tag" >/dev/null 2>&1
	podman rmi -f "$tag" >/dev/null 2>&1
	bin/berth --root "$root" rm -f "$name" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
bash hack/busybox-rootfs.sh "$work/rootfs.tar"
bin/berth --root "$root" import "$work/rootfs.tar" "$tag" >/dev/null
docker import "$work/rootfs.tar" "$tag" >/dev/null
podman import -q "$work/rootfs.tar" "$tag" >/dev/null

# The same change in every container: FILES files of KIB KiB of random data.
script="mkdir /data && i=0 && while [ \$i -lt $FILES ]; do head -c ${KIB}k /dev/urandom > /data/f\$i; i=\$((i+1)); done"
bin/berth --root "$root" run --name "$name" "$tag" sh -c "$script"
docker run --name "$name" --network none "$tag" sh -c "$script"
podman run --name "$name" --network none "$tag" sh -c "$script"
echo "changed: $FILES files, $((FILES * KIB / 1024)) MiB"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
commit_berth() { bin/berth --root "$root" commit "$name" "$out:$1"; }
commit_docker() { docker commit "$name" "$out:$1"; }
commit_podman() { podman commit -q "$name" "$out:$1"; }
remove_berth() { bin/berth --root "$root" rmi "$out:$1"; }
remove_docker() { docker rmi "$out:$1"; }
remove_podman() { podman rmi "$out:$1"; }

tools=(berth docker podman)
declare -A samples
for i in $(seq "$RUNS"); do
	for t in "${tools[@]}"; do
		sync
		sleep "${SETTLE:-3}"
		t0=$EPOCHREALTIME
		commit_"$t" "$i" >/dev/null
		t1=$EPOCHREALTIME
		samples[$t]+="$(echo "$t1 - $t0" | bc) "
		remove_"$t" "$i" >/dev/null
	done
done
declare -A med
for t in "${tools[@]}"; do
	med[$t]=$(printf '%s\n' ${samples[$t]} | median)
	printf '%-7s commit: %6.2f s  (runs: %s)\n' "$t" "${med[$t]}" "${samples[$t]}"
done
printf 'ratio docker/berth: %.2fx\n' "$(echo "${med[docker]} / ${med[berth]}" | bc -l)"
printf 'ratio podman/berth: %.2fx (goal >= 3x for both)\n' "$(echo "${med[podman]} / ${med[berth]}" | bc -l)"

#!/usr/bin/env bash
# Container start-up: `berth run --rm IMAGE true` against `docker run --rm`,
# `podman run --rm` and a bare `runc run` of the same root filesystem (with
# runc's own default spec), side by side in one run. Prints the median of
# RUNS runs per tool and the ratios.
#
# One more line splits berth's time: runc-spec is `runc run` of the very
# spec berth writes (Docker's seccomp profile, capabilities, masked paths,
# cgroup mounts) on the same plain root filesystem, so berth/runc-spec is
# what berth adds to the runtime and runc-spec/runc what Docker-equivalent
# security costs inside runc itself.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}

bash hack/install-deps.sh docker.io podman runc busybox-static bc jq
bash hack/start-dockerd.sh
go build -o bin/berth ./cmd/berth
work=$(mktemp -d /var/tmp/berth-bench-run.XXXXXX)
root="$work/berth-root"
tag=berth-bench/run:latest
cleanup() {
	set +e
	docker rmi -f "$tag" >/dev/null 2>&1
	podman rmi -f "$tag" >/dev/null 2>&1
	bin/berth --root "$root" container prune -f >/dev/null 2>&1
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
# berth's own spec for the same command, pointed at the plain rootfs.
spec_ctr=$(bin/berth --root "$root" create "$tag" true)
bin/berth --root "$root" start -a "$spec_ctr"
mkdir -p "$work/bundle-spec"
jq --arg rootfs "$work/bundle/rootfs" '.root = {path: $rootfs, readonly: false}' \
	"$root/containers/$spec_ctr/config.json" >"$work/bundle-spec/config.json"

ms() { echo "$EPOCHREALTIME"; }
run_berth() { bin/berth --root "$root" run --rm "$tag" true; }
run_docker() { docker run --rm --network none "$tag" true; }
run_podman() { podman run --rm --network none "$tag" true; }
run_runc() { runc run --bundle "$work/bundle" "bench-$RANDOM$RANDOM" </dev/null; }
run_runc_spec() { runc run --bundle "$work/bundle-spec" "bench-$RANDOM$RANDOM" </dev/null; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

tools=(runc runc_spec berth docker podman)
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
	printf '%-9s run --rm true: %8.1f ms (median of %d)\n' "${t/_/-}" "${med[$t]}" "$RUNS"
done
printf 'ratio berth/runc:   %.2fx (goal <= 1.3x)\n' "$(echo "${med[berth]} / ${med[runc]}" | bc -l)"
printf 'ratio berth/runc-spec: %.2fx (what berth adds to the runtime)\n' "$(echo "${med[berth]} / ${med[runc_spec]}" | bc -l)"
printf 'ratio runc-spec/runc:  %.2fx (Docker-equivalent security inside runc)\n' "$(echo "${med[runc_spec]} / ${med[runc]}" | bc -l)"
printf 'ratio docker/berth: %.2fx\n' "$(echo "${med[docker]} / ${med[berth]}" | bc -l)"
printf 'ratio podman/berth: %.2fx (goal >= 5x for both)\n' "$(echo "${med[podman]} / ${med[berth]}" | bc -l)"

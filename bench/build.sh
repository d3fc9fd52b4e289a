#!/usr/bin/env bash
# Image builds: `berth build` against Docker's BuildKit (DOCKER_BUILDKIT=1
# docker build, Debian's docker.io client on the 20.10 daemon) and
# `buildah bud --layers`, side by side in one run, on a context of FILES
# files (default 2000, 4 KiB each in 20 directories) and the Dockerfile
#
#   FROM berth-bench/busybox        (the busybox rootfs, imported in each tool)
#   RUN mkdir -p /app && echo prepared > /app/prepared
#   COPY . /app/src
#   RUN find /app/src -type f | wc -l > /app/count
#
# Three measures per tool, each the median of several runs:
#   cold      --no-cache, from a fresh copy of the context (a new directory:
#             BuildKit keeps no synced context for it), COLD_RUNS runs;
#   no-op     the same build again, nothing changed, RUNS runs;
#   one-file  one file of the context changed before each build (COPY and
#             the RUN after it miss, the first RUN hits), RUNS runs.
# RUN steps get no network in every tool (this Docker has no bridge);
# Docker uses its built-in Dockerfile frontend (no BUILDKIT_SYNTAX image).
# Prints a table, the ratios and the goals: no-op <= 100 ms, one-file
# <= 0.5x BuildKit, cold <= 0.7x BuildKit.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
COLD_RUNS=${COLD_RUNS:-3}
FILES=${FILES:-2000}
DIRS=20

bash hack/install-deps.sh docker.io buildah runc busybox-static bc
bash hack/start-dockerd.sh
[ -x bin/berth ] || go build -o bin/berth ./cmd/berth
# Docker's own client (docker.io's): it has BuildKit built in; a newer
# client without the buildx plugin refuses DOCKER_BUILDKIT=1.
docker=/usr/bin/docker
work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
root="$work/berth-root"
base=berth-bench/busybox:latest
tag=berth-bench/build:latest
cleanup() {
	set +e
	bin/berth --root "$root" image prune -a -f >/dev/null 2>&1
	"$docker" rmi -f "$tag" "$base" >/dev/null 2>&1
	buildah rmi -f "$tag" "$base" >/dev/null 2>&1
	buildah rmi --prune >/dev/null 2>&1 # the intermediate images of --layers
	rm -rf "$work"
}
trap cleanup EXIT

bash hack/busybox-rootfs.sh "$work/rootfs.tar"
bin/berth --root "$root" import -c 'CMD ["sh"]' "$work/rootfs.tar" "$base" >/dev/null
"$docker" import -c 'CMD ["sh"]' "$work/rootfs.tar" "$base" >/dev/null
buildah pull -q "docker-daemon:$base" >/dev/null

# The context: FILES files of 4 KiB of random data in DIRS directories.
src="$work/context"
per=$(((FILES + DIRS - 1) / DIRS))
for d in $(seq -w 1 "$DIRS"); do
	mkdir -p "$src/d$d"
	head -c $((per * 4096)) /dev/urandom | split -b 4096 -d -a 4 - "$src/d$d/f"
done
n=$(find "$src" -type f | wc -l)
cat >"$src/Dockerfile" <<EOF
FROM ${base%:latest}
RUN mkdir -p /app && echo prepared > /app/prepared
COPY . /app/src
RUN find /app/src -type f | wc -l > /app/count
EOF
echo "context: $n files, $(du -sm "$src" | cut -f1) MiB"

build_berth() { bin/berth --root "$root" build -q --network none -t "$tag" "$@"; }
build_buildkit() { DOCKER_BUILDKIT=1 "$docker" build -q --network none -t "$tag" "$@"; }
build_buildah() { buildah bud --layers --pull=never --network none -q -t "$tag" "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# timed TOOL ARGS...: runs build_TOOL and prints the seconds it took; a
# failed build stops the benchmark.
timed() {
	local t=$1 t0 t1
	shift
	t0=$EPOCHREALTIME
	if ! build_"$t" "$@" >"$work/out" 2>&1; then
		echo "build by $t failed:" >&2
		tail -n 20 "$work/out" >&2
		exit 1
	fi
	t1=$EPOCHREALTIME
	echo "$t1 - $t0" | bc
}

tools=(berth buildkit buildah)
declare -A cold noop onefile
for i in $(seq "$COLD_RUNS"); do
	for t in "${tools[@]}"; do
		ctx="$work/cold-$t-$i"
		cp -a "$src" "$ctx"
		sync
		cold[$t]+="$(timed "$t" --no-cache "$ctx") "
		rm -rf "$ctx"
	done
done
for t in "${tools[@]}"; do
	cp -a "$src" "$work/ctx-$t"
	timed "$t" "$work/ctx-$t" >/dev/null # warm: every step in the cache
done
for i in $(seq "$RUNS"); do
	for t in "${tools[@]}"; do
		noop[$t]+="$(timed "$t" "$work/ctx-$t") "
	done
done
for i in $(seq "$RUNS"); do
	for t in "${tools[@]}"; do
		echo "change $i $RANDOM" >>"$work/ctx-$t/d07/f0042"
		onefile[$t]+="$(timed "$t" "$work/ctx-$t") "
	done
done

declare -A mc mn mo
printf '%-9s %10s %10s %10s\n' tool cold no-op one-file
for t in "${tools[@]}"; do
	mc[$t]=$(printf '%s\n' ${cold[$t]} | median)
	mn[$t]=$(printf '%s\n' ${noop[$t]} | median)
	mo[$t]=$(printf '%s\n' ${onefile[$t]} | median)
	printf '%-9s %8.3f s %8.3f s %8.3f s\n' "$t" "${mc[$t]}" "${mn[$t]}" "${mo[$t]}"
done
echo "(medians: cold of $COLD_RUNS runs, no-op and one-file of $RUNS)"
ratio() { echo "$1 / $2" | bc -l; }
printf 'berth/buildkit cold:      %.2f (goal <= 0.7)\n' "$(ratio "${mc[berth]}" "${mc[buildkit]}")"
printf 'berth/buildkit one-file:  %.2f (goal <= 0.5)\n' "$(ratio "${mo[berth]}" "${mo[buildkit]}")"
printf 'berth/buildkit no-op:     %.2f\n' "$(ratio "${mn[berth]}" "${mn[buildkit]}")"
printf 'berth no-op rebuild:      %.0f ms (goal <= 100 ms)\n' "$(echo "${mn[berth]} * 1000" | bc)"
printf 'berth/buildah cold:       %.2f\n' "$(ratio "${mc[berth]}" "${mc[buildah]}")"
printf 'berth/buildah one-file:   %.2f\n' "$(ratio "${mo[berth]}" "${mo[buildah]}")"
printf 'berth/buildah no-op:      %.2f\n' "$(ratio "${mn[berth]}" "${mn[buildah]}")"

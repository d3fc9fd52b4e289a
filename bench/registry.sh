#!/usr/bin/env bash
# Registry server: `berth registry serve` against CNCF Distribution 2.8
# (Debian's docker-registry), side by side in one run. Each server listens
# on a free 127.0.0.1 port with a fresh, empty root; both roots are under
# one directory on the same disk filesystem (TMPBASE, default /var/tmp: not
# a tmpfs). Neither has auth; Distribution runs the Debian package's stock
# configuration otherwise (in-memory blob descriptor cache), both log at
# warn/error level into files, and Distribution's access log is off.
#
# bench/regload (built once) drives each server in turn with the same
# concurrency C (default 32) for D (default 10s) per test, RUNS times
# (default 3, the servers alternating; the median run counts):
#   manifest-get  GET of an OCI manifest by tag, docker's Accept headers
#   blob-head     HEAD of a small blob
#   blob-get      GET of a 64 MiB blob (page-cached after the seed push)
#   blob-push     monolithic POST + PUT of a fresh 1-4 KiB blob
# Memory: idle RSS is VmRSS 2 s after start, before any request but the
# readiness probe; peak RSS is VmHWM after every test. The CPU the server
# and regload used in each timed phase (% of one CPU) is printed too: when
# their sum nears 100% x CPUs, the machine, not the server, is the limit.
#
# Prints per metric berth, Distribution, the ratio (berth/Distribution:
# > 1 is better for throughput, < 1 for memory) and the goals: manifest GET
# and small-blob push >= 6x Distribution, blob GET >= 2 GiB/s, idle RSS
# <= 30 MB (MB = 10^6 bytes). A missed goal is reported, not an error; a
# server that fails a test (regload checks every response) makes the exit
# status 1. The load generator shares the machine's CPUs with the server
# under test.
#
# Environment: C, D, RUNS, TESTS (a subset of the four, in order), TMPBASE,
# BERTH (the binary; default bin/berth, built when missing or without the
# registry command);
# CALIBRATE=1 runs a second Distribution in berth's column, to check the
# harness itself (every ratio should be close to 1).
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-32}
D=${D:-10s}
RUNS=${RUNS:-3}
TESTS=${TESTS:-manifest-get blob-head blob-get blob-push}
TMPBASE=${TMPBASE:-/var/tmp}
CALIBRATE=${CALIBRATE:-}

bash hack/install-deps.sh docker-registry
berth=${BERTH:-bin/berth}
# bin/berth is built when missing or too old to have the registry.
if [ -z "$CALIBRATE" ] && [ -z "${BERTH:-}" ] && ! bin/berth registry serve --help >/dev/null 2>&1; then
	go build -o bin/berth ./cmd/berth
fi
work=$(mktemp -d "$TMPBASE/berth-bench-registry.XXXXXX")
go build -o "$work/regload" ./bench/regload
declare -A pid port
cleanup() {
	local s
	for s in "${!pid[@]}"; do
		kill "${pid[$s]}" 2>/dev/null || true
		wait "${pid[$s]}" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# free_port prints a TCP port nothing listens on at 127.0.0.1 (and that no
# server of ours has been given).
free_port() {
	local p s used
	while :; do
		p=$((20000 + RANDOM % 40000))
		used=
		for s in "${!port[@]}"; do [ "${port[$s]}" = "$p" ] && used=1; done
		[ -z "$used" ] || continue
		(: >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			echo "$p"
			return
		}
	done
}

# distribution_config ROOT PORT: Debian's stock config.yml without auth and
# delete, quieter logs.
distribution_config() {
	cat <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $1
http:
  addr: 127.0.0.1:$2
  headers:
    X-Content-Type-Options: [nosniff]
YML
}

# start NAME: starts server NAME (berth or distribution) in the background
# and waits until /v2/ answers 200.
start() {
	local s=$1 p
	p=$(free_port)
	port[$s]=$p
	mkdir -p "$work/$s-root"
	if [ "$s" = berth ] && [ -z "$CALIBRATE" ]; then
		"$berth" registry serve --addr "127.0.0.1:$p" --root "$work/$s-root" \
			--log-level warn >"$work/$s.log" 2>&1 &
	else
		distribution_config "$work/$s-root" "$p" >"$work/$s.yml"
		docker-registry serve "$work/$s.yml" >"$work/$s.log" 2>&1 &
	fi
	pid[$s]=$!
	for _ in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$p/v2/" && return
		kill -0 "${pid[$s]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "registry.sh: $s did not come up on 127.0.0.1:$p; the end of its log:" >&2
	tail -n 20 "$work/$s.log" >&2
	exit 1
}

# kib NAME FIELD: a field of /proc/PID/status in KiB.
kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/${pid[$1]}/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k * 1024 / 1e6}'; }

servers=(berth distribution)
for s in "${servers[@]}"; do start "$s"; done
sleep 2
declare -A res
for s in "${servers[@]}"; do res[idle-rss,$s]=$(mb "$(kib "$s" VmRSS)"); done

echo "registry bench: -c $C -d $D, $(nproc) CPUs (shared by regload and the server), roots under $work ($(df --output=fstype "$work" | tail -n 1))"
echo "distribution: $(docker-registry --version 2>&1 | head -n 1); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$CALIBRATE" ] || echo "CALIBRATE=1: the berth column is a second Distribution"
failed=
for t in $TESTS; do
	for _ in $(seq "$RUNS"); do
		for s in "${servers[@]}"; do
			sync
			sleep 1
			# "TEST UNIT=N server-cpu=P% client-cpu=Q%"
			if out=$("$work/regload" -url "http://127.0.0.1:${port[$s]}" -test "$t" -c "$C" -d "$D" \
				-pid "${pid[$s]}" 2>"$work/regload.err"); then
				echo "$out" >>"$work/$t.$s"
			else
				failed=1
				echo "registry.sh: $t against $s failed:" >&2
				cat "$work/regload.err" >&2
			fi
			if ! kill -0 "${pid[$s]}" 2>/dev/null; then
				echo "registry.sh: $s exited during $t; the end of its log:" >&2
				tail -n 20 "$work/$s.log" >&2
				exit 1
			fi
		done
	done
	for s in "${servers[@]}"; do
		if [ ! -f "$work/$t.$s" ] || [ "$(wc -l <"$work/$t.$s")" -ne "$RUNS" ]; then
			res[$t,$s]=FAIL
			continue
		fi
		# The median run: sorted by rate, the middle (lower middle) line.
		read -r _ rate scpu ccpu < <(awk '{split($2, a, "="); print a[2], $0}' "$work/$t.$s" |
			sort -n | cut -d' ' -f2- | sed -n "$(((RUNS + 1) / 2))p")
		res[$t,unit]=${rate%%=*}
		res[$t,$s]=${rate#*=}
		res[$t,cpu,$s]="${scpu#*=} + ${ccpu#*=}"
		res[$t,all,$s]=$(awk '{split($2, a, "="); printf "%s%s", sep, a[2]; sep = " "}' "$work/$t.$s")
	done
done
for s in "${servers[@]}"; do res[peak-rss,$s]=$(mb "$(kib "$s" VmHWM)"); done

# ratio A B: A/B, or "-" when either is not a number.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) { print "-"; exit }
		printf "%.2fx", a / b }'
}
# verdict OK: "met" or "MISSED"
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a ~ /^[0-9.]+$/ && a + 0 >= b + 0) ? 1 : 0 }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a ~ /^[0-9.]+$/ && a + 0 <= b + 0) ? 1 : 0 }'; }

printf '\n%-24s %12s %14s %9s  %s\n' metric berth distribution ratio goal
row() { # LABEL BERTH DIST [GOAL]
	local line
	line=$(printf '%-24s %12s %14s %9s  %s' "$1" "$2" "$3" "$(ratio "$2" "$3")" "${4:-}")
	echo "${line%"${line##*[! ]}"}"
}
label() { # TEST NAME
	echo "$2 (${res[$1,unit]:-?})"
}
for t in $TESTS; do
	b=${res[$t,berth]} d=${res[$t,distribution]}
	r=$(ratio "$b" "$d")
	case $t in
	manifest-get) goal=">= 6x: $(verdict "$(ge "${r%x}" 6)")" ;;
	blob-push) goal=">= 6x: $(verdict "$(ge "${r%x}" 6)")" ;;
	blob-get) goal="berth >= 2048 MiB/s: $(verdict "$(ge "$b" 2048)")" ;;
	*) goal= ;;
	esac
	row "$(label "$t" "$t")" "$b" "$d" "$goal"
done
row "idle RSS (MB)" "${res[idle-rss,berth]}" "${res[idle-rss,distribution]}" \
	"berth <= 30 MB: $(verdict "$(le "${res[idle-rss,berth]}" 30)")"
row "peak RSS (MB)" "${res[peak-rss,berth]}" "${res[peak-rss,distribution]}"
printf '\nCPU in the median run, server + regload (%% of one CPU; %d CPUs):\n' "$(nproc)"
for t in $TESTS; do
	printf '%-24s %16s %18s\n' "$t" "${res[$t,cpu,berth]:--}" "${res[$t,cpu,distribution]:--}"
done
echo "every run (rate):"
for t in $TESTS; do
	for s in "${servers[@]}"; do printf '  %-14s %-13s %s\n' "$t" "$s" "${res[$t,all,$s]:--}"; done
done
[ -z "$failed" ] || exit 1

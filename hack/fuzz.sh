#!/usr/bin/env bash
# Runs every Fuzz* target of the module with `go test -fuzz`, FUZZTIME each
# (default 30s). Usage: hack/fuzz.sh [PACKAGE_DIR...]
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}

dirs=("$@")
if [ "${#dirs[@]}" -eq 0 ]; then
	mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . |
		xargs -r -n1 dirname | LC_ALL=C sort -u)
fi

n=0
for d in "${dirs[@]}"; do
	for name in $(grep -hoE '^func Fuzz[A-Za-z0-9_]*\(' "$d"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(/\1/' | LC_ALL=C sort -u); do
		echo "==> $d $name ($FUZZTIME)"
		"$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "./${d#./}"
		n=$((n + 1))
	done
done
if [ "$n" -eq 0 ]; then
	echo "fuzz: no Fuzz* targets found"
fi

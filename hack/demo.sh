#!/usr/bin/env bash
# End-to-end demo of berth's image commands on a private root, ending with
# Docker running an image that berth built and saved.
#
# Usage: hack/demo.sh   (`make demo` installs the peers and builds bin/berth first)
# Env:   BERTH=path/to/berth (default bin/berth, built if missing)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BERTH=${BERTH:-$repo/bin/berth}
if [ ! -x "$BERTH" ]; then
	(cd "$repo" && go build -o bin/berth ./cmd/berth)
	BERTH=$repo/bin/berth
fi

export BERTH_ROOT
BERTH_ROOT=$(mktemp -d /tmp/berth-demo-root.XXXXXX)
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
docker_img=
registry_pid=

cleanup() {
	set +e
	# Detach anything berth left mounted below the root before deleting it.
	awk -v r="$BERTH_ROOT" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m"; done
	if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
	rm -rf "$BERTH_ROOT" "$work"
	if [ -n "$docker_img" ]; then docker rmi $docker_img >/dev/null 2>&1; fi
}
trap cleanup EXIT

bold='' norm=''
if [ -t 1 ]; then
	bold=$(tput bold 2>/dev/null || true)
	norm=$(tput sgr0 2>/dev/null || true)
fi
section() { printf '\n%s==> %s%s\n' "$bold" "$*" "$norm"; }
# show CMD...: print a command the way one would type it.
show() {
	local a out='$'
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
			out+=" $a"
		else
			out+=" '${a//\'/\'\\\'\'}'"
		fi
	done
	printf '%s\n' "$out"
}
# berth CMD...: show the command, then run it.
berth() {
	show berth "$@"
	"$BERTH" "$@"
}

echo "berth demo: root $BERTH_ROOT, binary $BERTH"

section "Make a busybox root filesystem (hack/busybox-rootfs.sh)"
bash "$repo/hack/busybox-rootfs.sh" "$work/rootfs.tar"
ls -l "$work/rootfs.tar"

section "Import it as an image"
berth import -c 'CMD ["sh"]' "$work/rootfs.tar" busybox:latest

section "List, tag, inspect, history"
berth images
berth tag busybox:latest demo/app:1
berth images
berth inspect -f '{{.Id}}' demo/app:1
id=$("$BERTH" inspect -f '{{.Id}}' demo/app:1)
berth history busybox

section "Save to a Docker/OCI archive, remove, load it back"
berth save -o "$work/x.tar" demo/app:1
tar -tf "$work/x.tar" | sort | sed 's/^/    /'
berth rmi demo/app:1 busybox:latest
berth images
berth load -i "$work/x.tar"
berth images
if [ "$("$BERTH" inspect -f '{{.Id}}' demo/app:1)" != "$id" ]; then
	echo "demo: the loaded image has another ID" >&2
	exit 1
fi

section "Mount the image's root filesystem"
show berth image mount demo/app:1
mnt=$("$BERTH" image mount demo/app:1)
echo "$mnt"
show ls "$mnt"
ls "$mnt"
show "$mnt/bin/busybox" echo hi
"$mnt/bin/busybox" echo hi
berth image unmount demo/app:1

section "Run containers: attached, detached, exec, logs, stop"
berth run --rm demo/app:1 sh -c 'echo "hello from pid $$ on $(hostname)"; grep -E "^(CapEff|Seccomp):" /proc/self/status'
show berth run -d --name web demo/app:1 sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'
"$BERTH" run -d --name web demo/app:1 sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'
berth ps
berth exec web sh -c 'echo "exec sees: $(ps | wc -l) lines of ps"'
sleep 1
berth logs --tail 2 web
berth stop -t 1 web
berth ps -a

section "Commit a container's changes and run the new image"
berth run --name changer demo/app:1 sh -c 'echo committed by berth > /hello; rm /bin/vi'
berth diff changer
berth commit -c 'CMD ["cat", "/hello"]' -m "add /hello" changer demo/app:2
berth run --rm demo/app:2
berth history demo/app:2
berth rm web changer

section "Build an image from a Dockerfile, then rebuild it from the cache"
mkdir -p "$work/ctx/src"
for i in 1 2 3; do echo "file $i" > "$work/ctx/src/f$i.txt"; done
echo "src/f3.txt" > "$work/ctx/.dockerignore"
cat > "$work/ctx/Dockerfile" <<'DOCKERFILE'
FROM demo/app:1 AS base
ARG GREETING=hello
RUN echo "$GREETING from a RUN step" > /greeting

FROM base
WORKDIR /app
COPY src/ ./src/
ENV APP_HOME=/app
CMD ["sh", "-c", "cat /greeting; ls /app/src"]
DOCKERFILE
show cat "$work/ctx/Dockerfile"
cat "$work/ctx/Dockerfile"
berth build --progress plain -t demo/built:1 "$work/ctx"
berth run --rm demo/built:1
berth build --progress plain -t demo/built:1 "$work/ctx" 2>&1 | grep -E 'CACHED|^#[0-9]+ \[' || true
berth history demo/built:1

section "Serve a registry, push to it, pull back with skopeo, collect garbage"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
show berth registry serve --addr "$reg" --root "$work/registry" '&'
"$BERTH" registry serve --addr "$reg" --root "$work/registry" --log-level warn &
registry_pid=$!
for _ in $(seq 50); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
berth tag demo/built:1 "$reg/demo/built:1"
berth push "$reg/demo/built:1"
show curl -s "http://$reg/v2/_catalog"
curl -s "http://$reg/v2/_catalog"; echo
show skopeo inspect --tls-verify=false "docker://$reg/demo/built:1" '|' grep Digest
skopeo inspect --tls-verify=false "docker://$reg/demo/built:1" | grep '"Digest"'
berth rmi "$reg/demo/built:1"
berth pull "$reg/demo/built:1"
berth registry gc --root "$work/registry"
kill "$registry_pid"; wait "$registry_pid" || true
registry_pid=

section "Disk usage and consistency check"
berth system df
berth system check
echo "system check: OK"

section "Docker runs the image berth saved"
if command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ]; then
	bash "$repo/hack/start-dockerd.sh"
	show docker load -i "$work/x.tar"
	docker load -i "$work/x.tar"
	docker_img=demo/app:1
	show docker inspect -f '{{.Id}}' demo/app:1
	did=$(docker inspect -f '{{.Id}}' demo/app:1)
	echo "$did"
	if [ "$did" != "$id" ]; then
		echo "demo: Docker's ID $did differs from berth's $id" >&2
		exit 1
	fi
	show docker run --rm --network none demo/app:1 echo hello from berth
	docker run --rm --network none demo/app:1 echo hello from berth
	berth save -o "$work/committed.tar" demo/app:2
	show docker load -i "$work/committed.tar"
	docker load -i "$work/committed.tar"
	docker_img="demo/app:1 demo/app:2"
	show docker run --rm --network none demo/app:2
	docker run --rm --network none demo/app:2
else
	echo "dockerd is not installed (hack/install-deps.sh installs it): skipped"
fi

section "Done"

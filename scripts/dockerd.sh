#!/usr/bin/env bash
# Start and stop a throw-away Docker daemon (Debian's docker.io) for the end-to-end tests of
# ko.local, kind.local and `docker load`: vfs storage, no iptables, no bridge (containers
# run with --network=none), everything under DIR so it collides with nothing else.
#
#   scripts/dockerd.sh start DIR    start; prints the DOCKER_HOST to use (unix://DIR/docker.sock)
#   scripts/dockerd.sh stop DIR     stop the daemon started in DIR and remove its containers
#
# Files in DIR: docker.sock, pid, log, data/ (images), exec/ (runtime state).
# Readiness: waits (about 30 s) until `docker version` reaches the server.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

usage() {
	echo "usage: $0 start DIR | stop DIR" >&2
	exit 2
}

start() {
	[[ $# -eq 1 ]] || usage
	local dir=$1
	command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (apt-get install docker.io, or run scripts/test.sh)"
	command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (apt-get install docker.io)"
	mkdir -p "$dir/data" "$dir/exec"
	dir=$(cd "$dir" && pwd)
	if [[ -f "$dir/pid" ]] && pid_alive "$(cat "$dir/pid")"; then
		die "a Docker daemon is already running from $dir (pid $(cat "$dir/pid")); stop it first"
	fi
	local sock="$dir/docker.sock"
	rm -f "$sock"
	: >"$dir/log"
	# setsid: its own session, so it outlives this script and ignores our terminal's signals.
	# DOCKER_* from the caller would point the daemon's own client settings elsewhere.
	env -u DOCKER_HOST -u DOCKER_CONFIG setsid dockerd \
		--host "unix://$sock" \
		--data-root "$dir/data" \
		--exec-root "$dir/exec" \
		--pidfile "$dir/dockerd.pid" \
		--storage-driver=vfs \
		--iptables=false \
		--ip6tables=false \
		--bridge=none \
		</dev/null >>"$dir/log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/pid"
	local i
	for ((i = 0; i < 150; i++)); do
		if ! pid_alive "$pid"; then
			echo "dockerd.sh: dockerd exited during start-up; last lines of $dir/log:" >&2
			tail -n 20 "$dir/log" >&2
			rm -f "$dir/pid"
			exit 1
		fi
		if [[ -S "$sock" ]] && DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
			echo "dockerd.sh: Docker daemon on unix://$sock (pid $pid, dir $dir)" >&2
			echo "unix://$sock"
			return 0
		fi
		sleep 0.2
	done
	echo "dockerd.sh: the daemon did not answer on unix://$sock within 30 s; last lines of $dir/log:" >&2
	tail -n 20 "$dir/log" >&2
	kill "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
	exit 1
}

stop() {
	[[ $# -eq 1 ]] || usage
	local dir=$1 pid ids
	[[ -f "$dir/pid" ]] || return 0
	pid=$(cat "$dir/pid")
	if pid_alive "$pid"; then
		# Containers left by a failed test would keep their shims (and mounts) alive.
		ids=$(DOCKER_HOST="unix://$dir/docker.sock" docker ps -aq 2>/dev/null || true)
		if [[ -n "$ids" ]]; then
			# shellcheck disable=SC2086
			DOCKER_HOST="unix://$dir/docker.sock" docker rm -f $ids >/dev/null 2>&1 || true
		fi
		stop_pid "$pid" 10
	fi
	rm -f "$dir/pid"
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case "$cmd" in
start) start "$@" ;;
stop) stop "$@" ;;
*) usage ;;
esac

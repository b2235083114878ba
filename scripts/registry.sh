#!/usr/bin/env bash
# Start and stop a throw-away OCI registry (Debian's docker-registry, distribution 2.8, or
# the binary KO_REGISTRY_BIN names) on the loopback interface, for the end-to-end tests and
# the benchmarks.
#
#   scripts/registry.sh start DIR PORT [OPTIONS]   start; blobs under DIR/data
#   scripts/registry.sh stop DIR                   stop the registry started in DIR
#
# PORT 0 lets the kernel pick a free port as the registry binds it (no other process can
# take it in between); the port is read back from the registry's log ("listening on
# 127.0.0.1:PORT"). Either way the port it listens on ends up in DIR/port.
#
# Files in DIR: config.yml (generated), pid, port, log, data/.
#
# Options (each adds one section to the generated config; the plain HTTP variant
# needs none):
#   --htpasswd FILE        require basic auth against FILE (bcrypt entries, `htpasswd -B`)
#   --tls CERT KEY         serve HTTPS with this certificate and key
#   --token REALM SERVICE ISSUER BUNDLE
#                          require bearer tokens from the token service at REALM, signed
#                          by a key whose certificate chain ends in the PEM file BUNDLE
#   --readonly             refuse every write (pushes fail), for error-path tests
#
# Readiness: waits (about 20 s) until GET /v2/ answers (401 counts when auth is on).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	echo "usage: $0 start DIR PORT [--htpasswd FILE] [--tls CERT KEY] [--token REALM SERVICE ISSUER BUNDLE] [--readonly] | stop DIR" >&2
	exit 2
}

# The registry binary: KO_REGISTRY_BIN (scripts/bench.sh sets it to distribution v3, whose
# configuration file is the same), else Debian's package's /usr/bin/docker-registry.
registry_bin() {
	if [[ -n "${KO_REGISTRY_BIN:-}" ]]; then
		echo "$KO_REGISTRY_BIN"
	elif [[ -x /usr/bin/docker-registry ]]; then
		echo /usr/bin/docker-registry
	elif command -v docker-registry >/dev/null 2>&1; then
		command -v docker-registry
	else
		die "docker-registry is not installed (apt-get install docker-registry, or run scripts/test.sh)"
	fi
}

# --- config sections -------------------------------------------------------

# Ends inside `http:`: config_tls continues that block.
config_base() { # DIR PORT READONLY(true|false)
	cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $1/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: ${3:-false}
# Manifests may name foreign layers by URL (old Windows bases), as public registries allow;
# distribution refuses them unless told which URLs are fine.
validation:
  manifests:
    urls:
      allow:
        - ^https?://
http:
  addr: 127.0.0.1:$2
  secret: kubectl-ko-test
  headers:
    X-Content-Type-Options: [nosniff]
EOF
}

# Basic auth from an htpasswd file (distribution 2.8 only accepts bcrypt hashes).
config_htpasswd() { # FILE
	cat <<EOF
auth:
  htpasswd:
    realm: kubectl-ko-test
    path: $1
EOF
}

# Bearer tokens from an external token service (distribution's `auth: token`).
config_token() { # REALM SERVICE ISSUER BUNDLE
	cat <<EOF
auth:
  token:
    realm: $1
    service: $2
    issuer: $3
    rootcertbundle: $4
EOF
}

# TLS: appended after the http section, so it must be indented under it.
config_tls() { # CERT KEY
	cat <<EOF
  tls:
    certificate: $1
    key: $2
EOF
}

# --- process handling ------------------------------------------------------

port_answers() { # PORT
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The port the registry logged it listens on (distribution logs `listening on ADDR` once
# bound, with `, tls` after it for HTTPS); empty until then.
logged_port() { # LOG
	sed -n '/msg="listening on /{s/.*msg="listening on [^"]*:\([0-9][0-9]*\)[,"].*/\1/p;q;}' "$1"
}

start() {
	[[ $# -ge 2 ]] || usage
	local dir=$1 port=$2
	shift 2
	local htpasswd="" cert="" key="" readonly=false token=()
	while [[ $# -gt 0 ]]; do
		case "$1" in
		--htpasswd)
			[[ $# -ge 2 ]] || usage
			htpasswd=$2
			shift 2
			;;
		--tls)
			[[ $# -ge 3 ]] || usage
			cert=$2 key=$3
			shift 3
			;;
		--readonly)
			readonly=true
			shift
			;;
		--token)
			[[ $# -ge 5 ]] || usage
			token=("$2" "$3" "$4" "$(realpath "$5")")
			shift 5
			;;
		*) usage ;;
		esac
	done
	[[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"

	mkdir -p "$dir/data"
	dir=$(cd "$dir" && pwd)
	[[ -z "$htpasswd" ]] || htpasswd=$(realpath "$htpasswd")
	[[ -z "$cert" ]] || cert=$(realpath "$cert")
	[[ -z "$key" ]] || key=$(realpath "$key")

	if [[ -f "$dir/pid" ]] && pid_alive "$(cat "$dir/pid")"; then
		die "a registry is already running from $dir (pid $(cat "$dir/pid")); stop it first"
	fi
	if [[ "$port" != 0 ]] && port_answers "$port"; then
		die "127.0.0.1:$port is already in use"
	fi

	{
		config_base "$dir" "$port" "$readonly"
		[[ -z "$cert" ]] || config_tls "$cert" "$key"
		[[ -z "$htpasswd" ]] || config_htpasswd "$htpasswd"
		[[ ${#token[@]} -eq 0 ]] || config_token "${token[@]}"
	} >"$dir/config.yml"

	local bin scheme=http curl_opts=(-sS -o /dev/null -w '%{http_code}' --max-time 2)
	bin=$(registry_bin)
	if [[ -n "$cert" ]]; then
		scheme=https
		curl_opts+=(-k)
	fi

	# setsid: its own session, so it outlives this script and ignores our terminal's signals.
	# Neutralise the registry's environment overrides (REGISTRY_*) inherited from the caller.
	local unset_env=() var
	for var in $(compgen -e); do
		[[ "$var" != REGISTRY_* ]] || unset_env+=(-u "$var")
	done
	: >"$dir/log"
	env "${unset_env[@]}" setsid "$bin" serve "$dir/config.yml" </dev/null >>"$dir/log" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/pid"

	local i code requested=$port
	rm -f "$dir/port"
	for ((i = 0; i < 100; i++)); do
		if ! pid_alive "$pid"; then
			echo "registry.sh: the registry exited during start-up; last lines of $dir/log:" >&2
			tail -n 20 "$dir/log" >&2
			rm -f "$dir/pid"
			exit 1
		fi
		if [[ "$requested" == 0 ]]; then
			port=$(logged_port "$dir/log")
			if [[ -z "$port" ]]; then
				sleep 0.2
				continue
			fi
		fi
		code=$(curl "${curl_opts[@]}" "$scheme://127.0.0.1:$port/v2/" 2>/dev/null || true)
		if [[ "$code" == 200 || ("$code" == 401 && (-n "$htpasswd" || ${#token[@]} -gt 0)) ]]; then
			echo "$port" >"$dir/port"
			echo "registry.sh: registry on $scheme://127.0.0.1:$port (pid $pid, dir $dir)" >&2
			return 0
		fi
		sleep 0.2
	done
	echo "registry.sh: the registry did not answer on $scheme://127.0.0.1:$port/v2/ within 20 s; last lines of $dir/log:" >&2
	tail -n 20 "$dir/log" >&2
	kill "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
	exit 1
}

stop() {
	[[ $# -eq 1 ]] || usage
	local dir=$1
	[[ -f "$dir/pid" ]] || return 0
	stop_pid "$(cat "$dir/pid")" 5
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

# Shared helpers for the project's scripts. Source it: `. "$(dirname "$0")/lib.sh"`.
# shellcheck shell=bash

# Print a step header to stderr.
step() {
	printf '==> %s\n' "$*" >&2
}

die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

# True when the Debian package is installed.
deb_installed() { # PACKAGE
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# Install the Debian packages that are missing; calls apt-get only when something is
# missing, and `apt-get update` only when the package lists are absent or stale.
ensure_debs() { # PACKAGE...
	local missing=() pkg
	for pkg in "$@"; do
		deb_installed "$pkg" || missing+=("$pkg")
	done
	[[ ${#missing[@]} -gt 0 ]] || return 0
	command -v apt-get >/dev/null 2>&1 ||
		die "missing packages (${missing[*]}) and no apt-get to install them"
	step "installing ${missing[*]}"
	local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}")
	if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	fi
	if ! as_root "${install[@]}"; then
		# The lists may be stale (a package moved to a new version): refresh once and retry.
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
		as_root "${install[@]}"
	fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { # PORT
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print a free loopback port in [BASE, BASE+RANGE).
free_port() { # [BASE] [RANGE]
	local base=${1:-5000} range=${2:-1000} port i
	for ((i = 0; i < 100; i++)); do
		port=$((base + RANDOM % range))
		if ! port_in_use "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "no free port found in $base..$((base + range - 1))"
}

pid_alive() { # PID
	[[ -n "$1" ]] && kill -0 "$1" 2>/dev/null
}

# Stop PID politely (TERM), then KILL after about SECONDS (default 10) if it is still alive.
stop_pid() { # PID [SECONDS]
	local pid=$1 tries=$((${2:-10} * 10)) i
	pid_alive "$pid" || return 0
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < tries; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

# The rustc flags of the shipped kubectl-ko for a Rust TARGET, beyond the profile: on Linux a
# non-PIE executable (`-C relocation-model=static`, as Go links its own binaries there), whose
# start-up applies no dynamic relocations: a third less memory for a short run, since the one
# executable holds every command. Build with `--target TARGET` so that proc macros and build
# scripts, which must stay position-independent, do not get the flag. macOS requires PIE.
release_rustflags() { # TARGET
	case "$1" in
	*-linux-*) printf '%s' "-Crelocation-model=static" ;;
	esac
}

# A Go program `go install`ed once from the Go module proxy (outside any module, so no
# go.mod of ours plays a part) into ~/.cache/kubectl-ko-bench/NAME-VERSION, whole or not at
# all. Prints the binary's path.
ensure_go_program() { # NAME PACKAGE VERSION
	local root="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-bench" dir staging
	dir="$root/$1-$3"
	if [[ ! -x "$dir/$1" ]]; then
		step "go install $2@$3"
		mkdir -p "$root"
		staging=$(mktemp -d "$root/install.XXXXXX")
		(cd / && env -u GOFLAGS GOBIN="$staging" go install "$2@$3") >&2 ||
			{ rm -rf "$staging"; die "go install $2@$3 failed"; }
		rm -rf "$dir"
		mv "$staging" "$dir"
	fi
	echo "$dir/$1"
}

# ko itself, the tool kubectl-ko is measured and checked against.
ensure_ko() { # VERSION
	ensure_go_program ko github.com/google/ko "$1"
}

# The registry the benchmarks push to: distribution's current release, built with this
# machine's Go. Debian's docker-registry (distribution 2.8, built with Go 1.19) spends two to
# nine times the CPU per request (no SHA-NI for the blobs it hashes, its URL router rebuilt
# per request), and on a two-core machine that CPU is taken from the builds being measured.
ensure_bench_registry() {
	ensure_go_program registry github.com/distribution/distribution/v3/cmd/registry v3.0.0
}

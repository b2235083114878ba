#!/usr/bin/env bash
# Install the whole kubectl-ko suite from this checkout: the one kubectl-ko executable and
# every other name of the suite (its kubectl-ko-* commands, kubectl_complete-ko and a
# kubectl_complete-ko-* for each command, docker-credential-ko) as a symlink to it: kubectl-ko runs the command its name says.
#
#   scripts/install.sh [--profile PROFILE] [--bin-dir DIR] [PREFIX]
#
# Builds kubectl-ko (cargo build --profile PROFILE -p kubectl-ko), copies it into PREFIX/bin
# (default PREFIX: ~/.local), creating it, and links the other names next to it. Says what it
# installed and whether PREFIX/bin is on PATH. Run it from anywhere; it does not change your
# working directory.
#
#   --profile PROFILE  cargo profile to build with (default: release)
#   --bin-dir DIR      install the kubectl-ko already in DIR instead of building (the tests
#                      install their debug build this way)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
. "$ROOT/scripts/lib.sh"

usage() {
	sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

profile=release bin_dir="" prefix=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--profile | --bin-dir)
		[[ $# -ge 2 ]] || usage
		case "$1" in
		--profile) profile=$2 ;;
		--bin-dir) bin_dir=$(cd "$2" && pwd) || die "--bin-dir $2: no such directory" ;;
		esac
		shift 2
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[[ -z "$prefix" ]] || usage
		prefix=$1
		shift
		;;
	esac
done
[[ -n "$prefix" ]] || prefix=${HOME:?HOME is not set; name a PREFIX}/.local
mkdir -p "$prefix/bin" 2>/dev/null || die "cannot create $prefix/bin; name a PREFIX you can write to"
bin=$(cd "$prefix/bin" && pwd)
# Checked before a build that takes minutes.
[[ -w "$bin" ]] || die "cannot write to $bin; name a PREFIX you can write to (or run as its owner)"

# Every binary target of the workspace (a thin crate per name), so a new command is linked
# without edits here. Without cargo (an executable built elsewhere, --bin-dir), the plugin
# crates' directories, which are named after their binaries.
if command -v cargo >/dev/null 2>&1; then
	metadata=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps) || die "cargo metadata failed"
	if command -v jq >/dev/null 2>&1; then
		names=$(jq -r '.packages[].targets[] | select(.kind | index("bin")) | .name' <<<"$metadata")
	else
		names=$(grep -o '"kind":\["bin"\],"crate_types":\["bin"\],"name":"[^"]*"' <<<"$metadata" |
			sed 's/.*"name":"//; s/"$//')
	fi
elif [[ -n "$bin_dir" ]]; then
	names=$(cd "$ROOT/plugins" && for dir in */; do echo "${dir%/}"; done)
else
	die "cargo is not on PATH: install Rust (https://rustup.rs), or pass --bin-dir with a kubectl-ko built elsewhere"
fi
# kubectl completes `kubectl ko build <TAB>` with the completer of the longest plugin name on
# PATH, kubectl_complete-ko-build once kubectl-ko-build is installed: one for each command.
for name in $names; do
	case "$name" in
	kubectl-ko-*) names+=$'\n'"kubectl_complete-ko-${name#kubectl-ko-}" ;;
	esac
done
# (No mapfile: macOS ships bash 3.2.)
sorted=()
while IFS= read -r name; do
	[[ -z "$name" ]] || sorted+=("$name")
done < <(LC_ALL=C sort -u <<<"$names")
names=("${sorted[@]}")
[[ " ${names[*]} " == *" kubectl-ko "* ]] || die "cargo metadata lists no kubectl-ko binary"

if [[ -n "$bin_dir" ]]; then
	from=$bin_dir
else
	target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
	profile_dir=$profile
	[[ "$profile" != dev ]] || profile_dir=debug
	step "cargo build --profile $profile -p kubectl-ko (one executable for all ${#names[@]} names)"
	(cd "$ROOT" && cargo build --profile "$profile" -p kubectl-ko --bin kubectl-ko) || die "cargo build failed"
	from=$target_dir/$profile_dir
fi
[[ -f "$from/kubectl-ko" ]] || die "$from/kubectl-ko is missing: build it first (cargo build -p kubectl-ko)"

# Each through a temporary name and a rename, so a running copy is not overwritten in place
# and a binary installed by an older version under the same name is replaced.
install -m 0755 "$from/kubectl-ko" "$bin/.kubectl-ko.tmp"
mv -f "$bin/.kubectl-ko.tmp" "$bin/kubectl-ko"
for name in "${names[@]}"; do
	if [[ "$name" != kubectl-ko ]]; then
		ln -sfn kubectl-ko "$bin/.$name.tmp"
		# (Not `mv -T`, which BSD mv lacks: a directory in the way is an error instead.)
		[[ ! -d "$bin/$name" ]] || die "$bin/$name is a directory (or a link to one); remove it"
		mv -f "$bin/.$name.tmp" "$bin/$name"
	fi
	echo "$bin/$name"
done
step "installed ${#names[@]} programs into $bin (kubectl-ko, and the other names as links to it)"

case ":${PATH:-}:" in
*":$bin:"* | *":$bin/:"*) step "$bin is on PATH: try \`kubectl ko version\`" ;;
*)
	step "$bin is NOT on PATH; add it, for example:"
	# shellcheck disable=SC2016 # $PATH is for the user to type
	printf '    export PATH="%s:$PATH"    # in ~/.bashrc or ~/.profile\n' "$bin" >&2
	;;
esac

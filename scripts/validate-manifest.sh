#!/usr/bin/env bash
# Check a krew plugin manifest with krew's own validator, validate-krew-manifest (the one krew's
# plugin index runs on every submission), from the krew release scripts/krew.sh builds:
#
#   scripts/validate-manifest.sh MANIFEST
#       the structure: name (from the file name), version, descriptions, each platform's
#       selector, uri, sha256, files and bin, and no two platforms for one os/arch
#   scripts/validate-manifest.sh --archives DIR MANIFEST
#       that too, then installs every platform entry with krew from DIR's archives: krew
#       downloads the archive, checks its sha256, unpacks it for that entry's os/arch, and
#       the validator checks that a LICENSE file was installed
#
# With --archives, DIR is served on 127.0.0.1 and a copy of the manifest points each platform's
# uri at DIR/<the uri's file name>; nothing else in the manifest changes. It needs kubectl and
# python3 (the file server) on PATH. The validator and krew are the cached builds of
# scripts/release-tools.sh and scripts/krew.sh, or $KO_VALIDATE_KREW_MANIFEST and $KO_KREW.
# The release workflow (.github/workflows/release.yml) and the tests (tests/it/release.rs) run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
. "$ROOT/scripts/lib.sh"

usage() {
	sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

archives=""
while [[ $# -gt 1 ]]; do
	case "$1" in
	--archives)
		archives=$(cd "$2" 2>/dev/null && pwd) || die "--archives $2: no such directory"
		shift 2
		;;
	*) usage ;;
	esac
done
[[ $# -eq 1 && "$1" != -* ]] || usage
manifest=$1
[[ -f "$manifest" ]] || die "no manifest at $manifest"

validator=${KO_VALIDATE_KREW_MANIFEST:-$("$ROOT/scripts/release-tools.sh" validate-krew-manifest)}

step "validate-krew-manifest -manifest $manifest -skip-install"
"$validator" -manifest "$manifest" -skip-install ||
	die "krew's validator rejects $manifest (its reason is above)"
[[ -n "$archives" ]] || exit 0

# --- installing every platform entry from DIR ------------------------------------

command -v kubectl >/dev/null 2>&1 || die "kubectl is not on PATH (the validator installs through \`kubectl krew\`)"
command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH (it serves the archives on 127.0.0.1)"
krew=${KO_KREW:-$("$ROOT/scripts/krew.sh")}

work=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-ko-validate.XXXXXX")
server=""
cleanup() {
	[[ -z "$server" ]] || stop_pid "$server" 5
	rm -rf "$work"
}
trap cleanup EXIT

# kubectl runs `kubectl krew` as the program kubectl-krew on PATH.
mkdir -p "$work/bin" "$work/manifest"
ln -s "$krew" "$work/bin/kubectl-krew"

# Serves DIR on a free loopback port; sets `server` and `port`.
serve() { # DIR
	local try i
	for try in 1 2 3; do
		port=$(free_port 20000 20000)
		python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >"$work/http.log" 2>&1 &
		server=$!
		for ((i = 0; i < 100; i++)); do
			port_in_use "$port" && return 0
			pid_alive "$server" || break
			sleep 0.1
		done
		stop_pid "$server" 1
		server=""
		step "the file server did not start on port $port (try $try): $(tail -n 1 "$work/http.log")"
	done
	die "could not serve $1 on 127.0.0.1"
}
serve "$archives"

# The validator names the plugin after the file, so the copy keeps the file name.
local_manifest="$work/manifest/$(basename "$manifest")"
uri='^([[:space:]]*uri:[[:space:]]*).*/([^/[:space:]]+)[[:space:]]*$'
sed -E "s#$uri#\\1http://127.0.0.1:$port/\\2#" "$manifest" >"$local_manifest"
mapfile -t files < <(sed -nE "s#$uri#\\2#p" "$manifest")
[[ ${#files[@]} -gt 0 ]] || die "$manifest has no platform uri"
for file in "${files[@]}"; do
	[[ -f "$archives/$file" ]] || die "$manifest names $file, which is not in $archives"
done

step "validate-krew-manifest: installing ${#files[@]} platform entries from $archives"
PATH="$work/bin:$PATH" "$validator" -manifest "$local_manifest" ||
	die "krew could not install every platform entry of $manifest from $archives (see above)"
step "$manifest: valid, and every platform entry installs"

#!/usr/bin/env bash
# Print the path of krew (the kubectl plugin manager) for the install test, building it first
# from the Go module proxy into a cache outside the repository, so CI builds it once.
#
#   scripts/krew.sh        prints e.g. ~/.cache/kubectl-ko-test/krew-v0.4.3/krew
#
# The cache is ${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/krew-<version>/.
set -euo pipefail

KREW_VERSION=v0.4.3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
. "$ROOT/scripts/lib.sh"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/krew-$KREW_VERSION"
if [[ ! -x "$cache/krew" ]]; then
	command -v go >/dev/null 2>&1 || die "go not found on PATH (krew is built with go install)"
	step "go install sigs.k8s.io/krew/cmd/krew@$KREW_VERSION"
	mkdir -p "$cache"
	# Outside any module, so the repository's go.mod files (the fixtures) play no part.
	(cd / && env -u GOFLAGS GOBIN="$cache" go install "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION") >&2
fi
echo "$cache/krew"

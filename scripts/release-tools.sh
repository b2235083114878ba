#!/usr/bin/env bash
# Print the path of a tool that checks the release pipeline, building it first from the Go
# module proxy into a cache outside the repository, so CI builds it once:
#
#   scripts/release-tools.sh actionlint              lints .github/workflows (rhysd/actionlint)
#   scripts/release-tools.sh validate-krew-manifest  krew's own manifest validator
#
# prints e.g. ~/.cache/kubectl-ko-test/actionlint-v1.7.12/actionlint. The cache is
# ${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/<tool>-<version>/.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
# The krew release scripts/krew.sh builds: the validator runs `kubectl krew install`.
KREW_VERSION=v0.4.3

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
. "$ROOT/scripts/lib.sh"

[[ $# -eq 1 ]] || die "usage: scripts/release-tools.sh actionlint|validate-krew-manifest"
tool=$1
case "$tool" in
actionlint) version=$ACTIONLINT_VERSION package=github.com/rhysd/actionlint/cmd/actionlint ;;
validate-krew-manifest) version=$KREW_VERSION package=sigs.k8s.io/krew/cmd/validate-krew-manifest ;;
*) die "unknown tool '$tool' (known: actionlint, validate-krew-manifest)" ;;
esac

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/$tool-$version"
if [[ ! -x "$cache/$tool" ]]; then
	command -v go >/dev/null 2>&1 || die "go not found on PATH ($tool is built with go install)"
	step "go install $package@$version"
	mkdir -p "$cache"
	# Outside any module, so the repository's go.mod files (the fixtures) play no part.
	(cd / && env -u GOFLAGS GOBIN="$cache" go install "$package@$version") >&2
fi
echo "$cache/$tool"

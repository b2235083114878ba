#!/usr/bin/env bash
# ko's own end-to-end checks (the commands of its "Basic e2e test" and "KinD e2e tests"
# workflows), written as a ko user's CI script runs them, with `ko` being `kubectl ko`.
# tests/it/parity.rs runs it in a copy of tests/fixtures/hello (a git worktree) with
# KO_DOCKER_REPO (the test registry), DOCKER_HOST (the test daemon) and KUBECONFIG (the test
# API server) set, and kubectl-ko on PATH for kubectl's plugin lookup.
#
# What differs from upstream, and why: the app is our fixture (it prints kodata=..., version=...
# and args=... where ko's test app logs "Hello there"); the test daemon has no bridge network,
# so `docker run` gets --network=none; the test cluster has no kubelet, so pods are checked as
# objects instead of waited for, and `ko run` keeps its pod and does not attach;
# `--platform=all` becomes two platforms (the built-in base serves every Go platform);
# cosign and --debug are covered by other tests (tests/it/sbom.rs, tests/it/debug.rs).
set -o errexit -o nounset -o pipefail

ko() { kubectl ko "$@"; }
docker() {
	if [[ $1 == run ]]; then
		shift
		command docker run --rm --network=none "$@"
	else
		command docker "$@"
	fi
}

# Building without push prints the tag (and the digest).
KO_DOCKER_REPO="" ko build --push=false ./ | grep ":latest@sha256:"
KO_DOCKER_REPO="" ko build --push=false -t test ./ | grep ":test@sha256:"
KO_DOCKER_REPO="" ko build --push=false -t test --tag-only ./ | grep ":test$"

# --sbom-dir, for one platform and for two.
KO_DOCKER_REPO="" ko build -t test --push=false --sbom-dir ./sbom-data ./
jq . ./sbom-data/hello-linux-amd64.spdx.json >/dev/null
KO_DOCKER_REPO="" ko build --platform=linux/amd64,linux/arm64 -t test --push=false --sbom-dir ./sbom-data2 ./
jq . ./sbom-data2/hello-index.spdx.json >/dev/null
jq . ./sbom-data2/hello-linux-amd64.spdx.json >/dev/null
jq . ./sbom-data2/hello-linux-arm64.spdx.json >/dev/null

PLATFORM=$(go env GOOS)/$(go env GOARCH),linux/arm64

# Build into the daemon and run; kodata is served from KO_DATA_PATH, symlinks chased.
testimg=$(KO_DOCKER_REPO=ko.local ko build ./ --platform="${PLATFORM}" --preserve-import-paths)
docker run "${testimg}" | tee /dev/stderr | grep "kodata=hello from kodata"
docker run "${testimg}" | grep "linked=linked file"

# ldflags from .ko.yaml set variables.
sha=0123456789abcdef
cat >.ko.yaml <<EOT
builds:
- id: test
  main: ./
  ldflags:
  - "-X main.version=${sha}"
EOT
docker run "$(KO_DOCKER_REPO=ko.local ko build ./ --platform="${PLATFORM}")" | grep "version=${sha}"
rm .ko.yaml

# apply to the cluster, through the registry.
ko apply --platform=linux/amd64,linux/arm64 -f ./config
kubectl get pod kodata -o jsonpath='{.spec.containers[0].image}' | grep "@sha256:"
kubectl delete pod kodata

# ko run passes --labels to kubectl and what follows the second -- to the program.
ko run ./ -- --labels=foo=bar --attach=false --rm=false -- -wait=false
kubectl get pod -l foo=bar -o jsonpath='{.items[0].spec.containers[0].args}' | grep -- "-wait=false"
echo "upstream e2e: ok"

#!/usr/bin/env bash
# The project's one test command: lint, build, then run every test against real
# services on 127.0.0.1: a registry, a kube-apiserver, and what single tests start.
#
#   scripts/test.sh [ARGS FOR cargo test...]     e.g. scripts/test.sh -- --nocapture
#
# Installs what it needs (Debian packages, rustfmt/clippy) when missing. Honours
# CARGO_TARGET_DIR. Exports for the tests:
#   KO_TEST_REGISTRY     host:port of a plain-HTTP registry (distribution 2.8)
#   KO_TEST_BIN_DIR      directory of the freshly built debug binaries
#   KO_TEST_KUBECONFIG   kubeconfig of a kube-apiserver on 127.0.0.1 (scripts/test-cluster.sh)
#   KO_TEST_KREW         the krew binary (built once by scripts/krew.sh)
#   KO_TEST_SBOM_VENV    Python venv with the SBOM validators (pyspdxtools, cyclonedx)
#   KO_TEST_DOCKER_HOST  DOCKER_HOST of a throw-away Docker daemon (scripts/dockerd.sh)
#   KO_TEST_COSIGN       the real cosign v3.1.1 (tests/it/sign.rs)
#   KO_TEST_KO           ko v0.19.1 itself (tests/it/windows.rs)
#   KO_TEST_ACTIONLINT, KO_TEST_VALIDATE_KREW_MANIFEST   release checks (scripts/release-tools.sh)
set -euo pipefail

# Resolve a relative CARGO_TARGET_DIR against the caller's directory before moving.
if [[ -n "${CARGO_TARGET_DIR:-}" && "${CARGO_TARGET_DIR}" != /* ]]; then
	CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
	export CARGO_TARGET_DIR
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# --- tools -----------------------------------------------------------------

step "checking tools"
# registry: the test registry; skopeo + umoci + runc: inspect and run built images
# (see tests/it/util/images.rs); curl: readiness probes; git: the fixtures live in a worktree.
ensure_debs docker-registry skopeo umoci runc curl git ca-certificates

# auth tests (tests/it/auth.rs) start their own registries: apache2-utils for
# `htpasswd -B` (distribution only takes bcrypt entries), openssl for the self-signed
# CA and the token service's signing key.
ensure_debs apache2-utils openssl

command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install Rust with rustup)"
command -v go >/dev/null 2>&1 || die "go not found on PATH (the tests build Go apps; install Go >= 1.22)"

if command -v rustup >/dev/null 2>&1; then
	installed=$(rustup component list --installed 2>/dev/null || true)
	for comp in rustfmt clippy; do
		if ! grep -q "^$comp" <<<"$installed"; then
			step "rustup component add $comp"
			rustup component add "$comp"
		fi
	done
else
	cargo fmt --version >/dev/null 2>&1 || die "cargo fmt is missing (rustfmt)"
	cargo clippy --version >/dev/null 2>&1 || die "cargo clippy is missing (clippy)"
fi

# --- disk space -------------------------------------------------------------
# The debug build of the workspace and its tests takes about 15 GiB, the services, the
# benchmark smoke's apps and etcd's write-ahead log a few more under TMPDIR. A full disk
# fails late and far from its cause (etcd "no space left on device" after 25 minutes), so
# it is checked first. What the target directory already holds counts as available.
NEED_GIB=22
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
avail_kib() { df -Pk "$1" | awk 'NR == 2 { print $4 }'; }
have_kib=$(avail_kib "$(dirname "$target_dir")")
[[ ! -d "$target_dir" ]] || have_kib=$((have_kib + $(du -sk "$target_dir" | cut -f1)))
tmp_dir="${TMPDIR:-/tmp}"
if [[ "$(df -P "$tmp_dir" | awk 'NR == 2 { print $1 }')" != "$(df -P "$(dirname "$target_dir")" | awk 'NR == 2 { print $1 }')" ]]; then
	# Another filesystem: each needs its share (the build about 15 GiB, the rest TMPDIR).
	tmp_kib=$(avail_kib "$tmp_dir")
	((tmp_kib >= 7 * 1024 * 1024)) ||
		die "only $((tmp_kib / 1024 / 1024)) GiB free in $tmp_dir (TMPDIR); the test services need about 7 GiB there: free some space (old /tmp/kubectl-ko-* directories) or point TMPDIR elsewhere"
	NEED_GIB=15
fi
((have_kib >= NEED_GIB * 1024 * 1024)) ||
	die "only $((have_kib / 1024 / 1024)) GiB free for $target_dir (counting the build already there); scripts/test.sh needs about $NEED_GIB GiB: free some space (other target directories, /tmp/kubectl-ko-* work directories) or set CARGO_TARGET_DIR to a larger disk"

# --- SBOM validators and file capabilities (tests/it/sbom.rs, image_options.rs) ---
# The SPDX project's validator (spdx-tools: pyspdxtools) and CycloneDX's JSON schema
# validator (cyclonedx-python-lib), from PyPI, in a venv under the user's cache so later
# runs reuse it. tests/validate_cyclonedx.py drives the CycloneDX one.
# python3 that can make a venv: Debian splits venv and ensurepip into python3-venv, so a
# machine with python3 alone cannot.
ensure_python_venv() {
	command -v python3 >/dev/null 2>&1 || ensure_debs python3
	python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || ensure_debs python3-venv
}
SBOM_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/sbom-venv"
if ! "$SBOM_VENV/bin/python" -c 'import spdx_tools, cyclonedx.validation.json, jsonschema' >/dev/null 2>&1; then
	ensure_python_venv
	step "installing spdx-tools and cyclonedx-python-lib into $SBOM_VENV"
	rm -rf "$SBOM_VENV"
	python3 -m venv "$SBOM_VENV" || die "python3 -m venv failed (install python3-venv)"
	"$SBOM_VENV/bin/pip" install --quiet --disable-pip-version-check \
		'spdx-tools==0.8.5' 'cyclonedx-python-lib[json-validation]==11.12.0'
fi
export KO_TEST_SBOM_VENV="$SBOM_VENV"
# --- cloud registries (tests/it/cloud/) ---------------------------------------
# The clouds' own endpoints cannot be reached here, so the tests stand them up on loopback:
# moto (PyPI `moto[server]`, a widely used AWS mock) answers ECR and STS; the Google and
# Azure token services are small Python servers in tests/cloud/ (flask and cryptography
# come with moto). Registries are reached under names that match each cloud's host
# pattern, which /etc/hosts maps to 127.0.0.1.
CLOUD_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/cloud-venv"
if ! "$CLOUD_VENV/bin/python" -c 'import moto, flask, cryptography' >/dev/null 2>&1; then
	ensure_python_venv
	step "installing moto into $CLOUD_VENV"
	rm -rf "$CLOUD_VENV"
	python3 -m venv "$CLOUD_VENV" || die "python3 -m venv failed (install python3-venv)"
	"$CLOUD_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
export KO_TEST_CLOUD_VENV="$CLOUD_VENV"
CLOUD_HOSTS=(123456789012.dkr.ecr.us-east-1.amazonaws.com kotest-docker.pkg.dev kotest.gcr.io kotest.azurecr.io)
for host in "${CLOUD_HOSTS[@]}"; do
	if ! grep -qE "^127\.0\.0\.1[[:space:]]+$host\$" /etc/hosts; then
		[[ -w /etc/hosts ]] || die "the cloud tests need '127.0.0.1 $host' in /etc/hosts: add it, or run as root"
		echo "127.0.0.1 $host" >>/etc/hosts
	fi
done
export KO_TEST_CLOUD_HOSTS="${CLOUD_HOSTS[*]}"

# getcap (libcap2-bin) reads back file capabilities (tests/it/image_options.rs).
ensure_debs libcap2-bin

# --- services --------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-ko-test.XXXXXX")
cleanup() {
	local rc=$?
	scripts/registry.sh stop "$WORK/registry" || true
	scripts/test-cluster.sh down "$WORK/cluster" || true
	scripts/dockerd.sh stop "$WORK/docker" || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "starting registry"
started=""
for _ in 1 2 3; do
	port=$(free_port 5000 1000)
	if scripts/registry.sh start "$WORK/registry" "$port"; then
		started=1
		break
	fi
done
[[ -n "$started" ]] || die "could not start the test registry"
export KO_TEST_REGISTRY="127.0.0.1:$port"

# --- Docker daemon (ko.local, kind.local, docker load; tests/it/local.rs, debug.rs) ---
# Debian's docker.io: dockerd, the docker CLI, and containerd + ctr for the kind node
# image the tests assemble themselves (nothing is pulled). vfs storage, no iptables, no
# bridge: containers run with --network=none. Everything lives under $WORK/docker.
step "starting Docker daemon"
ensure_debs docker.io
KO_TEST_DOCKER_HOST=$(scripts/dockerd.sh start "$WORK/docker") || die "could not start the test Docker daemon"
export KO_TEST_DOCKER_HOST
# --- end Docker daemon ---

export KO_TEST_BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

# --- Kubernetes (apply and delete, tests/it/apply.rs) -------------------------
# A real kube-apiserver with etcd on 127.0.0.1, built from the Go module proxy once and
# cached outside the repository (the first build takes several minutes).
step "starting kube-apiserver"
if ! KO_TEST_KUBECONFIG=$(scripts/test-cluster.sh up "$WORK/cluster" | tail -n 1); then
	# The reason is above; one more try on fresh ports before the run is given up.
	step "kube-apiserver did not start; trying once more"
	KO_TEST_KUBECONFIG=$(scripts/test-cluster.sh up "$WORK/cluster" | tail -n 1)
fi
export KO_TEST_KUBECONFIG
if ! command -v kubectl >/dev/null 2>&1; then
	# The tests check results with the real kubectl; build it like the API server.
	built_kubectl=$(scripts/test-cluster.sh kubectl | tail -n 1) || die "building kubectl failed (see above)"
	[[ -x "$built_kubectl" ]] || die "scripts/test-cluster.sh kubectl printed $built_kubectl, which is not an executable"
	PATH="$(dirname "$built_kubectl"):$PATH"
	export PATH
fi

# --- krew (the install test, tests/it/krew.rs) -------------------------------
# krew v0.4.3 from the Go module proxy, cached outside the repository; package.sh needs jq.
ensure_debs jq
KO_TEST_KREW=$(scripts/krew.sh)
export KO_TEST_KREW

# --- cosign (tests/it/sign.rs): the real verifier, pinned, from the Go module proxy ---
COSIGN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test/cosign-v3.1.1"
if [[ ! -x "$COSIGN_DIR/cosign" ]]; then
	step "installing cosign v3.1.1 into $COSIGN_DIR"
	GOBIN="$COSIGN_DIR" go install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.1 || die "go install cosign failed"
fi
export KO_TEST_COSIGN="$COSIGN_DIR/cosign"

# --- ko v0.19.1 (tests/it/windows.rs): the reference for layouts no runtime here can run ---
KO_TEST_KO=$(ensure_ko v0.19.1)
export KO_TEST_KO

# --- release checks (tests/it/release.rs): actionlint runs shellcheck over the workflows ---
ensure_debs shellcheck
KO_TEST_ACTIONLINT=$(scripts/release-tools.sh actionlint)
KO_TEST_VALIDATE_KREW_MANIFEST=$(scripts/release-tools.sh validate-krew-manifest)
export KO_TEST_ACTIONLINT KO_TEST_VALIDATE_KREW_MANIFEST

# --- checks ----------------------------------------------------------------

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace --bins"
cargo build --workspace --bins

step "cargo test --workspace $* (KO_TEST_REGISTRY=$KO_TEST_REGISTRY)"
cargo test --workspace "$@"

# --- benchmark smoke (scripts/bench.sh) ----------------------------------------
# One run of every benchmark scenario with the debug binaries, so the script cannot rot.
# It checks what each run prints and pushes, never how long it took. ko is built once into
# ~/.cache/kubectl-ko-bench. Skipped only when the arguments select tests: a test-name
# filter or --skip after `--`, a package or test target before it (-p ko-core,
# --test=it, --lib). Other flags, such as `-- --nocapture --test-threads 2`, still run it.
selects_tests() {
	local arg after_dashes=0 skip_value=0
	for arg in "$@"; do
		if ((skip_value)); then
			skip_value=0
		elif [[ $arg == -- ]]; then
			after_dashes=1
		elif ((after_dashes)); then
			case $arg in
			--test-threads | --color | --format | -Z | --logfile) skip_value=1 ;;
			--skip | --skip=* | --exact) return 0 ;;
			-*) ;;
			*) return 0 ;;
			esac
		else
			case $arg in
			-j | --jobs | --features | -F | --target | --profile | --target-dir | --config | --manifest-path) skip_value=1 ;;
			-p | --package | --package=* | --test | --test=* | --bin | --bin=* | --lib | --doc | --tests | --bins) return 0 ;;
			-*) ;;
			*) return 0 ;;
			esac
		fi
	done
	return 1
}
if ! selects_tests "$@"; then
	step "scripts/bench.sh --smoke"
	smoke=$(scripts/bench.sh --smoke --bin-dir "$KO_TEST_BIN_DIR") || die "scripts/bench.sh --smoke failed"
	printf '%s\n' "$smoke"
	# Every scenario ran (one table row each: 1-7b timed, 8-9 resources, 10-10c fleets; each
	# counts one, two or three runs), nothing failed, and no target verdict is printed: one
	# run of debug binaries says nothing about speed.
	passed=$(sed -n 's/^bench smoke: \([0-9]*\) passed, 0 failed$/\1/p' <<<"$smoke")
	rows=$(grep -c '^| [0-9]' <<<"$smoke" || true)
	[[ -n "$passed" && "$rows" -ge 13 && "$passed" -ge "$rows" ]] ||
		die "bench smoke: expected a row for each of the 13 scenarios and 'bench smoke: N passed, 0 failed' (got $rows rows)"
	! grep -Eq '\((met|missed)\)' <<<"$smoke" || die "bench smoke printed target verdicts (met/missed)"
else
	step "skipping scripts/bench.sh --smoke (arguments select tests: $*)"
fi

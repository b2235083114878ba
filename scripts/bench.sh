#!/usr/bin/env bash
# Benchmark kubectl-ko against ko v0.19.1 side by side, on the same machine, base image,
# registry and Go apps, and write the results to docs/benchmarks.md (+ docs/benchmarks.png).
#
#   scripts/bench.sh                     5 counted runs of every scenario, writes docs/
#   scripts/bench.sh --runs 9            more counted runs
#   scripts/bench.sh --only 2,3,7a       some scenarios (ids below)
#   scripts/bench.sh --smoke             one run of each, no warm-up, results in a temp dir
#   scripts/bench.sh --bin-dir target/debug   use these binaries instead of a release build
#   scripts/bench.sh --out FILE          write the markdown to FILE (the chart next to it)
#   scripts/bench.sh --keep              keep the work directory (apps, logs, raw results)
#
# What it does:
# - installs ko v0.19.1 with `go install` into ${XDG_CACHE_HOME:-~/.cache}/kubectl-ko-bench/
#   (nothing of ko is committed), and builds our one executable as scripts/package.sh ships
#   it (release, with scripts/lib.sh's release_rustflags), run as `kubectl-ko <command>`;
# - starts a registry on 127.0.0.1 (scripts/registry.sh) and pushes one base there: the
#   built-in static base for linux/amd64 and linux/arm64, as an OCI index. Both tools use it
#   through KO_DEFAULTBASEIMAGE, and push to the same registry (repositories .../ours and
#   .../ko), with --sbom=none for both (SBOM pushes are left out of the comparison);
# - generates the Go apps in a temporary directory and runs each scenario with both tools
#   alternating (kubectl-ko, ko, kubectl-ko, ko, ...): one warm-up pair, then N counted pairs.
#
# Scenarios (the state before each run is prepared outside the timing):
#   1   first build and push: registry storage and both tools' caches wiped before each run
#   2   no-op rebuild: nothing changed, the image is already in the registry
#   3   rebuild after a one-line change
#   4   two platforms (linux/amd64, linux/arm64) after a one-line change
#   5   resolve of a directory with 10 apps, one of them changed
#   6   an app that embeds a 50 MiB random file, rewritten before each run
#   7a  as 2, with KOCACHE set for ko
#   7b  as 3, with KOCACHE set for ko
#   8   resolve of a large generated YAML (100 MiB; 2 MiB with --smoke) naming the 10 apps of 5
#   9   resolve of 30 apps with -j 4, every image new (fresh repository, our cache wiped)
#   10  resolve of 10 apps of one module after a change to the package all of them import
#   10b as 10, two platforms; 10c as 10 with SBOMs on (each tool's default)
#   11  Go's build cache shared through the registry (KO_GOCACHE_REPO), kubectl-ko alone: an
#       app with real dependencies (golang.org/x/net, golang.org/x/text and the standard
#       library) built by three fresh "machines" (their own GOCACHE, KOCACHE and HOME) in
#       turn: "cold" without the shared cache, "A" with it configured but empty (a new
#       repository each run), "B" with A's repository. B must compile nothing (counted in
#       `go build -x` through a KO_GO_PATH wrapper); its own table gives B / cold and A's
#       overhead over cold. The modules come from the module cache or GOPROXY.
#   12  the inner loop: `kubectl-ko apply --watch` over 10 apps and 10 Deployments in a real
#       kube-apiserver, one app's main.go changed; the time from the write to the new image in
#       the API server, against Go's own rebuild of that package and a full `ko apply` rerun
#       (scripts/bench-watch.sh, which this runs; its own table)
# Scenarios 8 and 9 measure resources, not time: the peak memory against the YAML's size, and
# the peak number of open file descriptors; they have their own table. Scenarios 10-10c also
# run Go alone (`go build -trimpath -o DIR/ ./cmd/...` per platform) in the same alternation,
# as the floor: their table gives each tool's time over Go's.
# kubectl-ko always has its cache (KOCACHE, a directory of the work dir). Go's own build
# cache (GOCACHE) is the caller's and stays warm: it serves both tools alike.
#
# Measured per run: wall time of the tool's process (launch to exit, in ms); CPU time (user +
# system, the tool and its children); peak memory twice: "own" is the tool process's VmHWM
# (sampled from /proc every 10 ms), "tree" is GNU time's %M, the largest peak of any single
# process in the tree, which is usually the Go compiler or linker; the tool's peak number of
# open file descriptors (entries of /proc/PID/fd, sampled with the memory).
set -euo pipefail

KO_VERSION=v0.19.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
. "$ROOT/scripts/lib.sh"

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

RUNS=5
WARMUPS=1
SMOKE=""
BIN_DIR=""
OUT=""
KEEP=""
ONLY=""
ALL_SCENARIOS=(1 2 3 4 5 6 7a 7b 8 9 10 10b 10c 11 12)
# The scenarios measured for resources only (their own table, no time target).
RESOURCE_SCENARIOS=" 8 9 "
is_resource_scenario() { [[ "$RESOURCE_SCENARIOS" == *" $1 "* ]]; }
# The fleet scenarios, measured against Go alone (their own table: overhead over Go).
FLEET_SCENARIOS=" 10 10b 10c "
is_fleet_scenario() { [[ "$FLEET_SCENARIOS" == *" $1 "* ]]; }
# The shared Go build cache scenario: kubectl-ko alone, three machines (its own table).
is_gocache_scenario() { [[ "$1" == 11 ]]; }
# The watch scenario: a long-running process against a cluster, measured by bench-watch.sh.
is_watch_scenario() { [[ "$1" == 12 ]]; }
while [[ $# -gt 0 ]]; do
	case "$1" in
	--runs)
		[[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || usage
		RUNS=$2
		shift 2
		;;
	--smoke)
		SMOKE=1
		shift
		;;
	--bin-dir)
		[[ $# -ge 2 ]] || usage
		BIN_DIR=$(cd "$2" && pwd)
		shift 2
		;;
	--out)
		[[ $# -ge 2 ]] || usage
		OUT=$2
		shift 2
		;;
	--only)
		[[ $# -ge 2 ]] || usage
		ONLY=$2
		shift 2
		;;
	--keep)
		KEEP=1
		shift
		;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
if [[ -n "$SMOKE" ]]; then
	RUNS=1
	WARMUPS=0
fi
SCENARIOS=("${ALL_SCENARIOS[@]}")
if [[ -n "$ONLY" ]]; then
	IFS=, read -r -a SCENARIOS <<<"$ONLY"
	for s in "${SCENARIOS[@]}"; do
		[[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || die "--only: unknown scenario '$s' (known: ${ALL_SCENARIOS[*]})"
	done
fi

# --- tools -----------------------------------------------------------------

step "checking tools"
# skopeo: pushes the base; jq: edits the base's JSON; time: GNU time for the tree's peak
# memory; gnuplot-nox: the chart.
ensure_debs skopeo jq curl time gnuplot-nox
command -v go >/dev/null 2>&1 || die "go not found on PATH (both tools run go build)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is missing"

KO_BIN=$(ensure_ko "$KO_VERSION")
# The registry both tools push to (scripts/lib.sh says why not Debian's); registry.sh runs it.
KO_REGISTRY_BIN=$(ensure_bench_registry)
export KO_REGISTRY_BIN

if [[ -z "$BIN_DIR" ]]; then
	# Built as scripts/package.sh builds the executable it ships (scripts/lib.sh).
	host=$(rustc -vV | sed -n 's/^host: //p')
	step "cargo build --release -p kubectl-ko --target $host"
	(cd "$ROOT" && CARGO_ENCODED_RUSTFLAGS=$(release_rustflags "$host") \
		cargo build --release -p kubectl-ko --bin kubectl-ko --target "$host") >&2
	BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/$host/release"
fi
[[ -x "$BIN_DIR/kubectl-ko" ]] || die "$BIN_DIR/kubectl-ko is missing (build it, or pass --bin-dir)"

# --- work directory and registry ---------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-ko-bench.XXXXXX")
REG="$WORK/registry"
cleanup() {
	local rc=$?
	"$ROOT/scripts/registry.sh" stop "$REG" || true
	if [[ -n "$KEEP" ]]; then
		echo "bench.sh: work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A file descriptor that never has data: `read -t` on it sleeps without a fork.
exec {SLEEP_FD}<> <(:)

# Both tools get the same clean environment: no credentials, no config, no SBOM.
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"
unset KO_CONFIG_PATH KO_DEFAULTPLATFORMS GOFLAGS SOURCE_DATE_EPOCH KO_DATA_DATE_EPOCH GOOS GOARCH GOARM KOCACHE
CACHE_OURS="$WORK/cache-ours"
CACHE_KO="$WORK/cache-ko"

start_registry() {
	local i
	for i in 1 2 3; do
		if "$ROOT/scripts/registry.sh" start "$REG" "$PORT" 2>>"$WORK/registry-starts.log"; then
			return 0
		fi
		[[ $i -lt 3 ]] && PORT=$(free_port 5000 1000)
	done
	die "could not start the registry (see $WORK/registry-starts.log)"
}

PORT=$(free_port 5000 1000)
step "starting registry"
start_registry

# --- the base image ----------------------------------------------------------

# Moves FILE into the OCI layout LAYOUT as a blob; prints "<digest> <size>".
put_blob() { # LAYOUT FILE
	local hex size
	hex=$(sha256sum "$2" | cut -d' ' -f1)
	size=$(stat -c %s "$2")
	mv "$2" "$1/blobs/sha256/$hex"
	echo "sha256:$hex $size"
}

# The built-in static base for linux/amd64 and linux/arm64 as an OCI index, without an app:
# kubectl-ko builds a trivial app on it into an OCI layout, and jq keeps only the base layer.
make_base() {
	local src="$WORK/base-src" dst="$WORK/base-oci" app="$WORK/base-app"
	mkdir -p "$app" "$dst/blobs/sha256"
	printf 'module example.com/bench/base\n\ngo 1.22\n' >"$app/go.mod"
	printf 'package main\n\nfunc main() {}\n' >"$app/main.go"
	(cd "$app" && KOCACHE="$WORK/cache-base" "$BIN_DIR/kubectl-ko" build --push=false --sbom=none \
		--oci-layout-path "$src" --platform=linux/amd64,linux/arm64 . >/dev/null 2>"$WORK/base.log") ||
		{
			cat "$WORK/base.log" >&2
			die "building the base failed"
		}
	local blob="$src/blobs/sha256" index entries=() d m c cfg man
	index=$(jq -r '.manifests[0].digest' "$src/index.json")
	for d in $(jq -r '.manifests[].digest' "$blob/${index#sha256:}"); do
		m="$blob/${d#sha256:}"
		c=$(jq -r '.config.digest' "$m")
		jq -c '.rootfs.diff_ids |= .[:1] | .history |= .[:1] | del(.config.Entrypoint)
			| .config.Env |= map(select(startswith("KO_DATA_PATH=") | not) | sub(":/ko-app$"; ""))' \
			"$blob/${c#sha256:}" | tr -d '\n' >"$WORK/config.json"
		cfg=$(put_blob "$dst" "$WORK/config.json")
		cp "$blob/$(jq -r '.layers[0].digest | ltrimstr("sha256:")' "$m")" "$dst/blobs/sha256/"
		jq -c --arg d "${cfg% *}" --argjson s "${cfg#* }" \
			'.config.digest = $d | .config.size = $s | .layers |= .[:1] | del(.annotations)' "$m" |
			tr -d '\n' >"$WORK/manifest.json"
		man=$(put_blob "$dst" "$WORK/manifest.json")
		entries+=("$(jq -c --arg d "${man% *}" --argjson s "${man#* }" \
			'.digest = $d | .size = $s' <<<"$(jq -c --arg d "$d" '.manifests[] | select(.digest == $d)' "$blob/${index#sha256:}")")")
	done
	jq -c -n '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: $ARGS.positional}' \
		--jsonargs "${entries[@]}" | tr -d '\n' >"$WORK/index.json"
	local idx
	idx=$(put_blob "$dst" "$WORK/index.json")
	printf '{"imageLayoutVersion":"1.0.0"}' >"$dst/oci-layout"
	jq -c -n --arg d "${idx% *}" --argjson s "${idx#* }" \
		'{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
		  annotations: {"org.opencontainers.image.ref.name": "v1"}}]}' >"$dst/index.json"
}

step "pushing the base image (built-in static base, linux/amd64 + linux/arm64)"
make_base
BASE="127.0.0.1:$PORT/base:v1"
skopeo copy --quiet --all --dest-tls-verify=false "oci:$WORK/base-oci:v1" "docker://$BASE" >&2
# A pristine copy of the registry's storage (the base alone), restored for scenario 1.
"$ROOT/scripts/registry.sh" stop "$REG"
cp -a "$REG/data" "$WORK/registry-base-data"
start_registry
BASE="127.0.0.1:$PORT/base:v1"

reset_registry() {
	"$ROOT/scripts/registry.sh" stop "$REG"
	rm -rf "$REG/data"
	cp -a "$WORK/registry-base-data" "$REG/data"
	start_registry
	BASE="127.0.0.1:$PORT/base:v1"
}

# --- the apps ----------------------------------------------------------------

APPS="$WORK/apps"
CHANGE=0

write_module() { # DIR MODULE
	mkdir -p "$1"
	printf 'module %s\n\ngo 1.22\n' "$2" >"$1/go.mod"
}

# A small app whose message is the one line that changes.
write_hello() { # FILE MESSAGE
	cat >"$1" <<EOF
package main

import (
	"fmt"
	"net/http"
	"os"
)

const message = "$2"

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, message) })
	if len(os.Args) > 1 {
		fmt.Println(message)
		return
	}
	_ = http.ListenAndServe(":8080", nil)
}
EOF
}

# The one-line change: a message never built before.
change_line() { # FILE
	CHANGE=$((CHANGE + 1))
	write_hello "$1" "hello, change $CHANGE of $$"
}

make_apps() {
	write_module "$APPS/hello" example.com/bench/hello
	write_hello "$APPS/hello/main.go" "hello"

	write_module "$APPS/fleet" example.com/bench/fleet
	mkdir -p "$APPS/fleet/config"
	local i
	for i in 0 1 2 3 4 5 6 7 8 9; do
		mkdir -p "$APPS/fleet/cmd/app$i"
		write_hello "$APPS/fleet/cmd/app$i/main.go" "hello from app$i"
		cat >"$APPS/fleet/config/app$i.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app$i
spec:
  selector:
    matchLabels: {app: app$i}
  template:
    metadata:
      labels: {app: app$i}
    spec:
      containers:
      - name: app
        image: ko://example.com/bench/fleet/cmd/app$i
EOF
	done

	write_module "$APPS/asset" example.com/bench/asset
	cat >"$APPS/asset/main.go" <<'EOF'
package main

import (
	_ "embed"
	"fmt"
)

//go:embed asset.bin
var asset []byte

func main() { fmt.Println(len(asset)) }
EOF
	make_shared_fleet
	new_asset
	make_large_yaml "$APPS/fleet/large.yaml" "$LARGE_YAML_MIB"
	make_many
	make_deps
}

# The fleet scenarios' input: ten commands of one module that all import one package, and
# one Deployment for each. The package's one line changes before every run, so Go recompiles
# it and relinks all ten.
make_shared_fleet() {
	write_module "$APPS/shared" example.com/bench/shared
	mkdir -p "$APPS/shared/config"
	local i
	for i in 0 1 2 3 4 5 6 7 8 9; do
		mkdir -p "$APPS/shared/cmd/app$i"
		cat >"$APPS/shared/cmd/app$i/main.go" <<EOF
package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/bench/shared/internal/greeting"
)

func main() {
	message := greeting.For("app$i")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, message) })
	if len(os.Args) > 1 {
		fmt.Println(message)
		return
	}
	_ = http.ListenAndServe(":8080", nil)
}
EOF
		printf -- 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app%d\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: ko://example.com/bench/shared/cmd/app%d\n' \
			"$i" "$i" >"$APPS/shared/config/app$i.yaml"
	done
	change_shared
}

# The shared package's one-line change: a version never built before.
change_shared() {
	CHANGE=$((CHANGE + 1))
	mkdir -p "$APPS/shared/internal/greeting"
	cat >"$APPS/shared/internal/greeting/greeting.go" <<EOF
// Package greeting is what the ten apps share.
package greeting

const version = "change $CHANGE of $$"

// For greets from the named app.
func For(name string) string { return "hello from " + name + ", " + version }
EOF
}

new_asset() {
	head -c $((50 * 1024 * 1024)) /dev/urandom >"$APPS/asset/asset.bin"
}

# Scenario 8's input: Deployments of about 1 KiB each (labels, env, resources, a comment)
# naming the ten apps of `fleet` in turn, up to MIB mebibytes.
LARGE_YAML_MIB=100
[[ -z "$SMOKE" ]] || LARGE_YAML_MIB=2
make_large_yaml() { # FILE MIB
	awk -v limit=$(($2 * 1024 * 1024)) 'BEGIN {
		for (i = 0; size < limit; i++) {
			doc = sprintf("---\n# deployment %d of the large fleet\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%d\n  labels: {app: app-%d, tier: \"backend\", team: platform}\n  annotations:\n    description: \x27generated for the memory benchmark; every other byte must come back as written\x27\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: app-%d}\n  template:\n    metadata:\n      labels: {app: app-%d}\n    spec:\n      containers:\n      - name: app\n        image: ko://example.com/bench/fleet/cmd/app%d\n        args: [\"--port=8080\", \"--verbose\"]\n        env:\n        - name: INSTANCE\n          value: \"%d\"\n        - name: REGION\n          value: eu-west-1\n        ports:\n        - containerPort: 8080\n          protocol: TCP\n        resources:\n          limits: {cpu: 500m, memory: 128Mi}\n          requests: {cpu: 100m, memory: 64Mi}\n        readinessProbe:\n          httpGet: {path: /healthz, port: 8080}\n          periodSeconds: 10\n", i, i, i, i, i, i % 10, i)
			printf "%s", doc
			size += length(doc)
		}
	}' >"$1"
}

# Scenario 9's input: a module of 30 small commands and one Deployment for each.
MANY_APPS=30
make_many() {
	write_module "$APPS/many" example.com/bench/many
	local i
	for ((i = 0; i < MANY_APPS; i++)); do
		mkdir -p "$APPS/many/cmd/app$i"
		printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("app %d") }\n' "$i" >"$APPS/many/cmd/app$i/main.go"
		printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app%d\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: ko://example.com/bench/many/cmd/app%d\n' "$i" "$i"
	done >"$APPS/many/apps.yaml"
}

# Scenario 11's input: an app with real dependencies. A smoke run builds a smaller one (an
# HTML parser and the standard library's fmt) to stay short.
make_deps() {
	write_module "$APPS/deps" example.com/bench/deps
	if [[ -n "$SMOKE" ]]; then
		cat >"$APPS/deps/main.go" <<'EOF'
package main

import (
	"fmt"
	"strings"

	"golang.org/x/net/html"
)

func main() {
	doc, err := html.Parse(strings.NewReader("<p>hello</p>"))
	fmt.Println(doc != nil, err)
}
EOF
	else
		cat >"$APPS/deps/main.go" <<'EOF'
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/http2"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

func main() {
	doc, _ := html.Parse(strings.NewReader("<p>hello</p>"))
	server := &http.Server{Addr: ":8080"}
	_ = http2.ConfigureServer(server, &http2.Server{})
	fmt.Println(cases.Title(language.English).String("hello"), doc != nil)
	if len(os.Args) > 1 {
		_ = server.ListenAndServe()
	}
}
EOF
	fi
	(cd "$APPS/deps" && go get golang.org/x/net@v0.38.0 golang.org/x/text@v0.23.0 && go mod tidy) >&2 ||
		die "could not fetch golang.org/x/net and golang.org/x/text for scenario 11 (GOPROXY=$(go env GOPROXY))"
	# kubectl-ko's go build, with -x, logged per machine: the compilations are counted.
	# shellcheck disable=SC2016
	printf '#!/bin/sh\nexec go "$@" 2>>"$GO_X_LOG"\n' >"$WORK/go-x.sh"
	chmod +x "$WORK/go-x.sh"
}
# The machines share the real module cache and Go settings; only the caches and HOME differ.
GO_SETTINGS=("GOENV=$(go env GOENV)" "GOPATH=$(go env GOPATH)" "GOMODCACHE=$(go env GOMODCACHE)"
	"GOPROXY=$(go env GOPROXY)" "GOSUMDB=$(go env GOSUMDB)" "GOFLAGS=$(go env GOFLAGS) -x")
GC_SEQ=0

step "generating the apps in $APPS"
make_apps

# --- scenarios -----------------------------------------------------------------

scenario_title() {
	case "$1" in
	1) echo "first build and push, empty caches" ;;
	2) echo "no-op rebuild" ;;
	3) echo "rebuild after a one-line change" ;;
	4) echo "two platforms, after a one-line change" ;;
	5) echo "resolve of 10 apps, one changed" ;;
	6) echo "50 MiB embedded asset, changed each run" ;;
	7a) echo "no-op rebuild, ko with KOCACHE" ;;
	7b) echo "one-line change, ko with KOCACHE" ;;
	8) echo "resolve of a $LARGE_YAML_MIB MiB YAML (10 apps, unchanged)" ;;
	9) echo "resolve of $MANY_APPS apps, -j 4, every image new" ;;
	10) echo "resolve of 10 apps after a change to the package they share" ;;
	11) echo "Go's build cache shared through the registry" ;;
	10b) echo "as 10, two platforms" ;;
	10c) echo "as 10, SBOMs on (each tool's default)" ;;
	12) echo "apply --watch: write of main.go to the new image in the API server" ;;
	esac
}

# The issue's target for the median of ratios (ours / ko).
scenario_target() {
	case "$1" in
	1) echo 0.9 ;;
	2 | 7a) echo 0.25 ;;
	3 | 4 | 7b) echo 0.6 ;;
	5) echo 0.3 ;;
	6) echo 0.5 ;;
	esac
}

# The issue's target for the fleet scenarios: seconds over Go alone (median of per-run
# differences); none for two platforms, which is recorded only.
fleet_target() {
	case "$1" in
	10) echo 0.2 ;;
	10c) echo 0.3 ;;
	esac
}

# Puts the files and caches into the state a run of SCENARIO by TOOL starts from.
prepare() { # SCENARIO TOOL
	case "$1" in
	1)
		reset_registry
		if [[ "$2" == ours ]]; then rm -rf "$CACHE_OURS"; else rm -rf "$CACHE_KO"; fi
		;;
	3 | 4 | 7b) change_line "$APPS/hello/main.go" ;;
	5) write_hello "$APPS/fleet/cmd/app0/main.go" "hello from app0, change $((++CHANGE)) of $$" ;;
	6) new_asset ;;
	10 | 10b | 10c)
		change_shared
		rm -rf "$WORK/go-out"
		;;
	11)
		# A fresh machine for each run; A starts a new cache repository, which B then reads.
		rm -rf "$WORK/machine-$2"
		mkdir -p "$WORK/machine-$2/gocache" "$WORK/machine-$2/kocache" "$WORK/machine-$2/home"
		[[ "$2" != empty ]] || GC_SEQ=$((GC_SEQ + 1))
		;;
	9)
		# Every image new: a fresh repository per run (RUN_SEQ), and our cache wiped (ko keeps none).
		RUN_SEQ=$((RUN_SEQ + 1))
		if [[ "$2" == ours ]]; then rm -rf "$CACHE_MANY"; fi
		;;
	esac
}
RUN_SEQ=0
CACHE_MANY="$WORK/cache-ours-many"

# Prints the directory and the command line of SCENARIO for TOOL, one word per line.
command_for() { # SCENARIO TOOL
	local dir="$APPS/hello" sub=build args=(--platform=linux/amd64 .)
	case "$1" in
	4) args=("--platform=linux/amd64,linux/arm64" .) ;;
	5)
		dir="$APPS/fleet"
		sub=resolve
		args=(--platform=linux/amd64 -f config)
		;;
	6) dir="$APPS/asset" ;;
	8)
		dir="$APPS/fleet"
		sub=resolve
		args=(--platform=linux/amd64 -f large.yaml)
		;;
	9)
		dir="$APPS/many"
		sub=resolve
		args=(--platform=linux/amd64 -j 4 -f apps.yaml)
		;;
	11) dir="$APPS/deps" ;;
	10 | 10b | 10c)
		dir="$APPS/shared"
		sub=resolve
		args=(--platform=linux/amd64 -f config)
		[[ "$1" != 10b ]] || args=("--platform=linux/amd64,linux/arm64" -f config)
		;;
	esac
	echo "$dir"
	if [[ "$2" == go ]]; then
		go_alone "$1"
		return
	fi
	local sbom=(--sbom=none)
	[[ "$1" != 10c ]] || sbom=()
	if [[ "$2" == ours ]] || is_gocache_scenario "$1"; then
		echo "$BIN_DIR/kubectl-ko"
		echo "$sub"
	else
		echo "$KO_BIN"
		echo "$sub"
	fi
	printf '%s\n' "${sbom[@]}" "${args[@]}"
}

# The floor of the fleet scenarios: Go alone, building the ten commands with the flags and
# environment both tools give it (`-trimpath`, `CGO_ENABLED=0`), once per platform, the
# platforms side by side as the tools build them.
go_alone() { # SCENARIO
	# shellcheck disable=SC2016
	printf '%s\n' bash -c 'for arch; do GOARCH=$arch go build -trimpath -o "$0/$arch/" ./cmd/... & done; rc=0; for _ in "$@"; do wait -n || rc=1; done; exit $rc' "$WORK/go-out" amd64
	[[ "$1" != 10b ]] || echo arm64
}

# The environment of one run: the same base and registry for both tools.
run_env() { # SCENARIO TOOL
	if [[ "$2" == go ]]; then
		printf '%s\n' CGO_ENABLED=0 GOOS=linux
		return
	fi
	echo "KO_DEFAULTBASEIMAGE=$BASE"
	if is_gocache_scenario "$1"; then
		local machine="$WORK/machine-$2"
		printf '%s\n' "KO_DOCKER_REPO=127.0.0.1:$PORT/ours-deps" "GOCACHE=$machine/gocache" "KOCACHE=$machine/kocache" \
			"HOME=$machine/home" "${GO_SETTINGS[@]}" "KO_GO_PATH=$WORK/go-x.sh" "GO_X_LOG=$machine/go-x.log"
		[[ "$2" == cold ]] || echo "KO_GOCACHE_REPO=127.0.0.1:$PORT/gocache-$GC_SEQ"
		return
	fi
	local suffix=""
	[[ "$1" == 9 ]] && suffix="-many-$RUN_SEQ"
	if [[ "$2" == ours ]]; then
		echo "KO_DOCKER_REPO=127.0.0.1:$PORT/ours$suffix"
		if [[ "$1" == 9 ]]; then echo "KOCACHE=$CACHE_MANY"; else echo "KOCACHE=$CACHE_OURS"; fi
	else
		echo "KO_DOCKER_REPO=127.0.0.1:$PORT/ko$suffix"
		if [[ "$1" == 7a || "$1" == 7b ]]; then
			echo "KOCACHE=$CACHE_KO"
		fi
	fi
}

# --- measuring -------------------------------------------------------------------

# The launcher: records the tool's pid for the memory sampler, and its wall time from just
# before the spawn to just after the exit (so the launcher's own start-up is not counted).
# shellcheck disable=SC2016
LAUNCHER='cd "$2" || exit 127; pidfile=$1; shift 2; start=$EPOCHREALTIME; "$@" & echo $! >"$pidfile"; wait $!; rc=$?; end=$EPOCHREALTIME; echo "$start $end" >"$pidfile.wall"; exit $rc'

# Runs one scenario once with one tool; appends a line to $RESULTS when COUNTED.
run_once() { # SCENARIO TOOL LABEL
	local scenario=$1 tool=$2 label=$3
	prepare "$scenario" "$tool"
	local words env_words
	mapfile -t words < <(command_for "$scenario" "$tool")
	mapfile -t env_words < <(run_env "$scenario" "$tool")
	local dir=${words[0]} logs="$WORK/logs/$scenario-$tool-$label"
	mkdir -p "$WORK/logs" "$WORK/m"
	local m="$WORK/m/$scenario-$tool-$label"
	rm -f "$m.pid" "$m.pid.wall" "$m.time"
	env "${env_words[@]}" /usr/bin/time -f '%M %U %S' -o "$m.time" \
		bash -c "$LAUNCHER" launcher "$m.pid" "$dir" "${words[@]:1}" >"$logs.out" 2>"$logs.err" &
	local tpid=$! pid="" hwm=0 fds=0 value open status line
	while kill -0 "$tpid" 2>/dev/null; do
		if [[ -z "$pid" && -s "$m.pid" ]]; then
			read -r pid <"$m.pid" || pid=""
		fi
		if [[ -n "$pid" ]] && [[ -r "/proc/$pid/status" ]]; then
			# The whole file at once. A `read` loop left at the VmHWM line can leave bash's
			# read-ahead of the rest unconsumed when the process has just exited, and the next
			# `read` from a file (the wall and CPU times below) then returns those lines.
			mapfile -t status <"/proc/$pid/status" 2>/dev/null || status=()
			for line in "${status[@]}"; do
				if [[ "$line" == VmHWM:* ]]; then
					value=${line//[^0-9]/}
					((value > hwm)) && hwm=$value
					break
				fi
			done
			# Open descriptors, counted by a glob (no fork); a vanished directory counts as 1.
			open=("/proc/$pid/fd/"*)
			((${#open[@]} > fds)) && fds=${#open[@]}
		fi
		read -rt 0.01 -u "$SLEEP_FD" || true
	done
	local rc=0
	wait "$tpid" || rc=$?
	if [[ $rc -ne 0 ]]; then
		echo "--- $tool, scenario $scenario ($label), in $dir:" >&2
		printf '%s ' "${env_words[@]}" "${words[@]:1}" >&2
		echo >&2
		tail -n 30 "$logs.err" >&2
		die "scenario $scenario failed for $tool (exit $rc); logs: $logs.err"
	fi
	check_output "$scenario" "$tool" "$logs.out"
	local start end tree utime stime
	read -r start end <"$m.pid.wall"
	read -r tree utime stime <"$m.time"
	local wall cpu
	wall=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
	cpu=$(awk -v u="$utime" -v s="$stime" 'BEGIN { printf "%.2f", u + s }')
	printf '  %-3s %-5s %-7s %7ss  cpu %6ss  own %6d KiB  tree %7d KiB  fds %4d\n' \
		"$scenario" "$tool" "$label" "$wall" "$cpu" "$hwm" "$tree" "$fds" >&2
	if [[ "$label" != warmup ]]; then
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$tool" "$label" "$wall" "$cpu" "$hwm" "$tree" "$fds" >>"$RESULTS"
	fi
}

# Each run must print what it should: references by digest that the registry has.
check_output() { # SCENARIO TOOL FILE
	local refs want=1 ref
	[[ "$2" != go ]] || return 0 # Go alone prints nothing; the tools' runs check their images
	case "$1" in
	5 | 8 | 10 | 10b | 10c) want=10 ;;
	9) want=$MANY_APPS ;;
	esac
	# Each distinct reference once (the large YAML names each app thousands of times).
	mapfile -t refs < <(grep -o "127\.0\.0\.1:$PORT/[^ \"']*@sha256:[0-9a-f]\{64\}" "$3" | sort -u || true)
	[[ ${#refs[@]} -eq $want ]] ||
		die "scenario $1, $2: expected $want image reference(s) on stdout, got ${#refs[@]}: $(head -c 500 "$3")"
	for ref in "${refs[@]}"; do
		local repo=${ref#*/} digest=${ref##*@}
		repo=${repo%@*}
		repo=${repo%:*}
		curl -fsS -o /dev/null -I -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
			"http://127.0.0.1:$PORT/v2/$repo/manifests/$digest" ||
			die "scenario $1, $2: $ref is not in the registry"
	done
}

# ko takes minutes and hundreds of MiB for a few MiB of YAML (132 s and 608 MiB for 2 MiB, by
# hand), so the large YAML of scenario 8 is resolved by kubectl-ko alone.
ko_runs() { [[ "$1" != 8 ]]; }
# Go alone runs in the fleet scenarios, in the same alternation.
go_runs() { is_fleet_scenario "$1"; }

# One round of SCENARIO: each tool once, in the alternation.
run_round() { # SCENARIO LABEL
	if is_gocache_scenario "$1"; then
		# Cold and A take turns at going first, so that neither gains from its place in the
		# round; B reads A's repository, so it follows A.
		if [[ "$2" =~ ^[0-9]+$ ]] && (($2 % 2 == 0)); then
			run_once "$1" empty "$2"
			run_once "$1" warm "$2"
			run_once "$1" cold "$2"
		else
			run_once "$1" cold "$2"
			run_once "$1" empty "$2"
			run_once "$1" warm "$2"
		fi
		check_machine_b "$2"
		return
	fi
	run_once "$1" ours "$2"
	! ko_runs "$1" || run_once "$1" ko "$2"
	! go_runs "$1" || run_once "$1" go "$2"
}

# Machine B compiled nothing (A compiled everything) and no run warned about the cache.
check_machine_b() { # LABEL
	local a b
	a=$(grep -c '/compile ' "$WORK/machine-empty/go-x.log" || true)
	b=$(grep -c '/compile ' "$WORK/machine-warm/go-x.log" || true)
	[[ "$b" -eq 0 && "$a" -gt 0 ]] ||
		die "scenario 11 ($1): machine B compiled $b package(s) (A compiled $a); see $WORK/machine-warm/go-x.log"
	# The cache program writes on Go's stderr, which the wrapper sends to go-x.log.
	! grep -h 'warning: the shared Go build cache' "$WORK"/logs/11-*-"$1".err "$WORK"/machine-*/go-x.log >&2 ||
		die "scenario 11 ($1): the shared cache warned (above)"
	[[ "$1" == warmup ]] || printf '%s\t%s\t%s\n' "$1" "$a" "$b" >>"$WORK/compiles-11.tsv"
	echo "  11  compilations: A $a, B $b (go build -x)" >&2
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
step "measuring: ${SCENARIOS[*]}; $WARMUPS warm-up and $RUNS counted run(s) each, kubectl-ko then ko"
WATCH_TABLE="$WORK/watch.md"
: >"$WATCH_TABLE"
for scenario in "${SCENARIOS[@]}"; do
	step "scenario $scenario: $(scenario_title "$scenario")"
	if is_watch_scenario "$scenario"; then
		"$ROOT/scripts/bench-watch.sh" --bin-dir "$BIN_DIR" --runs "$RUNS" ${SMOKE:+--smoke} >"$WATCH_TABLE" ||
			die "scenario $scenario failed"
		continue
	fi
	for ((i = 1; i <= WARMUPS; i++)); do run_round "$scenario" warmup; done
	for ((i = 1; i <= RUNS; i++)); do run_round "$scenario" "$i"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- results ---------------------------------------------------------------------

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Column COL (4 wall, 5 cpu, 6 own KiB, 7 tree KiB, 8 open descriptors) of SCENARIO and TOOL.
column() { # SCENARIO TOOL COL
	awk -F'\t' -v s="$1" -v t="$2" -v c="$3" '$1 == s && $2 == t { print $c }' "$RESULTS"
}

# The per-pair ratios ours / ko of column COL.
ratios() { # SCENARIO COL
	awk -F'\t' -v s="$1" -v c="$2" '
		$1 == s && $2 == "ours" { ours[$3] = $c }
		$1 == s && $2 == "ko" { ko[$3] = $c }
		END { for (r in ours) if ((r in ko) && ko[r] > 0) printf "%.4f\n", ours[r] / ko[r] }' "$RESULTS"
}

fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
mib() { awk -v v="$1" 'BEGIN { printf "%.0f", v / 1024 }'; }
per_size() { awk -v v="$1" -v s="$2" 'BEGIN { printf "%.2f", v / s }'; } # KIB SIZE_KIB

OUT_DIR="$ROOT/docs"
OUT_MD=${OUT:-$OUT_DIR/benchmarks.md}
[[ -z "$SMOKE" || -n "$OUT" ]] || OUT_MD="$WORK/benchmarks.md"
mkdir -p "$(dirname "$OUT_MD")"
OUT_PNG="${OUT_MD%.md}.png"

TIME_SCENARIOS=()
MEASURED_RESOURCES=()
MEASURED_FLEETS=()
MEASURED_GOCACHE=()
for scenario in "${SCENARIOS[@]}"; do
	if is_watch_scenario "$scenario"; then
		continue
	elif is_gocache_scenario "$scenario"; then
		MEASURED_GOCACHE+=("$scenario")
	elif is_resource_scenario "$scenario"; then
		MEASURED_RESOURCES+=("$scenario")
	elif is_fleet_scenario "$scenario"; then
		MEASURED_FLEETS+=("$scenario")
	else
		TIME_SCENARIOS+=("$scenario")
	fi
done

TABLE="$WORK/table.md"
CHART_DATA="$WORK/chart.dat"
: >"$CHART_DATA"
: >"$TABLE"
[[ ${#TIME_SCENARIOS[@]} -eq 0 ]] || {
	echo "| # | scenario | kubectl-ko | ko | ratio | target | peak RSS, own (kubectl-ko / ko) | RSS ratio | peak RSS, tree (kubectl-ko / ko) | CPU s (kubectl-ko / ko) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for scenario in "${TIME_SCENARIOS[@]}"; do
		ours_wall=$(column "$scenario" ours 4 | median)
		ko_wall=$(column "$scenario" ko 4 | median)
		ratio=$(ratios "$scenario" 4 | median)
		target=$(scenario_target "$scenario")
		met=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r <= t) ? "met" : "missed" }')
		ours_own=$(column "$scenario" ours 6 | median)
		ko_own=$(column "$scenario" ko 6 | median)
		mem_ratio=$(ratios "$scenario" 6 | median)
		ours_tree=$(column "$scenario" ours 7 | median)
		ko_tree=$(column "$scenario" ko 7 | median)
		ours_cpu=$(column "$scenario" ours 5 | median)
		ko_cpu=$(column "$scenario" ko 5 | median)
		# Verdicts belong to real runs: one smoke run of debug binaries judges nothing.
		ratio_cell="**$(fmt "$ratio" %.2f)**" target_cell="≤ $target ($met)"
		[[ -z "$SMOKE" ]] || ratio_cell="–" target_cell="not judged (smoke)"
		printf '| %s | %s | %s s | %s s | %s | %s | %s / %s MiB | %s | %s / %s MiB | %s / %s |\n' \
			"$scenario" "$(scenario_title "$scenario")" \
			"$(fmt "$ours_wall" %.2f)" "$(fmt "$ko_wall" %.2f)" "$ratio_cell" "$target_cell" \
			"$(mib "$ours_own")" "$(mib "$ko_own")" "$(fmt "$mem_ratio" %.2f)" \
			"$(mib "$ours_tree")" "$(mib "$ko_tree")" "$(fmt "$ours_cpu" %.2f)" "$(fmt "$ko_cpu" %.2f)"
		printf '"%s" %s %s %s\n' "$scenario" "$ratio" "$target" "$mem_ratio" >>"$CHART_DATA"
	done
} >"$TABLE"

# The resources table: peak memory against the input's size (8), peak open descriptors (9).
RESOURCE_TABLE="$WORK/resources.md"
: >"$RESOURCE_TABLE"
[[ ${#MEASURED_RESOURCES[@]} -eq 0 ]] || {
	echo "| # | measurement | kubectl-ko | ko | ratio (kubectl-ko / ko) | bound | wall s (kubectl-ko / ko) |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	for scenario in "${MEASURED_RESOURCES[@]}"; do
		ours_wall=$(column "$scenario" ours 4 | median)
		if [[ "$scenario" == 8 ]]; then
			size_kib=$(($(stat -c %s "$APPS/fleet/large.yaml") / 1024))
			ours=$(column 8 ours 6 | median)
			met=$(awk -v v="$ours" -v s="$size_kib" 'BEGIN { print (v <= 2 * s) ? "met" : "missed" }')
			[[ -z "$SMOKE" ]] || met="not judged (smoke)"
			printf '| 8 | peak RSS (own) of resolve of a %s MiB YAML | %s MiB (%s× the file) | not run (see below) | | ≤ 2× the file (%s) | %s / – |\n' \
				"$(mib "$size_kib")" "$(mib "$ours")" "$(per_size "$ours" "$size_kib")" "$met" "$(fmt "$ours_wall" %.2f)"
		else
			ours=$(column 9 ours 8 | median)
			ko=$(column 9 ko 8 | median)
			ko_wall=$(column 9 ko 4 | median)
			printf '| 9 | peak open descriptors of resolve of %s apps, `-j 4` | %s | %s | %s | by `-j`, not by the apps | %s / %s |\n' \
				"$MANY_APPS" "$(fmt "$ours" %.0f)" "$(fmt "$ko" %.0f)" "$(fmt "$(ratios 9 8 | median)" %.2f)" \
				"$(fmt "$ours_wall" %.2f)" "$(fmt "$ko_wall" %.2f)"
		fi
	done
} >"$RESOURCE_TABLE"

# The per-run differences ours - go of the wall time of SCENARIO.
over_go() { # SCENARIO
	awk -F'\t' -v s="$1" '
		$1 == s && $2 == "ours" { ours[$3] = $4 }
		$1 == s && $2 == "go" { go[$3] = $4 }
		END { for (r in ours) if (r in go) printf "%.4f\n", ours[r] - go[r] }' "$RESULTS"
}

# The fleet table: Go alone as the floor, each tool's time over it.
FLEET_TABLE="$WORK/fleet.md"
: >"$FLEET_TABLE"
[[ ${#MEASURED_FLEETS[@]} -eq 0 ]] || {
	echo "| # | scenario | Go alone | kubectl-ko | over Go | target | ko | ko over Go | ratio (kubectl-ko / ko) | CPU s (Go / kubectl-ko / ko) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for scenario in "${MEASURED_FLEETS[@]}"; do
		go_wall=$(column "$scenario" go 4 | median)
		ours_wall=$(column "$scenario" ours 4 | median)
		ko_wall=$(column "$scenario" ko 4 | median)
		over=$(over_go "$scenario" | median)
		ko_over=$(awk -v k="$ko_wall" -v g="$go_wall" 'BEGIN { printf "%.4f", k - g }')
		target=$(fleet_target "$scenario")
		target_cell="recorded"
		if [[ -n "$target" ]]; then
			met=$(awk -v o="$over" -v t="$target" 'BEGIN { print (o <= t) ? "met" : "missed" }')
			target_cell="≤ $target s ($met)"
		fi
		over_cell="**$(fmt "$over" %.2f) s**"
		if [[ -n "$SMOKE" ]]; then over_cell="–" target_cell="not judged (smoke)"; fi
		printf '| %s | %s | %s s | %s s | %s | %s | %s s | %s s | %s | %s / %s / %s |\n' \
			"$scenario" "$(scenario_title "$scenario")" "$(fmt "$go_wall" %.2f)" "$(fmt "$ours_wall" %.2f)" \
			"$over_cell" "$target_cell" "$(fmt "$ko_wall" %.2f)" "$(fmt "$ko_over" %.2f)" \
			"$(fmt "$(ratios "$scenario" 4 | median)" %.2f)" "$(fmt "$(column "$scenario" go 5 | median)" %.2f)" \
			"$(fmt "$(column "$scenario" ours 5 | median)" %.2f)" "$(fmt "$(column "$scenario" ko 5 | median)" %.2f)"
	done
} >"$FLEET_TABLE"

# The per-run ratios of tool T1 over tool T2 (wall time) in scenario 11.
gocache_ratios() { # T1 T2
	awk -F'\t' -v a="$1" -v b="$2" '
		$1 == 11 && $2 == a { x[$3] = $4 }
		$1 == 11 && $2 == b { y[$3] = $4 }
		END { for (r in x) if ((r in y) && y[r] > 0) printf "%.4f\n", x[r] / y[r] }' "$RESULTS"
}

# The shared Go build cache table: machines cold, A (configured, empty) and B (A's cache).
GOCACHE_TABLE="$WORK/gocache.md"
: >"$GOCACHE_TABLE"
[[ ${#MEASURED_GOCACHE[@]} -eq 0 ]] || {
	b_ratio=$(gocache_ratios warm cold | median)
	overhead=$(gocache_ratios empty cold | median | awk '{ printf "%.4f", ($1 - 1) * 100 }')
	b_met=$(awk -v r="$b_ratio" 'BEGIN { print (r <= 0.25) ? "met" : "missed" }')
	a_met=$(awk -v o="$overhead" 'BEGIN { print (o <= 10) ? "met" : "missed" }')
	b_cell="**$(fmt "$b_ratio" %.2f)**" b_target="≤ 0.25 ($b_met)"
	a_cell="**$(fmt "$overhead" %+.0f) %**" a_target="≤ 10 % ($a_met)"
	if [[ -n "$SMOKE" ]]; then b_cell="–" a_cell="–" b_target="not judged (smoke)" a_target="not judged (smoke)"; fi
	compiles=$(awk -F'\t' '{ a += $2; b += $3; n++ } END { printf "A %d, B %d (%d run(s))", a / n, b, n }' "$WORK/compiles-11.tsv")
	echo "| # | cold, no shared cache | A: configured, empty | A over cold | target | B: A's cache | B / cold | target | compilations (\`go build -x\`) | CPU s (cold / A / B) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
	printf '| 11 | %s s | %s s | %s | %s | %s s | %s | %s | %s | %s / %s / %s |\n' \
		"$(fmt "$(column 11 cold 4 | median)" %.2f)" "$(fmt "$(column 11 empty 4 | median)" %.2f)" "$a_cell" "$a_target" \
		"$(fmt "$(column 11 warm 4 | median)" %.2f)" "$b_cell" "$b_target" "$compiles" \
		"$(fmt "$(column 11 cold 5 | median)" %.2f)" "$(fmt "$(column 11 empty 5 | median)" %.2f)" \
		"$(fmt "$(column 11 warm 5 | median)" %.2f)"
} >"$GOCACHE_TABLE"

[[ -z "$SMOKE" ]] || echo "Smoke run: every scenario ran once with $(basename "$BIN_DIR") binaries and no warm-up, and its output was checked; these times say nothing about speed, so no ratio is judged against its target. Run scripts/bench.sh for that."
cat "$TABLE" "$RESOURCE_TABLE" "$FLEET_TABLE" "$GOCACHE_TABLE" "$WATCH_TABLE"

# The chart: time and memory ratios per scenario, with the targets (marked on the time bars).
[[ ${#TIME_SCENARIOS[@]} -eq 0 ]] || {
ymax=$(awk '{ for (i = 2; i <= 4; i++) if ($i > m) m = $i } END { m = m * 1.1; print (m > 1.1 ? m : 1.1) }' "$CHART_DATA")
gnuplot >&2 <<EOF
set terminal pngcairo size 900,420 font "sans,10"
set output "$OUT_PNG"
set title "kubectl-ko / ko v${KO_VERSION#v} (median of per-run ratios; lower is better)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:$ymax]
set ylabel "ratio, kubectl-ko / ko"
set grid ytics
set key below horizontal
plot "$CHART_DATA" using 2:xtic(1) title "wall time" lc rgb "#3b7dd8", \
     "" using 4 title "peak RSS (own)" lc rgb "#9ccc65", \
     "" using (\$0 - 0.17):3 with points pt 9 ps 1.5 lc rgb "#d84315" title "time target", \
     1 with lines dt 2 lc rgb "#555555" title "same as ko"
EOF
}

# --- the markdown ----------------------------------------------------------------

ours_version=$("$BIN_DIR/kubectl-ko" version 2>/dev/null | head -n 1 || echo unknown)
ko_version=$("$KO_BIN" version 2>/dev/null | head -n 1 || echo unknown)
go_version=$(go version)
registry_version="registry $("$KO_REGISTRY_BIN" --version 2>/dev/null | awk '{ sub(/\+.*/, "", $3); print $2 " " $3 }')"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$ROOT" diff --quiet HEAD -- shared plugins Cargo.toml Cargo.lock 2>/dev/null; then
	commit="$commit (with uncommitted changes)"
fi

# Replaces the block between the lines starting with BEGIN and END in $OUT_MD with FILE
# (which holds both marker lines), keeping the hand-written text around it; a file without
# the block gets it appended (a missing file is created with a title).
write_block() { # BEGIN END FILE
	if [[ -f "$OUT_MD" ]] && grep -q "^$1" "$OUT_MD" && grep -q "^$2" "$OUT_MD"; then
		awk -v block="$3" -v begin="^$1" -v end="^$2" '
			$0 ~ begin { while ((getline line < block) > 0) print line; skip = 1; next }
			$0 ~ end { skip = 0; next }
			!skip { print }' "$OUT_MD" >"$WORK/merged.md"
		mv "$WORK/merged.md" "$OUT_MD"
	elif [[ -f "$OUT_MD" ]]; then
		{
			echo
			cat "$3"
		} >>"$OUT_MD"
	else
		{
			echo "# Benchmarks: kubectl-ko and ko side by side"
			echo
			echo "Run \`scripts/bench.sh\` to measure again; it rewrites the blocks below."
			echo
			cat "$3"
		} >"$OUT_MD"
	fi
}

RESULTS_MD="$WORK/results.md"
if [[ ${#TIME_SCENARIOS[@]} -gt 0 ]]; then
	{
		echo "<!-- bench:results — written by scripts/bench.sh; edits between these markers are overwritten -->"
		echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS counted run(s) per tool and scenario after $WARMUPS warm-up(s)."
		echo
		echo "| | |"
		echo "|---|---|"
		echo "| machine | $(nproc) cores ($cpu_model), $mem_gib GiB memory, $(uname -sr) |"
		echo "| load average (1, 5, 15 min) | $LOAD_BEFORE before, $LOAD_AFTER after |"
		echo "| kubectl-ko | $ours_version, commit $commit, $(basename "$BIN_DIR") build |"
		echo "| ko | $ko_version (\`go install github.com/google/ko@$KO_VERSION\`) |"
		echo "| Go | $go_version |"
		echo "| registry | $registry_version on 127.0.0.1 |"
		echo
		cat "$TABLE"
		echo
		echo "![ratios of kubectl-ko to ko per scenario]($(basename "$OUT_PNG"))"
		echo "<!-- bench:end -->"
	} >"$RESULTS_MD"
	write_block '<!-- bench:results' '<!-- bench:end -->' "$RESULTS_MD"
fi
if [[ ${#MEASURED_RESOURCES[@]} -gt 0 ]]; then
	{
		echo "<!-- bench:resources — written by scripts/bench.sh; edits between these markers are overwritten -->"
		echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS counted run(s) per tool after $WARMUPS warm-up(s); kubectl-ko $ours_version, commit $commit, $(basename "$BIN_DIR") build; ko $ko_version; $registry_version; load average $LOAD_BEFORE before, $LOAD_AFTER after."
		echo
		cat "$RESOURCE_TABLE"
		echo "<!-- bench:resources-end -->"
	} >"$WORK/resources-block.md"
	write_block '<!-- bench:resources —' '<!-- bench:resources-end -->' "$WORK/resources-block.md"
fi
if [[ ${#MEASURED_FLEETS[@]} -gt 0 ]]; then
	{
		echo "<!-- bench:fleet — written by scripts/bench.sh; edits between these markers are overwritten -->"
		echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS counted run(s) per tool after $WARMUPS warm-up(s), alternating kubectl-ko, ko, Go alone; kubectl-ko $ours_version, commit $commit, $(basename "$BIN_DIR") build; ko $ko_version; $go_version; $registry_version; load average $LOAD_BEFORE before, $LOAD_AFTER after."
		echo
		cat "$FLEET_TABLE"
		echo "<!-- bench:fleet-end -->"
	} >"$WORK/fleet-block.md"
	write_block '<!-- bench:fleet —' '<!-- bench:fleet-end -->' "$WORK/fleet-block.md"
fi
if [[ ${#MEASURED_GOCACHE[@]} -gt 0 ]]; then
	{
		echo "<!-- bench:gocache — written by scripts/bench.sh; edits between these markers are overwritten -->"
		echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC'), $RUNS counted round(s) after $WARMUPS warm-up(s), each round three fresh machines in turn (cold, A, B; A, B, cold in even rounds); kubectl-ko $ours_version, commit $commit, $(basename "$BIN_DIR") build; $go_version; $registry_version on the same machine; load average $LOAD_BEFORE before, $LOAD_AFTER after."
		echo
		cat "$GOCACHE_TABLE"
		echo "<!-- bench:gocache-end -->"
	} >"$WORK/gocache-block.md"
	write_block '<!-- bench:gocache —' '<!-- bench:gocache-end -->' "$WORK/gocache-block.md"
fi
if [[ -s "$WATCH_TABLE" ]]; then
	{
		echo "<!-- bench:watch — written by scripts/bench.sh; edits between these markers are overwritten -->"
		echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by scripts/bench-watch.sh, $RUNS counted run(s) after $WARMUPS warm-up(s); kubectl-ko $ours_version, commit $commit, $(basename "$BIN_DIR") build; ko $ko_version; $go_version; $registry_version; load average $LOAD_BEFORE before, $LOAD_AFTER after."
		echo
		cat "$WATCH_TABLE"
		echo "<!-- bench:watch-end -->"
	} >"$WORK/watch-block.md"
	write_block '<!-- bench:watch —' '<!-- bench:watch-end -->' "$WORK/watch-block.md"
fi
step "wrote $OUT_MD${TIME_SCENARIOS:+ and $OUT_PNG}"
if [[ -n "$SMOKE" ]]; then
	# Every run was checked (references printed and present in the registry); a plain
	# closing line for CI, which reads the last lines of scripts/test.sh.
	runs=0
	for scenario in "${SCENARIOS[@]}"; do
		if is_gocache_scenario "$scenario"; then
			runs=$((runs + 3))
			continue
		fi
		runs=$((runs + 1))
		is_watch_scenario "$scenario" && continue
		if ko_runs "$scenario"; then runs=$((runs + 1)); fi
		if go_runs "$scenario"; then runs=$((runs + 1)); fi
	done
	echo "bench smoke: $runs passed, 0 failed"
fi

#!/usr/bin/env bash
# The inner dev loop measured: ten apps of one Go module and ten Deployments, applied by
# `kubectl ko apply --watch` to a real kube-apiserver (scripts/test-cluster.sh); one app's
# main.go changes. Measured per run: the time from the file write to the Deployment's new image
# in the API server (seen through `kubectl get --watch`), whether exactly one image was rebuilt
# and one object applied (from the watch's summary line), Go's own rebuild of that one package
# (`go build -trimpath` after the same kind of change: the floor), and ko v0.19.1, which has no
# watch, as a full `ko apply` rerun after the same kind of change.
#
#   scripts/bench-watch.sh --bin-dir DIR [--runs N] [--smoke]   DIR holds kubectl-ko (any build)
#
# scripts/bench.sh runs this as its scenario 12. With --smoke: one run, no warm-up, no verdict,
# but a run that rebuilds or applies more than the one app fails.
#
# ko is the one scripts/bench.sh installs (run that once, or it is installed here the same
# way). Everything runs on loopback. Results go to stdout as a markdown table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
source "$ROOT/scripts/lib.sh"
KO_VERSION=v0.19.1
RUNS=5
SMOKE=""
BIN_DIR=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--bin-dir) BIN_DIR=$(cd "$2" && pwd); shift 2 ;;
	--smoke) SMOKE=1; shift ;;
	*) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
[[ -x "$BIN_DIR/kubectl-ko" ]] || die "pass --bin-dir with a built kubectl-ko"
KO_BIN=$(ensure_ko "$KO_VERSION")
# The same registry as scripts/bench.sh's (scripts/lib.sh says why).
KO_REGISTRY_BIN=$(ensure_bench_registry)
export KO_REGISTRY_BIN
KUBECTL=$("$ROOT/scripts/test-cluster.sh" kubectl | tail -n 1)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-ko-bench-watch.XXXXXX")
WATCH_PID=""
GETW_PID=""
cleanup() {
	local rc=$?
	[[ -n "$WATCH_PID" ]] && kill -INT "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
	[[ -n "$GETW_PID" ]] && kill "$GETW_PID" 2>/dev/null
	"$ROOT/scripts/registry.sh" stop "$WORK/registry" >/dev/null 2>&1 || true
	"$ROOT/scripts/test-cluster.sh" down "$WORK/cluster" >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT

step "starting a registry and a kube-apiserver"
"$ROOT/scripts/registry.sh" start "$WORK/registry" 0 >&2
REGISTRY="127.0.0.1:$(cat "$WORK/registry/port")"
export KUBECONFIG
KUBECONFIG=$("$ROOT/scripts/test-cluster.sh" up "$WORK/cluster" | tail -n 1)
export DOCKER_CONFIG="$WORK/docker-config" KOCACHE="$WORK/cache-ours"
mkdir -p "$DOCKER_CONFIG"
unset KO_CONFIG_PATH KO_DEFAULTPLATFORMS GOFLAGS SOURCE_DATE_EPOCH KO_DATA_DATE_EPOCH GOOS GOARCH GOARM

# The apps: ten commands of one module, one Deployment each, in namespaces of their own per tool.
APPS="$WORK/fleet"
write_hello() { # FILE MESSAGE
	printf 'package main\n\nimport "fmt"\n\nconst message = "%s"\n\nfunc main() { fmt.Println(message) }\n' "$2" >"$1"
}
mkdir -p "$APPS/config-ours" "$APPS/config-ko"
printf 'module example.com/bench/fleet\n\ngo 1.22\n' >"$APPS/go.mod"
for i in 0 1 2 3 4 5 6 7 8 9; do
	mkdir -p "$APPS/cmd/app$i"
	write_hello "$APPS/cmd/app$i/main.go" "hello from app$i"
	for tool in ours ko; do
		cat >"$APPS/config-$tool/app$i.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: app$i, namespace: $tool}
spec:
  selector: {matchLabels: {app: app$i}}
  template:
    metadata: {labels: {app: app$i}}
    spec: {containers: [{name: app, image: "ko://example.com/bench/fleet/cmd/app$i"}]}
EOF
	done
done
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: ours}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ko}\n' |
	"$KUBECTL" apply -f - >/dev/null
# ko and Go get a copy of their own, so that their changes do not wake the watch.
cp -a "$APPS" "$WORK/fleet-ko"
CHANGE=0
change() { # MODULE_DIR
	CHANGE=$((CHANGE + 1))
	write_hello "$1/cmd/app3/main.go" "hello, change $CHANGE of $$"
}

step "pushing a base both tools use"
mkdir -p "$WORK/base"
printf 'module example.com/bench/base\n\ngo 1.22\n' >"$WORK/base/go.mod"
printf 'package main\n\nfunc main() {}\n' >"$WORK/base/main.go"
export KO_DEFAULTBASEIMAGE
KO_DEFAULTBASEIMAGE=$(cd "$WORK/base" && KO_DOCKER_REPO="$REGISTRY/base" "$BIN_DIR/kubectl-ko" build --bare --sbom=none . 2>/dev/null)

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
image_of() { "$KUBECTL" get deployment app3 -n "$1" -o 'jsonpath={.spec.template.spec.containers[0].image}'; }

step "kubectl-ko apply --watch"
: >"$WORK/watch.err"
(cd "$APPS" && KO_DOCKER_REPO="$REGISTRY/ours" exec "$BIN_DIR/kubectl-ko" apply -f config-ours --watch --sbom=none \
	>"$WORK/watch.out" 2>"$WORK/watch.err") &
WATCH_PID=$!
summaries() { grep -c '^watch: ' "$WORK/watch.err" || true; }
wait_summaries() { # N
	local deadline=$(($(now_ms) + 300000))
	while [[ $(summaries) -lt $1 ]]; do
		[[ $(now_ms) -lt $deadline ]] || die "no summary line $1: $(tail -n 5 "$WORK/watch.err")"
		sleep 0.02
	done
}
wait_summaries 1
# Every change of the app's image as the API server reports it, stamped when it arrives.
("$KUBECTL" get deployment app3 -n ours --watch -o 'jsonpath={.spec.template.spec.containers[0].image}{"\n"}' |
	while read -r line; do echo "$(now_ms) $line"; done >"$WORK/events") &
GETW_PID=$!
sleep 1

results=()
first_run=0 # run 0 warms up
[[ -z "$SMOKE" ]] || RUNS=1 first_run=1
for run in $(seq "$first_run" "$RUNS"); do
	before=$(image_of ours)
	# Out of the fingerprint's racy window, as a developer's edit after a pause is.
	sleep 3.5
	start=$(now_ms)
	change "$APPS"
	deadline=$((start + 300000))
	until awk -v s="$start" -v b="$before" '$1 >= s && $2 != b { found = 1 } END { exit !found }' "$WORK/events"; do
		[[ $(now_ms) -lt $deadline ]] || die "no new image for app3: $(tail -n 5 "$WORK/watch.err")"
		sleep 0.005
	done
	seen=$(awk -v s="$start" -v b="$before" '$1 >= s && $2 != b { print $1; exit }' "$WORK/events")
	wait_summaries $((run - first_run + 2))
	line=$(grep '^watch: ' "$WORK/watch.err" | tail -n 1)
	one_image=no one_object=no
	[[ "$line" == *"images rebuilt: 1 of 10 (example.com/bench/fleet/cmd/app3)"* ]] && one_image=yes
	[[ "$line" == *"applied: deployment.apps/app3;"* ]] && one_object=yes

	# Go alone: the same kind of change, one package.
	sleep 3.5
	change "$WORK/fleet-ko"
	g0=$(now_ms)
	(cd "$WORK/fleet-ko" && go build -trimpath -o "$WORK/go-out/" ./cmd/app3)
	go_ms=$(($(now_ms) - g0))

	# ko: a full apply after the same kind of change.
	sleep 3.5
	change "$WORK/fleet-ko"
	k0=$(now_ms)
	(cd "$WORK/fleet-ko" && KO_DOCKER_REPO="$REGISTRY/ko" "$KO_BIN" apply -f config-ko --sbom=none >/dev/null 2>"$WORK/ko.err") ||
		die "ko apply failed: $(tail -n 5 "$WORK/ko.err")"
	ko_ms=$(($(now_ms) - k0))
	[[ $run -eq 0 ]] && continue
	[[ -z "$SMOKE" || "$one_image $one_object" == "yes yes" ]] || die "the watch did more than rebuild and apply app3: $line"
	results+=("$((seen - start)) $go_ms $ko_ms $one_image $one_object")
	step "run $run: watch $((seen - start)) ms, go $go_ms ms, ko apply $ko_ms ms, one image: $one_image, one object: $one_object"
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { printf '%s\n' "${results[@]}" | awk -v c="$1" '{ print $c }'; }
w=$(col 1 | median) g=$(col 2 | median) k=$(col 3 | median)
echo "| measurement ($RUNS runs, median) | value |"
echo "|---|---|"
echo "| write of main.go to the new image in the API server, \`kubectl-ko apply --watch\` | $w ms |"
echo "| Go's own rebuild of that package (\`go build -trimpath\`) | $g ms |"
verdict() { # MET
	if [[ -n "$SMOKE" ]]; then echo "not judged (smoke)"; elif [[ "$1" == 1 ]]; then echo met; else echo missed; fi
}
ratio=$(awk -v a="$w" -v b="$k" 'BEGIN { printf "%.2f", a / b }')
echo "| watch over Go | $((w - g)) ms (target: at most 500 ms: $(verdict $((w - g <= 500)))) |"
echo "| ko v0.19.1, a full \`ko apply\` rerun | $k ms |"
echo "| ratio, watch / ko | $ratio (target: at most 0.2: $(verdict "$(awk -v r="$ratio" 'BEGIN { print (r <= 0.2) }')")) |"
echo "| exactly one image rebuilt / one object applied, every run | $(col 4 | sort -u | tr '\n' ' ')/ $(col 5 | sort -u | tr '\n' ' ') |"
echo "| kubectl-ko build | $(basename "$BIN_DIR") |"

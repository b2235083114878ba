#!/usr/bin/env bash
# Start and stop a real Kubernetes API server (kube-apiserver backed by etcd) on the
# loopback interface, for the end-to-end tests. No controller-manager, scheduler or
# kubelet: objects are stored and served, nothing reconciles them.
#
#   scripts/test-cluster.sh build        build the binaries into the cache (once)
#   scripts/test-cluster.sh up DIR       start etcd + kube-apiserver with state in DIR;
#                                        prints the absolute kubeconfig path as the
#                                        last line on stdout (progress goes to stderr)
#   scripts/test-cluster.sh down DIR     stop them (safe to run twice, or on no cluster)
#   scripts/test-cluster.sh kubectl      build kubectl of the same version (once); prints its path
#
# The binaries are built from the Go module proxy (k8s.io/kubernetes $KUBE_VERSION and
# the etcd server it requires) with a throw-away Go module, and cached outside the
# checkout in $KO_TEST_CACHE (default: ${XDG_CACHE_HOME:-~/.cache}/kubectl-ko-test)
# under kube-$KUBE_VERSION/bin/. A cold build takes several minutes on 2 cores; once
# cached, `up` takes seconds. Needs go (>= the go directive of k8s.io/kubernetes, no
# toolchain download: GOTOOLCHAIN=local), openssl and curl (installed when missing).
#
# Files in DIR: kubeconfig (context ko-test, namespace default, bearer token of user
# ko-admin in group system:masters), pki/ (CA, serving cert, service-account key; the
# API server also accepts client certificates signed by pki/ca.{crt,key}),
# tokens.csv, etcd/ (data), etcd.log, kube-apiserver.log, etcd.pid,
# kube-apiserver.pid, ports.
#
# Environment:
#   KO_TEST_CACHE              cache directory for the built binaries (see above)
#   KO_TEST_CLUSTER_TIMEOUT    seconds to wait for /readyz in `up` (default 120)
#
# Behaviour to know about:
#   - Authorization is RBAC; the kubeconfig user is in system:masters (cluster-admin).
#   - Admission plugin ServiceAccount is disabled: without a controller-manager no
#     `default` ServiceAccount is ever created, and that plugin would reject every Pod.
#   - Deleting a Namespace leaves it Terminating forever (the namespace controller that
#     removes the `kubernetes` finalizer lives in the controller-manager). Tests should
#     use unique namespace names rather than wait for deletions; to really remove one,
#     empty its finalizers through the finalize subresource:
#       kubectl get ns NS -o json | jq '.spec.finalizers=[]' |
#         kubectl replace --raw /api/v1/namespaces/NS/finalize -f -
#   - Deployments are stored but get no ReplicaSets or Pods; Pods stay Pending (no
#     scheduler, no node).
#   - The endpoint reconciler is off (--endpoint-reconciler-type=none): Endpoints may
#     not hold loopback addresses, so it could only log errors for 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# Pinned versions. etcd is the one k8s.io/kubernetes $KUBE_VERSION requires in its own
# go.mod, so both binaries build from one consistent module graph.
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.4

CACHE=${KO_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ko-test}
BUILD_DIR=$CACHE/kube-$KUBE_VERSION
BIN_DIR=$BUILD_DIR/bin
TIMEOUT=${KO_TEST_CLUSTER_TIMEOUT:-120}

usage() {
	echo "usage: $0 build | up DIR | down DIR" >&2
	exit 2
}

# --- build -----------------------------------------------------------------

built() {
	[[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/etcd" ]]
}

# The go command for the throw-away module: modules from the proxy only, no toolchain
# download, no workspace or vendor surprises from the caller's environment.
gobuild_env() {
	env GOTOOLCHAIN=local GOWORK=off GO111MODULE=on CGO_ENABLED=0 \
		GOFLAGS="-mod=mod -buildvcs=false" "$@"
}

# Runs `go build -v ...` in DIR with its output in a log, so that the hundreds of
# `go: downloading` and package lines of a cold build do not flood the terminal; instead a
# line every PROGRESS_INTERVAL seconds (30) says how long it has run and how many modules it
# downloaded and packages it compiled, so it never goes silent for long. A failure prints
# the end of the log.
go_build_progress() { # LABEL DIR GO-BUILD-ARGS...
	local label=$1 dir=$2 log rc=0 ticker begin
	shift 2
	log=$(mktemp "${TMPDIR:-/tmp}/kubectl-ko-gobuild.XXXXXX")
	begin=$(date +%s)
	progress() { # WHAT
		local downloads packages
		downloads=$(grep -c '^go: downloading' "$log" || true)
		packages=$(grep -vc '^go: ' "$log" || true)
		step "$label: $1 $(($(date +%s) - begin)) s, $downloads modules downloaded, $packages packages compiled"
	}
	(
		nap=""
		trap '[[ -z "$nap" ]] || kill "$nap" 2>/dev/null; exit 0' TERM
		while :; do
			sleep "${PROGRESS_INTERVAL:-30}" &
			nap=$!
			wait "$nap"
			progress "still building after"
		done
	) &
	ticker=$!
	(cd "$dir" && gobuild_env go build -v "$@") 2>"$log" || rc=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	if [[ $rc -ne 0 ]]; then
		tail -n 40 "$log" >&2
	else
		progress "done in"
	fi
	rm -f "$log"
	return "$rc"
}

# A throw-away Go module that requires k8s.io/kubernetes $KUBE_VERSION (and etcd) in SRC.
write_module() { # SRC
	local src=$1
	# k8s.io/kubernetes points its staging modules (k8s.io/api, ...) at ./staging/src in
	# its own go.mod, which a dependent module ignores: replace each with the published
	# v0.X.Y that matches. The list comes from that go.mod, so it tracks the version.
	local kube_mod staging=() m
	kube_mod=$(cd "$src" && gobuild_env go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[[ -f "$kube_mod" ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION from $(go env GOPROXY)"
	mapfile -t staging < <(sed -n 's|^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*|\1|p' "$kube_mod")
	[[ ${#staging[@]} -gt 0 ]] || die "no staging replace lines in $kube_mod"
	local go_line
	go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kube_mod")
	{
		echo "module kubectl-ko-test/kube"
		echo
		echo "go ${go_line:-1.24.0}"
		echo
		echo "require ("
		echo "	k8s.io/kubernetes $KUBE_VERSION"
		echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
		echo ")"
		echo
		echo "replace ("
		for m in "${staging[@]}"; do
			echo "	$m => $m v0.${KUBE_VERSION#v1.}"
		done
		echo ")"
	} >"$src/go.mod"
}

# -ldflags that stamp the version the way the Kubernetes release build does.
version_ldflags() {
	local minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local pkg ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean"
	done
	echo "$ldflags"
}

build() {
	if built; then
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "go not found on PATH (needed to build kube-apiserver and etcd)"
	[[ "$(go env GOPROXY)" != off ]] || die "GOPROXY=off: the build needs the Go module proxy"
	mkdir -p "$BUILD_DIR"

	# One build at a time per version (parallel test runs share the cache).
	exec {lock}>"$BUILD_DIR/.lock"
	flock "$lock"
	if built; then
		exec {lock}>&-
		return 0
	fi

	local start=$SECONDS src=$BUILD_DIR/src out=$BUILD_DIR/bin.tmp
	step "building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION into $BIN_DIR (cold build: several minutes)"
	rm -rf "$src" "$out"
	mkdir -p "$src" "$out"

	write_module "$src"
	local ldflags
	ldflags=$(version_ldflags)

	step "go build k8s.io/kubernetes/cmd/kube-apiserver (a line every 30 s while it runs)"
	go_build_progress kube-apiserver "$src" -trimpath -ldflags="$ldflags" -o "$out/kube-apiserver" \
		k8s.io/kubernetes/cmd/kube-apiserver || die "building kube-apiserver failed"
	step "go build go.etcd.io/etcd/server/v3 (etcd)"
	go_build_progress etcd "$src" -trimpath -ldflags="-s -w" -o "$out/etcd" \
		go.etcd.io/etcd/server/v3 || die "building etcd failed"

	"$out/kube-apiserver" --version >&2
	"$out/etcd" --version >&2
	rm -rf "$BIN_DIR"
	mv "$out" "$BIN_DIR"
	rm -rf "$src"
	step "built in $((SECONDS - start)) s"
	exec {lock}>&-
}

# kubectl of the same version, for machines that have none (built on demand, cached).
build_kubectl() {
	[[ -x "$BIN_DIR/kubectl" ]] && return 0
	build
	exec {lock}>"$BUILD_DIR/.lock"
	flock "$lock"
	if [[ ! -x "$BIN_DIR/kubectl" ]]; then
		local src=$BUILD_DIR/src-kubectl
		rm -rf "$src"
		mkdir -p "$src"
		write_module "$src"
		step "go build k8s.io/kubernetes/cmd/kubectl (a line every 30 s while it runs)"
		go_build_progress kubectl "$src" -trimpath -ldflags="$(version_ldflags)" -o "$BIN_DIR/kubectl.tmp" \
			k8s.io/kubernetes/cmd/kubectl || die "building kubectl failed"
		mv "$BIN_DIR/kubectl.tmp" "$BIN_DIR/kubectl"
		rm -rf "$src"
	fi
	exec {lock}>&-
}

# --- processes -------------------------------------------------------------

# True when PID is alive and runs the program NAME (guards against a reused pid).
pid_is() { # PID NAME
	[[ -n "$1" ]] && kill -0 "$1" 2>/dev/null &&
		[[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" == *"/$2 "* ]]
}

# Stop the process whose pid is in FILE (TERM, then KILL after 10 s); remove FILE.
stop_pidfile() { # FILE NAME
	local file=$1 name=$2 pid i
	[[ -f "$file" ]] || return 0
	pid=$(cat "$file")
	if pid_is "$pid" "$name"; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			pid_is "$pid" "$name" || break
			sleep 0.1
		done
		if pid_is "$pid" "$name"; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$file"
}

# Start NAME in its own session (it outlives this script), logging to DIR/NAME.log.
spawn() { # DIR NAME ARGS...
	local dir=$1 name=$2
	shift 2
	: >"$dir/$name.log"
	setsid "$BIN_DIR/$name" "$@" </dev/null >>"$dir/$name.log" 2>&1 &
	local pid=$! i
	echo "$pid" >"$dir/$name.pid"
	# Until the child has run the program its command line is this shell's, and pid_is would
	# take it for gone: wait for the exec (a moment; longer on a loaded machine).
	for ((i = 0; i < 200; i++)); do
		pid_is "$pid" "$name" || ! kill -0 "$pid" 2>/dev/null && return 0
		sleep 0.05
	done
}

# True while NAME, spawned by this shell into DIR, runs (it may be a zombie not yet waited
# for). Not pid_is: while a process execs, its command line reads empty for a moment, and a
# start-up check that read it then took a starting server for one that had exited.
alive() { # DIR NAME
	local stat
	stat=$(cat "/proc/$(cat "$1/$2.pid")/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ "${stat%% *}" != Z ]]
}

# Stop `up` because NAME (spawned by this shell) is gone, with its exit status.
gone() { # DIR NAME
	local pid rc=0
	pid=$(cat "$1/$2.pid")
	wait "$pid" 2>/dev/null || rc=$?
	die "$2 exited during start-up (pid $pid, exit status $rc)"
}

# Print the last lines of both logs to stderr.
show_logs() { # DIR
	local f
	for f in "$1/etcd.log" "$1/kube-apiserver.log"; do
		[[ -f "$f" ]] || continue
		echo "--- last lines of $f:" >&2
		if [[ -s "$f" ]]; then tail -n 30 "$f" >&2; else echo "(empty)" >&2; fi
	done
}

# --- up / down -------------------------------------------------------------

gen_pki() { # DIR
	local pki=$1/pki
	mkdir -p "$pki"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ko-test-ca" \
		-keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
		-keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
	printf '%s\n' \
		"subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
		"extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" \
		"basicConstraints=CA:FALSE" >"$pki/apiserver.ext"
	openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-CAcreateserial -days 3650 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
	openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
	openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	chmod 600 "$pki"/*.key
}

write_kubeconfig() { # FILE SERVER CA_FILE TOKEN
	local ca_data
	ca_data=$(base64 -w0 <"$3")
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ko-test
  cluster:
    server: $2
    certificate-authority-data: $ca_data
users:
- name: ko-admin
  user:
    token: $4
contexts:
- name: ko-test
  context:
    cluster: ko-test
    user: ko-admin
    namespace: default
current-context: ko-test
EOF
	chmod 600 "$1"
}

# Three distinct free loopback ports: etcd client, etcd peer, API server (below the
# kernel's ephemeral range, which starts at 32768).
pick_ports() {
	local a b c
	a=$(free_port 20000 4000)
	b=$(free_port 24000 4000)
	c=$(free_port 28000 4000)
	echo "$a $b $c"
}

# EXIT trap of `up` until the cluster is ready: on failure show the logs and stop both.
up_failed() {
	local rc=$?
	if [[ $rc -ne 0 ]]; then
		show_logs "$UP_DIR"
		down "$UP_DIR"
	fi
	exit "$rc"
}

up() {
	[[ $# -eq 1 ]] || usage
	local dir=$1
	build
	ensure_debs openssl curl ca-certificates

	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if pid_is "$(cat "$dir/kube-apiserver.pid" 2>/dev/null || true)" kube-apiserver ||
		pid_is "$(cat "$dir/etcd.pid" 2>/dev/null || true)" etcd; then
		die "a test cluster is already running from $dir; run: $0 down $dir"
	fi
	rm -rf "$dir/etcd" "$dir/pki"

	# From here on, any failure (or an interrupt) stops what was started.
	UP_DIR=$dir
	trap up_failed EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	local ports etcd_port peer_port port
	ports=$(pick_ports)
	read -r etcd_port peer_port port <<<"$ports"
	echo "etcd=$etcd_port etcd-peer=$peer_port apiserver=$port" >"$dir/ports"

	step "generating certificates and keys in $dir/pki"
	gen_pki "$dir"
	local token
	token=$(openssl rand -hex 24)
	echo "$token,ko-admin,ko-admin,system:masters" >"$dir/tokens.csv"
	chmod 600 "$dir/tokens.csv"

	step "starting etcd $ETCD_VERSION on 127.0.0.1:$etcd_port"
	spawn "$dir" etcd \
		--name=ko-test \
		--data-dir="$dir/etcd" \
		--listen-client-urls="http://127.0.0.1:$etcd_port" \
		--advertise-client-urls="http://127.0.0.1:$etcd_port" \
		--listen-peer-urls="http://127.0.0.1:$peer_port" \
		--initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
		--initial-cluster="ko-test=http://127.0.0.1:$peer_port" \
		--initial-cluster-state=new \
		--quota-backend-bytes=$((512 * 1024 * 1024)) \
		--unsafe-no-fsync \
		--log-level=warn

	local deadline=$((SECONDS + TIMEOUT))
	until [[ "$(curl -sS --max-time 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null)" == *'"health":"true"'* ]]; do
		alive "$dir" etcd || gone "$dir" etcd
		((SECONDS < deadline)) || die "etcd did not become healthy within $TIMEOUT s"
		sleep 0.2
	done

	local pki=$dir/pki issuer=https://kubernetes.default.svc.cluster.local
	step "starting kube-apiserver $KUBE_VERSION on https://127.0.0.1:$port"
	spawn "$dir" kube-apiserver \
		--etcd-servers="http://127.0.0.1:$etcd_port" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="$port" \
		--tls-cert-file="$pki/apiserver.crt" \
		--tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" \
		--token-auth-file="$dir/tokens.csv" \
		--authorization-mode=RBAC \
		--anonymous-auth=false \
		--service-cluster-ip-range=10.0.0.0/24 \
		--service-account-issuer="$issuer" \
		--api-audiences="$issuer" \
		--service-account-key-file="$pki/sa.pub" \
		--service-account-signing-key-file="$pki/sa.key" \
		--disable-admission-plugins=ServiceAccount \
		--endpoint-reconciler-type=none \
		--allow-privileged=true \
		--profiling=false

	local server=https://127.0.0.1:$port out
	until out=$(curl -sS --max-time 5 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" \
		"$server/readyz" 2>/dev/null) && [[ "$out" == ok ]]; do
		alive "$dir" kube-apiserver || gone "$dir" kube-apiserver
		alive "$dir" etcd || gone "$dir" etcd
		if ((SECONDS >= deadline)); then
			curl -sS --max-time 5 --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" \
				"$server/readyz?verbose" 2>&1 | grep -v '^\[+\]' >&2 || true
			die "kube-apiserver did not answer ok on $server/readyz within $TIMEOUT s"
		fi
		sleep 0.3
	done

	write_kubeconfig "$dir/kubeconfig" "$server" "$pki/ca.crt" "$token"
	trap - EXIT INT TERM
	step "cluster ready: $server (dir $dir)"
	echo "$dir/kubeconfig"
}

down() {
	[[ $# -eq 1 ]] || usage
	local dir=$1
	[[ -d "$dir" ]] || return 0
	stop_pidfile "$dir/kube-apiserver.pid" kube-apiserver
	stop_pidfile "$dir/etcd.pid" etcd
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case "$cmd" in
build)
	[[ $# -eq 0 ]] || usage
	build
	echo "$BIN_DIR"
	;;
kubectl)
	[[ $# -eq 0 ]] || usage
	build_kubectl
	echo "$BIN_DIR/kubectl"
	;;
up) up "$@" ;;
down) down "$@" ;;
*) usage ;;
esac

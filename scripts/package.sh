#!/usr/bin/env bash
# Build the release archives of kubectl-ko and the krew plugin manifest that installs them.
#
#   scripts/package.sh [--profile PROFILE] [--bin-dir DIR] [--dist DIR] [--manifest FILE]
#                      [--target TRIPLE] [--url-base URL] [--manifest-only]
#
# Writes dist/kubectl-ko_<version>_<os>_<arch>.tar.gz (the one kubectl-ko executable, which
# answers to every command name of the suite, plus LICENSE and README.md), a .sha256 file
# beside each, and dist/ko.yaml, the krew manifest, from krew-manifests/ko.yaml.in with one
# platform entry per archive. Tracked files are left alone (a changed checkout would change
# the Go VCS stamp of examples/, hence its digest).
#
#   --profile PROFILE  cargo profile to build with (default: release)
#   --bin-dir DIR      package the kubectl-ko already in DIR instead of building (the tests
#                      package their debug build this way); host platform only
#   --dist DIR         where the archives go (default: dist)
#   --manifest FILE    where the manifest goes (default: ko.yaml in the --dist directory)
#   --target TRIPLE    only this platform (the cargo target triple of one of the four);
#                      failing to build it is an error. With --bin-dir, DIR holds its binary
#   --url-base URL     the manifest's download URLs are URL/<archive> (default:
#                      <repository>/releases/download/v<version>)
#   --manifest-only    build and package nothing: write the manifest for this version's
#                      archives already in --dist (the release job collects them first)
#
# Archives are reproducible: two clean builds of one commit in different directories give the
# same bytes. The build maps the checkout, $CARGO_HOME and the toolchain out of the binary's
# paths (--remap-path-prefix), is --locked, and embeds the last commit outside
# krew-manifests/ (KUBECTL_KO_COMMIT overrides it); the archive has sorted entries, owner 0:0,
# modes 0755/0644, and every mtime set to SOURCE_DATE_EPOCH (default: that commit's time).
# Archives for other platforms (linux/arm64, darwin) are built when this machine has their
# Rust target and linker; the script says which were not built and why.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh disable=SC1091
. "$ROOT/scripts/lib.sh"

usage() {
	sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

profile=release bin_dir="" dist="$ROOT/dist" manifest="" only_target="" url_base="" manifest_only=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--manifest-only)
		manifest_only=1
		shift
		;;
	--profile | --bin-dir | --dist | --manifest | --target | --url-base)
		[[ $# -ge 2 ]] || usage
		case "$1" in
		--profile) profile=$2 ;;
		--bin-dir) bin_dir=$(cd "$2" && pwd) ;;
		--dist) dist=$2 ;;
		--manifest) manifest=$2 ;;
		--target) only_target=$2 ;;
		--url-base) url_base=${2%/} ;;
		esac
		shift 2
		;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
manifest=${manifest:-$dist/ko.yaml}
mkdir -p "$(dirname "$manifest")"
cd "$ROOT"

# --- what to package ------------------------------------------------------

# A value of the [workspace.package] table of the root Cargo.toml.
workspace_field() { # NAME
	awk -v key="$1" '
		/^\[/ { in_table = ($0 == "[workspace.package]") }
		in_table && $1 == key { sub(/^[^=]*=[ \t]*"/, ""); sub(/".*$/, ""); print; exit }
	' Cargo.toml
}
version=$(workspace_field version)
repository=$(workspace_field repository)
[[ -n "$version" ]] || die "no version in [workspace.package] of Cargo.toml"
[[ -n "$repository" ]] || die "no repository in [workspace.package] of Cargo.toml"

# The one executable shipped. It answers to every name of the suite (argv[0]); krew cannot
# unpack symlinks (v0.4.3 takes regular files and directories only), so the other names are
# links the user, `kubectl ko login` or scripts/install.sh make.
BINARY=kubectl-ko
# The names that must be on PATH themselves to work, with what they do (for the caveats).
HELPERS=(
	"docker-credential-ko|lets Docker use the registry logins of \`kubectl ko login\` (which links it for you)"
	"kubectl_complete-ko|completes \`kubectl ko <TAB>\` (kubectl 1.26 and later)"
)

# The last commit of anything but the manifest gives the archive its times and the binary its
# commit (`kubectl ko version`), so committing a regenerated manifest does not change the
# archive it describes: the manifest's sha256 holds for a build at the commit that holds it.
read -r source_commit source_time < <(git log -1 --format='%H %ct' -- . ':!krew-manifests' 2>/dev/null || true) || true
export KUBECTL_KO_COMMIT=${KUBECTL_KO_COMMIT:-${source_commit:-unknown}}
mtime=${SOURCE_DATE_EPOCH:-${source_time:-0}}
[[ "$mtime" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be a number of seconds, got '$mtime'"

host_triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
profile_dir=$profile
[[ "$profile" != dev ]] || profile_dir=debug

# os arch rust-target: the platforms krew users run.
PLATFORMS=(
	"linux amd64 x86_64-unknown-linux-gnu"
	"linux arm64 aarch64-unknown-linux-gnu"
	"darwin amd64 x86_64-apple-darwin"
	"darwin arm64 aarch64-apple-darwin"
)

# --- building -------------------------------------------------------------

# rustc flags that keep the machine out of the binary: panic locations and the like name
# files by path, so the checkout, the crate sources under $CARGO_HOME and the toolchain are
# mapped to fixed names. The caller's RUSTFLAGS (or CARGO_ENCODED_RUSTFLAGS) come first, and
# the release flags of the TARGET (scripts/lib.sh) last.
reproducible_rustflags() { # TARGET
	local sep=$'\x1f' flags=() flag release
	if [[ -n "${CARGO_ENCODED_RUSTFLAGS:-}" ]]; then
		IFS=$sep read -r -a flags <<<"$CARGO_ENCODED_RUSTFLAGS"
	elif [[ -n "${RUSTFLAGS:-}" ]]; then
		read -r -a flags <<<"$RUSTFLAGS"
	fi
	flags+=(
		"--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
		"--remap-path-prefix=$(rustc --print sysroot)=/rust"
		"--remap-path-prefix=$ROOT=/kubectl-ko"
	)
	release=$(release_rustflags "$1")
	[[ -z "$release" ]] || flags+=("$release")
	local IFS=$sep
	flag="${flags[*]}"
	printf '%s' "$flag"
}

# Sets `from` to the directory holding kubectl-ko for TARGET, building it first; when this
# machine cannot build it, sets `reason` and fails.
build_for() { # TARGET
	local target=$1 build
	from="" reason=""
	if [[ -n "$bin_dir" ]]; then
		from=$bin_dir
		[[ "$target" == "$host_triple" || "$target" == "$only_target" ]] && return 0
		reason="--bin-dir packages the host platform, or the one --target names"
		return 1
	fi
	build=(cargo build --locked --profile "$profile" --package "$BINARY" --bin "$BINARY")
	if [[ "$target" == "$host_triple" ]]; then
		step "${build[*]} --target $target"
		CARGO_ENCODED_RUSTFLAGS=$(reproducible_rustflags "$target") "${build[@]}" --target "$target" >&2 ||
			die "cargo build failed"
		from="$target_dir/$target/$profile_dir"
		return 0
	fi
	if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
		reason="the Rust target $target is not installed (rustup target add $target); building it also needs a C compiler and linker for $target (ring's C code, the final link)"
		return 1
	fi
	step "${build[*]} --target $target"
	if ! CARGO_ENCODED_RUSTFLAGS=$(reproducible_rustflags "$target") "${build[@]}" --target "$target" >&2; then
		reason="cargo build --target $target failed (see above): a C compiler and linker for $target are needed"
		return 1
	fi
	from="$target_dir/$target/$profile_dir"
}

# --- archives -------------------------------------------------------------

# Writes ARCHIVE from kubectl-ko in DIR plus LICENSE and README.md, byte for byte the same
# for the same inputs. A host binary is stripped: a debug build's symbols are 98% of it, and
# release builds come stripped already (profile.release.strip).
make_archive() { # DIR TARGET ARCHIVE
	local from=$1 target=$2 archive=$3 stage strip=()
	[[ "$target" != "$host_triple" ]] || ! command -v strip >/dev/null 2>&1 || strip=(--strip)
	[[ -f "$from/$BINARY" ]] || die "$from/$BINARY is missing: build it first (cargo build -p $BINARY)"
	stage=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-ko-package.XXXXXX")
	install -m 0755 "${strip[@]}" "$from/$BINARY" "$stage/$BINARY"
	install -m 0644 LICENSE README.md "$stage/"
	(cd "$stage" && printf '%s\n' * | LC_ALL=C sort) >"$stage.list"
	tar --create --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$mtime" --directory="$stage" --files-from="$stage.list" |
		gzip -n -9 >"$archive.tmp"
	mv "$archive.tmp" "$archive"
	rm -rf "$stage" "$stage.list"
}

if [[ -n "$only_target" ]]; then
	selected=()
	for platform in "${PLATFORMS[@]}"; do
		[[ "$platform" != *" $only_target" ]] || selected+=("$platform")
	done
	[[ ${#selected[@]} -eq 1 ]] || die "--target $only_target is not one of the platforms krew users run (${PLATFORMS[*]})"
	PLATFORMS=("${selected[@]}")
fi
url_base=${url_base:-$repository/releases/download/v$version}

platform_entries=""
not_built=()
for platform in "${PLATFORMS[@]}"; do
	read -r os arch target <<<"$platform"
	name="kubectl-ko_${version}_${os}_${arch}.tar.gz"
	if [[ -n "$manifest_only" ]]; then
		[[ -f "$dist/$name" ]] || continue
	elif ! build_for "$target"; then
		[[ -z "$only_target" ]] || die "cannot build $target: $reason"
		not_built+=("$os/$arch: $reason")
		continue
	else
		step "packaging $name"
		make_archive "$from" "$target" "$dist/$name"
	fi
	(cd "$dist" && sha256sum "$name" >"$name.sha256")
	sha=$(cut -d' ' -f1 "$dist/$name.sha256")
	platform_entries+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $url_base/$name
    sha256: $sha
    files:
"
	for file in "$BINARY" LICENSE README.md; do
		platform_entries+="    - from: $file
      to: .
"
	done
	platform_entries+="    bin: $BINARY
"
	echo "$dist/$name"
done
if [[ -n "$manifest_only" ]]; then
	[[ -n "$platform_entries" ]] || die "--manifest-only: no kubectl-ko_${version}_*.tar.gz archive in $dist"
else
	[[ -n "$platform_entries" ]] || die "no archive could be built"
fi

# --- manifest -------------------------------------------------------------

helper_lines="" helper_links=""
for h in "${HELPERS[@]}"; do
	helper_lines+="      ${h%%|*}: ${h#*|}
"
	helper_links+="      ln -sf \"\$(command -v kubectl-ko)\" ~/.local/bin/${h%%|*}
"
done

{
	echo "# Written by scripts/package.sh from krew-manifests/ko.yaml.in: edit the template, not this file."
	while IFS= read -r line || [[ -n "$line" ]]; do
		case "$line" in
		'@PLATFORMS@') printf '%s' "$platform_entries" ;;
		'@HELPERS@') printf '%s' "$helper_lines" ;;
		'@HELPER_LINKS@') printf '%s' "$helper_links" ;;
		\#*) ;;
		*)
			line=${line//@VERSION@/$version}
			line=${line//@HOMEPAGE@/$repository}
			printf '%s\n' "$line"
			;;
		esac
	done <krew-manifests/ko.yaml.in
} >"$manifest.tmp"
mv "$manifest.tmp" "$manifest"
step "wrote $manifest"

if [[ ${#not_built[@]} -gt 0 ]]; then
	step "archives not built:"
	printf '    %s\n' "${not_built[@]}" >&2
fi

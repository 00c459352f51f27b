#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Idempotent set-up of everything `make run` / `make check` need:
#   Debian packages (LLVM 22 among them: clang, lld and the llvm tools from
#   Debian 12's own bookworm-security, the LLVM major of rustc 1.95), rust-src,
#   bindgen-cli and the Linux 7.2 source package.  Downloads and tools are cached under
#   $P2PDMA_CACHE (default ~/.cache/p2pdma-rs); nothing relies on the cache
#   being there, and no system apt source is modified.
#
# Writes the tool paths it found as a shell fragment to $1.
set -euo pipefail

CACHE=${P2PDMA_CACHE:-$HOME/.cache/p2pdma-rs}
BINDGEN_VERSION=${BINDGEN_VERSION:-0.73.2}
LLVM_VERSION=${LLVM_VERSION:-22}
KPKG=linux-source-7.2
ENVFILE=${1:-$CACHE/env.sh}

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || die "need root or sudo for apt-get"
	SUDO=sudo
fi

mkdir -p "$CACHE"

# --- Debian packages -------------------------------------------------------
PKGS="bc bison flex cpio kmod rsync libelf-dev libssl-dev libc6-dev make gcc
      busybox-static qemu-system-x86 qemu-utils python3 xz-utils
      debian-archive-keyring ca-certificates
      clang-$LLVM_VERSION lld-$LLVM_VERSION llvm-$LLVM_VERSION"
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	log "installing Debian packages:$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends $missing >/dev/null
fi

# --- Rust: rust-src for the active toolchain ------------------------------
command -v rustc >/dev/null || die "no rustc: install Rust with rustup first"
SYSROOT=$(rustc --print sysroot)
if [ ! -d "$SYSROOT/lib/rustlib/src/rust/library" ]; then
	log "adding rust-src to $(rustc --version)"
	rustup component add rust-src >&2 ||
		die "rust-src missing and 'rustup component add rust-src' failed"
fi
for c in rustfmt clippy-driver; do
	command -v $c >/dev/null || rustup component add "${c%-driver}" >&2
done

# --- bindgen-cli, pinned --------------------------------------------------
TOOLS=$CACHE/tools
if ! "$TOOLS/bin/bindgen" --version 2>/dev/null | grep -qx "bindgen $BINDGEN_VERSION"; then
	log "cargo install bindgen-cli $BINDGEN_VERSION (takes ~3 min)"
	cargo install --quiet --locked --root "$TOOLS" --version "$BINDGEN_VERSION" \
		bindgen-cli >&2 || die "cargo install bindgen-cli failed"
fi

# --- LLVM: the kernel's LLVM=-22 and bindgen's libclang ---------------------
# rustc's LLVM major must equal clang's for CONFIG_RUST_INLINE_HELPERS.
LLVM_DIR=/usr/lib/llvm-$LLVM_VERSION/lib
ls "$LLVM_DIR"/libclang-$LLVM_VERSION.so* >/dev/null 2>&1 || die "no libclang in $LLVM_DIR"
rustc -vV | grep -q "^LLVM version: $LLVM_VERSION\." ||
	log "WARNING: $(rustc -vV | grep '^LLVM version') differs from clang $LLVM_VERSION: no inlined helpers"

# --- Linux 7.2 source from Debian, through a private apt configuration ----
KDEB=$(ls "$CACHE"/debs/${KPKG}_7.2.*_all.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$KDEB" ]; then
	# Use the archive the system already uses; do not touch its sources.
	MIRROR=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/\{0,1\}[[:space:]]*$/\1/p' \
			/etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
	[ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\(http[^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' \
			/etc/apt/sources.list 2>/dev/null | head -1)
	[ -n "$MIRROR" ] || die "cannot find the Debian archive in the system apt sources"
	APT=$CACHE/apt
	mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$CACHE/debs"
	KEY=/usr/share/keyrings/debian-archive-keyring.gpg
	cat >"$APT/sources.list" <<EOS
deb [signed-by=$KEY] $MIRROR unstable main
deb [signed-by=$KEY] $MIRROR trixie-backports main
EOS
	APTOPTS=(-o Dir::Etc::sourcelist="$APT/sources.list" -o Dir::Etc::sourceparts=-
		 -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache"
		 -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
	log "fetching package lists for unstable and trixie-backports (private apt config)"
	apt-get -qq "${APTOPTS[@]}" update >&2 || die "apt-get update (private config) failed"
	VER=$(apt-cache "${APTOPTS[@]}" madison "$KPKG" 2>/dev/null |
		awk '{print $3}' | grep '^7\.2\.' | sort -V | tail -1 || true)
	[ -n "$VER" ] || die "no $KPKG (any 7.2.y) in unstable or trixie-backports any more;
  download a linux-source-7.2_*.deb by hand into $CACHE/debs/ and rerun"
	log "downloading $KPKG $VER (~164 MB)"
	(cd "$CACHE/debs" && apt-get -qq "${APTOPTS[@]}" download "$KPKG=$VER") >&2 ||
		die "apt-get download $KPKG=$VER failed"
	KDEB=$(ls "$CACHE"/debs/${KPKG}_7.2.*_all.deb | sort -V | tail -1)
fi
KTAR=$CACHE/src/$(basename "$KDEB" .deb).tar.xz
if [ ! -s "$KTAR" ]; then
	log "extracting $(basename "$KDEB")"
	rm -rf "$CACHE/src/x" && mkdir -p "$CACHE/src/x"
	dpkg-deb -x "$KDEB" "$CACHE/src/x"
	mv "$CACHE"/src/x/usr/src/linux-source-7.2.tar.xz "$KTAR"
	rm -rf "$CACHE/src/x"
fi

cat >"$ENVFILE.tmp" <<EOE
export P2PDMA_BINDGEN=$TOOLS/bin/bindgen
export LIBCLANG_PATH=$LLVM_DIR
export P2PDMA_LLVM=-$LLVM_VERSION
export P2PDMA_KTAR=$KTAR
EOE
mv "$ENVFILE.tmp" "$ENVFILE"
log "ready: $(rustc --version), $("$TOOLS/bin/bindgen" --version), $(clang-$LLVM_VERSION --version | head -1), $(basename "$KTAR")"

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the guest initramfs: busybox-static, the runner (harness/init), the
# inventory script, the kselftests of tools/testing/selftests/p2pdma (static
# binaries, installed with the kselftest runner) and the kernel's modules.
# Usage: initramfs.sh KSRC KOUT OUTPUT.cpio
set -euo pipefail
: "${P2PDMA_LLVM:?run make setup first}"
KSRC=$1 KOUT=$2 OUT=$3
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$KOUT/initramfs
rm -rf "$ROOT" && mkdir -p "$ROOT"/{bin,sbin,usr/bin,proc,sys,dev,tmp,lib/modules,kselftest}

cp /bin/busybox "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
install -m 755 "$REPO/harness/init" "$ROOT/init"
install -m 755 "$REPO/harness/p2pdma-inventory" "$ROOT/usr/bin/p2pdma-inventory"

# Kernel headers for the selftests (make headers_install into O=).
make -s -C "$KSRC" O="$KOUT" LLVM="$P2PDMA_LLVM" headers >/dev/null

# kselftests: static, so they run on busybox alone.
make -s -C "$KSRC/tools/testing/selftests" O="$KOUT" TARGETS=p2pdma \
	KHDR_INCLUDES="-isystem $KOUT/usr/include" \
	USERLDFLAGS=-static INSTALL_PATH="$ROOT/kselftest" install >/dev/null

if grep -q '^CONFIG_MODULES=y' "$KOUT/.config"; then
	make -s -C "$KSRC" O="$KOUT" LLVM="$P2PDMA_LLVM" INSTALL_MOD_PATH="$ROOT" INSTALL_MOD_STRIP=1 \
		modules_install >/dev/null
fi

(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet) >"$OUT"
echo "[initramfs] $(du -h "$OUT" | cut -f1) $(basename "$OUT")"

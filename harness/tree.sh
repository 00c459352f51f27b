#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lay this repository over a pristine Linux 7.2 tree:
#   1. unpack the source tarball into KSRC (once per tarball),
#   2. copy the repository's kernel paths over it (rsync keeps mtimes, so
#      Kbuild rebuilds exactly what changed),
#   3. apply the hook patches in patches/ (re-applied from the pristine
#      files whenever the patch set changes).
# Usage: tree.sh KSRC DIR...      (env P2PDMA_KTAR: the source tarball)
set -euo pipefail
KSRC=$1; shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
: "${P2PDMA_KTAR:?run make setup first}"

if [ "$(cat "$KSRC/.p2pdma-source" 2>/dev/null)" != "$P2PDMA_KTAR" ]; then
	echo "[tree] unpacking $(basename "$P2PDMA_KTAR") into build/linux"
	rm -rf "$KSRC" "$KSRC.tmp"
	mkdir -p "$KSRC.tmp"
	tar -C "$KSRC.tmp" --strip-components=1 -xf "$P2PDMA_KTAR"
	mv "$KSRC.tmp" "$KSRC"
	echo "$P2PDMA_KTAR" >"$KSRC/.p2pdma-source"
fi

# Hook patches: restore pristine copies of patched files, then re-apply. The
# copy is made before the first patch that touches a file (patch -b would keep
# only the state before the last one; two patches touch rust/kernel/pci.rs).
sum=$(cat "$REPO"/patches/*.patch 2>/dev/null | sha1sum)
if [ "$(cat "$KSRC/.p2pdma-patches" 2>/dev/null)" != "$sum" ]; then
	find "$KSRC" -name '*.p2pdma-pristine' -print0 |
		while IFS= read -r -d '' f; do mv -f "$f" "${f%.p2pdma-pristine}"; done
	for p in "$REPO"/patches/*.patch; do
		[ -e "$p" ] || continue
		echo "[tree] applying $(basename "$p")"
		sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$p" | while read -r f; do
			[ -e "$KSRC/$f.p2pdma-pristine" ] || cp -p "$KSRC/$f" "$KSRC/$f.p2pdma-pristine"
		done
		patch -s -p1 -d "$KSRC" --no-backup-if-mismatch <"$p" ||
			{ echo "[tree] ERROR: $(basename "$p") does not apply" >&2; exit 1; }
	done
	echo "$sum" >"$KSRC/.p2pdma-patches"
fi

for d in "$@"; do
	[ -d "$REPO/$d" ] && rsync -a "$REPO/$d/" "$KSRC/$d/"
done
# The library's Kconfig sits at the repository root (see README).
rsync -a "$REPO/Kconfig" "$KSRC/rust/kernel/p2pdma/Kconfig"

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run the kernel's checkpatch.pl on this project's hook patches and on every
# C, header and Rust file it adds to the tree.
# Usage: checkpatch.sh KSRC
set -uo pipefail
KSRC=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
# Run from the kernel tree (no .git there): in a git work tree checkpatch
# leaves a .checkpatch-camelcase.git.* cache file behind.
cd "$KSRC" || exit 1
CP="$KSRC/scripts/checkpatch.pl --no-tree --quiet --strict --show-types --color=never"
rc=0
for p in "$REPO"/patches/*.patch; do
	$CP --ignore FILE_PATH_CHANGES "$p" || rc=1
done
files=$(cd "$REPO" && git ls-files -- rust drivers samples include tools kernel |
	grep -E '\.(c|h|rs)$')
for f in $files; do
	$CP --file "$REPO/$f" || rc=1
done
if [ $rc != 0 ]; then
	echo "[static] FAIL: checkpatch found problems (above)" >&2
	exit 1
fi
echo "[static] checkpatch: clean ($(echo "$files" | wc -w) files, $(ls "$REPO"/patches/*.patch | wc -l) patches)"

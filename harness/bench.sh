#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: print the benchmark figures the guest reported.
# Usage: bench.sh GUEST_LOG
LOG=$1
out=$(sed -n '/^@@P2PDMA BEGIN bench/,/^@@P2PDMA END bench/p' "$LOG" | sed '1d;$d')
if ! grep -q '^bench ' <<<"$out"; then
	echo "ERROR: no benchmark figures in $LOG; last lines:" >&2
	tail -25 "$LOG" >&2
	exit 1
fi
echo "$out"
echo
echo "ratio_to_c: ns per lookup divided by C's pci_p2pdma_state() hit (goal: rust_provider and rust_page <= 1.000)"
awk '/^# / { dev = $2; sub(/.*p2pdma_rs-/, "", dev) }
	$1 == "bench" && $2 == "map_state_hit" && $3 != "c_page" {
	print "  " dev " " $3 ": " ($NF <= 1.0 ? "goal met" : "goal MISSED") " (" $NF ")" }' <<<"$out"
echo "Whole log: $LOG"

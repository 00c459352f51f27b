#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: print the benchmark figures the guest reported, and whether
# each ratio meets its goal.
# Usage: bench.sh GUEST_LOG
LOG=$1
out=$(sed -n '/^@@P2PDMA BEGIN bench/,/^@@P2PDMA END bench/p' "$LOG" | tr -d '\r' | sed '1d;$d')
if ! grep -q '^bench map_state_hit' <<<"$out" || ! grep -q '^bench dmabuf' <<<"$out" ||
	! grep -q '^bench pages' <<<"$out" ||
	! grep -q '^@@P2PDMA BENCH-EXIT 0' <<<"$out"; then
	echo "ERROR: benchmark figures missing in $LOG; last lines:" >&2
	tail -25 "$LOG" >&2
	exit 1
fi
grep -v '^@@' <<<"$out"
echo
echo "ratio_to_c: ns per lookup divided by C's pci_p2pdma_state() hit (goal: rust_provider and rust_page <= 1.000)"
awk '/^# / { dev = $2; sub(/.*p2pdma_rs-/, "", dev) }
	$1 == "bench" && $2 == "map_state_hit" && $3 != "c_page" {
	print "  " dev " " $3 ": " ($NF <= 1.0 ? "goal met" : "goal MISSED") " (" $NF ")" }' <<<"$out"
echo "ratio: Rust exporter ns / vfio-pci ns, same importer (goal: <= 1.00; VFIO's memory disable and the rows marked apart are not judged)"
awk '$1 == "bench" && $2 == "dmabuf" && !/apart/ && !/memory-disable/ {
	what = $0; sub(/^bench dmabuf +/, "", what); sub(/ rust_ns .*/, "", what)
	print "  " what ": " ($NF <= 1.0 ? "goal met" : "goal MISSED") " (" $NF ")" }' <<<"$out"
echo "Whole log: $LOG"

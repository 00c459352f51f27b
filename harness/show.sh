#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make run`: print what the guest reported, in plain words, and check from
# the host the data the guest moved peer to peer.
# Usage: show.sh GUEST_LOG VM_DIR
LOG=$1 VM=$2
HERE=$(dirname "$0")
sed -n '/^@@P2PDMA BEGIN inventory/,/^@@P2PDMA END inventory/p' "$LOG" | sed '1d;$d'
echo
if ! grep -q '^@@P2PDMA DONE' "$LOG"; then
	echo "ERROR: the guest did not finish; last lines of $LOG:" >&2
	tail -25 "$LOG" >&2
	exit 1
fi
echo "Peer-to-peer DMA: the NVMe behind the switch reads into and writes from"
echo "p2pmem of the ivshmem next to it (O_DIRECT; throughput under QEMU TCG)"
demo=$(sed -n '/^@@P2PDMA BEGIN demo/,/^@@P2PDMA END demo/p' "$LOG")
grep -E 'MiB/s' <<<"$demo" | sed 's/^#[^:]*:[0-9]*:\([^:]*\):/  \1: /'
grep -E '^(not )?ok [0-9]+ ' <<<"$demo" | sed 's/^/  guest: /'
echo
dmabuf=$(sed -n '/^@@P2PDMA BEGIN dmabuf/,/^@@P2PDMA END dmabuf/p' "$LOG" | tr -d '\r')
grep -v -e '^@@' -e HOSTCHECK <<<"$dmabuf"
echo
echo "Checked from the host, in the files behind the devices:"
host=$(python3 "$HERE/hostcheck.py" "$LOG" "$VM")
rc=$?
sed 's/^/  /' <<<"$host"
echo
if [ $rc != 0 ] || grep -q '^not ok' <<<"$demo" ||
	! grep -q '^@@P2PDMA DMABUF-EXIT 0$' <<<"$dmabuf"; then
	echo "ERROR: a step or a host check failed; whole log: $LOG" >&2
	exit 1
fi
echo "Guest finished; whole log: $LOG"

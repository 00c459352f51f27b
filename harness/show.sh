#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make run`: print what the guest reported, in plain words.
# Usage: show.sh GUEST_LOG
LOG=$1
sed -n '/^@@P2PDMA BEGIN inventory/,/^@@P2PDMA END inventory/p' "$LOG" | sed '1d;$d'
echo
if grep -q '^@@P2PDMA DONE' "$LOG"; then
	echo "Guest finished; whole log: $LOG"
else
	echo "ERROR: the guest did not finish; last lines of $LOG:" >&2
	tail -25 "$LOG" >&2
	exit 1
fi

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Check that every option the fragments ask for survived olddefconfig (an
# option whose dependency is off is dropped silently otherwise). Later
# fragments override earlier ones, as in merge_config.sh.
# Usage: checkconfig.sh .config FRAGMENT...
CONF=$1; shift
awk '
	FNR == NR { have[$0] = 1; if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) set[substr($0, 1, RLENGTH - 1)] = 1; next }
	/^CONFIG_[A-Za-z0-9_]+=/ { split($0, kv, "="); want[kv[1]] = $0; next }
	/^# CONFIG_[A-Za-z0-9_]+ is not set/ { want[$2] = "n"; next }
	END {
		bad = 0
		for (sym in want) {
			if (want[sym] == "n") {
				if (sym in set) { print "[config] ERROR: " sym " is still set" > "/dev/stderr"; bad = 1 }
			} else if (!(want[sym] in have)) {
				print "[config] ERROR: \"" want[sym] "\" did not stick" > "/dev/stderr"; bad = 1
			}
		}
		exit bad
	}' "$CONF" "$@"

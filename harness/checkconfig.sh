#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Check that every CONFIG_ line of the fragments survived olddefconfig
# (a dependency that is off silently drops an option otherwise).
# Usage: checkconfig.sh .config FRAGMENT...
CONF=$1; shift
bad=0
while read -r line; do
	case $line in
	CONFIG_*=*) grep -qx "$line" "$CONF" || { echo "[config] ERROR: '$line' did not stick" >&2; bad=1; } ;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }; sym=${sym%% *}
		grep -q "^$sym=" "$CONF" && { echo "[config] ERROR: '$sym' is still set" >&2; bad=1; } ;;
	esac
done < <(cat "$@")
exit $bad

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fail when a build log holds a compiler, clippy or rustdoc warning/error.
# Usage: no-warnings.sh WHAT LOG
WHAT=$1 LOG=$2
if grep -nE '(^|: )(warning|error)(\[[^]]*\])?: ' "$LOG" >"$LOG.warnings"; then
	echo "[static] FAIL: $WHAT printed warnings:" >&2
	head -40 "$LOG.warnings" | sed 's/^/    /' >&2
	exit 1
fi
echo "[static] $WHAT: no warnings"

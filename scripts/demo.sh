#!/usr/bin/env bash
# The main job, end to end on the embedded LOCAL provider (no cloud, no server to set up):
# installs cloudstore (no cloud SDK needed) in .venv and runs examples/local_demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV="${VENV:-$PWD/.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
log="$(mktemp)"
if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check -e . >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
rm -f "$log"
"$VENV/bin/python" examples/local_demo.py

#!/usr/bin/env bash
# The whole test suite from a fresh machine: make the venv, install cloudstore with every
# extra, the example provider (examples/dirstore) and the servers, check lint and types, build
# the docs, then run pytest against LOCAL and the real servers (started by the tests themselves
# on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV="${VENV:-$PWD/.venv}"
export SERVERS_DIR="${SERVERS_DIR:-$PWD/.servers}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

step "virtualenv and packages"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
log="$(mktemp)"
if ! { "$VENV/bin/pip" install --quiet --upgrade pip && "$VENV/bin/pip" install --quiet -e ".[all,test,docs]" -e examples/dirstore; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
rm -f "$log"

step "servers"
bash scripts/install-servers.sh

step "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

step "mypy"
"$VENV/bin/mypy"

step "docs"
"$VENV/bin/sphinx-build" -q -W -b html docs docs/_build/html

step "pytest"
# -ra lists every skip with its reason; the summary line counts them.
"$VENV/bin/python" -m pytest -ra "$@"

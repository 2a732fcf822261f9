#!/usr/bin/env bash
# Install every storage server the tests run against (SeaweedFS, Swift, Azurite, fake-gcs-server),
# each by its own script in scripts/servers/. Idempotent.
# Env: VENV (the project virtualenv, default .venv), SERVERS_DIR (default .servers).
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV="${VENV:-$PWD/.venv}"
export SERVERS_DIR="${SERVERS_DIR:-$PWD/.servers}"
mkdir -p "$SERVERS_DIR"
for script in scripts/servers/install_*.sh; do
    echo "== $script"
    bash "$script"
done

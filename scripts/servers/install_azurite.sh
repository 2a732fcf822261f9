#!/usr/bin/env bash
# Install Azurite (the Azure Storage emulator) for the tests: $SERVERS_DIR/azurite/node_modules/.bin/azurite-blob.
# Azurite 3.35 is the last release that runs on node 20 (3.36+ needs node 21).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail

AZURITE_VERSION="3.35.0"
SERVERS_DIR="${SERVERS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.servers}"
PREFIX="$SERVERS_DIR/azurite"
BIN="$PREFIX/node_modules/.bin/azurite-blob"

installed_version() {
    node -p "require('$PREFIX/node_modules/azurite/package.json').version" 2>/dev/null || true
}

if [[ -x "$BIN" && "$(installed_version)" == "$AZURITE_VERSION" ]]; then
    echo "azurite $AZURITE_VERSION already installed in $PREFIX"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
    else
        echo "npm is required to install azurite (node >= 18)" >&2
        exit 1
    fi
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 18 )); then
    echo "azurite $AZURITE_VERSION needs node >= 18, found $(node --version)" >&2
    exit 1
fi

mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"

if [[ ! -x "$BIN" ]]; then
    echo "azurite-blob not found at $BIN after npm install" >&2
    exit 1
fi
echo "azurite $(installed_version) installed in $PREFIX"

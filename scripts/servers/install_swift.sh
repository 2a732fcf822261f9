#!/usr/bin/env bash
# Install OpenStack Swift 2.38 into its own virtualenv ($SERVERS_DIR/swift-venv) for the tests.
# Idempotent. Needs only PyPI: the venv is made without ensurepip (Debian's python3 has no
# ensurepip unless python3-venv is installed) and filled by the project venv's pip (--python).
set -euo pipefail

SWIFT_VERSION="2.38.3"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SERVERS_DIR="${SERVERS_DIR:-$ROOT/.servers}"
VENV="${VENV:-$ROOT/.venv}"
SWIFT_VENV="$SERVERS_DIR/swift-venv"
PYTHON="$VENV/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3

installed() {
    "$SWIFT_VENV/bin/python" -c "import sys, swift; sys.exit(swift.__version__ != '$SWIFT_VERSION')" 2>/dev/null
}

if installed; then
    echo "swift $SWIFT_VERSION already installed in $SWIFT_VENV"
    exit 0
fi

mkdir -p "$SERVERS_DIR"
rm -rf "$SWIFT_VENV"
"$PYTHON" -m venv --without-pip "$SWIFT_VENV"
"$PYTHON" -m pip --python "$SWIFT_VENV/bin/python" install --quiet --disable-pip-version-check \
    "swift==$SWIFT_VERSION"
installed
echo "swift $SWIFT_VERSION installed in $SWIFT_VENV"

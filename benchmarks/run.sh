#!/usr/bin/env bash
# One command for the benchmarks: bash benchmarks/run.sh [--quick] [--rounds N] [...]
# Makes its own venv (.venv-bench, gitignored) with cloudstore[aws] from this checkout, boto3,
# CloudBridge, obstore (when a wheel installs), matplotlib, psutil and SeaweedFS, then runs
# benchmarks/run.py, which writes docs/benchmarks.md and docs/benchmarks.png.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BENCH_VENV:-.venv-bench}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
if [ ! -f "$VENV/.installed" ] || [ benchmarks/requirements.txt -nt "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    "$VENV/bin/pip" install --quiet -e ".[aws]" -r benchmarks/requirements.txt
    # obstore ships binary wheels for common platforms only: measured where it installs, skipped otherwise.
    "$VENV/bin/pip" install --quiet obstore || echo "obstore did not install here: it is left out of the run" >&2
    touch "$VENV/.installed"
fi
exec "$VENV/bin/python" benchmarks/run.py "$@"

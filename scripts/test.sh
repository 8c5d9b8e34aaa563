#!/usr/bin/env bash
# Install everything (Python packages, the Azurite emulator) and run every
# check and test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,test]'
if [ -f package.json ]; then
    # Azurite (Azure Blob emulator), pinned in package.json / package-lock.json.
    npm ci --no-audit --no-fund --loglevel=error
fi

echo "== ruff check";  .venv/bin/ruff check src tests examples benchmarks
echo "== ruff format"; .venv/bin/ruff format --check src tests examples benchmarks
echo "== mypy";        .venv/bin/mypy src
echo "== pytest"
exec .venv/bin/python -m pytest "$@"

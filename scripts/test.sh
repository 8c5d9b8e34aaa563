#!/usr/bin/env bash
# Install everything (Python packages, the Azurite emulator) and run every
# check and test. Extra arguments go to pytest.
#
# The first run creates .venv, installs resultkit with its test extras and
# runs `npm ci`; later runs skip the pip install while pyproject.toml is
# unchanged, and `npm ci` while node_modules matches package-lock.json.
#
# Environment:
#   PYTHON          the Python that creates the virtualenv (default python3)
#   RESULTKIT_VENV  the virtualenv to create or use (default <checkout>/.venv)
#   RESULTKIT_TEST_WORKERS  pytest-xdist workers (default 2; 0 runs in one process)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
EXTRAS="all,test,bench"  # bench: joblib, which the benchmark smoke test compares against
UPGRADE_PIP=1  # the test tools want a recent pip
# shellcheck source=scripts/_venv.sh
. "$REPO/scripts/_venv.sh"

# Succeeds when node_modules holds exactly what package-lock.json pins (npm
# records what it installed in node_modules/.package-lock.json) and the lock
# file agrees with package.json.
node_modules_current() {
    [ -f node_modules/.package-lock.json ] || return 1
    "$PY" -c 'import json, sys
try:
    pkg, lock, have = (json.load(open(p)) for p in sys.argv[1:])
except (OSError, ValueError):
    sys.exit(1)
def installed(doc):
    return {k: v for k, v in doc.get("packages", {}).items() if k}
root = lock.get("packages", {}).get("", {})
kinds = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
agree = all(pkg.get(k, {}) == root.get(k, {}) for k in kinds)
sys.exit(0 if agree and installed(lock) and installed(lock) == installed(have) else 1)' \
        package.json package-lock.json node_modules/.package-lock.json
}

ensure_installed "$EXTRAS"
if [ -f package.json ]; then
    # Azurite (Azure Blob emulator), pinned in package.json / package-lock.json.
    if node_modules_current; then
        echo "== npm: node_modules matches package-lock.json, skipping npm ci"
    else
        npm ci --no-audit --no-fund --loglevel=error
    fi
fi

echo "== ruff check";  "$VENV/bin/ruff" check src tests examples benchmarks
echo "== ruff format"; "$VENV/bin/ruff" format --check src tests examples benchmarks
echo "== mypy";        "$VENV/bin/mypy" src
# The suite waits on emulators and subprocesses as much as it computes: two
# workers halve its time on 2 cores (each worker starts its own emulators).
echo "== pytest (${RESULTKIT_TEST_WORKERS:-2} workers)"
exec "$PY" -m pytest -n "${RESULTKIT_TEST_WORKERS:-2}" "$@"

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
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
VENV="${RESULTKIT_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.resultkit-install"
EXTRAS="all,test"

# The sha256 of pyproject.toml (dependencies, extras, entry points).
pyproject_hash() {
    "$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
        "$REPO/pyproject.toml"
}

# Succeeds when $VENV has resultkit installed from this checkout for the
# current pyproject.toml, with the extras in $1 ("" for none: any will do).
install_is_current() {
    local have_hash="" have_extras=""
    [ -f "$STAMP" ] || return 1
    read -r have_hash have_extras <"$STAMP" || true
    [ "$have_hash" = "$(pyproject_hash)" ] || return 1
    [ -z "$1" ] || [ "$have_extras" = "$1" ] || return 1
    # The editable install points at this checkout (not at a moved or other copy).
    "$PY" -I -c 'import importlib.util as u, os, sys
s = u.find_spec("resultkit")
ok = s and s.origin and os.path.realpath(s.origin).startswith(os.path.realpath(sys.argv[1]) + os.sep)
sys.exit(0 if ok else 1)' "$REPO/src"
}

# Installs resultkit (editable) with the extras in $1, then writes the stamp.
install() {
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$REPO${1:+[$1]}"
    printf '%s %s\n' "$(pyproject_hash)" "$1" >"$STAMP"
}

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

if [ ! -x "$PY" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if install_is_current "$EXTRAS"; then
    echo "== pip: resultkit[$EXTRAS] is installed for this pyproject.toml, skipping"
else
    install "$EXTRAS"
fi
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
echo "== pytest"
exec "$PY" -m pytest "$@"

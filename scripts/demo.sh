#!/usr/bin/env bash
# Set up resultkit and run the example pipeline on the embedded default
# (LocalResult under ~/.resultkit, or under the folder given as $1; a relative
# folder is relative to the directory you run this script from).
#
# The first run creates .venv in the checkout and installs resultkit into it;
# later runs skip the install while pyproject.toml is unchanged.
#
# Environment:
#   PYTHON          the Python that creates the virtualenv (default python3)
#   RESULTKIT_VENV  the virtualenv to create or use (default <checkout>/.venv)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${RESULTKIT_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.resultkit-install"

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
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$REPO${1:+[$1]}"
    printf '%s %s\n' "$(pyproject_hash)" "$1" >"$STAMP"
}

if [ ! -x "$PY" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if ! install_is_current ""; then
    install ""
fi

# Run from the caller's directory, so a relative folder lands where they are.
exec "$PY" "$REPO/examples/pipeline.py" "$@"

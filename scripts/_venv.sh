# Shared by demo.sh and test.sh (sourced, with REPO set): the virtualenv, and an
# install of resultkit that is skipped while it is current.
#
# Environment:
#   PYTHON          the Python that creates the virtualenv (default python3)
#   RESULTKIT_VENV  the virtualenv to create or use (default <checkout>/.venv)

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
    if [ "${UPGRADE_PIP:-0}" = 1 ]; then
        "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    fi
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$REPO${1:+[$1]}"
    printf '%s %s\n' "$(pyproject_hash)" "$1" >"$STAMP"
}

# Creates the virtualenv if needed and installs resultkit with the extras in
# $1 unless the install is current.
ensure_installed() {
    if [ ! -x "$PY" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    if install_is_current "$1"; then
        echo "== pip: resultkit${1:+[$1]} is installed for this pyproject.toml, skipping" >&2
    else
        install "$1"
    fi
}

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
# shellcheck source=scripts/_venv.sh
. "$REPO/scripts/_venv.sh"
ensure_installed ""

# Run from the caller's directory, so a relative folder lands where they are.
exec "$PY" "$REPO/examples/pipeline.py" "$@"

#!/usr/bin/env bash
# Set up resultkit and run the example pipeline on the embedded default
# (LocalResult under ~/.resultkit, or under the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python examples/pipeline.py "$@"

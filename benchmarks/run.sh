#!/usr/bin/env bash
# Set up the baseline interpreters and run the benchmark table.
# Prefect 1 gets its own virtual environment (its pins clash with ours).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,bench]'
if [ ! -x benchmarks/.venv-prefect1/bin/python ]; then
    "$PYTHON" -m venv benchmarks/.venv-prefect1
    benchmarks/.venv-prefect1/bin/python -m pip install --quiet --disable-pip-version-check \
        'prefect==1.4.1' joblib numpy
fi
exec .venv/bin/python benchmarks/run.py "$@"

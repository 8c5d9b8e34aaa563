#!/usr/bin/env bash
# Set up the baseline interpreters and run the benchmark table.
# Prefect 1 and Prefect 3 get virtual environments of their own (their pins clash with ours).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,bench,obstore]'
baseline() {  # baseline <folder> <requirements...>
    local folder="benchmarks/$1"
    shift
    if [ ! -x "$folder/bin/python" ]; then
        "$PYTHON" -m venv "$folder"
        "$folder/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    fi
}
baseline .venv-prefect1 'prefect==1.4.1' joblib numpy
baseline .venv-prefect3 'prefect==3.9.1' joblib numpy
exec .venv/bin/python benchmarks/run.py "$@"

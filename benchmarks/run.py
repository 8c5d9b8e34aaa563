"""Run every benchmark case for resultkit and its baselines; print medians and ratios.

Usage: ``bash benchmarks/run.sh`` (sets up the interpreters), or directly
``python benchmarks/run.py --prefect1-python PATH``. Ratios are baseline time
divided by resultkit's time, measured in the same run: above 1 means
resultkit is faster. The machine is shared: read medians, not single runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import CASES  # noqa: E402


def run_impl(python: str, impl: str, repeat: int) -> dict[str, dict[str, float]]:
    out = subprocess.run(
        [python, str(HERE / "cases.py"), "--impl", impl, "--repeat", str(repeat)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        print(f"{impl} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return {}
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--prefect1-python", default=str(HERE / ".venv-prefect1" / "bin" / "python")
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    impls = {
        "resultkit": sys.executable,
        "raw pickle": sys.executable,
        "raw atomic pickle": sys.executable,
        "joblib": sys.executable,
        "dask": sys.executable,
    }
    if Path(args.prefect1_python).exists():
        impls["prefect1"] = args.prefect1_python
    else:
        print(
            f"Prefect 1 interpreter not found at {args.prefect1_python}: run benchmarks/run.sh",
            file=sys.stderr,
        )
    results = {impl: run_impl(py, impl, args.repeat) for impl, py in impls.items()}

    table = Table(
        title=f"resultkit vs baselines (median of {args.repeat}; ratio = baseline / resultkit)"
    )
    table.add_column("case")
    table.add_column("resultkit", justify="right")
    table.add_column("baseline")
    table.add_column("baseline median", justify="right")
    table.add_column("ratio", justify="right")
    for case, (desc, case_impls) in CASES.items():
        ours = results["resultkit"].get(case, {}).get("median")
        first = True
        for impl in case_impls:
            if impl == "resultkit":
                continue
            theirs = results.get(impl, {}).get(case, {}).get("median")
            ratio = f"{theirs / ours:.2f}x" if ours and theirs else "n/a"
            table.add_row(
                f"{case}: {desc}" if first else "",
                f"{ours * 1000:.2f} ms" if (first and ours) else "",
                impl,
                f"{theirs * 1000:.2f} ms" if theirs else "n/a",
                ratio,
            )
            first = False
    Console(width=140).print(table)


if __name__ == "__main__":
    main()

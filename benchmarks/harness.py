"""Run the benchmark cases of one implementation in this interpreter; print JSON medians.

``run.py`` starts one of these per implementation (Prefect 1 and Prefect 3
live in virtual environments of their own), so every implementation is
measured in the same run. Case modules (``cases.py``, ``flow_cases.py``,
``remote_cases.py``, and ``local_cases.py`` when present) each export
``CASES = {case: (description, {implementation: function})}`` (or
``LOCAL_CASES``); a case named in two modules gets both's implementations,
the later module's winning a clash. A function
takes a scratch folder and a repeat count and returns durations in seconds.
``--tiny`` (environment ``BENCH_TINY=1``) shrinks every size. Several
``--impl`` run in turn in one interpreter (the tiny mode does, to start fewer).
``--lockstep`` makes each timed run wait for run.py's turn (see ``lockstep.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import lockstep

HERE = Path(__file__).resolve().parent
CASE_MODULES = ("cases", "flow_cases", "remote_cases", "local_cases", "code_cases", "scale_cases")

#: Sizes shrink under --tiny (the smoke test) so that every case still runs.
TINY = os.environ.get("BENCH_TINY") == "1"

Case = tuple[str, dict[str, Callable[[str, int], list[float]]]]


def sized(full: int, tiny: int) -> int:
    """``full``, or ``tiny`` in the smoke test's tiny mode."""
    return tiny if TINY else full


def timed(
    fn: Callable[[], object], repeat: int, settle: Callable[[], object] | None = None
) -> list[float]:
    """Durations of ``repeat`` calls of ``fn`` (each on the driver's turn under ``--lockstep``).

    ``settle`` runs before each call, untimed (on the same turn): see :func:`no_dirty_pages`.
    """

    def once() -> float:
        if settle is not None:
            settle()
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return [lockstep.paced(once) for _ in range(repeat)]


def no_dirty_pages() -> None:
    """Write every dirty page back (``sync``) before a large write's timed run, untimed.

    A 100 MB write lands in the page cache; the kernel writes it back over the next
    seconds. Without this, that writeback (of this side's previous run or, in paired
    runs, of the other side's run just before) falls into whichever timed write comes
    next and slows it. Measured here in one process (7 writes of 100 MB, medians): a
    resultkit write after another program's 100 MB write took 56 ms, 37 ms with a sync
    before it; back to back 36 ms, 29 ms with a sync. Every implementation of a
    large-write case calls it, so each timed write starts from the same clean page cache.
    """
    os.sync()


def all_cases() -> dict[str, Case]:
    """Every case of every case module importable in this interpreter, in table order."""
    sys.path.insert(0, str(HERE))
    cases: dict[str, Case] = {}
    for name in CASE_MODULES:
        if not (HERE / f"{name}.py").exists():
            continue
        module = importlib.import_module(name)
        found = getattr(module, "CASES", None) or getattr(module, "LOCAL_CASES", {})
        for case, (desc, impls) in found.items():
            if case in cases:  # a module may add implementations to a case
                cases[case][1].update(impls)
            else:
                cases[case] = (desc, dict(impls))
    return cases


def run(impl: str, repeat: int, only: set[str]) -> dict[str, dict[str, float | str]]:
    """The median of every case ``impl`` has (or the error that stopped it)."""
    out: dict[str, dict[str, float | str]] = {}
    for case, (_, impls) in all_cases().items():
        fn = impls.get(impl)
        if fn is None or (only and case not in only):
            continue
        lockstep.start_case(case)
        try:
            with tempfile.TemporaryDirectory(prefix="rk-bench-") as d:
                times = fn(d, repeat)
        except Exception as exc:  # one broken case must not hide the others' figures
            traceback.print_exc()
            out[case] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        finally:
            lockstep.end_case()
        out[case] = {"median": statistics.median(times), "n": len(times), "times": times}
        print(
            f"  {impl:>22} {case:<22} {statistics.median(times) * 1000:10.2f} ms",
            file=sys.stderr,
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--impl", action="append", required=True, help="repeat to run several in turn"
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated cases")
    parser.add_argument(
        "--lockstep", action="store_true", help="time each run on run.py's turn (lockstep.py)"
    )
    args = parser.parse_args()
    lockstep.ACTIVE = args.lockstep
    logging.disable(logging.CRITICAL)
    only = {c for c in args.only.split(",") if c}
    print(json.dumps({impl: run(impl, args.repeat, only) for impl in args.impl}))


if __name__ == "__main__":
    main()

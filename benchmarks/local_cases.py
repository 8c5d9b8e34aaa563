"""Benchmark cases of the local data paths (issue 10), one function per (case, implementation).

Same shape as ``cases.py``: ``fn(d, repeat) -> list[float]`` (seconds), ``d`` an
empty folder. ``LOCAL_CASES`` has the shape of ``cases.CASES``, so
``CASES.update(LOCAL_CASES)`` adds the rows; Prefect 1's functions import
only prefect and the standard library, so they run in its own interpreter.

Run one directly: ``python benchmarks/local_cases.py small_write resultkit``.
"""

from __future__ import annotations

import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from harness import no_dirty_pages

SMALL = {"rows": list(range(100)), "name": "small", "meta": {"k": "v" * 760}}  # 1,022 bytes pickled
TINY = os.environ.get("BENCH_TINY") == "1"  # the smoke test: every case, tiny sizes
LARGE_MB = 1 if TINY else int(os.environ.get("BENCH_LARGE_MB", "100"))
MANY_FILES = 500 if TINY else int(os.environ.get("BENCH_MANY_FILES", "100000"))
WARM_TASKS = 100


def timed(
    fn: Callable[[], object], repeat: int, settle: Callable[[], object] | None = None
) -> list[float]:
    """harness.timed after one untimed call (spares, folder caches, imports)."""
    from harness import timed as harness_timed  # stdlib only: Prefect 1's interpreter has it

    fn()
    return harness_timed(fn, repeat, settle)


def _array():  # type: ignore[no-untyped-def]
    import numpy as np

    return np.random.default_rng(0).random(LARGE_MB * 2**20 // 8)


# -- small values: overwrite and verified read of a ~1 KB dict --------------------------------
def rk_small_write(d: str, repeat: int) -> list[float]:
    """Atomic + checksummed overwrite (spare files swapped in where the system can)."""
    from resultkit.results import LocalResult

    r = LocalResult(dir=d)
    return timed(lambda: r.write(SMALL, location="small.pkl"), repeat)


def rk_small_write_rename(d: str, repeat: int) -> list[float]:
    """The same with the exchange turned off: temp files renamed (the fallback path)."""
    from resultkit.results import LocalResult

    r = LocalResult(dir=d)
    r.storage.exchange = False  # type: ignore[attr-defined]
    return timed(lambda: r.write(SMALL, location="small.pkl"), repeat)


def rk_small_read(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    r = LocalResult(dir=d)
    r.write(SMALL, location="small.pkl")
    return timed(lambda: r.read("small.pkl"), repeat)


def raw_small_write_in_place(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "small.pkl")

    def once() -> None:
        with open(path, "wb") as f:
            pickle.dump(SMALL, f, protocol=5)

    return timed(once, repeat)


def raw_small_read(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "small.pkl")
    raw_small_write_in_place(d, 1)

    def once() -> object:
        with open(path, "rb") as f:
            return pickle.load(f)

    return timed(once, repeat)


def pf1_small_write(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r = LocalResult(dir=d, location="small.pkl")
    return timed(lambda: r.write(SMALL), repeat)


def pf1_small_read(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r = LocalResult(dir=d, location="small.pkl")
    written = r.write(SMALL)
    return timed(lambda: r.read(written.location), repeat)


# -- large arrays through NumpySerializer ----------------------------------------------------
def rk_numpy_write(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult
    from resultkit.serializers import NumpySerializer

    r, arr = LocalResult(dir=d, serializer=NumpySerializer()), _array()
    return timed(lambda: r.write(arr, location="large.npy"), repeat, no_dirty_pages)


def rk_numpy_read(d: str, repeat: int) -> list[float]:
    """Verified: size and digest checked before numpy sees the bytes."""
    from resultkit.results import LocalResult
    from resultkit.serializers import NumpySerializer

    r = LocalResult(dir=d, serializer=NumpySerializer())
    r.write(_array(), location="large.npy")
    return timed(lambda: r.read("large.npy"), repeat)


def joblib_numpy_write(d: str, repeat: int) -> list[float]:
    import joblib

    arr, path = _array(), os.path.join(d, "large.joblib")
    return timed(lambda: joblib.dump(arr, path), repeat, no_dirty_pages)


def joblib_numpy_read(d: str, repeat: int) -> list[float]:
    import joblib

    path = os.path.join(d, "large.joblib")
    joblib.dump(_array(), path)
    return timed(lambda: joblib.load(path), repeat)


# -- exists_many in a folder of many files ---------------------------------------------------
def _many_files(d: str) -> list[str]:
    from resultkit.results import LocalResult

    for i in range(MANY_FILES):
        open(os.path.join(d, f"f{i}.pkl"), "wb").close()
    LocalResult(dir=d).write(SMALL, location="probe.pkl")
    return ["probe.pkl", "f1.pkl", "f2.pkl", "missing.pkl"]


#: Calls timed together per sample of the exists_many row: one call is tens of
#: microseconds, so a single call per sample measures the machine's noise.
EXISTS_CALLS = 10 if TINY else 1000


def timed_per_call(fn: Callable[[], object], repeat: int, calls: int) -> list[float]:
    """Like :func:`timed`, each sample the mean of ``calls`` calls in a row."""
    samples = timed(lambda: [fn() for _ in range(calls)], repeat)
    return [s / calls for s in samples]


def rk_exists_many_4(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    keys, r = _many_files(d), LocalResult(dir=d)
    return timed_per_call(lambda: r.exists_many(keys), repeat, EXISTS_CALLS)


def rk_exists_4_one_by_one(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    keys, r = _many_files(d), LocalResult(dir=d)
    return timed_per_call(lambda: [r.exists(k) for k in keys], repeat, EXISTS_CALLS)


# -- a warm flow: every task's target is there -----------------------------------------------
#: Seconds between the run that writes the targets and the timed warm runs: a warm run
#: comes after the run that wrote its targets, not within the same clock tick. resultkit
#: keeps a verified small pair in memory only if its files are at least 50 ms old (see
#: results/_smallpairs.py); "resultkit, pairs read from disk" times the runs without it.
WRITTEN_BEFORE = 0.2


def rk_warm_flow(d: str, repeat: int, keep_pairs: bool = True) -> list[float]:
    from resultkit import Flow, task
    from resultkit.results import LocalResult

    result = LocalResult(dir=d)

    @task(target="t{i}.pkl", checkpoint=True, result=result)
    def value(i):  # type: ignore[no-untyped-def]
        return SMALL

    with Flow("warm") as flow:
        for i in range(WARM_TASKS):
            value(i)
    flow.run()
    time.sleep(WRITTEN_BEFORE)
    if not keep_pairs:
        result.storage._keeps_pairs = False  # every run reads both files of every target
    return timed(flow.run, repeat)


def rk_warm_flow_read(d: str, repeat: int) -> list[float]:
    return rk_warm_flow(d, repeat, keep_pairs=False)


def pf1_warm_flow(d: str, repeat: int) -> list[float]:
    from prefect import Flow, task
    from prefect.engine.results import LocalResult

    @task(target="t{i}.pkl", checkpoint=True, result=LocalResult(dir=d))
    def value(i):  # type: ignore[no-untyped-def]
        return SMALL

    with Flow("warm") as flow:
        for i in range(WARM_TASKS):
            value(i)
    flow.run()
    time.sleep(WRITTEN_BEFORE)  # as for resultkit
    return timed(flow.run, repeat)


LOCAL_CASES = {
    "small_write": (
        "overwrite a 1 KB dict (resultkit: atomic + checksummed)",
        {
            "resultkit": rk_small_write,
            "prefect1": pf1_small_write,
            "raw pickle": raw_small_write_in_place,
            "resultkit, rename path": rk_small_write_rename,
        },
    ),
    "small_read": (
        "read a 1 KB dict (resultkit: verified)",
        {"resultkit": rk_small_read, "prefect1": pf1_small_read, "raw pickle": raw_small_read},
    ),
    "numpy_write": (
        f"write a {LARGE_MB} MB numpy array (NumpySerializer)",
        {"resultkit": rk_numpy_write, "joblib": joblib_numpy_write},
    ),
    "numpy_read": (
        f"read a {LARGE_MB} MB numpy array (NumpySerializer, verified)",
        {"resultkit": rk_numpy_read, "joblib": joblib_numpy_read},
    ),
    "exists_many_4": (
        f"exists_many of 4 keys in a folder of {MANY_FILES} files (per call, "
        f"{EXISTS_CALLS} calls a sample)",
        {"resultkit": rk_exists_many_4, "resultkit, 4 exists()": rk_exists_4_one_by_one},
    ),
    "warm_flow": (
        f"warm flow: {WARM_TASKS} tasks, every target present",
        {
            "resultkit": rk_warm_flow,
            "prefect1": pf1_warm_flow,
            "resultkit, pairs read from disk": rk_warm_flow_read,
        },
    ),
}


def main() -> None:
    case, impl = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    fn = LOCAL_CASES[case][1][impl]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        times = fn(d, repeat)
    print(f"{case} / {impl}: median {statistics.median(times) * 1000:.3f} ms of {repeat}")


if __name__ == "__main__":
    main()

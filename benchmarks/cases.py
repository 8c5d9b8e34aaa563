"""Local data cases: large values written and read, existence checks, input hashing.

One function per (case, implementation); each takes a scratch folder and a
repeat count and returns durations in seconds. Small values, NumpySerializer
and ``exists_many`` in a crowded folder are in ``local_cases.py``. See ``harness.py``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
from harness import no_dirty_pages, sized, timed

SMALL = {"rows": list(range(100)), "name": "small", "meta": {"k": "v" * 760}}  # 1,022 bytes pickled
LARGE_MB = int(os.environ.get("BENCH_LARGE_MB", sized(100, 2)))


def large_array() -> np.ndarray:
    return np.random.default_rng(0).random(LARGE_MB * 2**20 // 8)


# -- resultkit ----------------------------------------------------------------------------


def rk_large_write(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    r, arr = LocalResult(dir=d), large_array()
    return timed(lambda: r.write(arr, location="large.pkl"), repeat, no_dirty_pages)


def rk_large_read(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    r = LocalResult(dir=d)
    r.write(large_array(), location="large.pkl")
    return timed(lambda: r.read("large.pkl"), repeat)


def rk_exists(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    r = LocalResult(dir=d)
    r.write(SMALL, location="e.pkl")
    return timed(lambda: [r.exists("e.pkl") for _ in range(100)], repeat)


def rk_hash(d: str, repeat: int) -> list[float]:
    from resultkit.caching import input_token

    arr = large_array()
    return timed(lambda: input_token(arr), repeat)


# -- hand-rolled baselines ------------------------------------------------------------------


def raw_large_write(d: str, repeat: int) -> list[float]:
    arr, path = large_array(), os.path.join(d, "large.pkl")

    def once() -> None:
        with open(path, "wb") as f:
            pickle.dump(arr, f, protocol=5)

    return timed(once, repeat, no_dirty_pages)


def raw_large_read(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "large.pkl")
    with open(path, "wb") as f:
        pickle.dump(large_array(), f, protocol=5)

    def once() -> object:
        with open(path, "rb") as f:
            return pickle.load(f)

    return timed(once, repeat)


def raw_exists(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "e.pkl")
    open(path, "wb").close()
    return timed(lambda: [os.path.exists(path) for _ in range(100)], repeat)


# -- joblib and dask ----------------------------------------------------------------------------
def joblib_large_write(d: str, repeat: int) -> list[float]:
    import joblib

    arr, path = large_array(), os.path.join(d, "large.joblib")
    return timed(lambda: joblib.dump(arr, path), repeat, no_dirty_pages)


def joblib_large_read(d: str, repeat: int) -> list[float]:
    import joblib

    path = os.path.join(d, "large.joblib")
    joblib.dump(large_array(), path)
    return timed(lambda: joblib.load(path), repeat)


def joblib_hash(d: str, repeat: int) -> list[float]:
    import joblib

    arr = large_array()
    return timed(lambda: joblib.hash(arr), repeat)


def dask_hash(d: str, repeat: int) -> list[float]:
    from dask.base import tokenize

    arr = large_array()
    return timed(lambda: tokenize(arr), repeat)


# -- Prefect 1 ----------------------------------------------------------------------------------


def pf1_large_write(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r, arr = LocalResult(dir=d, location="large.pkl"), large_array()
    return timed(lambda: r.write(arr), repeat, no_dirty_pages)


def pf1_large_read(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r = LocalResult(dir=d, location="large.pkl")
    written = r.write(large_array())
    return timed(lambda: r.read(written.location), repeat)


def pf1_exists(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r = LocalResult(dir=d, location="e.pkl")
    written = r.write(SMALL)
    return timed(lambda: [r.exists(written.location) for _ in range(100)], repeat)


CASES = {
    # case: (description, {impl: function})
    "large_read": (
        f"verified read of a {LARGE_MB} MB numpy array, local disk",
        {
            "resultkit": rk_large_read,
            "joblib": joblib_large_read,
            "prefect1": pf1_large_read,
            "raw pickle": raw_large_read,
        },
    ),
    "large_write": (
        f"write a {LARGE_MB} MB numpy array, local disk",
        {
            "resultkit": rk_large_write,
            "prefect1": pf1_large_write,
            "joblib": joblib_large_write,
            "raw pickle": raw_large_write,
        },
    ),
    "exists_x100": (
        "100 exists() on a stored result",
        {"resultkit": rk_exists, "prefect1": pf1_exists, "raw pickle": raw_exists},
    ),
    "hash_input": (
        f"hash a {LARGE_MB} MB numpy input",
        {"resultkit": rk_hash, "joblib": joblib_hash, "dask": dask_hash},
    ),
}

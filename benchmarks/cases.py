"""Benchmark cases, one function per (case, implementation).

Run through ``benchmarks/run.py``, which runs each implementation in its own
interpreter (Prefect 1 lives in a separate virtual environment) and prints
medians and ratios. Every function returns a list of durations in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

SMALL = {"rows": list(range(100)), "name": "small", "meta": {"k": "v" * 100}}
LARGE_MB = int(os.environ.get("BENCH_LARGE_MB", "100"))


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def large_array() -> np.ndarray:
    return np.random.default_rng(0).random(LARGE_MB * 2**20 // 8)


# -- resultkit ----------------------------------------------------------------------------
def rk_small_roundtrip(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    r = LocalResult(dir=d)
    return timed(lambda: r.read(r.write(SMALL, location="small.pkl").location), repeat)


def rk_large_write(d: str, repeat: int) -> list[float]:
    from resultkit.results import LocalResult

    r, arr = LocalResult(dir=d), large_array()
    return timed(lambda: r.write(arr, location="large.pkl"), repeat)


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


def rk_flow_200(d: str, repeat: int) -> list[float]:
    from resultkit import Flow, task

    @task
    def inc(x):
        return x + 1

    with Flow("bench") as flow:
        x = inc(0)
        for _ in range(199):
            x = inc(x)
    return timed(flow.run, repeat)


def rk_target_hit(d: str, repeat: int) -> list[float]:
    from resultkit import Flow, task
    from resultkit.results import LocalResult

    @task(target="t.pkl", checkpoint=True, result=LocalResult(dir=d))
    def value():
        return SMALL

    with Flow("bench") as flow:
        value()
    flow.run()
    return timed(flow.run, repeat)


# -- hand-rolled baselines ------------------------------------------------------------------
def raw_small_roundtrip(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "small.pkl")

    def once():
        with open(path, "wb") as f:
            pickle.dump(SMALL, f)
        with open(path, "rb") as f:
            return pickle.load(f)

    return timed(once, repeat)


def raw_atomic_small_roundtrip(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "small.pkl")

    def once():
        fd, tmp = tempfile.mkstemp(dir=d)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(SMALL, f)
        os.replace(tmp, path)
        with open(path, "rb") as f:
            return pickle.load(f)

    return timed(once, repeat)


def raw_large_write(d: str, repeat: int) -> list[float]:
    arr, path = large_array(), os.path.join(d, "large.pkl")

    def once():
        with open(path, "wb") as f:
            pickle.dump(arr, f, protocol=5)

    return timed(once, repeat)


def raw_large_read(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "large.pkl")
    with open(path, "wb") as f:
        pickle.dump(large_array(), f, protocol=5)

    def once():
        with open(path, "rb") as f:
            return pickle.load(f)

    return timed(once, repeat)


def raw_exists(d: str, repeat: int) -> list[float]:
    path = os.path.join(d, "e.pkl")
    open(path, "wb").close()
    return timed(lambda: [os.path.exists(path) for _ in range(100)], repeat)


# -- joblib -------------------------------------------------------------------------------------
def joblib_small_roundtrip(d: str, repeat: int) -> list[float]:
    import joblib

    path = os.path.join(d, "small.joblib")
    return timed(lambda: (joblib.dump(SMALL, path), joblib.load(path)), repeat)


def joblib_large_write(d: str, repeat: int) -> list[float]:
    import joblib

    arr, path = large_array(), os.path.join(d, "large.joblib")
    return timed(lambda: joblib.dump(arr, path), repeat)


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
def pf1_small_roundtrip(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r = LocalResult(dir=d, location="small.pkl")
    return timed(lambda: r.read(r.write(SMALL).location), repeat)


def pf1_large_write(d: str, repeat: int) -> list[float]:
    from prefect.engine.results import LocalResult

    r, arr = LocalResult(dir=d, location="large.pkl"), large_array()
    return timed(lambda: r.write(arr), repeat)


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


def pf1_flow_200(d: str, repeat: int) -> list[float]:
    from prefect import Flow, task

    @task
    def inc(x):
        return x + 1

    with Flow("bench") as flow:
        x = inc(0)
        for _ in range(199):
            x = inc(x)
    return timed(flow.run, repeat)


def pf1_target_hit(d: str, repeat: int) -> list[float]:
    from prefect import Flow, task
    from prefect.engine.results import LocalResult

    @task(target="t.pkl", checkpoint=True, result=LocalResult(dir=d))
    def value():
        return SMALL

    with Flow("bench") as flow:
        value()
    flow.run()
    return timed(flow.run, repeat)


CASES = {
    # case: (description, {impl: function})
    "small_roundtrip": (
        "write+read a 1 KB dict, local disk",
        {
            "resultkit": rk_small_roundtrip,
            "prefect1": pf1_small_roundtrip,
            "joblib": joblib_small_roundtrip,
            "raw pickle": raw_small_roundtrip,
            "raw atomic pickle": raw_atomic_small_roundtrip,
        },
    ),
    "large_write": (
        f"write a {LARGE_MB} MB numpy array",
        {
            "resultkit": rk_large_write,
            "prefect1": pf1_large_write,
            "joblib": joblib_large_write,
            "raw pickle": raw_large_write,
        },
    ),
    "large_read": (
        f"read a {LARGE_MB} MB numpy array",
        {
            "resultkit": rk_large_read,
            "prefect1": pf1_large_read,
            "joblib": joblib_large_read,
            "raw pickle": raw_large_read,
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
    "flow_200_tasks": (
        "run a 200-task chain (no results)",
        {"resultkit": rk_flow_200, "prefect1": pf1_flow_200},
    ),
    "target_hit": (
        "flow run served from a target",
        {"resultkit": rk_target_hit, "prefect1": pf1_target_hit},
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import logging

    logging.disable(logging.CRITICAL)
    out: dict[str, dict[str, float]] = {}
    for case, (_, impls) in CASES.items():
        fn = impls.get(args.impl)
        if fn is None:
            continue
        with tempfile.TemporaryDirectory() as d:
            times = fn(d, args.repeat)
        out[case] = {"median": statistics.median(times), "n": len(times)}
        print(
            f"  {args.impl:>18} {case:<16} {statistics.median(times) * 1000:9.2f} ms",
            file=sys.stderr,
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Scale-out cases: a mapped flow of 200 children with targets on S3 (20 ms a request).

Cold (every target written) and warm (every target present), on a
``DaskExecutor`` (a ``LocalCluster`` of 2 worker processes, started once per
case, outside the timing) against the default in-process executor; and the
check of 200 targets before submitting (one ``exists_many``) against one
``exists`` per target. S3 is the harness's moto behind ``latency_proxy.py``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from harness import TINY, sized, timed
from remote_cases import s3_result

CHILDREN = sized(200, 10)
SERIAL_REPEAT = 2  # a cold in-process run pays every request in turn: ~25 s over 20 ms


@contextlib.contextmanager
def _cluster() -> Iterator[str]:
    import distributed

    # The smoke test's tiny mode uses in-process workers: they start in a second.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=4, processes=not TINY, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _flow(result: Any) -> tuple[Any, Any]:
    from resultkit import Flow, Parameter, task

    @task(target="{tag}/numbers.pkl")
    def numbers(n: int) -> list[int]:
        return list(range(n))

    @task(target="{tag}/squares/{map_index}.pkl")
    def square(x: int) -> int:
        return x * x

    @task(target="{tag}/total.pkl")
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("bench-scale", result=result, run_store="off") as flow:
        Parameter("tag")
        out = total(square.map(numbers(Parameter("n", default=CHILDREN))))
    return flow, out


def _executor(address: str | None) -> Any:
    if address is None:
        return None
    from resultkit.executors import DaskExecutor

    return DaskExecutor(address=address)


def _run(r: Any, address: str | None, cold: bool) -> Callable[[], object]:
    flow, out = _flow(r)

    def once() -> object:
        # Cold: targets under a new tag each time, so every one is written.
        tag = uuid.uuid4().hex[:8] if cold else "warm"
        state = flow.run(parameters={"tag": tag}, executor=_executor(address))
        assert state.is_successful(), state.result
        assert state.result[out].result == sum(i * i for i in range(CHILDREN))
        return state

    return once


def mapped(dask: bool, cold: bool) -> Callable[[str, int], list[float]]:
    def case(d: str, repeat: int) -> list[float]:
        with s3_result("moto") as r, _cluster() if dask else contextlib.nullcontext() as addr:
            once = _run(r, addr, cold)
            if not cold:
                once()  # write the targets once, untimed
            n = repeat if dask or not cold else min(repeat, SERIAL_REPEAT)
            return timed(once, n)

    return case


def check_targets(bulk: bool) -> Callable[[str, int], list[float]]:
    def case(d: str, repeat: int) -> list[float]:
        with s3_result("moto") as r:
            names = [f"squares/{i}.pkl" for i in range(CHILDREN)]
            r.write_many({n: 0 for n in names[::2]})  # half of them exist
            if bulk:
                return timed(lambda: r.exists_many(names), repeat)
            return timed(lambda: [r.exists(n) for n in names], min(repeat, SERIAL_REPEAT))

    return case


CASES: dict[str, tuple[str, dict[str, Callable[[str, int], list[float]]]]] = {
    "dask_map_cold": (
        f"mapped flow, {CHILDREN} targets on S3 (moto, 20 ms), cold: Dask (2 workers) vs in process",
        {"resultkit": mapped(dask=True, cold=True), "in-process": mapped(dask=False, cold=True)},
    ),
    "dask_map_warm": (
        "the same flow, every target present: Dask vs in process",
        {"resultkit": mapped(dask=True, cold=False), "in-process": mapped(dask=False, cold=False)},
    ),
    "target_check": (
        f"check {CHILDREN} targets before submitting: exists_many vs one exists each",
        {"resultkit": check_targets(bulk=True), "per-key exists": check_targets(bulk=False)},
    ),
}

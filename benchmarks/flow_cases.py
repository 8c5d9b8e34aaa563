"""Flow cases: a warm flow whose targets are all present, a cold flow of trivial tasks, a flow call.

Run in three interpreters: ours, Prefect 1's and Prefect 3's (each its own
virtual environment); joblib.Memory is the warm baseline that is not a flow.
Prefect 3 runs against its temporary local server and SQLite (its default
without a configured API), started once before anything is timed; its runs
are slow and vary, so it is timed at most :data:`SLOW_REPEAT` times.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from harness import sized, timed

WARM_TASKS = 100  # local_cases.py's warm_flow (resultkit, Prefect 1) uses 100 too
COLD_TASKS = sized(1000, 50)
MAPPED_CHILDREN = sized(200, 10)
SLOW_REPEAT = 3  # Prefect 3 runs, and Prefect 1 cold flows, take seconds each
SMALL = {"rows": list(range(100)), "name": "small"}


def value_of(i: int) -> dict[str, Any]:
    return {**SMALL, "i": i}


def inc(x: int) -> int:
    return x + 1


# -- resultkit ----------------------------------------------------------------------------
def rk_warm_flow(d: str, repeat: int) -> list[float]:
    from resultkit import Flow, task
    from resultkit.results import LocalResult

    result = LocalResult(dir=d)
    with Flow("warm") as flow:
        for i in range(WARM_TASKS):
            task(name=f"v{i}", target=f"t{i}.pkl", checkpoint=True, result=result)(value_of)(i)
    flow.run()
    assert os.path.exists(os.path.join(d, "t0.pkl")), "the first run must write the targets"
    return timed(flow.run, repeat)


def rk_cold_flow(d: str, repeat: int) -> list[float]:
    from resultkit import Flow, task

    def build() -> Any:
        with Flow("cold") as flow:
            step = task(inc)
            for i in range(COLD_TASKS):
                step(i)
        return flow

    return timed(lambda: build().run(), repeat)


def rk_flow_call(d: str, repeat: int) -> list[float]:
    from resultkit import Flow, task

    with Flow("call") as flow:
        task(inc)(1)
    flow.run()
    return timed(flow.run, repeat)


def rk_mapped_s3(batch_writes: bool) -> Any:
    """A mapped flow whose children checkpoint to S3 over 20 ms a request (remote_cases.py).

    ``batch_writes``: the children's values written together (``config.batch_writes``,
    the default) or each as its child finishes. Each timed run writes under a new
    folder (``{flow_run_id}``), so no run overwrites another's values.
    """

    def case(d: str, repeat: int) -> list[float]:
        from remote_cases import s3_result

        from resultkit import Flow, config, task

        with s3_result("moto") as r:
            result = r.copy()
            result.location = "{flow_run_id}/{map_index}.pkl"
            square = task(inc, name="child", checkpoint=True, result=result)
            with Flow("mapped", run_store="off") as flow:
                square.map(list(range(MAPPED_CHILDREN)))
            before = config.batch_writes
            config.batch_writes = batch_writes
            try:
                assert flow.run().is_successful()
                return timed(flow.run, repeat)
            finally:
                config.batch_writes = before

    return case


# -- joblib.Memory ------------------------------------------------------------------------------
def joblib_warm_calls(d: str, repeat: int) -> list[float]:
    import joblib

    cached = joblib.Memory(d, verbose=0).cache(value_of)
    for i in range(WARM_TASKS):
        cached(i)
    return timed(lambda: [cached(i) for i in range(WARM_TASKS)], repeat)


# -- Prefect 1 ----------------------------------------------------------------------------------
def pf1_warm_flow(d: str, repeat: int) -> list[float]:
    from prefect import Flow, task
    from prefect.engine.results import LocalResult

    result = LocalResult(dir=d)
    with Flow("warm") as flow:
        for i in range(WARM_TASKS):
            task(name=f"v{i}", target=f"t{i}.pkl", checkpoint=True, result=result)(value_of)(i)
    flow.run()
    assert os.path.exists(os.path.join(d, "t0.pkl")), "checkpointing must be on (run.py sets it)"
    return timed(flow.run, repeat)


def pf1_cold_flow(d: str, repeat: int) -> list[float]:
    from prefect import Flow, task

    def build() -> Any:
        with Flow("cold") as flow:
            step = task(inc)
            for i in range(COLD_TASKS):
                step(i)
        return flow

    return timed(lambda: build().run(), min(repeat, SLOW_REPEAT))


def pf1_flow_call(d: str, repeat: int) -> list[float]:
    from prefect import Flow, task

    with Flow("call") as flow:
        task(inc)(1)
    flow.run()
    return timed(flow.run, repeat)


# -- Prefect 3 ----------------------------------------------------------------------------------
def _prefect3() -> Any:
    """Prefect 3 with its home in a scratch folder and a quiet log; its server started."""
    if "PREFECT_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="rk-bench-prefect3-")
        os.environ.update(
            PREFECT_HOME=home,
            PREFECT_LOCAL_STORAGE_PATH=os.path.join(home, "storage"),
            PREFECT_LOGGING_LEVEL="CRITICAL",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
        )
    import prefect

    return prefect


def pf3_warm_flow(d: str, repeat: int) -> list[float]:
    prefect = _prefect3()
    cached = prefect.task(
        cache_key_fn=lambda ctx, params: f"{os.path.basename(d)}-{params['i']}",
        persist_result=True,
    )(value_of)

    @prefect.flow
    def warm() -> list[Any]:
        return [cached(i) for i in range(WARM_TASKS)]

    warm()  # computes and persists every value (and starts the server)
    return timed(warm, min(repeat, SLOW_REPEAT))


def pf3_flow_call(d: str, repeat: int) -> list[float]:
    prefect = _prefect3()

    @prefect.flow
    def call() -> int:
        return prefect.task(inc)(1)

    call()
    return timed(call, min(repeat, SLOW_REPEAT))


CASES = {
    "warm_flow": (
        f"flow of {WARM_TASKS} tasks, every target present (warm)",
        {
            "resultkit": rk_warm_flow,
            "prefect1": pf1_warm_flow,
            "prefect3": pf3_warm_flow,
            "joblib": joblib_warm_calls,
        },
    ),
    "cold_flow": (
        f"cold flow of {COLD_TASKS} trivial tasks (per-task overhead = time / {COLD_TASKS})",
        {"resultkit": rk_cold_flow, "prefect1": pf1_cold_flow},
    ),
    "s3_mapped_flow": (
        f"mapped flow of {MAPPED_CHILDREN} children checkpointing to S3 over 20 ms a request",
        {"resultkit": rk_mapped_s3(True), "one write each": rk_mapped_s3(False)},
    ),
    "flow_call": (
        "call of a flow of one trivial task",
        {"resultkit": rk_flow_call, "prefect1": pf1_flow_call, "prefect3": pf3_flow_call},
    ),
}

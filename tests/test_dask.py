"""DaskExecutor on a real dask.distributed cluster (2 worker processes), S3 on moto."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import distributed
import numpy as np
import pytest

from resultkit import Flow, Parameter, task
from resultkit.engine.deferred import RemoteValue, StoredValue
from resultkit.executors import DaskExecutor
from resultkit.results import LocalResult, S3Result
from resultkit.runs import get_run


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as c:
        yield c


def _marks(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_mapped_targets_on_s3_are_written_by_workers_and_hits_take_no_worker(
    tmp_path, moto_server, cluster
):
    marks = tmp_path / "marks"
    marks.mkdir()
    s3 = S3Result("rk-dask", prefix=uuid.uuid4().hex, endpoint_url=moto_server.url)
    if not s3.fs.exists("rk-dask"):
        s3.fs.mkdir("rk-dask")

    @task(target="numbers.pkl")
    def numbers(n):
        (marks / f"numbers-{os.getpid()}").touch()
        return list(range(n))

    @task(target="squares/{map_index}.pkl")
    def square(x):
        (marks / f"square-{x}-{os.getpid()}").touch()
        return x * x

    @task(target="total.pkl")
    def total(xs):
        (marks / f"total-{os.getpid()}").touch()
        return sum(xs)

    with Flow("dask-s3", result=s3) as flow:
        out = total(square.map(numbers(Parameter("n", default=200))))

    executor = DaskExecutor(address=cluster.scheduler_address)
    first = flow.run(executor=executor)
    assert first.is_successful(), first.result
    assert first.result[out].result == sum(i * i for i in range(200))
    ran = _marks(marks)
    assert len(ran) == 202  # every body once
    pids = {name.rsplit("-", 1)[1] for name in ran}
    assert str(os.getpid()) not in pids  # the workers ran them, not the flow process
    assert executor.submitted == 202
    assert s3.exists("squares/199.pkl") and s3.read("squares/7.pkl").value == 49

    second = flow.run(executor=executor)
    assert second.is_successful(), second.result
    assert second.result[out].result == sum(i * i for i in range(200))
    assert _marks(marks) == ran  # no body ran again
    assert executor.submitted == 0  # every target found before submitting: no worker slot


def test_large_values_stay_on_workers_until_asked_for(tmp_path, cluster):
    @task(checkpoint=False)
    def big():
        return np.arange(1_000_000, dtype=np.float64)  # 8 MB: not sent to the flow process

    @task(checkpoint=False)
    def head(arr):
        return float(arr[:10].sum())

    @task(result=LocalResult(dir=tmp_path), checkpoint=True)
    def stored():
        return np.ones(100_000)

    with Flow("dask-values") as flow:
        b = big()
        h = head(b)
        s = stored()
    state = flow.run(executor=DaskExecutor(address=cluster.scheduler_address))
    assert state.is_successful(), state.result
    assert state.result[h].result == 45.0
    # The large value came back once, at the end (the cluster may then go away).
    assert isinstance(state.result[b]._result, RemoteValue)
    assert state.result[b].result.shape == (1_000_000,)
    # A checkpointed one is read from its location when asked for, verified.
    assert isinstance(state.result[s]._result, StoredValue)
    assert state.result[s].location.startswith(f"file://{tmp_path}")
    assert state.result[s].result.sum() == 100_000


def test_a_lost_worker_reruns_only_its_task_and_reads_inputs_from_checkpoints(tmp_path, cluster):
    marks = tmp_path / "marks"
    marks.mkdir()
    killed = tmp_path / "killed"

    @task(checkpoint=True)
    def produce():
        (marks / f"produce-{uuid.uuid4().hex}").touch()
        return np.arange(200_000)  # large: the downstream reads it from the checkpoint

    @task
    def consume(arr):
        (marks / f"consume-{uuid.uuid4().hex}").touch()
        if not killed.exists():
            killed.touch()
            os._exit(1)  # the worker process dies mid-task
        return int(arr.sum())

    runs = tmp_path / "runs"
    with Flow("dask-lost", result=LocalResult(dir=tmp_path / "store"), run_store=str(runs)) as flow:
        out = consume(produce())
    state = flow.run(executor=DaskExecutor(address=cluster.scheduler_address))
    assert state.is_successful(), state.result
    assert state.result[out].result == sum(range(200_000))
    names = _marks(marks)
    assert sum(n.startswith("produce") for n in names) == 1  # never recomputed
    assert sum(n.startswith("consume") for n in names) == 2  # rerun after the loss
    # The workers recorded what they stored: the run can be resumed from there.
    run = get_run(state.run_id, str(runs))
    assert run.status == "Success" and sorted(r.name for r in run.tasks) == ["consume", "produce"]
    assert flow.resume(state.run_id).result[out].result == sum(range(200_000))
    assert len(_marks(marks)) == 3  # the resume ran no body


def test_without_an_address_a_cluster_is_started_and_closed(tmp_path):
    @task
    def plus_one(x):
        return x + 1

    with Flow("dask-own") as flow:
        out = plus_one.map([1, 2, 3])
    executor = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2})
    state = flow.run(executor=executor)
    assert state.result[out].result == [2, 3, 4]
    assert executor.client is None and executor._cluster is None  # closed after the run


class PickyError(Exception):
    def __init__(self, code, detail):  # cannot be rebuilt from its args alone
        super().__init__(f"{code}: {detail}")


def test_shared_targets_and_unpicklable_errors_are_reported_as_in_process(tmp_path, cluster):
    @task(target="shared/{k}.pkl")
    def a(k):
        return "a"

    @task(target="shared/{k}.pkl")
    def b(k):
        return "b"

    @task
    def picky():
        raise PickyError(7, "the user's own message")

    with Flow("dask-errors", result=LocalResult(dir=tmp_path)) as flow:
        ra, rb, rp = a(1), b(1), picky()
    state = flow.run(executor=DaskExecutor(address=cluster.scheduler_address))
    outcomes = sorted([state.result[ra].is_failed(), state.result[rb].is_failed()])
    assert outcomes == [False, True]  # one computes, the other fails, as in process
    failed = state.result[ra] if state.result[ra].is_failed() else state.result[rb]
    assert "is also the target of task" in failed.message
    assert "PickyError: 7: the user's own message" in state.result[rp].message


def test_the_command_line_runs_a_flow_on_dask(tmp_path):
    import json
    import subprocess
    import sys

    (tmp_path / "f.py").write_text(
        "from resultkit import Flow, task\n"
        "from resultkit.executors import DaskExecutor\n"
        "@task\n"
        "def inc(x):\n"
        "    return x + 1\n"
        "ex = DaskExecutor(cluster_kwargs={'n_workers': 1, 'processes': False})\n"
        "with Flow('cli-dask', executor=ex) as flow:\n"
        "    inc.map([1, 2, 3])\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "resultkit", "run", "f.py", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["state"], summary["ran"], summary["failed"]) == ("Success", 3, 0)

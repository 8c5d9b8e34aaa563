"""Mapped children's checkpoints on an object store: written together, one write_many per chunk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections import Counter

import pytest

from counting_proxy import CountingProxy
from resultkit import Flow, config, task
from resultkit.caching.locks import lock_holders
from resultkit.engine import write_batch
from resultkit.engine.executors import ThreadExecutor
from resultkit.executors import LocalExecutor
from resultkit.results import S3Result

BUCKET = "rk-batched-persist"


class CountingS3Result(S3Result):
    """An S3Result that counts its write_many calls and their items (the storage is real)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def write_many(self, items, **kwargs):
        items = list(items)
        self.batches.append(len(items))
        return super().write_many(items, **kwargs)


def _s3(url: str, prefix: str) -> CountingS3Result:
    r = CountingS3Result(
        BUCKET,
        prefix=prefix,
        endpoint_url=url,
        location="sq/{map_index}.pkl",
        storage_options={"skip_instance_cache": True},
    )
    if not r.fs.exists(BUCKET):
        r.fs.mkdir(BUCKET)
    return r


@pytest.fixture
def unbatched():
    config.batch_writes = False
    yield
    config.batch_writes = True


def _flow(r: S3Result, n: int) -> tuple[Flow, object]:
    @task(checkpoint=True, result=r)
    def square(x):
        return x * x

    with Flow("batched", run_store="off") as flow:
        out = square.map(list(range(n)))
    return flow, out


@pytest.mark.parametrize("executor", [LocalExecutor, lambda: ThreadExecutor(4)])
def test_fifty_children_on_s3_write_in_one_batch_with_requests_overlapping(moto_server, executor):
    with CountingProxy(moto_server.port) as proxy:
        r = _s3(proxy.url, uuid.uuid4().hex)
        flow, out = _flow(r, 50)
        proxy.latency_ms = 20  # a real region: writes in turn would never overlap
        state = flow.run(executor=executor())
        children = state.result[out].map_states
        assert [c.result for c in children] == [i * i for i in range(50)]
        assert all(c.is_successful() for c in children)
        assert r.batches == [50]  # one write_many for the whole layer (chunk of 64)
        assert proxy.max_in_flight > 1  # the children's writes went out together
        stored = r.read_many([c._result.location for c in children])
        assert [s.value for s in stored] == [i * i for i in range(50)]  # complete pairs


def test_batched_and_unbatched_runs_store_the_same_values_at_the_same_places(moto_server):
    prefix = uuid.uuid4().hex
    r = _s3(moto_server.url, prefix)
    flow, out = _flow(r, 12)
    batched = flow.run().result[out].map_states
    config.batch_writes = False
    try:
        one_by_one = flow.run().result[out].map_states
    finally:
        config.batch_writes = True
    assert r.batches == [12]  # the second run wrote each child alone
    assert [c._result.location for c in batched] == [c._result.location for c in one_by_one]
    assert [c.result for c in batched] == [c.result for c in one_by_one]
    assert [c.message for c in batched] == [c.message for c in one_by_one]


@pytest.mark.parametrize("batch", [True, False])
def test_a_child_whose_write_is_refused_fails_alone_with_its_error(moto_server, batch):
    with CountingProxy(moto_server.port) as proxy:
        r = _s3(proxy.url, uuid.uuid4().hex)
        flow, out = _flow(r, 8)
        proxy.fail(None, 403, code="AccessDenied", method="PUT", path="/sq/3.pkl")
        config.batch_writes = batch
        try:
            state = flow.run()
        finally:
            config.batch_writes = True
        children = state.result[out].map_states
        assert r.batches == ([8] if batch else [])
        assert children[3].is_failed()
        assert children[3].message.startswith("could not write the result:"), children[3].message
        assert "sq/3.pkl" in children[3].message
        others = [c for i, c in enumerate(children) if i != 3]
        assert all(c.is_successful() for c in others)
        assert [c.result for c in others] == [i * i for i in range(8) if i != 3]
        assert not r.exists("sq/3.pkl") and r.exists("sq/4.pkl")


KILLED = textwrap.dedent(
    """
    import os, signal, sys, uuid
    from pathlib import Path
    from resultkit import Flow, task
    from resultkit.engine import write_batch
    from resultkit.results import S3Result

    write_batch.CHUNK_ITEMS = 8  # chunks of 8: two written before child 20 dies
    marks, runs, url, prefix, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    r = S3Result(sys.argv[6], prefix=prefix, endpoint_url=url, location="sq/{map_index}.pkl")

    @task(checkpoint=True, result=r)
    def square(x):
        if x == 20 and mode == "run":
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-layer
        (marks / f"square-{x}.{uuid.uuid4().hex}").touch()  # one file per body run
        return x * x

    with Flow("killed", run_store=runs) as flow:
        out = square.map(list(range(30)))
    if mode == "run":
        flow.run(run_id="layer-1")
    else:
        state = flow.resume("layer-1")
        print(state.is_successful(), sum(state.result[out].result))
    """
)


def test_a_run_killed_mid_layer_keeps_complete_pairs_and_resume_reruns_only_unwritten(
    moto_server, tmp_path
):
    prefix = uuid.uuid4().hex
    r = _s3(moto_server.url, prefix)
    (tmp_path / "marks").mkdir()

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        args = [tmp_path / "marks", tmp_path / "runs", moto_server.url, prefix, mode, BUCKET]
        return subprocess.run(
            [sys.executable, "-c", KILLED, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def bodies() -> Counter[int]:
        return Counter(int(p.name.split(".")[0][7:]) for p in (tmp_path / "marks").iterdir())

    killed = run("run")
    assert killed.returncode == -9, killed.stderr
    assert bodies() == Counter(range(20))
    written = [i for i in range(30) if r.exists(f"sq/{i}.pkl")]
    assert written == list(range(16))  # two whole chunks; the third died unwritten
    assert [r.read(f"sq/{i}.pkl").value for i in written] == [i * i for i in written]

    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == ["True", str(sum(i * i for i in range(30)))]
    # Children whose value was written ran once; the unwritten chunk's ran again.
    assert bodies() == Counter(range(30)) + Counter(range(16, 20))
    assert [r.read(f"sq/{i}.pkl").value for i in range(30)] == [i * i for i in range(30)]


class LockSeeingS3Result(CountingS3Result):
    """Notes, as each write_many starts, which single-flight locks are held (read from S3)."""

    def write_many(self, items, **kwargs):
        items = list(items)
        self.held = sorted(k for k, h in lock_holders(self).items() if h is not None)
        return super().write_many(items, **kwargs)


def test_children_with_targets_hold_their_locks_until_their_batch_is_written(moto_server):
    r = LockSeeingS3Result(
        BUCKET,
        prefix=uuid.uuid4().hex,
        endpoint_url=moto_server.url,
        storage_options={"skip_instance_cache": True},
    )
    if not r.fs.exists(BUCKET):
        r.fs.mkdir(BUCKET)

    @task(target="t/{map_index}.pkl", result=r)
    def square(x):
        return x * x

    with Flow("locked", run_store="off") as flow:
        out = square.map(list(range(6)))
    state = flow.run()
    assert state.result[out].result == [i * i for i in range(6)]
    assert r.batches == [6]
    assert r.held == sorted(f"t/{i}.pkl" for i in range(6))  # every child's lock, mid-write
    assert all(h is None for h in lock_holders(r).values())  # all released after
    again = flow.run()  # the targets are there: hits, nothing written
    assert all(s.is_cached() for s in again.result[out].map_states) and r.batches == [6]


def test_at_most_a_chunk_of_values_waits_unwritten_by_count_and_by_size(moto_server, monkeypatch):
    assert write_batch.CHUNK_ITEMS == 64  # the README's figure
    monkeypatch.setattr(write_batch, "CHUNK_ITEMS", 8)  # the same rule, at a cheaper size
    r = _s3(moto_server.url, uuid.uuid4().hex)
    flow, out = _flow(r, 20)
    assert flow.run().result[out].result == [i * i for i in range(20)]
    assert r.batches == [8, 8, 4]  # a chunk's worth of values at most waits for its write

    monkeypatch.setattr(write_batch, "CHUNK_BYTES", 5 * 2**20 // 2)  # 2.5 MB

    @task(checkpoint=True, result=r)
    def megabyte(x):
        return bytes([x]) * 2**20

    with Flow("big", run_store="off") as big:
        values = megabyte.map(list(range(5)))
    assert [v[:1] for v in big.run().result[values].result] == [bytes([i]) for i in range(5)]
    assert r.batches[3:] == [3, 2]  # flushed once 2.5 MB waited: 3 values of 1 MB

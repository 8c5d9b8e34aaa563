"""Runs that miss the same target at once compute it once (a lock on the result's storage)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from resultkit import Flow, task
from resultkit.caching.locks import SingleFlightLock
from resultkit.results import LocalResult, MemoryResult

FLOW = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from resultkit import Flow, task, config
    from resultkit.results import LocalResult

    root, marks, barrier = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    config.lock_lease = float(sys.argv[4])
    hold = float(sys.argv[5])
    # A Python expression for the result (a remote backend), else a folder.
    result = eval(sys.argv[6]) if len(sys.argv) > 6 else LocalResult(dir=root)

    # RK_MODE=cache: the same, through an output cache entry (cache_key) on the storage.
    if os.environ.get("RK_MODE") == "cache":
        from datetime import timedelta
        how = dict(cache_key="shared", cache_for=timedelta(hours=1), checkpoint=False)
        store = result if len(sys.argv) > 6 else LocalResult(dir=root / "cache")
    else:
        how, store = dict(target="shared.pkl"), None

    @task(result=result, **how)
    def expensive():
        (marks / f"ran-{os.getpid()}").touch()
        print("computing", flush=True)
        time.sleep(hold)  # the work itself (other runs must wait, not redo it)
        return "the value"

    with Flow("single-flight", cache_store=store) as flow:
        ref = expensive()
    print("ready", flush=True)
    while not barrier.exists():  # every process starts the flow at the same instant
        time.sleep(0.001)
    state = flow.run().result[ref]
    print("value", state.result, state.is_cached(), flush=True)
    """
)


def _start(
    tmp_path: Path, lease: float, hold: float, result: str | None = None, mode: str = "target"
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            FLOW,
            str(tmp_path / "root"),
            str(tmp_path / "marks"),
            str(tmp_path / "go"),
            str(lease),
            str(hold),
            *([result] if result else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RK_MODE": mode},
    )


def _race(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> list[tuple[str, str]]:
    """Start ``procs``' flows at one instant; their outputs, once each got the value
    and the body ran exactly once among them."""
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=180) for p in procs]
    for (out, err), p in zip(outputs, procs, strict=True):
        assert p.returncode == 0, err
        assert "value the value" in out, (out, err)
    assert len(list((tmp_path / "marks").iterdir())) == 1, "the body ran more than once"
    return outputs


def test_eight_processes_compute_a_target_once(tmp_path):
    (tmp_path / "marks").mkdir()
    procs = [_start(tmp_path, lease=5, hold=0.5) for _ in range(8)]
    _race(tmp_path, procs)
    assert not (tmp_path / "root" / ".rklocks").exists()  # no lock, no empty folder left


def test_a_killed_holder_is_taken_over_after_its_lease(tmp_path):
    (tmp_path / "marks").mkdir()
    holder = _start(tmp_path, lease=1.5, hold=60)
    assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
    (tmp_path / "go").touch()
    assert holder.stdout.readline() == "computing\n"  # it holds the lock now
    waiter = _start(tmp_path, lease=1.5, hold=0)
    assert waiter.stdout is not None and waiter.stdout.readline() == "ready\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert "value the value False" in out  # it computed after taking the lock over
    assert time.monotonic() - started < 30
    assert len(list((tmp_path / "marks").iterdir())) == 2


def test_threads_share_one_computation_and_the_lock_is_gone_after():
    calls = []
    errors: list[BaseException] = []
    result = MemoryResult(root="/single-flight-threads")
    gate = threading.Barrier(6)

    @task(target="t.pkl", result=result)
    def slow():
        calls.append(1)
        time.sleep(0.3)
        return 42

    with Flow("sf-threads") as flow:
        ref = slow()
    values = []

    def run() -> None:
        try:
            gate.wait()
            values.append(flow.run().result[ref].result)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and values == [42] * 6
    assert calls == [1]
    assert result.storage.list(result.lock_prefix("t.pkl")) == []


def test_opting_out_runs_every_body(tmp_path):
    calls = []
    gate = threading.Barrier(3)

    @task(target="o.pkl", result=LocalResult(dir=tmp_path), single_flight=False)
    def work():
        calls.append(1)
        gate.wait(timeout=10)  # all three are inside the body at once
        return 1

    with Flow("sf-off") as flow:
        ref = work()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            assert flow.run().result[ref].result == 1
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(calls) == 3


def test_a_failed_holder_lets_the_next_waiter_compute(tmp_path):
    r = LocalResult(dir=tmp_path)
    first = SingleFlightLock(r, "x.pkl", lease=5)
    second = SingleFlightLock(r, "x.pkl", lease=5)
    assert first.acquire()
    assert not second.acquire()
    first.release()  # failed without writing the target
    assert second.wait(timeout=5)
    assert second.acquire()
    second.release()
    assert r.storage.list(r.lock_prefix("x.pkl")) == []


def test_lock_folder_is_reserved(tmp_path):
    from resultkit.errors import UnsafeLocationError

    with pytest.raises(UnsafeLocationError, match="reserved for resultkit's locks"):
        LocalResult(dir=tmp_path).write(1, location=".rklocks/x.pkl")
    assert os.listdir(tmp_path) == []


@pytest.fixture(params=["moto", "seaweedfs", "gcs", "azure"])
def remote_result(request, tmp_path):
    """A Python expression building a fresh remote Result (evaluated in each process)."""
    import uuid

    import emulators
    from conftest import SEAWEED_KEY, SEAWEED_SECRET

    prefix = uuid.uuid4().hex
    if request.param == "moto":
        server = request.getfixturevalue("moto_server")
        expr = f"__import__('resultkit.results').results.S3Result('rk-sf', prefix={prefix!r}, endpoint_url={server.url!r})"
    elif request.param == "seaweedfs":
        server = request.getfixturevalue("seaweed_server")
        opts = {"key": SEAWEED_KEY, "secret": SEAWEED_SECRET}
        expr = f"__import__('resultkit.results').results.S3Result('rk-sf', prefix={prefix!r}, endpoint_url={server.url!r}, storage_options={opts!r})"
    elif request.param == "gcs":
        server = request.getfixturevalue("gcs_server")
        expr = f"__import__('resultkit.results').results.GCSResult('rk-sf', prefix={prefix!r}, endpoint_url={server.url!r}, token='anon', project='test')"
    else:
        server = request.getfixturevalue("azurite_server")
        conn = emulators.azurite_connection_string(server.port)
        expr = f"__import__('resultkit.results').results.AzureResult('rk-sf', prefix={prefix!r}, connection_string={conn!r})"
    result = eval(expr)
    name = result.storage.root.split("/", 1)[0]
    if not result.fs.exists(name):
        with contextlib.suppress(FileExistsError):  # made meanwhile
            result.fs.mkdir(name)
    return expr


def test_eight_processes_compute_a_remote_target_once(tmp_path, remote_result):
    (tmp_path / "marks").mkdir()
    procs = [_start(tmp_path, lease=10, hold=0.5, result=remote_result) for _ in range(8)]
    _race(tmp_path, procs)
    result = eval(remote_result)
    assert result.storage.list(result.lock_prefix("shared.pkl")) == []  # no lock left


@pytest.mark.parametrize("backend", ["local", "moto"])
def test_eight_processes_compute_a_cache_key_once(tmp_path, backend, request):
    """Output caches (cache_key) get single flight too, on the cache store's storage."""
    result = None
    if backend == "moto":
        server = request.getfixturevalue("moto_server")
        prefix = f"cache-{time.time_ns()}"
        result = (
            f"__import__('resultkit.results').results.S3Result('rk-sf', prefix={prefix!r}, "
            f"endpoint_url={server.url!r})"
        )
        made = eval(result)
        if not made.fs.exists("rk-sf"):
            with contextlib.suppress(FileExistsError):
                made.fs.mkdir("rk-sf")
    (tmp_path / "marks").mkdir()
    procs = [_start(tmp_path, lease=10, hold=0.5, result=result, mode="cache") for _ in range(8)]
    outputs = _race(tmp_path, procs)
    cached = sum("value the value True" in out for out, _ in outputs)
    assert cached == 7  # the others read the entry the first one wrote


def test_two_live_epochs_never_both_hold(tmp_path):
    """A contender that listed no epoch (the holder had just released) makes a lower epoch
    while another makes a higher one: neither may then hold the lock."""
    result = LocalResult(dir=tmp_path)
    first = SingleFlightLock(result, "x.pkl", lease=30)
    second = SingleFlightLock(result, "x.pkl", lease=30)
    assert first.acquire()
    # The race, replayed: the second created the next epoch after its own listing.
    assert second.storage.put_if_absent(second._key(1), second._body(), {})
    assert second._rival(1)  # first's epoch 0 is live: second must back off
    assert first._rival(0)  # and first sees second's live epoch too
    first.release()
    assert not second._rival(1)


def test_a_lock_folder_that_cannot_be_used_computes_with_a_warning(tmp_path, caplog):
    (tmp_path / ".rklocks").write_text("not a folder")  # no lock can be made under it

    @task(target="t.pkl", result=LocalResult(dir=tmp_path))
    def work():
        return 5

    with Flow("no-lock") as flow:
        ref = work()
    with caplog.at_level("WARNING", logger="resultkit"):
        assert flow.run().result[ref].result == 5
    assert "no single-flight lock" in caplog.text


def test_a_dead_holder_here_is_taken_over_at_once_a_remote_one_after_its_lease(tmp_path):
    import json as _json

    from resultkit.results._localsafety import process_space

    result = LocalResult(dir=tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = int(dead.stdout)  # a process of this machine that has exited

    def plant(owner: str, lease: float) -> None:
        lock = SingleFlightLock(result, "t.pkl", lease=30)
        for key in result.storage.list(lock._prefix):
            result.storage.delete(key)
        doc = {"owner": owner, "expires": time.time() + lease, "lease": lease}
        assert result.storage.put_if_absent(lock._key(0), _json.dumps(doc).encode(), {})

    plant(f"thishost:{gone}:{process_space()}:abcd1234", lease=60)
    here = SingleFlightLock(result, "t.pkl", lease=30)
    assert here.acquire()  # no need to wait 60 s for a process known to be gone
    here.release()

    plant(f"otherhost:{gone}:000000:abcd1234", lease=3)  # another machine: its lease rules
    there = SingleFlightLock(result, "t.pkl", lease=30)
    assert not there.acquire()  # the pid means nothing here: wait for the lease
    assert there.wait(timeout=20)
    assert there.acquire()
    there.release()

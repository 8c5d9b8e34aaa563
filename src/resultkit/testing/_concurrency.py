"""Contract tests: threads, concurrent readers and writers, and other processes.

Every thread's exceptions are collected and reported (:class:`Workers`); no
test synchronises with sleeps (barriers and events only).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from typing import Any

import cloudpickle

from ..results import Result
from ._support import RawAccess, Workers, applies_when

__all__ = ["ConcurrencyTests"]

_CHILD = """
import pickle, sys
template = pickle.loads(sys.stdin.buffer.read())
seen = template.read(who="parent").value
template.write({"from": "child", "saw": seen}, who="child")
"""


class ConcurrencyTests(RawAccess):
    def test_concurrent_writers_different_keys(self, result: Result) -> None:
        n = 16
        start = threading.Barrier(n, timeout=60)

        def work(i: int) -> None:
            start.wait()
            result.write({"i": i}, location=f"many/{i}.pkl")

        workers = Workers()
        for i in range(n):
            workers.start(f"writer-{i}", work, i)
        workers.check("concurrent writes to different keys must all succeed (put is thread-safe)")
        back = [result.read(f"many/{i}.pkl").value for i in range(n)]
        assert back == [{"i": i} for i in range(n)], (
            f"each of {n} concurrent writers must find its own value under its key; read {back}"
        )

    def test_concurrent_writers_same_key(self, result: Result) -> None:
        values = [bytes([i]) * (50_000 + i) for i in range(12)]
        start = threading.Barrier(len(values), timeout=60)

        def work(v: bytes) -> None:
            start.wait()
            result.write(v, location="contended.pkl")

        workers = Workers()
        for i, v in enumerate(values):
            workers.start(f"writer-{i}", work, v)
        workers.check("concurrent writes to one key must all succeed (the last put wins)")
        back = result.read("contended.pkl").value
        assert back in values, (
            "after concurrent puts to one key, get must return one writer's whole pair, "
            f"not a mix: read {len(back)} bytes starting {back[:8]!r}"
        )

    def test_concurrent_readers(self, result: Result) -> None:
        expected = {f"readers/{i}.pkl": [i] * (1000 * i + 1) for i in range(4)}
        for location, value in expected.items():
            result.write(value, location=location)
        start = threading.Barrier(8, timeout=60)
        wrong: list[str] = []

        def work() -> None:
            start.wait()
            for _ in range(10):
                for location, value in expected.items():
                    got = result.read(location).value
                    if got != value:
                        wrong.append(f"{location}: {len(got)} items")

        workers = Workers()
        for i in range(8):
            workers.start(f"reader-{i}", work)
        workers.check("concurrent reads must all succeed (get is thread-safe)")
        assert not wrong, f"concurrent gets must each return their own key's pair: {wrong[:5]}"

    def test_reader_never_sees_partial_value(self, result: Result) -> None:
        old = b"o" * 1000
        new = b"n" * (8 * 2**20)
        result.write(old, location="big.pkl")
        must = (
            "put must replace the payload and its metadata as one unit: a concurrent reader "
            "must get the old value or the new one, never a partial value, a missing key or "
            "an error"
        )
        stop, read_once, writing = threading.Event(), threading.Event(), threading.Event()
        wrong: list[str] = []
        reads_during_writes = 0

        def reader() -> None:
            nonlocal reads_during_writes
            while not stop.is_set() and len(wrong) < 5:
                during = writing.is_set()
                try:
                    value = result.read("big.pkl").value
                except Exception as exc:
                    wrong.append(f"{type(exc).__name__}: {exc}")
                else:
                    if value != old and value != new:
                        wrong.append(f"a {len(value)}-byte value starting {value[:12]!r}")
                if during and writing.is_set():
                    reads_during_writes += 1
                read_once.set()

        workers = Workers()
        workers.start("reader", reader)
        cycles = 0
        try:
            assert read_once.wait(120), "a read must complete within 120s"
            writing.set()
            deadline = time.monotonic() + 60
            # At least 3 rewrites, and more until the reader has raced 10 of them.
            while cycles < 3 or (
                reads_during_writes < 10 and not wrong and time.monotonic() < deadline
            ):
                result.write(new, location="big.pkl")
                result.write(old, location="big.pkl")
                cycles += 1
            writing.clear()
        finally:
            stop.set()
        workers.check(must)
        assert not wrong, f"{must}; the reader got {wrong}"
        assert reads_during_writes > 0, (
            f"a read must be able to complete while another thread rewrites the key; none did "
            f"during {cycles} rewrites"
        )
        final = result.read("big.pkl").value
        assert final == old, f"the last put must win; read {len(final)} bytes"

    # == shipping to workers and processes =====================================
    def test_pickled_result_works(self, result: Result) -> None:
        template = result.copy()
        template.location = "{k}.pkl"
        clone = pickle.loads(pickle.dumps(template))
        written = clone.write("from-clone", k="shipped")
        back = template.read(k="shipped").value
        assert back == "from-clone", (
            "a pickled copy of the Result (as shipped to a worker) must write where the "
            f"original reads: read {back!r}"
        )
        assert written.location == template.format(k="shipped").location, (
            f"a pickled copy must format the same canonical location: {written.location}"
        )

    def test_cloudpickled_written_result_keeps_value(self, result: Result) -> None:
        written = result.write({"v": 1}, location="cp.pkl")
        clone = cloudpickle.loads(cloudpickle.dumps(written))
        assert clone.value == {"v": 1} and clone.location == written.location, (
            "a cloudpickled written Result must keep its value and location"
        )
        assert clone.read().value == {"v": 1}, "a cloudpickled Result must read its location"

    @applies_when(persists_across_processes=True)
    def test_values_cross_processes(self, result: Result) -> None:
        result.write({"from": "parent"}, location="xproc/parent.pkl")
        template = result.copy()
        template.location = "xproc/{who}.pkl"
        env: dict[str, Any] = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=pickle.dumps(template),
            capture_output=True,
            env=env,
            timeout=300,
        )
        must = (
            "a Result pickled to another process must read what this process wrote and "
            "write what this process then reads (persists_across_processes)"
        )
        assert proc.returncode == 0, (
            f"{must}; the other process failed:\n{proc.stderr.decode(errors='replace')[-3000:]}"
        )
        back = result.read("xproc/child.pkl").value
        assert back == {"from": "child", "saw": {"from": "parent"}}, f"{must}; read {back!r}"

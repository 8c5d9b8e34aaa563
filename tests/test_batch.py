"""write_many / read_many under attack: a dead endpoint mid-batch, an interrupt mid-batch,
a large batch (memory bounded by the concurrency, not the batch), duplicates, hostile
locations; on a real S3 emulator behind the fault-injecting proxy.

The contract suite (``resultkit.testing._batch``) checks the same calls on every backend.
"""

from __future__ import annotations

import threading
import tracemalloc
import uuid

import numpy as np
import pytest

from fault_proxy import FaultProxy
from interrupts import interrupted_when, wait_for
from resultkit.errors import ConfigurationError, StorageError, UnsafeLocationError
from resultkit.results import BatchError, LocalResult, S3Result


def s3_through(proxy: FaultProxy, retries: int = 1) -> S3Result:
    """An S3Result whose every request crosses ``proxy``; no client-side retry hides a fault."""
    r = S3Result(
        "rk-batch",
        prefix=uuid.uuid4().hex,
        endpoint_url=proxy.url,
        retries=retries,
        storage_options={"config_kwargs": {"retries": {"total_max_attempts": 1}}},
    )
    r.fs.retries = 1  # s3fs's own retry loop
    if not r.fs.exists("rk-batch"):
        r.fs.mkdir("rk-batch")
    return r


def temp_objects(r: S3Result) -> list[str]:
    r.fs.invalidate_cache()
    return [p for p in r.fs.find(r.storage.root) if ".rktmp-" in p]


def test_dead_endpoint_mid_batch_keeps_every_outcome(moto_server):
    with FaultProxy(moto_server.port) as proxy:
        r = s3_through(proxy)
        items = {f"b/{'dead' if i % 4 == 1 else 'live'}-{i}.pkl": i for i in range(16)}
        proxy.fail(None, status=503, path="/dead-")  # those keys' endpoint is down
        with pytest.raises(BatchError) as caught:
            r.write_many(items, concurrency=6)
        error = caught.value
        failed = sorted(loc.rsplit("/", 1)[1] for loc, _ in error.failures)
        assert failed == sorted(k.rsplit("/", 1)[1] for k in items if "dead" in k)
        assert all(isinstance(exc, StorageError) for _, exc in error.failures)
        assert "dead-1.pkl" in str(error) and "and 0 more" not in str(error)
        # the live ones are written, each whole and verified
        live = [o for o in error.outcomes if not isinstance(o, Exception)]
        assert len(live) == 12
        assert [x.value for x in r.read_many([x.location for x in live])] == [x.value for x in live]
        proxy.heal()
        assert not any(r.exists(k) for k in items if "dead" in k), "a failed item wrote nothing"
        # a whole outage that starts mid-batch: every item is reported, none half-written
        proxy.latency_ms = 30
        started = threading.Thread(
            target=lambda: (wait_for(lambda: proxy.count() >= 4, "4 requests"), proxy.outage())
        )
        proxy.clear()
        started.start()
        stored = {k: v for k, v in items.items() if "live" in k}
        outcomes = r.read_many(list(stored), concurrency=4, return_exceptions=True)
        started.join()
        proxy.heal()
        assert len(outcomes) == len(stored)
        for location, outcome in zip(stored, outcomes, strict=True):
            if isinstance(outcome, Exception):
                assert isinstance(outcome, StorageError), outcome
            else:
                assert outcome.value == stored[location]
        assert any(isinstance(o, Exception) for o in outcomes), "the outage hit the batch"
        assert temp_objects(r) == []


def test_interrupt_mid_batch_leaves_nothing_partial(moto_server):
    with FaultProxy(moto_server.port) as proxy:
        r = s3_through(proxy)
        proxy.latency_ms = 40  # keep requests in flight when the interrupt lands
        proxy.clear()
        items = {f"k/{i}.pkl": np.full(50_000, i) for i in range(30)}
        with interrupted_when(lambda: proxy.count("PUT") >= 3, "3 PUTs"):
            r.write_many(items, concurrency=3)
        # no request outlives the call: no batch thread left, nothing sent afterwards
        assert not [t for t in threading.enumerate() if t.name.startswith("resultkit-write")]
        proxy.heal()
        sent = proxy.count("PUT")
        present = [k for k in items if r.exists(k)]
        assert 0 < len(present) < len(items), (len(present), sent)
        for key in present:  # each item is all there or not there
            assert (r.read(key).value == items[key]).all()
        assert temp_objects(r) == []
        assert proxy.count("PUT") == sent


def test_large_batch_memory_is_bounded_by_concurrency(moto_server):
    r = S3Result("rk-batch", prefix=uuid.uuid4().hex, endpoint_url=moto_server.url)
    if not r.fs.exists("rk-batch"):
        r.fs.mkdir("rk-batch")
    one_mb = np.ones(2**17)  # 1 MiB; every item refers to it, so the inputs cost 1 MiB
    items = [(f"big/{i}.pkl", one_mb) for i in range(48)]
    tracemalloc.start()
    try:
        written = r.write_many(items, concurrency=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(written) == 48
    # 48 payloads of 1 MiB: a batch holding them all would peak past 48 MiB
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_duplicates_and_hostile_locations(tmp_path):
    r = LocalResult(dir=tmp_path / "root")
    with pytest.raises(ConfigurationError, match="given twice"):
        r.write_many([("a.pkl", 1), ("b.pkl", 2), (str(r.write(0, "a.pkl").location), 3)])
    assert r.read("a.pkl").value == 0, "a refused batch writes nothing"
    assert not r.exists("b.pkl")
    for hostile in ("../x.pkl", "/etc/passwd", "a/../../x.pkl", "s3://other/x.pkl"):
        with pytest.raises(UnsafeLocationError):
            r.write_many({"ok.pkl": 1, hostile: 2, "ok2.pkl": 3})
        with pytest.raises(UnsafeLocationError):
            r.read_many(["a.pkl", hostile])
    assert not r.exists("ok.pkl")
    # the same location twice in a read is just read twice
    assert [x.value for x in r.read_many(["a.pkl", "a.pkl"], concurrency=2)] == [0, 0]
    with pytest.raises(ConfigurationError, match="pairs"):
        r.write_many("a.pkl")
    with pytest.raises(ConfigurationError, match="not a \\(location, value\\) pair"):
        r.write_many([("a.pkl", 1, 2)])
    with pytest.raises(ConfigurationError, match="concurrency"):
        r.write_many({"c.pkl": 1}, concurrency=True)


def test_exists_many_of_few_keys_is_one_head_each_and_defaults(moto_server, tmp_path):
    from counting_proxy import CountingProxy

    with CountingProxy(moto_server.port) as proxy:
        r = S3Result("rk-batch", prefix=uuid.uuid4().hex, endpoint_url=proxy.url)
        if not r.fs.exists("rk-batch"):
            r.fs.mkdir("rk-batch")
        r.write(1, "f/a.pkl")
        proxy.clear()
        assert r.exists_many(["f/a.pkl", "f/b.pkl", "g/c.pkl", "f/d.pkl"]) == [
            True,
            False,
            False,
            False,
        ]
        assert sorted(proxy.methods()) == ["HEAD"] * 4, proxy.requests  # never a listing
    assert r.storage.batch_concurrency == 32
    assert LocalResult(dir=tmp_path).storage.batch_concurrency == 8


def test_batch_error_quotes_each_cause_to_a_whole_word_and_keeps_it_whole(tmp_path):
    class Loud(Exception):
        pass

    long_reason = "the value could not be pickled because " + "somethingrather " * 40 + "at the end"
    ok = LocalResult(dir=str(tmp_path))

    class Picky(LocalResult):
        def _store(self, location, key, value):  # type: ignore[no-untyped-def]
            if value == "bad":
                raise Loud(long_reason + "\nsecond line")
            return super()._store(location, key, value)

    r = Picky(dir=ok.dir)
    with pytest.raises(BatchError) as info:
        r.write_many({"a.pkl": 1, "b.pkl": "bad"})
    message = str(info.value)
    cause = str(info.value.failures[0][1])  # a StorageError naming the location and Loud's text
    assert long_reason + "\nsecond line" in cause  # kept whole
    quoted = message.split("b.pkl (StorageError: ", 1)[1]
    assert quoted.endswith(" ...)") and len(quoted) < 260, message
    words = quoted[: -len(" ...)")].split(" ")
    assert words[-1] in cause.split(" ") and cause.startswith(" ".join(words)), quoted
    assert "second line" not in message and ".failures" in message
    assert ok.read("a.pkl").value == 1

"""read_many's GETs as coroutines on the client's event loop (results/_asyncreads.py).

Each item must stay exactly as safe as a single read: the requests a read
sends and no more, nothing deserialized before its digest is checked,
transient failures retried per item by the Result's policy, a missing or a
damaged item reported in its place, and no request left running once the
call has returned. On the real moto, fake-gcs and Azurite servers, behind
the tests' counting / fault-injecting proxy.

How each test sees that the loop lane ran (and fails without it): the
serializer records the thread of each deserialization. On the loop lane the
caller's thread finishes every item; on the thread path each item is read
in a ``resultkit-read_many`` thread.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from fsspec.asyn import sync

import emulators
from counting_proxy import CountingProxy
from interrupts import interrupted_when
from resultkit.errors import ResultCorruptError, ResultNotFoundError
from resultkit.results import AzureResult, GCSResult, RetryPolicy, S3Result
from resultkit.serializers import PickleSerializer

BUCKET = "rk-async-reads"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)
MAIN = threading.main_thread().name


class RecordingPickle(PickleSerializer):
    """Pickle that records each value it deserializes and the thread that did it."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[Any, str]] = []

    def deserialize(self, data: Any) -> Any:
        value = super().deserialize(data)
        self.loads.append((value, threading.current_thread().name))
        return value


def build(kind: str, port: int, **kwargs: Any) -> Any:
    """A Result of ``kind`` whose every request crosses the proxy at ``port``; only resultkit
    retries (the clients' own retries off where one test counts them)."""
    url = f"http://127.0.0.1:{port}"
    prefix = uuid.uuid4().hex
    r: Any
    if kind == "s3":
        r = S3Result(
            BUCKET,
            prefix=prefix,
            endpoint_url=url,
            storage_options={"config_kwargs": {"retries": {"total_max_attempts": 1}}},
            **kwargs,
        )
        r.fs.retries = 1  # s3fs's own retry loop
    elif kind == "gcs":
        r = GCSResult(BUCKET, prefix=prefix, endpoint_url=url, token="anon", project="t", **kwargs)
    else:
        r = AzureResult(
            BUCKET,
            prefix=prefix,
            connection_string=emulators.azurite_connection_string(port),
            **kwargs,
        )
    if not r.fs.exists(BUCKET):
        r.fs.mkdir(BUCKET)
    return r


@pytest.fixture(scope="module", params=["s3", "gcs", "azure"])
def backend(request: Any) -> Any:
    """(kind, the proxy) for each backend; a fresh Result per test (its own serializer)."""
    server = request.getfixturevalue(
        {"s3": "moto_server", "gcs": "gcs_server", "azure": "azurite_server"}[request.param]
    )
    with CountingProxy(server.port) as proxy:
        yield request.param, proxy


def reader(kind: str, proxy: CountingProxy, **kwargs: Any) -> Any:
    r = build(kind, proxy.port, serializer=RecordingPickle(), retries=FAST, **kwargs)
    r.write_many({"warm.pkl": 0, "warm2.pkl": 0})  # the client and its connections
    proxy.heal()
    proxy.clear()
    return r


def threads_of(r: Any) -> set[str]:
    return {thread for _, thread in r.serializer.loads}


def batch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resultkit-read_many")]


def test_each_item_is_a_single_reads_requests_sent_from_the_loop(backend):
    kind, proxy = backend
    r = reader(kind, proxy)
    items = {f"r/{i}.pkl": {"i": i} for i in range(12)}
    locations = [w.location for w in r.write_many(items)]
    proxy.clear()
    r.read(locations[0])
    single = proxy.calls()
    # S3 and Azure: one GET; GCS: the metadata GET, then the media GET of that generation
    assert [m for m, _ in single] == ["GET"] * (2 if kind == "gcs" else 1)
    r.serializer.loads.clear()
    proxy.clear()
    proxy.latency_ms = 10  # requests overlap where they can
    back = r.read_many(locations, concurrency=8)
    assert [x.value for x in back] == list(items.values())
    assert [x.location for x in back] == locations
    assert proxy.methods() == [m for m, _ in single] * 12, "a single read's requests, no more"
    assert threads_of(r) == {MAIN}, "each item was finished in the caller's thread"
    assert proxy.max_in_flight > 1, "the GETs overlapped"
    assert batch_threads() == []
    proxy.latency_ms = 0
    assert [x.record == r.stat(loc) for x, loc in zip(back, locations, strict=True)] == [True] * 12


def test_a_missing_and_a_damaged_item_fail_in_place_and_nothing_damaged_is_loaded(backend):
    kind, proxy = backend
    r = reader(kind, proxy)
    r.write_many({"d/ok-1.pkl": "one", "d/bad.pkl": "the original", "d/ok-2.pkl": "two"})
    storage = r.storage
    path = storage.path(r._key(r._canonical_location("d/bad.pkl", {})))
    flipped = bytearray(r.fs.cat_file(path))
    flipped[-2] ^= 0xFF  # same size, same record: the digest tells
    storage._put_object(path, bytes(flipped), dict(storage._head_object(path)))
    r.serializer.loads.clear()
    outcomes = r.read_many(
        ["d/ok-1.pkl", "d/missing.pkl", "d/bad.pkl", "d/ok-2.pkl"], return_exceptions=True
    )
    assert isinstance(outcomes[1], ResultNotFoundError) and "d/missing.pkl" in str(outcomes[1])
    assert isinstance(outcomes[2], ResultCorruptError) and "d/bad.pkl" in str(outcomes[2])
    assert [outcomes[0].value, outcomes[3].value] == ["one", "two"]
    assert sorted(r.serializer.loads) == [
        ("one", MAIN),
        ("two", MAIN),
    ], "only verified payloads were deserialized, in the caller's thread"


def test_a_transient_503_is_retried_for_that_item_only(s3_proxy):
    r = reader("s3", s3_proxy)
    locations = [w.location for w in r.write_many({f"t/flaky-{i}.pkl": i for i in range(8)})]
    s3_proxy.clear()
    s3_proxy.fail(2, status=503, method="GET", path="/flaky-3.pkl")  # fails twice, then works
    r.serializer.loads.clear()
    assert [x.value for x in r.read_many(locations, concurrency=8)] == list(range(8))
    gets = [p.rsplit("/", 1)[1] for m, p in s3_proxy.calls() if m == "GET"]
    assert gets.count("flaky-3.pkl") == 3 and len(gets) == 8 + 2
    assert threads_of(r) == {MAIN}
    # past the policy's attempts, the item's error is the last failure, mapped as a read's
    s3_proxy.clear()
    s3_proxy.fail(3, status=503, method="GET", path="/flaky-5.pkl")
    outcomes = r.read_many(locations, return_exceptions=True)
    assert "unable to handle" in str(outcomes[5]) and type(outcomes[5]).__name__ == "StorageError"
    assert [o.value for i, o in enumerate(outcomes) if i != 5] == [0, 1, 2, 3, 4, 6, 7]


def test_a_large_item_is_read_by_ranges_in_the_callers_thread(s3_proxy):
    r = reader("s3", s3_proxy)
    r.storage.ranged_read_from = r.storage.read_part_size = 64 * 2**10
    big = b"b" * (300 * 2**10)
    r.write_many({"l/small.pkl": "small", "l/big.pkl": big})
    r.serializer.loads.clear()
    back = r.read_many(["l/small.pkl", "l/big.pkl", "l/small.pkl"])
    assert [x.value for x in back] == ["small", big, "small"]
    assert threads_of(r) == {MAIN}


def test_an_interrupt_cancels_the_batch_and_leaves_no_request_running(s3_proxy):
    r = reader("s3", s3_proxy)
    r.write_many({f"i/{n}-{i}.pkl": i for i in range(4) for n in ("slow", "fine")})
    # a long backoff: without cancelling, the call would wait for it
    r.retries = RetryPolicy(attempts=3, initial_delay=30, max_delay=30)
    s3_proxy.fail(None, status=503, method="GET", path="/slow-")
    failed = lambda: s3_proxy.count("GET", outcome="status:503") >= 4  # noqa: E731
    with interrupted_when(failed, "4 failed GETs", real_signal=True) as took:
        r.read_many([f"i/{n}-{i}.pkl" for i in range(4) for n in ("slow", "fine")])
    assert took.seconds < 20, (
        f"the interrupt waited for the retries' backoff ({took.seconds:.1f} s)"
    )

    async def alive() -> list[Any]:
        names = [getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()]
        return [n for n in names if n.startswith("LoopReads.")]

    assert sync(r.fs.loop, alive) == [], "a request of the batch outlived the call"
    assert batch_threads() == []


@pytest.mark.parametrize("own", ["read", "_load", "_call"])
def test_a_result_class_with_its_own_read_load_or_call_gets_it_on_a_thread(own, s3_proxy):
    calls: list[str] = []

    class Own(S3Result):
        def read(self, location: Any = None, **kwargs: Any) -> Any:
            calls.append(threading.current_thread().name)
            return super().read(location, **kwargs)

        def _load(self, location: str, key: str, raw: bool = False) -> Any:
            calls.append(threading.current_thread().name)
            return "from _load", None

        def _call(self, location: str, action: str, fn: Any, *args: Any) -> Any:
            calls.append(threading.current_thread().name)
            return super()._call(location, action, fn, *args)

    for name in {"read", "_load", "_call"} - {own}:
        delattr(Own, name)
    r = Own(BUCKET, prefix=uuid.uuid4().hex, endpoint_url=s3_proxy.url, retries=FAST)
    if not r.fs.exists(BUCKET):  # run alone, no other test made it
        r.fs.mkdir(BUCKET)
    r.write_many({"o/a.pkl": "a", "o/b.pkl": "b"})
    calls.clear()
    s3_proxy.clear()
    back = r.read_many(["o/a.pkl", "o/b.pkl"])
    assert [x.value for x in back] == (["from _load"] * 2 if own == "_load" else ["a", "b"])
    assert len(calls) == 2 and all(t.startswith("resultkit-read_many") for t in calls), calls
    # its own _load sends no request: the lane did not send a GET it would not use
    assert s3_proxy.methods().count("GET") == (0 if own == "_load" else 2)


def test_a_pair_written_before_records_were_metadata_reads_by_its_sidecar(s3_proxy):
    from resultkit.results._record import metadata_to_bytes

    r = reader("s3", s3_proxy)
    old = r.write({"old": True}, "s/old.pkl")
    r.write("new", "s/new.pkl")
    path = r.storage.path(r._key(old.location))
    # as an older resultkit stored it: the bare payload, its record a sidecar object
    r.fs.pipe_file(path, r.fs.cat_file(path))
    r.fs.pipe_file(path + ".rkmeta", metadata_to_bytes(old.record.to_metadata()))
    r.fs.pipe_file(r.storage.path(r._key(r._canonical_location("s/orphan.pkl", {}))), b"x")
    r.serializer.loads.clear()
    s3_proxy.clear()
    back = r.read_many(["s/old.pkl", "s/new.pkl", "s/orphan.pkl"], return_exceptions=True)
    assert back[0].value == {"old": True} and back[0].record == old.record
    assert back[1].value == "new"
    assert isinstance(back[2], ResultCorruptError), "no record: refused, not loaded"
    assert sorted(r.serializer.loads, key=repr) == [("new", MAIN), ({"old": True}, MAIN)]
    assert [m for m, p in s3_proxy.calls() if p.endswith(".rkmeta")] == ["GET", "GET"]


class _Length:
    """Unpickles to the length of its payload: a large payload, a tiny value."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __reduce__(self) -> Any:
        return (len, (b"x" * self.size,))


def test_memory_holds_the_window_of_payloads_not_the_batch(s3_proxy):
    import tracemalloc

    r = reader("s3", s3_proxy)
    size, items = 128 * 2**10, 24
    r.write_many({f"m/{i}.pkl": _Length(size) for i in range(items)}, concurrency=4)
    r.serializer.loads.clear()
    tracemalloc.start()
    try:
        back = r.read_many([f"m/{i}.pkl" for i in range(items)], concurrency=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [x.value for x in back] == [size] * items
    assert threads_of(r) == {MAIN}
    assert peak < items * size / 2, f"{peak / 2**20:.1f} MiB: the batch's payloads were held"

"""write_many's small items as coroutines on s3fs's event loop (results/_asyncbatch.py).

Each item must stay exactly as safe as a single write: one PUT carrying its
record, transient failures retried per item by the Result's policy, errors
mapped as a write maps them, a BatchError naming the failed items with the
others written, large items on the thread path, and no request left running
once the call has returned. On the real moto server, behind the tests'
fault-injecting proxy.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from fsspec.asyn import sync

from fault_proxy import FaultProxy
from interrupts import interrupted_when, wait_for
from resultkit.errors import SerializationError, StorageAccessError, StorageError
from resultkit.results import BatchError, RetryPolicy, S3Result

BUCKET = "rk-batch-async"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)


@pytest.fixture(scope="module")
def moto_proxy(moto_server):
    """One fault proxy for the module's tests (each stops in up to 0.5 s)."""
    with FaultProxy(moto_server.port) as proxy:
        yield proxy


@pytest.fixture
def proxy(moto_proxy):
    moto_proxy.heal()
    moto_proxy.clear()
    yield moto_proxy
    moto_proxy.heal()


def through(proxy: FaultProxy, retries: Any = FAST) -> S3Result:
    """An S3Result whose every request crosses ``proxy``; only resultkit retries."""
    r = S3Result(
        BUCKET,
        prefix=uuid.uuid4().hex,
        endpoint_url=proxy.url,
        retries=retries,
        storage_options={"config_kwargs": {"retries": {"total_max_attempts": 1}}},
    )
    r.fs.retries = 1  # s3fs's own retry loop
    if not r.fs.exists(BUCKET):
        r.fs.mkdir(BUCKET)
    r.write(0, "warm.pkl")  # the client and its connections
    proxy.clear()
    return r


def batch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resultkit-write_many")]


def publishing(r: S3Result) -> list[Any]:
    """write_many's coroutines still alive on the client's event loop."""

    async def alive() -> list[Any]:
        return [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "") == "LoopWrites._publish"
        ]

    return list(sync(r.fs.loop, alive))


def test_small_items_are_one_put_each_sent_from_the_loop_not_threads(proxy):
    r = through(proxy)
    proxy.latency_ms = 20  # requests stay in flight while the watcher looks
    seen: list[list[str]] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            wait_for(lambda: proxy.count("PUT") >= 4, "4 PUTs")
            seen.append(batch_threads())
        except BaseException as exc:
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    items = {f"ckpt/{i}.pkl": {"i": i} for i in range(24)}
    written = r.write_many(items, concurrency=8)
    watcher.join()
    assert errors == []
    assert seen == [[]], "no thread an item while the batch's requests were in flight"
    assert [method for method, _ in proxy.calls()] == ["PUT"] * 24
    assert proxy.max_in_flight > 1, "the PUTs overlapped"
    assert [w.location.rsplit("/", 1)[1] for w in written] == [f"{i}.pkl" for i in range(24)]
    # each one is what a single write stores: the same record, read back verified
    single = r.write({"i": 0}, "single.pkl")
    same = ("serializer", "digest", "size", "signature")
    assert [getattr(written[0].record, a) for a in same] == [
        getattr(single.record, a) for a in same
    ]
    assert r.stat(written[7].location) == written[7].record
    assert [x.value for x in r.read_many([w.location for w in written])] == list(items.values())


def test_transient_503s_are_retried_per_item_and_every_item_is_written(proxy):
    r = through(proxy)
    proxy.fail(2, status=503, method="PUT", path="/flaky-3.pkl")  # fails twice, then works
    proxy.fail(1, status=503, method="PUT", path="/flaky-7.pkl")
    proxy.reset(1, method="PUT", path="/flaky-9.pkl")  # a dropped connection
    items = {f"t/flaky-{i}.pkl": i for i in range(12)}
    written = r.write_many(items, concurrency=6)
    assert [w.value for w in written] == list(range(12))
    assert [x.value for x in r.read_many([w.location for w in written])] == list(range(12))
    puts = [path.rsplit("/", 1)[1] for method, path in proxy.calls() if method == "PUT"]
    assert puts.count("flaky-3.pkl") == 3 and puts.count("flaky-7.pkl") == 2
    assert puts.count("flaky-9.pkl") == 2 and len(puts) == 12 + 4
    # past the policy's attempts, the last failure is the item's error
    proxy.clear()
    proxy.fail(3, status=503, method="PUT", path="/gone-1.pkl")
    outcomes = r.write_many(
        {f"t/gone-{i}.pkl": i for i in range(3)}, return_exceptions=True, concurrency=3
    )
    assert isinstance(outcomes[1], StorageError) and "unable to handle" in str(outcomes[1])
    assert [o.value for o in (outcomes[0], outcomes[2])] == [0, 2]
    assert proxy.count("PUT", outcome="status:503") == 3
    assert not r.exists("t/gone-1.pkl")


def test_a_permanent_failure_names_its_item_and_the_others_are_written(proxy):
    r = through(proxy)
    proxy.fail(None, status=403, method="PUT", path="/denied-")
    items: dict[str, Any] = {f"p/ok-{i}.pkl": i for i in range(6)}
    items["p/denied-x.pkl"] = "no"
    items["p/unpicklable.pkl"] = threading.Lock()  # fails before any request
    items["p/ok-last.pkl"] = "last"
    with pytest.raises(BatchError) as caught:
        r.write_many(items, concurrency=4)
    error = caught.value
    failed = {loc.rsplit("/", 1)[1]: type(exc) for loc, exc in error.failures}
    assert failed == {"denied-x.pkl": StorageAccessError, "unpicklable.pkl": SerializationError}
    assert "2 of 9 items failed" in str(error) and "denied-x.pkl" in str(error)
    # the others are written, outcomes in item order
    assert [o.value for o in error.outcomes if not isinstance(o, Exception)] == [
        *range(6),
        "last",
    ]
    assert isinstance(error.outcomes[6], StorageAccessError)
    assert proxy.count("PUT", outcome="status:403") == 1, "access denied is never retried"
    proxy.heal()
    assert not r.exists("p/denied-x.pkl") and not r.exists("p/unpicklable.pkl")
    assert r.read("p/ok-last.pkl").value == "last"


def test_a_mixed_batch_sends_large_items_by_the_streamed_upload(proxy):
    r = through(proxy)
    r.storage.single_request_limit = 64 * 2**10  # "large" stays small and fast
    big = b"x" * (200 * 2**10)
    items = {"m/a.pkl": 1, "m/big.pkl": big, "m/b.pkl": 2, "m/big2.pkl": big + b"y"}
    written = r.write_many(items, concurrency=4)
    assert [w.value for w in written] == list(items.values())
    assert [x.value for x in r.read_many(list(items))] == list(items.values())
    names = [(m, p.rsplit("/", 1)[1]) for m, p in proxy.calls() if m in ("PUT", "DELETE")]
    assert sorted(n for m, n in names if m == "PUT" and "rktmp" not in n) == [
        "a.pkl",
        "b.pkl",
        "big.pkl",  # the copy of its temporary object, with the record
        "big2.pkl",
    ]
    for big in ("big", "big2"):  # each large one: a temporary object, copied, removed
        temps = [n for m, n in names if n.startswith(f".{big}.pkl.rktmp-")]
        assert len(temps) == 2 and [m for m, n in names if n == temps[0]] == ["PUT", "DELETE"]
    assert r.stat("m/big.pkl") == written[1].record
    assert not [p for p in r.fs.find(r.storage.root) if ".rktmp-" in p]


def test_an_interrupt_cancels_the_batch_and_leaves_no_request_running(proxy):
    # a long backoff: without cancelling, the call would wait for it
    r = through(proxy, retries=RetryPolicy(attempts=3, initial_delay=30, max_delay=30))
    proxy.fail(None, status=503, method="PUT", path="/slow-")
    items = {f"i/{'slow' if i < 4 else 'fine'}-{i}.pkl": i for i in range(8)}
    failed = lambda: proxy.count("PUT", outcome="status:503") >= 4  # noqa: E731
    with interrupted_when(failed, "4 failed PUTs", real_signal=True) as took:
        r.write_many(items, concurrency=8)
    assert took.seconds < 20, (
        f"the interrupt waited for the retries' backoff ({took.seconds:.1f} s)"
    )
    assert publishing(r) == [], "a request of the batch outlived the call"
    assert batch_threads() == []
    proxy.heal()
    assert not any(r.exists(k) for k in items if "slow" in k)
    for key in (k for k in items if "fine" in k and r.exists(k)):
        assert r.read(key).value == items[key]  # whole, or not there


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_gcs_and_azure_send_a_batch_from_the_loop_too(kind, request):
    import emulators
    from counting_proxy import CountingProxy
    from resultkit.results import AzureResult, GCSResult

    server = request.getfixturevalue("gcs_server" if kind == "gcs" else "azurite_server")
    with CountingProxy(server.port) as proxy:
        r: Any
        if kind == "gcs":
            r = GCSResult(
                "rk-async",
                prefix=uuid.uuid4().hex,
                endpoint_url=proxy.url,
                token="anon",
                project="test",
            )
        else:
            r = AzureResult(
                "rk-async",
                prefix=uuid.uuid4().hex,
                connection_string=emulators.azurite_connection_string(proxy.port),
            )
        if not r.fs.exists("rk-async"):
            r.fs.mkdir("rk-async")
        r.write(0, "warm.pkl")
        proxy.clear()
        proxy.latency_ms = 20
        seen: list[list[str]] = []
        watcher = threading.Thread(
            target=lambda: (
                wait_for(lambda: proxy.count() >= 4, "4 uploads"),
                seen.append(batch_threads()),
            )
        )
        watcher.start()
        items: dict[str, Any] = {f"g/{i}.pkl": i for i in range(11)}
        items["g/bad.pkl"] = threading.Lock()
        outcomes = r.write_many(items, concurrency=8, return_exceptions=True)
        watcher.join()
        assert seen == [[]]
        assert isinstance(outcomes[11], SerializationError)
        assert [o.value for o in outcomes[:11]] == list(range(11))
        assert proxy.count() == 11, proxy.calls()  # one upload an item, nothing for the bad one
        assert [x.value for x in r.read_many(["g/0.pkl", "g/10.pkl"])] == [0, 10]


def test_a_result_class_that_overrides_write_has_it_called_for_each_item(proxy):
    calls: list[str] = []

    class Audited(S3Result):
        def write(self, value: Any, location: Any = None, **kwargs: Any) -> Any:
            calls.append(str(location).rsplit("/", 1)[1])
            return super().write(value, location, **kwargs)

    base = through(proxy)
    r = Audited(BUCKET, prefix=base.storage.root.split("/", 1)[1], endpoint_url=proxy.url)
    written = r.write_many({"w/a.pkl": 1, "w/b.pkl": 2, "w/c.pkl": 3}, concurrency=3)
    assert sorted(calls) == ["a.pkl", "b.pkl", "c.pkl"]
    assert [w.value for w in written] == [1, 2, 3]

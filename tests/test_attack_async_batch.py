"""Attacks on write_many's loop lane (results/_asyncbatch.py) on real servers.

Each item of a write_many must be exactly as safe as a single write: stored
whole or not at all, the same record, every object a write would store,
through the storage's own request; no request outlives the call. These
tests try to break that from the outside (odd serializers, Result and
storage subclasses, interrupts mid-batch, threads, forks, a caller inside an
event loop), on the moto server behind the tests' fault proxy.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import pickle
import threading
import traceback
import tracemalloc
import uuid
from typing import Any

import pytest
from fsspec.asyn import sync

from fault_proxy import FaultProxy
from resultkit.errors import ConfigurationError, StorageError
from resultkit.results import BatchError, RetryPolicy, S3Result
from resultkit.serializers import Serializer

BUCKET = "rk-attack-async"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)


@pytest.fixture(scope="module")
def module_proxy(moto_server):
    with FaultProxy(moto_server.port) as proxy:
        yield proxy


@pytest.fixture
def proxy(module_proxy):
    module_proxy.heal()
    module_proxy.clear()
    yield module_proxy
    module_proxy.heal()


def through(proxy: FaultProxy, warm: Any = 0, **options: Any) -> Any:
    """A Result of class ``cls`` in a fresh folder whose every request crosses ``proxy``."""
    options.setdefault("retries", FAST)
    r = S3Result(
        BUCKET,
        prefix=uuid.uuid4().hex,
        endpoint_url=proxy.url,
        storage_options={"config_kwargs": {"retries": {"total_max_attempts": 1}}},
        **options,
    )
    r.fs.retries = 1  # s3fs's own retry loop: only resultkit retries
    if not r.fs.exists(BUCKET):
        r.fs.mkdir(BUCKET)
    r.write(warm, "warm.pkl")  # the client and its connections
    proxy.clear()
    return r


def names(r: S3Result) -> list[str]:
    return sorted(p[len(r.storage.root) + 1 :] for p in r.fs.find(r.storage.root))


def loop_tasks(r: S3Result) -> list[Any]:
    """write_many's coroutines still alive on the client's event loop."""

    async def alive() -> list[Any]:
        return [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "").startswith("LoopWrites.")
        ]

    return list(sync(r.fs.loop, alive))


def batch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resultkit-write_many")]


class Chunks(Serializer):
    """Writes an iterable of byte chunks as it goes: a value that serializes once only."""

    name = "chunks"

    def dump(self, value: Any, stream: Any) -> None:
        for chunk in value:
            stream.write(chunk)

    def serialize(self, value: Any) -> bytes:
        return b"".join(value)

    def deserialize(self, data: Any) -> bytes:
        return bytes(data)


def test_a_value_serialized_once_is_stored_whole_when_it_outgrows_one_request(proxy):
    # Before: the held write stopped at the limit and the item was written again
    # on a thread from the generator's remains: 120 of 200 KB, a valid record.
    r = through(proxy, warm=[b"w"], serializer=Chunks())
    r.storage.single_request_limit = 64 * 2**10
    chunks = [bytes([65 + i]) * 20_000 for i in range(10)]
    items = {
        "g/small.bin": iter([b"s"]),
        "g/big.bin": (c for c in chunks),
        "g/after.bin": iter([b"a"]),
        "g/big2.bin": (c for c in chunks[::-1]),
    }
    written = r.write_many(items, concurrency=4)
    assert [w.record.size for w in written] == [1, 200_000, 1, 200_000]
    assert r.read("g/big.bin").value == b"".join(chunks)
    assert r.read("g/big2.bin").value == b"".join(chunks[::-1])
    assert r.stat("g/big.bin") == written[1].record
    assert [n for n in names(r) if "rktmp" in n] == []


def test_every_object_a_store_of_its_own_writes_is_stored_through_the_storages_request(proxy):
    # Before: a _store writing a sidecar had one of its two objects held and
    # then overwritten by the other's hold (silently lost); a storage whose
    # _put_object adds to the request was bypassed by the coroutine.
    class WithNote(S3Result):
        def _store(self, location: str, key: str, value: Any) -> Any:
            note = self.storage.open_writer(key + ".note")
            note.write(b"note")
            note.commit({})
            return super()._store(location, key, value)

    base = through(proxy)
    folder = base.storage.root.split("/", 1)[1]
    r = WithNote(BUCKET, prefix=folder, endpoint_url=proxy.url, retries=FAST)
    r.write_many({"s/a.pkl": 1, "s/b.pkl": 2}, concurrency=2)
    assert names(r) == ["s/a.pkl", "s/a.pkl.note", "s/b.pkl", "s/b.pkl.note", "warm.pkl"]
    assert [x.value for x in r.read_many(["s/a.pkl", "s/b.pkl"])] == [1, 2]

    class Audited(S3Result):  # wraps every request it makes, e.g. to audit it
        def _call(self, location: str, action: str, fn: Any, *args: Any) -> Any:
            outcome = super()._call(location, action, fn, *args)
            if action == "write":
                stored_after.append(self.exists(location))
            return outcome

    stored_after: list[bool] = []
    audited = Audited(BUCKET, prefix=folder, endpoint_url=proxy.url, retries=FAST)
    audited.write_many({"a/a.pkl": 1, "a/b.pkl": 2}, concurrency=2)
    assert stored_after == [True, True], "each item's request is inside its _call"

    sent: list[str] = []
    storage = base.storage
    parent = type(storage)

    class Counted(parent):  # type: ignore[misc, valid-type]
        def _put_object(self, path: str, data: bytes, metadata: Any, create: bool = False) -> Any:
            sent.append(path.rsplit("/", 1)[1])
            return super()._put_object(path, data, metadata, create)

    storage.__class__ = Counted
    base.write_many({"c/a.pkl": 1, "c/b.pkl": 2, "c/c.pkl": 3}, concurrency=3)
    assert sorted(sent) == ["a.pkl", "b.pkl", "c.pkl"]


def test_an_interrupt_while_preparing_an_item_leaves_whole_objects_and_a_working_loop(proxy):
    r = through(proxy)
    proxy.latency_ms = 30  # earlier items are in flight when the interrupt comes

    class Interrupts:
        def __reduce__(self) -> Any:
            raise KeyboardInterrupt

    items: dict[str, Any] = {f"k/{i}.pkl": {"i": i} for i in range(6)}
    items["k/ctrl-c.pkl"] = Interrupts()
    items.update({f"k/late-{i}.pkl": i for i in range(3)})
    with pytest.raises(KeyboardInterrupt):
        r.write_many(items, concurrency=8)
    assert loop_tasks(r) == [], "a request of the batch outlived the call"
    assert batch_threads() == []
    proxy.latency_ms = 0
    # those in flight were cancelled: each is whole or absent; the rest never began
    stored = [n for n in names(r) if n != "warm.pkl"]
    assert set(stored) <= {f"k/{i}.pkl" for i in range(6)}
    assert [x.value for x in r.read_many(stored)] == [items[n] for n in stored]
    # the client's loop is healthy: the next batch works
    again = r.write_many({"k/late-0.pkl": 0, "k/late-1.pkl": 1}, concurrency=2)
    assert [w.value for w in again] == [0, 1]


def test_threads_copies_pickles_and_a_running_event_loop_each_get_every_item(proxy):
    r = through(proxy, signing_key=b"k" * 32)
    single = r.write({"x": 1}, "one.pkl")
    errors: list[BaseException] = []
    results: dict[str, list[Any]] = {}
    begin = threading.Event()

    def batch(result: S3Result, name: str) -> None:
        try:
            begin.wait(10)
            items = {f"t/{name}/{i}.pkl": {"x": 1} for i in range(12)}
            results[name] = result.write_many(items, concurrency=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=batch, args=(r, "same-a")),
        threading.Thread(target=batch, args=(r, "same-b")),
        threading.Thread(target=batch, args=(r.copy(), "copy")),
        threading.Thread(target=batch, args=(pickle.loads(pickle.dumps(r)), "pickled")),
    ]
    for t in threads:
        t.start()
    begin.set()
    for t in threads:
        t.join()
    assert errors == []

    async def caller() -> list[Any]:  # write_many called synchronously inside the user's loop
        return r.write_many({"t/async/0.pkl": {"x": 1}, "t/async/1.pkl": {"x": 1}})

    results["async"] = asyncio.run(caller())
    signed = ("serializer", "digest", "size", "key_id")
    for name, written in results.items():
        assert len(written) == (2 if name == "async" else 12), name
        for w in written:  # signed as a write signs, and read back verified
            assert [getattr(w.record, a) for a in signed] == [
                getattr(single.record, a) for a in signed
            ]
            assert w.record.signature and r.stat(w.location) == w.record
    assert r.read("t/pickled/11.pkl").value == {"x": 1}
    assert len(names(r)) == 1 + 1 + 4 * 12 + 2


def test_a_batch_called_on_the_clients_own_loop_is_refused_not_hung(proxy):
    # Before: write_many from a coroutine on s3fs's loop waited on that very loop:
    # the call and every request of the process's client hung for good (a
    # single write there fails at once: fsspec's sync refuses it).
    r = through(proxy)
    outcomes: dict[str, str] = {}

    async def on_the_clients_loop() -> None:
        for action, call in (
            ("write_many", lambda: r.write_many({"o/a.pkl": 1, "o/b.pkl": 2})),
            ("read_many", lambda: r.read_many(["warm.pkl", "warm.pkl"])),
        ):
            try:
                call()
                outcomes[action] = "returned"
            except ConfigurationError as exc:
                outcomes[action] = str(exc)

    asyncio.run_coroutine_threadsafe(on_the_clients_loop(), r.fs.loop).result(timeout=20)
    assert list(outcomes) == ["write_many", "read_many"]
    for action, message in outcomes.items():
        assert message.startswith(f"{action} was called from a coroutine running on the storage")
        assert "asyncio.to_thread" in message
    assert not r.exists("o/a.pkl") and proxy.count("PUT") == 0
    assert [w.value for w in r.write_many({"o/a.pkl": 1, "o/b.pkl": 2})] == [1, 2]


def test_one_attempt_a_server_gone_mid_batch_fails_the_rest_with_their_locations(proxy):
    r = through(proxy, retries=RetryPolicy(attempts=1))
    proxy.fail(1, status=503, method="PUT", path="/0.pkl")
    proxy.reset(None, method="PUT", path="/gone-")  # as if the server died for these
    items = {f"d/{i}.pkl": i for i in range(3)}
    items.update({f"d/gone-{i}.pkl": i for i in range(3)})
    with pytest.raises(BatchError) as caught:
        r.write_many(items, concurrency=6)
    failed = [loc.rsplit("/", 1)[1] for loc, _ in caught.value.failures]
    assert failed == ["0.pkl", "gone-0.pkl", "gone-1.pkl", "gone-2.pkl"]
    for location, exc in caught.value.failures:
        assert isinstance(exc, StorageError) and location in str(exc)
    puts = [path.rsplit("/", 1)[1] for method, path in proxy.calls() if method == "PUT"]
    assert puts.count("0.pkl") == 1, "attempts=1: a 503 is not tried again"
    proxy.clear()
    with pytest.raises(StorageError):  # what one write sends to a dead server (the
        r.write(0, "d/gone-single.pkl")  # client reconnects once by itself)
    per_write = proxy.count("PUT")
    assert [puts.count(f"gone-{i}.pkl") for i in range(3)] == [per_write] * 3
    proxy.heal()
    assert names(r) == ["d/1.pkl", "d/2.pkl", "warm.pkl"]


@pytest.mark.parametrize("lane", ["loop", "threads"])
def test_a_storm_of_failures_holds_no_failed_items_payload(proxy, lane):
    # Before: each failed item's exception kept its payload alive through its
    # traceback's frames (the held bytes, the request body): 64 failures of
    # 256 KiB held 33 MiB on the loop, 16 MiB on threads, not `concurrency` payloads.
    r = through(proxy, retries=RetryPolicy(attempts=1))
    if lane == "threads":  # the thread an item of backends without the loop lane
        r.storage._request_loop = lambda: None
    proxy.fail(None, status=403, method="PUT")
    payload = 256 * 2**10
    items = {f"m/{i}.bin": bytes([i]) * payload for i in range(24)}  # the caller's values
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(BatchError) as caught:
            r.write_many(items, concurrency=4)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(caught.value.failures) == 24
    assert retained < 4 * payload, f"{retained / 2**20:.1f} MiB held after the batch"
    assert traceback.format_tb(caught.value.failures[0][1].__traceback__), "kept for the report"


def _write_many_in_child(r: S3Result, answers: Any) -> None:
    try:
        r.write_many({"f/a.pkl": 1, "f/b.pkl": 2}, concurrency=2)
        r.write(3, "f/c.pkl")
        answers.put([x.value for x in r.read_many(["f/a.pkl", "f/b.pkl", "f/c.pkl"])])
    except BatchError as exc:
        answers.put(sorted(type(e).__name__ for _, e in exc.failures))
    except BaseException as exc:
        answers.put(repr(exc))


def test_a_forked_child_builds_its_own_client_and_writes(proxy):
    # The parent's client (sockets, its event loop's thread) is not the child's: a
    # Result used before the fork builds a new client in the child, whose write,
    # write_many and read_many then work (never waiting on the parent's loop).
    r = through(proxy)
    r.write(0, "f/before-fork.pkl")  # the client is built and used in the parent
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_write_many_in_child, args=(r, answers))
    child.start()
    child.join(30)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "write_many in the forked child hung"
    assert answers.get(timeout=5) == [1, 2, 3]
    assert child.exitcode == 0
    assert [x.value for x in r.read_many(["f/a.pkl", "f/c.pkl"])] == [1, 3]  # parent's still works


def test_a_forked_child_leaves_the_parents_connections_working(proxy):
    """The child never closes the client it inherited: closing it would unregister the
    parent's sockets from the epoll both share, and the parent's next requests on them
    would hang until botocore's read timeout (15 s)."""
    r = through(proxy)
    r.write_many({f"f/{i}.pkl": i for i in range(8)})  # a pool of connections in use
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_write_many_in_child, args=(r, context.Queue()))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    answers: list[Any] = []
    done = threading.Event()

    def read() -> None:
        try:
            answers.append([x.value for x in r.read_many([f"f/{i}.pkl" for i in range(8)])])
            answers.append(r.read("f/c.pkl").value)  # written by the child
        except BaseException as exc:  # collected: asserted below
            answers.append(exc)
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "the parent's requests hung after the fork"
    assert answers == [list(range(8)), 3]

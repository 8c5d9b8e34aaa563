"""exists_many's HEADs as coroutines on the client's event loop (results/_objectheads.py).

Each answer must be the one ``exists`` gives, with the requests ``exists``
sends (one HEAD a key; GCS one metadata GET), a missing bucket an error
(never all-False), a failed HEAD the error ``exists`` would raise, at most
``batch_concurrency`` HEADs in flight, and no HEAD left running once the
call has returned. On the real moto, fake-gcs, Azurite and SeaweedFS
servers, behind the tests' counting / fault-injecting proxy.

How a test sees which way the HEADs went (and fails the other way): while
every HEAD of the call is held in the proxy, the thread path has a
``resultkit-map`` thread per key alive, waiting for its answer; the loop
path has none.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fsspec.asyn import sync

import emulators
from conftest import SEAWEED_KEY, SEAWEED_SECRET
from counting_proxy import CountingProxy
from interrupts import interrupted_when, wait_for
from resultkit.errors import ConfigurationError, StorageAccessError, StorageError
from resultkit.results import AzureResult, GCSResult, RetryPolicy, S3Result
from resultkit.results.s3 import S3Storage

BUCKET = "rk-exists-many"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)
PRESENT = ["m/0.pkl", "m/2.pkl", "n/4.pkl"]
ASKED = ["m/0.pkl", "m/1.pkl", "m/2.pkl", "n/3.pkl", "n/4.pkl", "o/5.pkl"]
EXPECTED = [True, False, True, False, True, False]


def build(kind: str, port: int, bucket: str = BUCKET, make: bool = True, **kwargs: Any) -> Any:
    """A Result of ``kind`` whose every request goes to ``port`` (a proxy or the server)."""
    url = f"http://127.0.0.1:{port}"
    prefix = uuid.uuid4().hex
    r: Any
    if kind in ("s3", "obstore"):
        options: dict[str, Any] = {"config_kwargs": {"retries": {"total_max_attempts": 1}}}
        if kind == "obstore":
            options = {"key": "testing", "secret": "testing"}
        engine = "obstore" if kind == "obstore" else "s3fs"
        r = S3Result(
            bucket,
            prefix=prefix,
            endpoint_url=url,
            storage_options=options,
            engine=engine,
            **kwargs,
        )
        if kind == "s3":
            r.fs.retries = 1  # s3fs's own retry loop: only resultkit's RetryPolicy retries
    elif kind == "gcs":
        r = GCSResult(bucket, prefix=prefix, endpoint_url=url, token="anon", project="t", **kwargs)
    else:
        r = AzureResult(
            bucket,
            prefix=prefix,
            connection_string=emulators.azurite_connection_string(port),
            **kwargs,
        )
    if make and not r.fs.exists(bucket):
        r.fs.mkdir(bucket)
    return r


@pytest.fixture(scope="module", params=["s3", "gcs", "azure"])
def backend(request: Any) -> Any:
    """(kind, a proxy to its server); S3's is the module's proxy to moto (one client)."""
    if request.param == "s3":
        yield "s3", request.getfixturevalue("_s3_proxy")
        return
    server = request.getfixturevalue(
        {"gcs": "gcs_server", "azure": "azurite_server"}[request.param]
    )
    with CountingProxy(server.port) as proxy:
        yield request.param, proxy


@pytest.fixture(scope="module")
def _held_proxy(moto_server: Any) -> Any:
    with CountingProxy(moto_server.port) as proxy:
        yield proxy


@pytest.fixture
def held_proxy(_held_proxy: CountingProxy) -> Any:
    """A proxy to moto for tests that hold HEADs in it (held ones may end after the test)."""
    _held_proxy.heal()
    yield _held_proxy
    _held_proxy.heal()


def written(kind: str, proxy: CountingProxy, **kwargs: Any) -> Any:
    """A Result holding PRESENT, its client warm and its bucket seen; the proxy cleared."""
    r = build(kind, proxy.port, retries=FAST, **kwargs)
    r.write_many({k: k for k in PRESENT})
    proxy.heal()
    proxy.clear()
    return r


def map_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("resultkit-map")]


def threads_while_held(
    proxy: CountingProxy, held: int, call: Callable[[], Any]
) -> tuple[Any, list[str]]:
    """``call()``'s answer, and the resultkit-map threads alive once ``held`` requests are in the
    proxy (each waits there for the proxy's latency)."""
    seen: list[list[str]] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            deadline = time.monotonic() + 20
            while proxy.count() < held:
                assert time.monotonic() < deadline, f"timed out waiting for {held} requests"
                time.sleep(0.001)
            seen.append(map_threads())
        except BaseException as exc:
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answer = call()
    finally:
        watcher.join()
    assert errors == []
    return answer, seen[0]


def test_a_mix_of_present_and_missing_keys_one_head_each_on_the_loop(backend):
    kind, proxy = backend
    r = written(kind, proxy)
    assert r.exists(PRESENT[0]) is True
    single = proxy.methods()
    # S3 and Azure: one HEAD; GCS has no HEAD: one GET of the metadata, no payload
    assert single == (["GET"] if kind == "gcs" else ["HEAD"])
    proxy.clear()
    proxy.latency_ms = 150  # every HEAD of the call is held in the proxy at once
    found, threads = threads_while_held(proxy, len(ASKED), lambda: r.exists_many(ASKED))
    assert found == EXPECTED
    assert proxy.methods() == single * len(ASKED), "the requests of exists(), no more"
    assert "alt=media" not in str(proxy.calls())
    assert proxy.max_in_flight == len(ASKED), "the HEADs went at once"
    assert threads == [], f"a thread per key ({threads}): the HEADs did not go on the loop"
    proxy.latency_ms = 0
    assert [r.exists(k) for k in ASKED] == found, "exists_many answers as exists does"
    assert r.exists_many(ASKED[::-1]) == EXPECTED[::-1]


def test_a_missing_bucket_raises_instead_of_answering_all_false(backend):
    kind, proxy = backend
    name = f"missing-{uuid.uuid4().hex[:12]}"
    r = build(kind, proxy.port, bucket=name, make=False)
    assert r.storage._head_loop() is not None
    with pytest.raises(StorageError, match=rf"{name}' does not exist"):
        r.exists_many(ASKED)


def test_a_denied_head_raises_the_mapped_error(seaweed_server):
    # SeaweedFS checks SigV4 signatures: a wrong secret is refused (403) before the bucket
    bad = S3Result(
        "rk-exists-denied",
        prefix=uuid.uuid4().hex,
        endpoint_url=seaweed_server.url,
        storage_options={
            "key": SEAWEED_KEY,
            "secret": "not-the-secret",
            "skip_instance_cache": True,
        },
    )
    assert bad.storage._head_loop() is not None
    with pytest.raises(StorageAccessError) as info:
        bad.exists_many(ASKED)
    message = str(info.value)
    # Every HEAD is denied: the error names the key whose denial came first.
    assert "denied" in message and any(key in message for key in ASKED), message
    assert "not-the-secret" not in message and SEAWEED_SECRET not in message


def alive_heads(r: Any) -> list[str]:
    async def names() -> list[str]:
        return [getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()]

    return [n for n in sync(r.fs.loop, names) if n.startswith("ObjectHeads.")]


def test_a_failed_head_fails_the_call_and_a_transient_one_is_retried(held_proxy):
    proxy = held_proxy
    r = written("s3", proxy)
    proxy.fail(2, status=503, method="HEAD", path="/m/2.pkl")  # twice, then it answers
    assert r.exists_many(ASKED) == EXPECTED
    assert proxy.count("HEAD", outcome="status:503") == 2
    proxy.clear()
    proxy.fail(1, status=403, method="HEAD", path="/n/3.pkl")
    proxy.delay(None, ms=5000, method="HEAD")  # every other HEAD: held
    started = time.monotonic()
    with pytest.raises(StorageAccessError):
        r.exists_many(ASKED)
    took = time.monotonic() - started
    assert proxy.count("HEAD", outcome="status:403") == 1, "a denied HEAD is not retried"
    assert took < 4, f"the failed call waited for the other HEADs ({took:.1f} s)"
    assert alive_heads(r) == [], "a HEAD of the failed call outlived it"


def test_at_most_batch_concurrency_heads_are_in_flight(s3_proxy):
    r = written("s3", s3_proxy)
    r.storage.batch_concurrency = 2
    # The last PUT's handler may not have ended yet (its answer sent): counted from zero.
    wait_for(lambda: s3_proxy._in_flight == 0, "the proxy's handlers to end")
    s3_proxy.clear()
    s3_proxy.latency_ms = 40
    assert r.exists_many(ASKED) == EXPECTED
    assert s3_proxy.count("HEAD") == len(ASKED)
    assert s3_proxy.max_in_flight == 2, f"{s3_proxy.max_in_flight} HEADs in flight, bound 2"


def test_an_interrupt_cancels_every_head_before_the_call_returns(held_proxy):
    proxy = held_proxy
    r = written("s3", proxy)
    proxy.delay(None, ms=5000, method="HEAD")
    held = lambda: proxy.count("HEAD") >= len(ASKED)  # noqa: E731
    with interrupted_when(held, "the HEADs", real_signal=True) as took:
        r.exists_many(ASKED)
    assert took.seconds < 4, f"the interrupt waited for the held HEADs ({took.seconds:.1f} s)"
    assert alive_heads(r) == [], "a HEAD of the call outlived it"


class OwnHead(S3Storage):
    """A third party's storage with its own HEAD (extra headers, counting...)."""

    calls: list[str] = []

    def _head_object(self, path: str) -> Any:
        OwnHead.calls.append(threading.current_thread().name)
        return super()._head_object(path)


class OwnHeadResult(S3Result):
    storage_class = OwnHead


@pytest.mark.parametrize("kind", ["own _head_object", "obstore"])
def test_a_storage_without_the_coroutine_keeps_a_thread_per_key(kind, s3_proxy):
    if kind == "obstore":
        r = written("obstore", s3_proxy)
    else:
        r = OwnHeadResult(BUCKET, prefix=uuid.uuid4().hex, endpoint_url=s3_proxy.url)
        if not r.fs.exists(BUCKET):  # this test may be its worker's first
            r.fs.mkdir(BUCKET)
        r.write_many({k: k for k in PRESENT})
        s3_proxy.clear()
        OwnHead.calls.clear()
    assert r.storage._head_loop() is None
    s3_proxy.latency_ms = 100
    found, threads = threads_while_held(s3_proxy, len(ASKED), lambda: r.exists_many(ASKED))
    assert found == EXPECTED
    assert len(threads) == len(ASKED), threads
    assert s3_proxy.methods() == ["HEAD"] * len(ASKED)
    if kind != "obstore":
        assert len(OwnHead.calls) == len(ASKED), "its own HEAD ran for every key"


def test_from_a_coroutine_on_the_clients_own_loop_it_is_refused_not_a_hang(s3_proxy):
    r = written("s3", s3_proxy)

    async def on_the_loop() -> Any:
        return r.exists_many(ASKED)

    with pytest.raises(ConfigurationError, match="exists_many.*own event loop"):
        sync(r.fs.loop, on_the_loop)
    assert s3_proxy.count() == 0


@pytest.mark.parametrize("kind", ["s3", "obstore"])
def test_the_error_names_the_key_whose_head_failed(kind, held_proxy):
    """Not the first key's location: the one whose HEAD was refused (the loop's coroutines
    with s3fs, a thread per key with obstore)."""
    r = written(kind, held_proxy)
    held_proxy.fail(1, status=403, method="HEAD", path="/n/3.pkl")
    with pytest.raises(StorageAccessError) as info:
        r.exists_many(ASKED)
    message = str(info.value)
    assert "n/3.pkl" in message and "m/0.pkl" not in message, message
    assert info.value.location is not None and info.value.location.endswith("/n/3.pkl")


def test_a_failed_listing_names_a_key_of_its_folder(held_proxy):
    """16 keys or more list their folders: a refused listing names the first key asked of
    that folder."""
    r = written("s3", held_proxy)
    many = [f"m/{i}.pkl" for i in range(10)] + [f"n/{i}.pkl" for i in range(10)]
    assert r.exists_many(many) == [k in PRESENT for k in many]
    listings = [path for method, path in held_proxy.calls() if method == "GET"]
    of_n = [path for path in listings if "%2Fn%2F" in path or "/n/" in path]
    assert len(listings) == 2 and len(of_n) == 1, listings  # one listing a folder
    held_proxy.fail(1, status=403, method="GET", path=of_n[0])
    with pytest.raises(StorageAccessError) as info:
        r.exists_many(many)
    assert "n/0.pkl" in str(info.value) and "m/0.pkl" not in str(info.value), str(info.value)

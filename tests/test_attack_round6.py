"""Round 6 attacks: exists_many's HEADs on the client's loop, put_if_absent's nonce.

Each test states the behaviour it expects. Failing when written (bugs of the
round's changes, reported to the lead): test_interrupt_main_during_exists_many_is_
honoured_promptly, test_run_id_claim_whose_refusal_is_lost_still_refuses[obstore],
test_a_marker_on_an_object_store_reads_as_one_without_a_record. The others pass
and cover what the round's own tests did not (GCS / Azure lost answers and
Ctrl-C, hostile names and 15 vs 16 keys on every backend, forked children).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import emulators
from fault_proxy import FaultProxy
from interrupts import interrupted_when
from resultkit.results import AzureResult, GCSResult, S3Result


def build(kind: str, port: int) -> Any:
    url = f"http://127.0.0.1:{port}"
    bucket = "rk-attack6"
    r: Any
    if kind == "s3":
        r = S3Result(
            bucket,
            prefix=uuid.uuid4().hex,
            endpoint_url=url,
            storage_options={"key": "testing", "secret": "testing"},
        )
    elif kind == "gcs":
        r = GCSResult(bucket, prefix=uuid.uuid4().hex, endpoint_url=url, token="anon", project="t")
    else:
        r = AzureResult(
            bucket,
            prefix=uuid.uuid4().hex,
            connection_string=emulators.azurite_connection_string(port),
        )
    if not r.fs.exists(bucket):
        r.fs.mkdir(bucket)
    return r


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_create_whose_answer_is_lost_still_wins(kind: str, request: Any) -> None:
    """As on S3 with s3fs: a create that made the object, whose answer was lost, is a win
    (or a clear error), never False with the caller's marker left as a lock nobody holds."""
    server = request.getfixturevalue({"gcs": "gcs_server", "azure": "azurite_server"}[kind])
    with FaultProxy(server.port) as proxy:
        r = build(kind, proxy.port)
        proxy.clear()
        proxy.reset(1, after_upstream=True, method="PUT" if kind == "azure" else "POST")
        try:
            won = r.put_if_absent(b"mine", location="locks/lost")
        except Exception as exc:  # a clear error is an honest answer too
            won = exc
        stored = r.fs.cat(r.storage.path("locks/lost"))
        methods = [(x.method, x.outcome) for x in proxy.log]
        assert "reset-after-upstream" in [o for _, o in methods], methods
        assert won is True or isinstance(won, Exception), (
            f"{kind}: the caller's own create made the object ({stored!r}) but "
            f"put_if_absent answered {won!r}; requests {methods}"
        )


HOSTILE = [
    "a b.pkl",
    "ü/ñ.pkl",
    "q?x.pkl",
    "h#x.pkl",
    "p%20.pkl",
    "p%.pkl",
    "x" * 700 + ".pkl",
    "dots/..pkl",
    "plus+x.pkl",
    "amp&x=1.pkl",
    "semi;x.pkl",
    "brack[1].pkl",
    "sp ace/ x.pkl",
    "日本/語.pkl",
    "e\u0301/e.pkl",
    "%2F.pkl",
    "~tilde.pkl",
    "star*x.pkl",
]


@pytest.fixture(params=["s3", "gcs", "azure"])
def server_of(request: Any) -> tuple[str, Any]:
    name = {"s3": "moto_server", "gcs": "gcs_server", "azure": "azurite_server"}[request.param]
    return request.param, request.getfixturevalue(name)


def test_hostile_names_15_heads_and_16_listing_answer_as_exists(server_of: Any) -> None:
    kind, server = server_of
    r = build(kind, server.port)
    for name in HOSTILE[::2]:
        r.write(1, location=name)
    one = [r.exists(location=name) for name in HOSTILE]
    assert one == [i % 2 == 0 for i in range(len(HOSTILE))]
    assert r.exists_many(HOSTILE[:15]) == one[:15], "15 keys (HEADs on the loop)"
    assert r.exists_many(HOSTILE[:16]) == one[:16], "16 keys (a listing)"
    assert r.exists_many(HOSTILE) == one


def test_missing_bucket_is_an_error_with_16_keys_too(server_of: Any) -> None:
    kind, server = server_of
    name = f"missing-{uuid.uuid4().hex[:12]}"
    keys = [f"k/{i}.pkl" for i in range(16)]
    if kind == "s3":
        missing = S3Result(
            name, endpoint_url=server.url, storage_options={"key": "testing", "secret": "testing"}
        )
    elif kind == "gcs":
        missing = GCSResult(name, endpoint_url=server.url, token="anon", project="t")
    else:
        missing = AzureResult(
            name, connection_string=emulators.azurite_connection_string(server.port)
        )
    outcomes = []
    for n in (15, 16):
        try:
            outcomes.append(missing.exists_many(keys[:n]))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1] and isinstance(outcomes[0], str), outcomes


def test_wrong_credentials_same_error_for_15_and_16_keys(seaweed_server: Any) -> None:
    from conftest import SEAWEED_KEY

    bad = S3Result(
        "rk-attack6-denied",
        endpoint_url=seaweed_server.url,
        storage_options={"key": SEAWEED_KEY, "secret": "wrong", "skip_instance_cache": True},
    )
    keys = [f"k/{i}.pkl" for i in range(16)]
    outcomes = []
    for n in (15, 16):
        try:
            outcomes.append(bad.exists_many(keys[:n]))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == ["StorageAccessError", "StorageAccessError"], outcomes


def test_exists_many_in_a_forked_child(server_of: Any) -> None:
    import os

    kind, server = server_of
    r = build(kind, server.port)
    keys = [f"k/{i}.pkl" for i in range(6)]
    r.write(1, location=keys[0])
    assert r.exists_many(keys) == [True] + [False] * 5  # the client's loop is running
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into pytest
        try:
            os.close(read_end)
            import signal

            signal.alarm(30)  # a hang in the child ends it, not the test run
            answer = repr(r.exists_many(keys))
        except BaseException as exc:
            answer = f"{type(exc).__name__}: {exc}"[:300]
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    answer = b"".join(chunks).decode()
    assert status == 0 and answer == repr([True] + [False] * 5), (kind, status, answer)


def test_interrupt_main_during_exists_many_is_honoured_promptly(moto_server: Any) -> None:
    """``_thread.interrupt_main()`` (an IDE's or a kernel's stop button, a watchdog thread)
    must stop exists_many as it stops ``exists`` (fsspec's sync wakes every second),
    not wait until every held HEAD has its answer (against a hung server: minutes)."""
    with FaultProxy(moto_server.port) as proxy:
        r = build("s3", proxy.port)
        keys = [f"k/{i}.pkl" for i in range(8)]
        proxy.clear()
        proxy.delay(None, ms=8_000, method="HEAD")
        with interrupted_when(lambda: proxy.count("HEAD") >= len(keys), "the HEADs") as took:
            r.exists_many(keys)
        proxy.heal()
        assert took.seconds < 4, (
            f"interrupt_main waited {took.seconds:.1f} s for the held HEADs (8 s)"
        )


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_run_id_claim_whose_refusal_is_lost_still_refuses(moto_server: Any, engine: str) -> None:
    """A run id already claimed by another run: a second run's claim through obstore
    whose refusal (412) is lost on the way must not start the run. With the nonce in
    every create, a HEAD tells "refused" from "made by me"; obstore says "unknown"
    instead, and the claim treats any error as "store unreachable": the run goes on."""
    from resultkit.engine.preflight import refuse_recorded
    from resultkit.errors import FlowError

    prefix = uuid.uuid4().hex
    options = {"key": "testing", "secret": "testing"}
    first = S3Result(
        "rk-attack6", prefix=prefix, endpoint_url=moto_server.url, storage_options=options
    )
    if not first.fs.exists("rk-attack6"):
        first.fs.mkdir("rk-attack6")
    refuse_recorded(first, "nightly")  # the first run claims the id
    with FaultProxy(moto_server.port) as proxy:
        second = S3Result(
            "rk-attack6",
            prefix=prefix,
            endpoint_url=proxy.url,
            storage_options=options,
            engine=engine,
        )
        proxy.clear()
        proxy.reset(1, after_upstream=True, method="PUT")  # refused by the server, answer lost
        with pytest.raises(FlowError, match="already recorded"):
            refuse_recorded(second, "nightly")
        assert [x.outcome for x in proxy.log if x.method == "PUT"][0] == "reset-after-upstream"


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_ctrl_c_during_exists_many_on_gcs_and_azure(kind: str, request: Any) -> None:
    import asyncio

    from fsspec.asyn import sync

    server = request.getfixturevalue({"gcs": "gcs_server", "azure": "azurite_server"}[kind])
    keys = [f"k/{i}.pkl" for i in range(6)]
    with FaultProxy(server.port) as proxy:
        r = build(kind, proxy.port)
        r.write(1, location=keys[0])
        proxy.clear()
        heads = "GET" if kind == "gcs" else "HEAD"
        proxy.delay(None, ms=6000, method=heads)
        held = lambda: proxy.count(heads) >= len(keys)  # noqa: E731
        with interrupted_when(held, "the HEADs", real_signal=True) as took:
            r.exists_many(keys)
        proxy.heal()

        async def heads_alive() -> list[str]:
            return [
                getattr(t.get_coro(), "__qualname__", "")
                for t in asyncio.all_tasks()
                if "ObjectHeads" in getattr(t.get_coro(), "__qualname__", "")
            ]

        assert took.seconds < 4, f"{kind}: Ctrl-C waited {took.seconds:.1f} s for the held HEADs"
        assert sync(r.fs.loop, heads_alive) == []
        assert r.exists_many(keys) == [True] + [False] * 5  # still usable


def test_folder_names_duplicates_and_recordless_objects_15_vs_16(server_of: Any) -> None:
    kind, server = server_of
    r = build(kind, server.port)
    r.write(1, location="m/0.pkl")
    r.write(1, location="dup.pkl")
    r.write(1, location="A.pkl")
    r.fs.pipe(r.storage.path("raw.pkl"), b"x")  # an object without a record
    asked = ["m", "dup.pkl", "dup.pkl", "a.pkl", "raw.pkl", "M/0.pkl"]
    fill = [f"f/{i}.pkl" for i in range(20)]
    one = [r.exists(location=k) for k in asked]
    assert r.exists_many((asked + fill)[:15])[: len(asked)] == one, "15 keys: HEADs"
    assert r.exists_many((asked + fill)[:16])[: len(asked)] == one, "16 keys: a listing"


def test_a_marker_on_an_object_store_reads_as_one_without_a_record(moto_server: Any) -> None:
    """README: put_if_absent's data "is a marker, not a value; it carries no integrity
    record". On Local, stat/read of a marker say "no integrity record" and adopt()
    adopts it; the create's nonce makes S3's marker a record "unreadable ... write it
    again" that adopt() refuses."""
    import pickle

    r = build("s3", moto_server.port)
    assert r.put_if_absent(pickle.dumps("owner"), location="m.lock") is True
    with pytest.raises(Exception, match="has no integrity record") as info:
        r.stat(location="m.lock")
    assert "unreadable" not in str(info.value)
    adopted = r.adopt(location="m.lock")
    assert r.read(location="m.lock").value == "owner" and adopted is not None

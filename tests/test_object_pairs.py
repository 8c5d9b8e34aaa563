"""A payload and its record are ONE object on S3, GCS and Azure: faults cannot split them.

Real emulators, real processes, no mocks. Every test prints its figures
(run with ``-s`` to see them). Synchronisation is by barriers and by the
lines a child process prints, never by sleeping; the only pause is the
jitter that picks *where* in a write a SIGKILL lands.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pytest

import emulators
from conftest import SEAWEED_KEY, SEAWEED_SECRET
from counting_proxy import CountingProxy
from resultkit.errors import ResultCorruptError, SerializationError
from resultkit.results import AzureResult, GCSResult, S3Result
from resultkit.results._objectstore import decode_metadata, encode_metadata
from resultkit.results._record import Record
from resultkit.serializers import PickleSerializer

WRITERS = 8
# CI counts; tests/stress runs the long versions (100 rounds, 50 kills with --stress-full).
ROUNDS = int(os.environ.get("RK_PAIR_ROUNDS", "8"))
KILLS = int(os.environ.get("RK_PAIR_KILLS", "12"))
SMALL_LIMIT = 64 * 2**10  # single_request_limit lowered so "large" stays fast


# == builders =====================================================================================
def _mkbucket(r: Any) -> Any:
    name = r.bucket if hasattr(r, "bucket") else r.container
    if not r.fs.exists(name):
        with contextlib.suppress(FileExistsError):
            r.fs.mkdir(name)
    return r


def _build(kind: str, servers: dict[str, Any], **options: Any) -> Any:
    prefix = uuid.uuid4().hex
    opts = {"skip_instance_cache": True, **options}
    if kind == "moto":
        r = S3Result(
            "rk-pairs", prefix=prefix, endpoint_url=servers[kind].url, storage_options=opts
        )
    elif kind == "seaweedfs":
        opts.update(key=SEAWEED_KEY, secret=SEAWEED_SECRET)
        r = S3Result(
            "rk-pairs", prefix=prefix, endpoint_url=servers[kind].url, storage_options=opts
        )
    elif kind == "gcs":
        r = GCSResult(
            "rk-pairs",
            prefix=prefix,
            endpoint_url=servers[kind].url,
            token="anon",
            project="test",
            storage_options=opts,
        )
    else:
        r = AzureResult(
            "rk-pairs",
            prefix=prefix,
            connection_string=emulators.azurite_connection_string(servers[kind].port),
            storage_options=opts,
        )
    return _mkbucket(r)


@pytest.fixture
def servers(request):
    """The emulators a test's ``kind`` needs, started lazily (session-scoped fixtures)."""
    names = {
        "moto": "moto_server",
        "seaweedfs": "seaweed_server",
        "gcs": "gcs_server",
        "azure": "azurite_server",
    }

    class Lazy(dict):
        def __missing__(self, kind: str) -> Any:
            self[kind] = request.getfixturevalue(names[kind])
            return self[kind]

    return Lazy()


def _objects(r: Any) -> list[str]:
    """Every object under the result's root, resultkit's own (temporary, sidecar) included."""
    root = r.storage.root.rstrip("/")
    r.fs.invalidate_cache()
    try:
        found = [str(p)[len(root) + 1 :] for p in r.fs.find(root)]
    except FileNotFoundError:
        return []
    return sorted(name for name in found if name and not name.endswith("/"))  # no folder marker


# == (a) 8 processes write one key at the same instant ===========================================
def _value(round_: int, writer: int, large: bool) -> tuple[int, int, bytes]:
    size = (SMALL_LIMIT * 3 if large else 1_000) + 37 * writer
    return (round_, writer, bytes([writer + 1]) * size)


class _Superseded(logging.Handler):
    """Counts the large Azure writes that a concurrent write superseded (logged at INFO)."""

    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "superseded" in record.getMessage():
            _Superseded.count += 1


def _writer_process(blob, writer, rounds, barrier, errors, large_writers):
    """One of the concurrent writers: every round, write one key right after the barrier."""
    result = pickle.loads(blob)
    log = logging.getLogger("resultkit")
    log.setLevel(logging.INFO)
    log.addHandler(_Superseded())
    for round_ in range(rounds):
        try:
            barrier.wait()  # all writers released together
            result.write(_value(round_, writer, writer in large_writers), location="hot.pkl")
        except BaseException as exc:  # collected and asserted on by the test
            errors.put(f"round {round_}, writer {writer}: {type(exc).__name__}: {exc}")
        try:
            barrier.wait()  # every write of the round has returned
            barrier.wait()  # the test has read the key: next round
        except BaseException as exc:
            errors.put(f"round {round_}, writer {writer}: barrier: {exc!r}")
            return
    errors.put(("superseded", _Superseded.count))


@dataclass
class _Race:
    writer_errors: list[str] = field(default_factory=list)
    bad_reads: list[str] = field(default_factory=list)  # after a round
    rounds: int = 0
    superseded: int = 0
    concurrent_reads: int = 0
    false_alarms: list[str] = field(default_factory=list)  # reads during the rounds


def _race_rounds(r: Any, rounds: int, large_writers: frozenset[int]) -> _Race:
    """``rounds`` rounds of WRITERS processes writing one key at once, while a thread of
    this process reads the key in a loop: every read must return one writer's whole value."""
    race = _Race()
    r.write(_value(-1, WRITERS, False), location="hot.pkl")  # no writer is large
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS + 1, timeout=300)
    errors = ctx.Queue()
    blob = cloudpickle.dumps(r)
    procs = [
        ctx.Process(target=_writer_process, args=(blob, i, rounds, barrier, errors, large_writers))
        for i in range(WRITERS)
    ]
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                got = r.read("hot.pkl").value
                if got != _value(got[0], got[1], got[1] in large_writers):
                    race.false_alarms.append(f"a mixed value: {str(got)[:60]}")
            except Exception as exc:
                race.false_alarms.append(f"{type(exc).__name__}: {exc}")
            race.concurrent_reads += 1

    for p in procs:
        p.start()
    reading = threading.Thread(target=reader)
    reading.start()
    try:
        for round_ in range(rounds):
            barrier.wait()  # release the writers
            barrier.wait()  # all have written
            expected = [_value(round_, i, i in large_writers) for i in range(WRITERS)]
            try:
                got = r.read("hot.pkl").value
                if got not in expected:
                    race.bad_reads.append(f"round {round_}: a value of no writer: {str(got)[:60]}")
            except Exception as exc:
                race.bad_reads.append(f"round {round_}: {type(exc).__name__}: {exc}")
            race.rounds += 1
            barrier.wait()
    finally:
        stop.set()
        reading.join()
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.kill()
    while True:
        try:
            message = errors.get(timeout=1)
        except queue.Empty:
            break
        if isinstance(message, tuple):
            race.superseded += message[1]
        else:
            race.writer_errors.append(message)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return race


def _report(kind: str, what: str, race: _Race) -> None:
    print(
        f"\n[pairs] {kind}: {race.rounds} rounds x {WRITERS} processes {what}: "
        f"{len(race.bad_reads)} failed or foreign reads after a round, "
        f"{race.concurrent_reads} reads during the rounds with {len(race.false_alarms)} "
        f"false alarms, {len(race.writer_errors)} writer errors"
        + (
            f", {race.superseded} large writes superseded by a concurrent one"
            if race.superseded
            else ""
        )
    )
    assert not race.writer_errors, race.writer_errors[:5]
    assert not race.bad_reads, race.bad_reads[:5]
    assert not race.false_alarms, race.false_alarms[:5]


@pytest.mark.parametrize("kind", ["moto", "seaweedfs", "gcs", "azure"])
def test_eight_processes_write_one_key_at_once(kind, servers):
    r = _build(kind, servers)
    race = _race_rounds(r, ROUNDS, frozenset())
    _report(kind, "writing one key at once", race)
    assert race.rounds >= ROUNDS
    assert [o for o in _objects(r) if o != "hot.pkl"] == []  # no sidecar, no temp object


@pytest.mark.parametrize("kind", ["moto", "seaweedfs", "gcs", "azure"])
def test_eight_processes_mixed_large_and_small(kind, servers):
    """Half the writers stream large values (S3, GCS: a temporary object and a server-side
    copy; Azure: staged blocks, whose commit may find them superseded by another write)."""
    r = _build(kind, servers)
    r.storage.single_request_limit = SMALL_LIMIT
    if kind == "azure":
        r.storage.block_size = SMALL_LIMIT
    race = _race_rounds(r, ROUNDS, frozenset({0, 2, 4, 6}))
    _report(kind, "(4 large, 4 small)", race)
    assert [o for o in _objects(r) if o != "hot.pkl"] == []


# == (b) SIGKILL a writer that overwrites one S3 key in a loop ===================================
_CHILD = """
import pickle, sys

SIZES = {sizes!r}
result = pickle.loads(sys.stdin.buffer.read())
i = int(sys.argv[1])
print("ready", flush=True)
while True:
    print(f"start {{i}}", flush=True)
    result.write({{"i": i, "data": bytes([i % 251]) * SIZES[i % len(SIZES)]}}, location="victim.pkl")
    print(f"done {{i}}", flush=True)
    i += 1
"""

# small (one PUT), large (temporary object in one PUT, then a copy), larger (multipart).
_SIZES = [2_000, 300_000, 6 * 2**20 + 12_345]


def _kill_value(i: int) -> dict[str, Any]:
    return {"i": i, "data": bytes([i % 251]) * _SIZES[i % len(_SIZES)]}


def test_sigkill_overwriting_writer_never_breaks_reads(moto_server):
    r = _build("moto", {"moto": moto_server}, default_block_size=5 * 2**20)
    r.storage.single_request_limit = SMALL_LIMIT
    child = _CHILD.format(sizes=_SIZES)
    r.write(_kill_value(0), location="victim.pkl")
    blob = cloudpickle.dumps(r)
    rng = random.Random(8)
    done, kills, bad = 0, 0, []
    killed_during = {"small": 0, "large": 0, "multipart": 0, "between writes": 0}
    while kills < KILLS:
        proc = subprocess.Popen(
            [sys.executable, "-c", child, str(done + 1)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(blob)
        proc.stdin.close()
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()[-2000:]
        started = done
        # Kill after a random number of progress lines, then a random jitter that
        # picks the instant inside the write (not a synchronisation).
        for _ in range(rng.randint(1, 4)):
            line = proc.stdout.readline().split()
            assert line, proc.stderr.read().decode()[-2000:]
            if line[0] == b"start":
                started = int(line[1])
            else:
                done = int(line[1])
        if rng.random() < 0.8:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=rng.uniform(0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Lines printed before the kill that the loop did not read.
        for raw in proc.stdout.read().splitlines():
            word, _, number = raw.partition(b" ")
            if word == b"start":
                started = int(number)
            elif word == b"done":
                done = int(number)
        proc.stdout.close()
        proc.stderr.close()
        kills += 1
        if started > done:
            killed_during[["small", "large", "multipart"][started % len(_SIZES)]] += 1
        else:
            killed_during["between writes"] += 1
        try:
            got = r.read("victim.pkl").value
        except Exception as exc:
            bad.append(f"kill {kills}: {type(exc).__name__}: {exc}")
            continue
        if got["i"] not in (done, started) or got != _kill_value(got["i"]):
            bad.append(f"kill {kills}: read value {got['i']}, expected {done} or {started}")
        done = max(done, got["i"])  # a write finished but not yet reported
    left = [o for o in _objects(r) if o != "victim.pkl"]
    bucket, prefix = r.storage._temp_prefix(r.storage.path("victim.pkl"))
    uploads = r.storage._s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    incomplete = len(uploads.get("Uploads", []))
    # The next large write of the key removes what dead writers left (age lowered here).
    r.storage.stale_temp_age = 0
    r.write(_kill_value(2), location="victim.pkl")
    after = [o for o in _objects(r) if o != "victim.pkl"]
    uploads = r.storage._s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    print(
        f"\n[pairs] moto: {kills} SIGKILLs of an overwriting writer "
        f"(during: {killed_during}), {done} writes completed: {len(bad)} failed reads; "
        f"left by the kills: {len(left)} temporary objects, {incomplete} incomplete uploads; "
        f"after the next large write: {len(after)} and {len(uploads.get('Uploads', []))}"
    )
    assert kills >= KILLS
    assert not bad, bad[:5]
    assert all(".rktmp-" in o for o in left), left  # never a sidecar or a stray object
    assert after == [] and not uploads.get("Uploads"), (after, uploads.get("Uploads"))
    assert r.read("victim.pkl").value == _kill_value(2)


# == (c) pairs written before (payload + sidecar) still read ===================================
@pytest.mark.parametrize("kind", ["moto", "seaweedfs", "gcs", "azure"])
def test_old_format_pair_still_reads(kind, servers):
    r = _build(kind, servers)
    payload = pickle.dumps({"old": True}, protocol=5)
    record = Record("pickle", Record.digest_of(payload), len(payload))
    path = r.storage.path("legacy/v.pkl")
    r.fs.pipe_file(path, payload)  # no object metadata: as written before
    r.fs.pipe_file(path + ".rkmeta", record.to_bytes())
    assert r.storage._decode(r.storage._head_object(path)) is None
    assert r.read("legacy/v.pkl").value == {"old": True}
    assert r.exists("legacy/v.pkl") and r.stat("legacy/v.pkl") == record
    assert r.storage.list("") == ["legacy/v.pkl"]  # the sidecar stays hidden
    # A damaged old pair is still refused.
    r.fs.pipe_file(path, payload[:-1] + b"!")
    with pytest.raises(ResultCorruptError):
        r.read("legacy/v.pkl")
    # A new write wins over the stale sidecar; delete removes both.
    written = r.write({"new": True}, location="legacy/v.pkl")
    assert r.read("legacy/v.pkl").value == {"new": True}
    assert r.stat("legacy/v.pkl") == written.record
    assert r.delete("legacy/v.pkl") is True
    assert _objects(r) == [] and r.delete("legacy/v.pkl") is False
    print(f"\n[pairs] {kind}: a payload + sidecar pair reads, and is replaced and deleted whole")


# == (d) a large streamed write aborted midway ===================================================
class _FailsAfterParts(PickleSerializer):
    """Streams several parts of a large value, then fails: a write that dies midway."""

    name = "pickle"

    def dump(self, value: Any, stream: Any) -> None:
        for _ in range(3):
            stream.write(b"p" * (5 * 2**20))
        raise SerializationError("the serializer failed after 15 MiB")


@pytest.mark.parametrize("kind", ["moto", "seaweedfs", "gcs", "azure"])
def test_aborted_large_write_keeps_old_value_and_leaves_nothing(kind, servers):
    options = {"default_block_size": 5 * 2**20} if kind in ("moto", "seaweedfs") else {}
    if kind == "gcs":
        options = {"block_size": 2**20}
    with contextlib.ExitStack() as stack:
        if kind == "moto":  # count the parts that went up before the failure
            proxy = stack.enter_context(CountingProxy(servers["moto"].port))
            r = _mkbucket(
                S3Result(
                    "rk-pairs",
                    prefix=uuid.uuid4().hex,
                    endpoint_url=proxy.url,
                    storage_options={"skip_instance_cache": True, **options},
                )
            )
        else:
            r = _build(kind, servers, **options)
        r.storage.single_request_limit = SMALL_LIMIT
        if kind == "azure":
            r.storage.block_size = 2**20
        r.write("old", location="abort.pkl")
        failing = r.copy()
        failing.serializer = _FailsAfterParts()
        with pytest.raises(SerializationError):
            failing.write("never stored", location="abort.pkl")
        parts = None
        if kind == "moto":
            parts = sum(1 for m, p in proxy.requests if m == "PUT" and "partNumber" in p)
            assert parts >= 2, proxy.requests
        assert r.read("abort.pkl").value == "old"
        assert _objects(r) == ["abort.pkl"]  # no temporary object, no partial object
        extra = ""
        if kind in ("moto", "seaweedfs"):
            bucket, prefix = r.storage._temp_prefix(r.storage.path("abort.pkl"))
            uploads = r.storage._s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
            assert not uploads.get("Uploads"), uploads["Uploads"]  # aborted, not left
            extra = ", no incomplete multipart upload"
        print(
            f"\n[pairs] {kind}: a large write failing after 15 MiB"
            f"{f' ({parts} parts sent)' if parts else ''} left the old value, no visible "
            f"object{extra}"
        )


# == the record as object metadata =================================================================
def test_metadata_encoding_round_trip_and_limits():
    record = {
        "digest": "xxh3_128:0123456789abcdef0123456789abcdef",
        "serializer": "pickle→zstd ☃",
        "size": "42",
        "version": "1",
        "written_at": "2026-01-02T03:04:05.678901+00:00",
        "key_id": "",
        "previous": '{"size": "1"}',
    }
    for sep in ("-", "_"):
        encoded = encode_metadata(record, sep)
        assert all(k.isascii() and v.isascii() and v.isprintable() for k, v in encoded.items())
        assert "previous" not in str(encoded)  # one object needs no previous record
        shouted = {k.upper(): v for k, v in encoded.items()}  # names are case-insensitive
        decoded = decode_metadata(shouted, sep)
        assert decoded == {k: v for k, v in record.items() if k != "previous"}
    assert encode_metadata(record)["rk-written-at"] == record["written_at"]  # readable as is
    assert decode_metadata({"other": "x"}) is None  # no marker: not ours (a sidecar pair)
    with pytest.raises(ValueError, match="2048"):
        encode_metadata({**record, "serializer": "x" * 3000})
    with pytest.raises(ValueError, match="metadata name"):
        encode_metadata({"Bad-Name": "1"})


@pytest.mark.parametrize("kind", ["moto", "seaweedfs", "gcs", "azure"])
def test_non_ascii_serializer_name_round_trips(kind, servers):
    class Named(PickleSerializer):
        name = "pickle ünïcode ☃"

    r = _build(kind, servers)
    r.serializer = Named()
    written = r.write({"x": 1}, location="named.pkl")
    assert r.read("named.pkl").value == {"x": 1}
    assert r.stat("named.pkl") == written.record
    assert r.stat("named.pkl").serializer == "pickle ünïcode ☃"


@pytest.mark.parametrize("kind", ["moto", "seaweedfs"])
def test_s3_copy_past_the_copy_limit_is_a_multipart_copy(kind, servers):
    """Past 5 GiB one CopyObject cannot publish: the copy goes in parts, completed as one."""
    r = _build(kind, servers)
    r.storage.single_request_limit = SMALL_LIMIT
    r.storage.copy_limit = 2**20  # lowered: 12 MiB then copies in parts of 5 MiB
    r.storage.copy_part_size = 5 * 2**20
    value = bytes(range(256)) * (12 * 2**20 // 256)
    written = r.write(value, location="copy/big.bin")
    assert r.read("copy/big.bin").value == value
    assert r.stat("copy/big.bin") == written.record
    assert _objects(r) == ["copy/big.bin"]
    print(f"\n[pairs] {kind}: a 12 MiB value published by a 3-part copy with its record")


def test_from_url_uses_the_backend_storage(moto_server):
    from resultkit.results import from_url
    from resultkit.results.s3 import S3Storage

    base = _build("moto", {"moto": moto_server})
    r = from_url(base.root_url, endpoint_url=moto_server.url)
    assert type(r.storage) is S3Storage and r.storage.atomic_pairs
    r.write([1], location="u.pkl")
    assert base.storage.head("u.pkl") == r.stat("u.pkl").to_metadata()


def test_a_body_cut_short_is_told_from_its_record():
    from resultkit.results import MemoryResult
    from resultkit.results._objectstore import _torn

    r = MemoryResult()
    written = r.write({"rows": [1, 2, 3]}, location="t.pkl")
    _, metadata = r.storage.get(r.storage_key("t.pkl"))
    size = written.record.size
    assert not _torn(b"x" * size, metadata)
    assert _torn(b"", metadata) and _torn(b"x" * (size + 1), metadata)
    assert not _torn(b"", {})  # no record: the digest check decides, as before

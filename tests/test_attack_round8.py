"""Attack round 8: long local names, exists_many's named failures, S3's 409 conflicts.

Each test is an attack on this session's changes. Those whose docstring says what it
did ("named the first key", "said the name") failed before this round's fixes (the bug
they document); the others held and stay as guards.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from fault_proxy import FaultProxy, s3_result_through
from resultkit.errors import StorageAccessError, StorageError
from resultkit.results import LocalResult, RetryPolicy, S3Result, StorageResult
from resultkit.results.storage import Storage
from test_attack_round6 import build

from dirfs_backend import SandboxResult

BUCKET = "rk-attack-round8"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)


@pytest.fixture(scope="module")
def proxy(moto_server: Any) -> Any:
    with FaultProxy(moto_server.port) as p:
        yield p


def through(proxy: FaultProxy, engine: str, prefix: str | None = None) -> S3Result:
    return s3_result_through(proxy, BUCKET, engine, prefix=prefix)


# -- long names -----------------------------------------------------------------------------
def test_a_too_long_name_that_is_not_utf8_is_the_clear_error_not_a_unicode_crash(tmp_path):
    """A name decoded from the disk (os.fsdecode: surrogate escapes) is written and read
    when short; too long, it must get the "too long" StorageError, not UnicodeEncodeError
    from building that message."""
    r = LocalResult(dir=str(tmp_path))
    r.write(1, location="\udcff" * 100 + ".pkl")  # 104 bytes on disk: fine
    assert r.read("\udcff" * 100 + ".pkl").value == 1
    with pytest.raises(StorageError, match="too long.*300 bytes"):
        r.write(1, location="\udcff" * 300)


# -- exists_many ----------------------------------------------------------------------------
def test_few_keys_on_an_fsspec_result_name_the_failing_one(tmp_path):
    """FileSystemStorage.exists_many of fewer than 4 keys asks exists() per key, unmarked:
    the error named the first key (and called 'a.pkl' a name too long, of 5 bytes)."""
    r = SandboxResult(str(tmp_path))
    r.write(1, location="a.pkl")
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(StorageError) as info:
        r.exists_many(["a.pkl", "b.pkl", "afile/x.pkl"])
    assert "afile/x.pkl" in str(info.value) and "a.pkl:" not in str(info.value), str(info.value)
    assert info.value.location is not None and info.value.location.endswith("afile/x.pkl")
    long = "z" * 300
    with pytest.raises(StorageError) as info:
        r.exists_many(["a.pkl", long])
    assert "300 bytes" in str(info.value), str(info.value)


class _RefusingOneKey(Storage):
    """A third-party storage keeping the base exists_many: HEAD of one key is refused."""

    root_url = "refusing://"

    def __init__(self, refused: str) -> None:
        self.refused = refused

    def put(self, key: str, data: Any, metadata: Any) -> None:
        raise NotImplementedError

    def get(self, key: str) -> Any:
        return None

    def head(self, key: str) -> Any:
        if key == self.refused:
            raise PermissionError(f"403 on {key}")
        return None

    def delete(self, key: str) -> bool:
        return False

    def list(self, prefix: str = "") -> Any:
        return []


def test_the_base_storages_exists_many_names_the_key_that_failed():
    r = StorageResult(_RefusingOneKey("c.pkl"))
    with pytest.raises(StorageAccessError) as info:
        r.exists_many(["a.pkl", "b.pkl", "c.pkl"])
    assert info.value.location is not None and info.value.location.endswith("c.pkl")
    assert "a.pkl" not in str(info.value), str(info.value)


# -- 409 ConditionalRequestConflict ---------------------------------------------------------
def _race(r: S3Result, location: str, contenders: int = 6) -> list[bool]:
    """Every contender's put_if_absent of ``location``, started at once; none may raise."""
    start = threading.Barrier(contenders)
    answers: list[bool] = []
    errors: list[BaseException] = []

    def contend(i: int) -> None:
        try:
            start.wait(timeout=10)
            answers.append(r.put_if_absent(f"c{i}".encode(), location=location))
        except BaseException as exc:  # collected: the test asserts none
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return answers


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_racing_creators_under_conflicts_give_exactly_one_winner(proxy, engine):
    r = through(proxy, engine)
    for round_ in range(3):
        proxy.fail(4, status=409, code="ConditionalRequestConflict", method="PUT")
        answers = _race(r, f"locks/{round_}")
        assert sorted(answers) == [False] * 5 + [True], answers
        proxy.heal()


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_key_named_like_the_conflict_code_is_not_a_conflict(proxy, engine):
    """The conflict is recognised by 'ConditionalRequestConflict' anywhere in the error's
    repr: obstore's errors carry the request's URL, so a key with that word made any 409
    (here InvalidBucketState) a transient conflict, tried again."""
    r = through(proxy, engine)
    proxy.fail(1, status=409, code="InvalidBucketState", method="PUT")
    with pytest.raises(StorageError):
        r.write({"v": 1}, "ConditionalRequestConflict/value.pkl")
    assert [x.outcome for x in proxy.log if x.method == "PUT"] == ["status:409"]
    proxy.heal()
    proxy.clear()
    proxy.fail(1, status=400, code="InvalidArgument", method="PUT")
    with pytest.raises(StorageError):
        r.put_if_absent(b"x", location="ConditionalRequestConflict/lock")
    assert [x.outcome for x in proxy.log if x.method == "PUT"] == ["status:400"]


def _wait_for(check: Any, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)  # polling with a deadline, not synchronisation by sleeping


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_lock_released_between_the_refusal_and_its_head_is_taken(proxy, engine):
    """The refused create's HEAD finds nothing (the holder deleted its lock meanwhile): the
    create is sent again and takes the free lock, instead of answering False for a lock
    that nobody holds."""
    r = through(proxy, engine)
    assert r.put_if_absent(b"holder", location="locks/r") is True
    proxy.clear()
    proxy.delay(1, ms=400, method="HEAD")
    answers: list[bool] = []
    errors: list[BaseException] = []

    def contend() -> None:
        try:
            answers.append(r.put_if_absent(b"second", location="locks/r"))
        except BaseException as exc:  # collected: the test asserts none
            errors.append(exc)

    t = threading.Thread(target=contend)
    t.start()
    _wait_for(lambda: proxy.count("HEAD") >= 1, "the refused create's HEAD")
    r.fs.rm_file(r.storage.path("locks/r"))  # the holder releases while the HEAD is held
    t.join(timeout=30)
    assert not errors, errors
    assert answers == [True]
    assert r.fs.cat(r.storage.path("locks/r")) == b"second"
    puts = [x.outcome for x in proxy.log if x.method == "PUT"]
    assert len(puts) == 2, proxy.log


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_write_many_tries_a_conflicting_put_again(proxy, engine):
    r = through(proxy, engine)
    proxy.fail(2, status=409, code="ConditionalRequestConflict", method="PUT")
    written = r.write_many([(f"wm/{i}.pkl", i) for i in range(4)])
    assert len(written) == 4
    assert [r.read(f"wm/{i}.pkl").value for i in range(4)] == [0, 1, 2, 3]
    assert proxy.count("PUT", "status:409") == 2


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_exists_many_tries_a_transient_head_failure_again(proxy, engine):
    r = through(proxy, engine)
    for i in (0, 2):
        r.write(i, f"n/{i}.pkl")
    proxy.clear()
    proxy.fail(1, status=503, method="HEAD", path="/n/1.pkl")
    asked = ["n/0.pkl", "n/1.pkl", "n/2.pkl", "n/1.pkl"]
    assert r.exists_many(asked) == [True, False, True, False]
    assert proxy.count("HEAD", "status:503") == 1


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_single_flight_locks_under_conflicts_have_one_holder(proxy, engine):
    """Contenders for one target's lock (epochs created with put_if_absent) while S3
    answers some creates 409: one holds it; once it is released, the next takes it."""
    from resultkit.caching.locks import SingleFlightLock

    r = through(proxy, engine)
    locks = [SingleFlightLock(r, "target.pkl", lease=30) for _ in range(4)]
    start = threading.Barrier(len(locks))
    taken: list[SingleFlightLock] = []
    errors: list[BaseException] = []

    def contend(lock: SingleFlightLock) -> None:
        try:
            start.wait(timeout=10)
            if lock.acquire():
                taken.append(lock)
        except BaseException as exc:  # collected: the test asserts none
            errors.append(exc)

    proxy.fail(3, status=409, code="ConditionalRequestConflict", method="PUT")
    threads = [threading.Thread(target=contend, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(taken) == 1, taken
    holder = taken[0]
    assert holder.holder() is not None
    holder.release()
    proxy.fail(2, status=409, code="ConditionalRequestConflict", method="PUT")
    nxt = next(lock for lock in locks if lock is not holder)
    assert nxt.acquire() is True
    nxt.release()


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_dead_writers_temp_object_of_a_long_name_is_swept_by_the_next_large_write(proxy, engine):
    """A long name's temporary objects are named by its shortened stem; the next large
    write of that name lists them by the same stem and removes a dead writer's."""
    r = through(proxy, engine)
    r.storage.stale_temp_age = 0.0  # type: ignore[attr-defined]
    r.storage.single_request_limit = 1024  # type: ignore[misc]  (streamed from 1 KB)
    name = "d/" + "é" * 100 + "x" * 40 + ".pkl"  # 246 bytes: its stem is shortened
    tmp = r.storage._temp_names(r.storage.path(name))[0]
    dead = tmp.replace(f"rktmp-{os.getpid()}-", "rktmp-1-", 1)  # another host's writer
    assert dead != tmp and "~" in dead.rpartition("/")[2]
    r.fs.pipe_file(dead, b"half")
    r.write(b"v" * 4096, name)
    assert r.read(name).value == b"v" * 4096
    left = [p for p in r.fs.ls(r.storage.path("d"), refresh=True) if ".rktmp-" in p]
    assert left == [], left


def test_a_path_too_long_with_short_names_says_the_path_not_the_name(tmp_path):
    """Every name of it fits (204 bytes) but the path has over 4096 bytes: the error said
    'the name is too long (204 bytes in its longest part)... at most 248 bytes'."""
    r = LocalResult(dir=str(tmp_path))
    location = "/".join(["é" * 100] * 21) + ".pkl"  # 2,124 characters, 4,224 bytes
    for call in (lambda: r.write(1, location=location), lambda: r.read(location)):
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert "the path is too long" in message and "4096 bytes a path" in message, message
        assert "name is too long" not in message, message


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_gcs_and_azure_name_the_key_whose_check_failed(kind, request):
    """The HEAD (GCS: metadata GET) refused for one key, then the listing of one folder
    refused (16 keys or more): each error names a key of what failed, not the first key.
    On GCS a refused request was a plain StorageError: gcsfs raises a bare OSError
    ("Forbidden: ...") for a 403, which the error table did not know."""
    server = request.getfixturevalue({"gcs": "gcs_server", "azure": "azurite_server"}[kind])
    with FaultProxy(server.port) as p:
        r = build(kind, p.port)
        for key in ("m/0.pkl", "n/1.pkl"):
            r.write(1, key)
        p.clear()
        failing = "n%2F1.pkl" if kind == "gcs" else "/n/1.pkl"
        p.fail(1, status=403, path=failing)
        with pytest.raises(StorageAccessError) as info:
            r.exists_many(["m/0.pkl", "m/1.pkl", "n/0.pkl", "n/1.pkl"])
        assert "n/1.pkl" in str(info.value) and "m/0.pkl" not in str(info.value), str(info.value)
        many = [f"m/{i}.pkl" for i in range(10)] + [f"n/{i}.pkl" for i in range(10)]
        p.clear()
        assert r.exists_many(many) == [k in ("m/0.pkl", "n/1.pkl") for k in many]
        listings = [path for _, path in p.calls()]
        of_n = [path for path in listings if "n%2F" in path or "n/" in path.split("?")[1:2][0]]
        assert len(of_n) == 1, listings
        p.fail(1, status=403, path=of_n[0])
        with pytest.raises(StorageAccessError) as info:
            r.exists_many(many)
        assert "n/0.pkl" in str(info.value) and "m/0.pkl" not in str(info.value), str(info.value)

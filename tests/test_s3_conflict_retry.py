"""S3's 409 ConditionalRequestConflict is retried, not raised.

Real S3 answers a conditional write that raced another operation on the same
key with 409 ``ConditionalRequestConflict``, and AWS's advice is to retry it.
The retry of a create then finds either nothing (and creates) or the winner's
object (412: a refusal); so ``put_if_absent`` still gives exactly one True.
moto never sends it: the proxy answers the first PUT with it, unforwarded.
"""

from __future__ import annotations

from typing import Any

import pytest

from fault_proxy import FaultProxy, s3_result_through
from resultkit.errors import StorageError
from resultkit.results import RetryPolicy
from resultkit.results._objcreate import CONFLICT_TRIES

BUCKET = "rk-conflict-retry"
FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)


@pytest.fixture(scope="module")
def proxy(moto_server: Any) -> Any:
    with FaultProxy(moto_server.port) as p:
        yield p


def through(proxy: FaultProxy, engine: str) -> Any:
    return s3_result_through(proxy, BUCKET, engine)


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_conflict_on_a_create_or_a_write_is_tried_again(proxy: FaultProxy, engine: str) -> None:
    r = through(proxy, engine)
    proxy.fail(1, status=409, code="ConditionalRequestConflict", method="PUT")
    assert r.put_if_absent(b"mine", location="locks/a") is True
    assert r.fs.cat(r.storage.path("locks/a")) == b"mine"
    assert [x.outcome for x in proxy.log if x.method == "PUT"][:2] == ["status:409", "forwarded"]
    assert r.put_if_absent(b"other", location="locks/a") is False  # still one winner

    proxy.clear()
    proxy.fail(1, status=409, code="ConditionalRequestConflict", method="PUT")
    r.write({"v": 1}, "value.pkl")
    assert r.read("value.pkl").value == {"v": 1}
    assert [x.outcome for x in proxy.log if x.method == "PUT"][:2] == ["status:409", "forwarded"]


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_another_409_fails_the_write_at_once(proxy: FaultProxy, engine: str) -> None:
    """Only the conflict is transient: a 409 that says something else is raised at once,
    and with obstore a write it refused no longer reads as done (it returned as if stored,
    and the value was not there)."""
    r = through(proxy, engine)
    proxy.fail(1, status=409, code="InvalidBucketState", method="PUT")
    with pytest.raises(StorageError, match="value.pkl"):
        r.write({"v": 1}, "value.pkl")
    assert [x.outcome for x in proxy.log if x.method == "PUT"] == ["status:409"]
    assert not r.exists("value.pkl")


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_conflicts_that_never_end_are_a_clear_error_and_create_nothing(
    proxy: FaultProxy, engine: str
) -> None:
    r = through(proxy, engine)
    proxy.fail(CONFLICT_TRIES, status=409, code="ConditionalRequestConflict", method="PUT")
    with pytest.raises(StorageError) as info:
        r.put_if_absent(b"mine", location="locks/b")
    message = str(info.value)
    assert "locks/b" in message and "409" in message and "try again" in message, message
    assert [x.outcome for x in proxy.log if x.method == "PUT"] == ["status:409"] * CONFLICT_TRIES
    assert not r.exists("locks/b")
    assert r.put_if_absent(b"mine", location="locks/b") is True  # the next call takes it


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_create_answered_503_is_sent_again_with_the_same_nonce(
    proxy: FaultProxy, engine: str
) -> None:
    """A 503 applied nothing here (unforwarded); the HEAD finds nothing, so the create is
    sent again. Before, it was a StorageError (obstore's said the create 'got no answer')."""
    r = through(proxy, engine)
    proxy.fail(1, status=503, method="PUT")
    assert r.put_if_absent(b"mine", location="locks/c") is True
    assert [x.outcome for x in proxy.log if x.method == "PUT"] == ["status:503", "forwarded"]
    nonces = {
        k: v for k, v in r.storage._head_object(r.storage.path("locks/c")).items() if "nonce" in k
    }
    assert len(nonces) == 1, nonces
    assert r.put_if_absent(b"other", location="locks/c") is False


@pytest.mark.parametrize("engine", ["s3fs", "obstore"])
def test_a_create_answered_another_409_is_an_error_on_both_engines(
    proxy: FaultProxy, engine: str
) -> None:
    """obstore calls every 409 'already exists'; one that says something else is an error,
    as botocore raises it for s3fs (obstore took it for a refusal, HEADed, retried)."""
    r = through(proxy, engine)
    proxy.fail(1, status=409, code="OperationAborted", method="PUT")
    with pytest.raises(StorageError, match="OperationAborted|Injected fault"):
        r.put_if_absent(b"mine", location="locks/d")
    assert [(x.method, x.outcome) for x in proxy.log] == [("PUT", "status:409")]

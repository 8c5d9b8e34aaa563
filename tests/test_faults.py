"""Faults in the service: a real proxy in front of a real S3 server (moto) misbehaves.

Promises checked (README "Guarantees", faults in the service):

- transient failures (HTTP 408, 429, 500, 502, 503, 504, a connection
  reset, a read timeout) are retried, and the operation succeeds; each
  retry is one more request at the proxy, so the count is exactly the
  faults injected plus a healthy call's requests;
- retries are bounded by the Result's ``RetryPolicy``: a service that stays
  down gets exactly ``attempts`` requests, then a ``StorageError`` naming the
  location;
- access denied (403) and not found (404) are never retried: one request;
- an outage in the middle of a flow fails the task whose checkpoint could
  not be written, with a message naming the location, and the next run,
  with the service back, succeeds.

The S3 client's own retries are turned off (botocore ``total_max_attempts``
1, s3fs's ``retries`` attribute 1), so every request the proxy counts is the
library's own.
"""

from __future__ import annotations

import time
import uuid

import pytest

from fault_proxy import FaultProxy
from resultkit import Flow, task
from resultkit.errors import (
    ConfigurationError,
    ResultNotFoundError,
    StorageAccessError,
    StorageError,
)
from resultkit.results import (
    AzureResult,
    GCSResult,
    LocalResult,
    MemoryResult,
    RetryPolicy,
    S3Result,
)

BUCKET = "rk-faults"
FAST = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.005)
VALUE = {"rows": list(range(100)), "name": "faults"}


@pytest.fixture(scope="module")
def fault_proxy(moto_server):
    with FaultProxy(moto_server.port) as p:
        yield p


@pytest.fixture
def proxy(fault_proxy):
    """The module's proxy, healthy and with no request counted yet."""
    fault_proxy.heal()
    fault_proxy.clear()
    yield fault_proxy
    fault_proxy.heal()


def s3_through(
    proxy: FaultProxy,
    retries: RetryPolicy | int = FAST,
    prefix: str | None = None,
    location: str | None = None,
    **config: object,
) -> S3Result:
    """An S3Result whose every request goes through ``proxy``, with only resultkit retrying."""
    r = S3Result(
        BUCKET,
        location=location,
        prefix=prefix or uuid.uuid4().hex,
        endpoint_url=proxy.url,
        # One client per proxy and configuration (fsspec's instance cache).
        storage_options={"config_kwargs": {"retries": {"total_max_attempts": 1}, **config}},
    )
    r.fs.retries = 1  # s3fs's own retry loop: a class attribute, not an argument
    r.retries = RetryPolicy.coerce(retries)
    if not r.fs.exists(BUCKET):
        r.fs.mkdir(BUCKET)
    proxy.clear()
    return r


def _op(name: str, r: S3Result):
    """The call under test; it returns what a healthy call returns."""
    if name == "write":
        return lambda: r.write(VALUE, location="k.pkl").value
    if name == "read":
        return lambda: r.read("k.pkl").value
    return lambda: r.exists("k.pkl")


HEALTHY = {"write": VALUE, "read": VALUE, "exists": True}


def _baseline(proxy: FaultProxy, call) -> int:
    """Requests of one healthy call."""
    proxy.clear()
    call()
    n = proxy.count()
    proxy.clear()
    return n


# == transient faults are retried until they pass =============================================
TRANSIENT = ["500", "502", "503", "504", "429", "408", "reset"]


@pytest.mark.parametrize("fault", TRANSIENT)
@pytest.mark.parametrize("op", ["write", "read", "exists"])
def test_transient_faults_are_retried_and_the_call_succeeds(proxy, op, fault):
    r = s3_through(proxy)
    r.write(VALUE, location="k.pkl")
    call = _op(op, r)
    healthy = _baseline(proxy, call)
    faults = 2  # fewer than the 4 attempts
    if fault == "reset":
        proxy.reset(faults)
    else:
        proxy.fail(faults, status=int(fault))
    assert call() == HEALTHY[op]
    assert proxy.pending() == 0, "the scripted faults were not all met"
    # Each failed attempt is exactly one request, then a healthy call.
    assert proxy.count() == healthy + faults, proxy.log
    first = proxy.log[0]
    retried = [(q.method, q.path) for q in proxy.log[: faults + 1]]
    assert retried == [(first.method, first.path)] * (faults + 1), proxy.log
    assert r.read("k.pkl").value == VALUE


def test_an_answer_lost_after_the_server_applied_a_write_is_retried(proxy):
    r = s3_through(proxy)
    healthy = _baseline(proxy, lambda: r.write(VALUE, location="k.pkl"))
    proxy.reset(1, after_upstream=True)  # the PUT lands, its answer does not
    r.write({"v": 2}, location="k.pkl")
    assert proxy.count() == healthy + 1
    assert proxy.log[0].outcome == "reset-after-upstream"
    assert r.read("k.pkl").value == {"v": 2}


def test_a_read_timeout_is_retried(proxy):
    r = s3_through(proxy, read_timeout=1.5)
    r.write(VALUE, location="k.pkl")
    healthy = _baseline(proxy, lambda: r.read("k.pkl"))
    proxy.delay(1, ms=6000)  # the first request answers long after the client gave up
    start = time.monotonic()
    assert r.read("k.pkl").value == VALUE
    assert time.monotonic() - start < 6.0, "the client waited for the held request"
    assert proxy.count() == healthy + 1
    assert proxy.log[0].outcome.startswith("delayed")


def test_latency_alone_is_not_a_failure(proxy):
    r = s3_through(proxy)
    r.write(VALUE, location="k.pkl")
    calls = [_op(op, r) for op in ("write", "read", "exists")]
    healthy = [_baseline(proxy, c) for c in calls]
    proxy.latency_ms = 150
    for call, n in zip(calls, healthy, strict=True):
        proxy.clear()
        call()
        assert proxy.count() == n, proxy.log  # no spurious retry


# == retries are bounded ==========================================================================
@pytest.mark.parametrize("attempts", [1, 3, 5])
@pytest.mark.parametrize("kind", ["status", "reset"])
@pytest.mark.parametrize("op", ["write", "read", "exists"])
def test_a_service_that_stays_down_gets_exactly_attempts_requests(proxy, op, kind, attempts):
    r = s3_through(
        proxy, retries=RetryPolicy(attempts=attempts, initial_delay=0.01, max_delay=0.02)
    )
    r.write(VALUE, location="k.pkl")
    proxy.clear()
    proxy.outage(kind)
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        _op(op, r)()
    took = time.monotonic() - start
    assert not isinstance(info.value, StorageAccessError)
    assert f"s3://{BUCKET}/" in str(info.value) and "k.pkl" in str(info.value)
    if kind == "status":
        assert proxy.count() == attempts, proxy.log
    else:
        # aiohttp resends an idempotent request once when a reused keep-alive
        # connection drops (RFC 9112, 9.3.1), below resultkit: at most one
        # extra request per attempt.
        assert attempts <= proxy.count() <= 2 * attempts, proxy.log
    assert took < 10, f"{attempts} attempts took {took:.1f}s"


def test_the_backoff_grows_and_is_capped(proxy):
    policy = RetryPolicy(attempts=5, initial_delay=0.05, max_delay=0.1, multiplier=2)
    r = s3_through(proxy, retries=policy)
    proxy.clear()
    proxy.outage()
    start = time.monotonic()
    with pytest.raises(StorageError):
        r.exists("k.pkl")
    took = time.monotonic() - start
    # Full jitter: each wait is random up to 0.05, 0.1, 0.1, 0.1 s.
    assert took < 0.35 + 2.0
    assert proxy.count() == 5


# == refusals and misses are never retried ======================================================
@pytest.mark.parametrize("op", ["write", "read", "exists"])
def test_access_denied_is_one_request(proxy, op):
    r = s3_through(proxy)
    r.write(VALUE, location="k.pkl")
    proxy.clear()
    proxy.fail(None, status=403)
    with pytest.raises(StorageAccessError, match="access denied") as info:
        _op(op, r)()
    assert "k.pkl" in str(info.value)
    assert proxy.count() == 1, proxy.log


def test_exists_of_a_missing_key_is_one_request(proxy):
    r = s3_through(proxy)
    assert r.exists("first-miss.pkl") is False  # also checks the bucket, once
    proxy.clear()
    assert r.exists("missing.pkl") is False
    assert proxy.count() == 1, proxy.log


def _calls_for(proxy: FaultProxy, call, exc: type[BaseException]) -> list[tuple[str, str]]:
    proxy.clear()
    with pytest.raises(exc):
        call()
    return proxy.calls()


def test_reading_a_missing_key_repeats_no_request(proxy):
    once = s3_through(proxy, retries=1)
    prefix = once.storage.root.partition("/")[2]
    patient = s3_through(proxy, retries=FAST, prefix=prefix)
    single = _calls_for(proxy, lambda: once.read("missing.pkl"), ResultNotFoundError)
    retried = _calls_for(proxy, lambda: patient.read("missing.pkl"), ResultNotFoundError)
    assert retried == single, "a 404 was retried"
    key_requests = [c for c in retried if c[1].endswith("/missing.pkl")]
    assert len(key_requests) == len(set(key_requests)) == 1, retried


def test_an_injected_404_on_a_write_is_not_retried(proxy):
    r = s3_through(proxy)
    proxy.clear()
    proxy.fail(1, status=404, code="NoSuchBucket")
    with pytest.raises(StorageError, match="does not exist") as info:
        r.write(VALUE, location="k.pkl")
    assert "k.pkl" in str(info.value) or BUCKET in str(info.value)
    faulted = [q for q in proxy.log if q.outcome.startswith("status:404")]
    assert len(faulted) == 1
    assert (faulted[0].method, faulted[0].path) not in [
        (q.method, q.path) for q in proxy.log if q is not faulted[0]
    ], proxy.log


# == the retry policy is on every backend ========================================================
def test_every_backend_takes_a_retry_policy(tmp_path):
    policy = RetryPolicy(attempts=7, initial_delay=0.01)
    built = {
        "LocalResult": lambda: LocalResult(dir=tmp_path, retries=policy),
        "MemoryResult": lambda: MemoryResult(retries=policy),
        "S3Result": lambda: S3Result("b", retries=policy),
        "GCSResult": lambda: GCSResult("b", retries=policy),
        "AzureResult": lambda: AzureResult("c", connection_string="x", retries=policy),
    }
    refused = {}
    for name, make in built.items():
        try:
            assert make().retries == policy, name
        except (TypeError, ConfigurationError) as exc:
            refused[name] = str(exc)
    assert refused == {}, f"retries= refused: {refused}"
    assert S3Result("b", retries=2).retries.attempts == 2


# == an outage in the middle of a flow ============================================================
def test_an_outage_mid_flow_fails_the_task_naming_the_location_then_the_next_run_succeeds(proxy):
    result = s3_through(proxy, location="{flow_name}/{task_name}.pkl")
    ran: list[str] = []
    outage = {"on": True}

    @task(checkpoint=True, result=result)
    def extract():
        ran.append("extract")
        return [1, 2, 3]

    @task(checkpoint=True, result=result)
    def load(rows):
        ran.append("load")
        if outage["on"]:
            proxy.outage()  # the service goes down while the flow runs
        return sum(rows)

    with Flow("etl") as flow:
        rows = extract()
        total = load(rows)

    proxy.clear()
    state = flow.run()
    assert not state.is_successful()
    assert state.result[rows].is_successful()
    failed = state.result[total]
    assert failed.is_failed()
    where = f"s3://{result.storage.root}/etl/load.pkl"
    assert where in failed.message, failed.message
    during = proxy.count(outcome="status:503")
    assert during == FAST.attempts, proxy.log  # bounded: one request per attempt

    proxy.heal()
    outage["on"] = False
    again = flow.run()
    assert again.is_successful(), again.result[total].message
    assert again.result[total].result == 6
    assert result.read("etl/load.pkl").value == 6
    assert result.read("etl/extract.pkl").value == [1, 2, 3]
    assert ran == ["extract", "load", "extract", "load"]

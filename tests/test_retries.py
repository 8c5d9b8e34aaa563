"""Transient storage failures are retried with backoff; refusals and misses never are.

A deliberately flaky Storage (the public byte-level API) stands in for a
service that fails now and then; tests/test_faults.py does the same through
a real proxy in front of a real S3 server.
"""

from __future__ import annotations

import pytest

from resultkit.errors import ConfigurationError, StorageAccessError, StorageError
from resultkit.results import RetryPolicy, StorageResult
from resultkit.results.storage import Storage


class FlakyStorage(Storage):
    def __init__(self, failures: list[BaseException]) -> None:
        self.objects: dict[str, tuple[bytes, dict]] = {}
        self.failures = failures
        self.calls = 0
        self.root_url = "flaky://"

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def put(self, key, data, metadata):
        self._maybe_fail()
        self.objects[key] = (bytes(data), dict(metadata))

    def get(self, key):
        self._maybe_fail()
        return self.objects.get(key)

    def head(self, key):
        self._maybe_fail()
        found = self.objects.get(key)
        return None if found is None else found[1]

    def delete(self, key):
        return self.objects.pop(key, None) is not None

    def list(self, prefix=""):
        return sorted(k for k in self.objects if k.startswith(prefix))


FAST = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.002)


def test_transient_failures_are_retried_until_they_pass():
    storage = FlakyStorage([ConnectionResetError("reset"), TimeoutError("slow")])
    r = StorageResult(storage, retries=FAST)
    r.write({"a": 1}, location="x.pkl")
    assert storage.calls == 3
    storage.failures = [ConnectionRefusedError("down")]
    assert r.read("x.pkl").value == {"a": 1}
    storage.failures = [ConnectionResetError("again")]
    assert r.exists("x.pkl") is True


def test_retries_are_bounded_and_the_error_names_the_location():
    storage = FlakyStorage([ConnectionResetError("reset")] * 10)
    r = StorageResult(storage, retries=FAST)
    with pytest.raises(StorageError, match=r"flaky://x\.pkl.*ConnectionResetError"):
        r.write(1, location="x.pkl")
    assert storage.calls == 4


def test_access_denied_and_not_found_are_never_retried():
    storage = FlakyStorage([PermissionError("403 Forbidden")])
    r = StorageResult(storage, retries=FAST)
    with pytest.raises(StorageAccessError):
        r.write(1, location="x.pkl")
    assert storage.calls == 1
    storage.calls = 0
    assert r.exists("missing.pkl") is False
    assert storage.calls == 1


def test_one_attempt_means_no_retry_and_bad_policies_are_refused():
    storage = FlakyStorage([ConnectionResetError("reset")])
    with pytest.raises(StorageError):
        StorageResult(storage, retries=1).write(1, location="x.pkl")
    assert storage.calls == 1
    with pytest.raises(ConfigurationError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ConfigurationError, match="RetryPolicy"):
        StorageResult(FlakyStorage([]), retries="often")  # type: ignore[arg-type]


def test_every_backend_takes_a_retry_policy(tmp_path):
    from resultkit.results import LocalResult, MemoryResult, from_url

    policy = RetryPolicy(attempts=6, max_delay=5.0)
    for r in (
        LocalResult(dir=tmp_path, retries=policy),
        MemoryResult(retries=policy),
        from_url("memory://retry-policy", retries=policy),
    ):
        assert r.retries == policy
    assert LocalResult(dir=tmp_path, retries=1).retries.attempts == 1

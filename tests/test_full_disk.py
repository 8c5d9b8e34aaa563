"""A full disk: a value that fits is written, one that does not fails cleanly.

Runs on a real 5 MB tmpfs mounted for the test (the test machine runs as root).
"""

from __future__ import annotations

import os
import threading

import pytest

from resultkit.errors import StorageError
from resultkit.results import LocalResult, _locks


@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("5m")


def _chunks(total: int) -> list[bytes]:
    return [os.urandom(64 * 1024) for _ in range(total // (64 * 1024))]  # many writes


def test_a_value_that_fits_is_written_even_when_reserving_ahead_would_not(small_disk):
    r = LocalResult(dir=small_disk)
    # 4.2 MB with 5 MB free: reserving ahead in doubling steps would ask for 8 MB.
    value = _chunks(4 * 2**20 + 3 * 64 * 1024)
    assert r.read(r.write(value, location="fits.pkl").location).value == value


def test_a_value_that_does_not_fit_fails_naming_the_location_and_keeps_the_old(small_disk):
    r = LocalResult(dir=small_disk)
    r.write("old", location="v.pkl")
    with pytest.raises(StorageError, match=r"v\.pkl.*no space left|no space left.*v\.pkl") as info:
        r.write(_chunks(6 * 2**20), location="v.pkl")
    assert "serializer" not in str(info.value).lower()
    assert r.read("v.pkl").value == "old"
    assert sorted(os.listdir(small_disk)) == ["v.pkl", "v.pkl.rkmeta"]  # no temp file left


def test_a_writer_blocked_by_a_stopped_one_fails_after_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(_locks, "FOLDER_LOCK_TIMEOUT", 0.3)
    r = LocalResult(dir=tmp_path)
    r.write("old", location="k.pkl")
    errors: list[BaseException] = []
    with _locks.folder_lock(str(tmp_path)):  # as a writer SIGSTOPped mid-publish holds it

        def write() -> None:
            try:
                r.write("new", location="k.pkl")
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        t = threading.Thread(target=write)
        t.start()
        t.join(timeout=30)
        assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], StorageError)
    assert "folder lock" in str(errors[0]) and str(tmp_path) in str(errors[0])
    assert r.read("k.pkl").value == "old"
    assert sorted(os.listdir(tmp_path)) == ["k.pkl", "k.pkl.rkmeta"]

"""Adopting payloads written by another tool (Prefect 1 targets): opt-in, verified once."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from resultkit.errors import ResultCorruptError, ResultNotFoundError, SerializationError
from resultkit.results import LocalResult, MemoryResult
from resultkit.serializers import JSONSerializer


def test_a_prefect1_target_reads_after_adoption(tmp_path):
    # What Prefect 1's LocalResult wrote: cloudpickle bytes, in place, nothing beside them.
    (tmp_path / "monday").mkdir()
    (tmp_path / "monday" / "extract.txt").write_bytes(cloudpickle.dumps({"rows": 3}))
    r = LocalResult(dir=tmp_path)
    with pytest.raises(ResultCorruptError, match="no integrity record.*adopt"):
        r.read("monday/extract.txt")
    adopted = r.adopt("monday/extract.txt")
    assert adopted.value == {"rows": 3}
    assert adopted.record is not None and adopted.record.serializer == "pickle"
    assert (tmp_path / "monday" / "extract.txt").read_bytes() == cloudpickle.dumps({"rows": 3})
    assert r.read("monday/extract.txt").value == {"rows": 3}
    # Adopting again changes nothing and still verifies.
    assert r.adopt("monday/extract.txt").value == {"rows": 3}


def test_a_payload_that_does_not_deserialize_is_refused(tmp_path):
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle at all")
    r = LocalResult(dir=tmp_path)
    with pytest.raises(SerializationError):
        r.adopt("bad.pkl")
    with pytest.raises(ResultCorruptError, match="no integrity record"):
        r.read("bad.pkl")  # still not adopted


def test_adopt_with_another_serializer_and_backend():
    r = MemoryResult(root="/adopt-json", serializer=JSONSerializer())
    r.storage.put("x.json", b'{"a": [1, 2]}', {})  # a payload with no record
    assert r.adopt("x.json").value == {"a": [1, 2]}
    assert r.read("x.json").value == {"a": [1, 2]}
    with pytest.raises(ResultNotFoundError):
        r.adopt("missing.json")


def test_adopted_payload_damaged_later_is_caught(tmp_path):
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(list(range(100))))
    r = LocalResult(dir=tmp_path)
    r.adopt("t.pkl")
    data = bytearray((tmp_path / "t.pkl").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "t.pkl").write_bytes(bytes(data))
    with pytest.raises(ResultCorruptError):
        r.read("t.pkl")

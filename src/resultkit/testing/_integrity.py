"""Contract tests: damaged payloads and records are errors, failed writes leave nothing."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from ..errors import ResultCorruptError, SerializationError, SerializerMismatchError
from ..results import Result
from ..serializers import JSONSerializer
from ._support import RECORD_SUFFIX, TEMP_MARKER, RawAccess, expect_error

__all__ = ["IntegrityTests"]


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("this object refuses to be pickled")


class _FailsHalfway:
    """Pickles a large chunk, then fails: a write that dies mid-stream."""

    def __reduce__(self) -> Any:
        return (list, ([b"x" * 4_000_000, _Unpicklable()],))


def _other_digest(digest: str) -> str:
    return digest[:-1] + ("1" if digest.endswith("0") else "0")


# Records damaged in ways a reader must refuse: (id, change to the metadata).
_BAD_RECORDS = [
    ("no-record", lambda meta: {}),
    ("no-digest", lambda meta: {k: v for k, v in meta.items() if k != "digest"}),
    ("size-not-a-number", lambda meta: {**meta, "size": "lots"}),
    ("negative-size", lambda meta: {**meta, "size": "-1"}),
    ("unknown-version", lambda meta: {**meta, "version": "999"}),
    ("unknown-digest", lambda meta: {**meta, "digest": "md5:0123"}),
    ("wrong-digest", lambda meta: {**meta, "digest": _other_digest(meta["digest"])}),
    ("wrong-size", lambda meta: {**meta, "size": str(int(meta["size"]) + 1)}),
]


class IntegrityTests(RawAccess):
    # == damaged payloads ======================================================
    def _expect_corrupt(self, result: Result, location: Any, what: str) -> ResultCorruptError:
        must = f"read must refuse {what} with ResultCorruptError, never return a value"
        with expect_error(ResultCorruptError, must) as info:
            result.read(location)
        error: ResultCorruptError = info.value
        return error

    def test_corrupted_payload_detected(self, result: Result) -> None:
        written = result.write({"amount": 100}, location="c/p.pkl")
        data = bytearray(self.raw_read(result, written.location))
        data[len(data) // 2] ^= 0xFF
        self.raw_write(result, written.location, bytes(data))
        error = self._expect_corrupt(result, written.location, "a payload with a flipped byte")
        assert "c/p.pkl" in str(error), f"the error must name the location: {error}"

    def test_same_size_substitution_detected(self, result: Result) -> None:
        written = result.write(1000, location="sub.pkl")
        other = pickle.dumps(9999, protocol=5)
        stored = self.raw_read(result, written.location)
        assert len(other) == len(stored), (
            f"the payload must be the serializer's bytes ({len(other)}), got {len(stored)} bytes"
        )
        self.raw_write(result, written.location, other)
        self._expect_corrupt(result, written.location, "a same-size payload from elsewhere")

    def test_truncated_payload_detected(self, result: Result) -> None:
        written = result.write(b"z" * 10_000, location="t.pkl")
        self.raw_write(result, written.location, self.raw_read(result, written.location)[:100])
        self._expect_corrupt(result, written.location, "a truncated payload")

    def test_missing_record_is_corrupt_not_a_value(self, result: Result) -> None:
        written = result.write("v", location="norecord.pkl")
        self.raw_write(result, written.location, self.raw_read(result, written.location), {})
        error = self._expect_corrupt(result, written.location, "a payload without its record")
        assert "integrity record" in str(error), f"the error must say what is missing: {error}"

    @pytest.mark.parametrize(
        "damage", [d for _, d in _BAD_RECORDS], ids=[name for name, _ in _BAD_RECORDS]
    )
    def test_damaged_record_is_corrupt(self, result: Result, damage: Any) -> None:
        written = result.write("v", location="badrecord.pkl")
        found = self.raw_get(result, written.location)
        assert found is not None, "get must return the pair just written"
        data, meta = found
        self.raw_write(result, written.location, data, damage(meta))
        self._expect_corrupt(result, written.location, "a payload whose record is damaged")

    def test_serializer_mismatch_named(self, result: Result) -> None:
        written = result.write([1, 2], location="mismatch.pkl")
        r = result.copy()
        r.serializer = JSONSerializer()
        must = "reading with another serializer must raise SerializerMismatchError"
        with expect_error(SerializerMismatchError, must) as info:
            r.read(written.location)
        assert (info.value.written_by, info.value.reading_with) == ("pickle", "json"), (
            f"the error must name both serializers: {info.value}"
        )
        assert "pickle" in str(info.value) and "json" in str(info.value), (
            f"the message must name both serializers: {info.value}"
        )

    # == failed writes =========================================================
    def test_unserializable_value_leaves_nothing(self, result: Result) -> None:
        with expect_error(SerializationError, "an unpicklable value must raise SerializationError"):
            result.write(_Unpicklable(), location="bad.pkl")
        assert result.exists("bad.pkl") is False, "a failed write must store nothing"
        objects = self.raw_objects(result)
        assert objects == [], (
            "a failed write must leave nothing behind (the open writer must be aborted): "
            f"found {objects}"
        )

    def test_failure_midway_keeps_old_value(self, result: Result) -> None:
        result.write("old", location="keep.pkl")
        before = self.raw_objects(result)
        with expect_error(SerializationError, "a value that fails mid-stream must raise"):
            result.write(_FailsHalfway(), location="keep.pkl")
        back = result.read("keep.pkl").value
        assert back == "old", (
            f"a write that fails half-way must leave the old value in place; read {back!r}"
        )
        after = self.raw_objects(result)
        assert after == before, (
            "a write that fails half-way must leave no partial or temporary object: before "
            f"{before}, after {after}"
        )

    def test_no_temporary_files_left_after_write(self, result: Result) -> None:
        result.write(b"v" * 1000, location="clean/one.pkl")
        objects = self.raw_objects(result)
        own = {"clean/one.pkl", "clean/one.pkl" + RECORD_SUFFIX}
        assert "clean/one.pkl" in objects and set(objects) <= own, (
            "a write must leave the payload (and its record) and nothing else, no temporary "
            f"file ({TEMP_MARKER}...): found {objects}"
        )
        keys = self.raw_list(result)
        assert keys == ["clean/one.pkl"], f"Storage.list must return exactly the keys put: {keys}"

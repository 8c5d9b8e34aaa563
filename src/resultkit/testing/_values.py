"""Contract tests: values survive a round trip; writes and reads return new Results."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import uuid
from typing import Any

import pytest

from ..errors import ResultNotFoundError
from ..results import FormattedLocation, Result
from ..serializers import JSONSerializer, PickleSerializer
from ._support import RawAccess, expect_error

__all__ = ["ValueTests"]

_VALUES = [
    0,
    42,
    -1.5,
    True,
    "",
    "héllo wörld ✓",
    b"",
    b"\x00\xff" * 100,
    [],
    {},
    (1, "two", 3.0),
    {"ключ": 1, "键": [1, 2], "🔑": {"nested": True}},
    {1, 2, 3},
    dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.timezone.utc),
    decimal.Decimal("3.14159265358979323846"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
]


def _value_id(value: Any) -> str:
    return type(value).__name__ + (f"-{len(value)}" if hasattr(value, "__len__") else "")


class ValueTests(RawAccess):
    large_size: int

    # == round trips ==========================================================
    @pytest.mark.parametrize("value", _VALUES, ids=_value_id)
    def test_roundtrip_values(self, result: Result, value: Any) -> None:
        written = result.write(value, location="values/v.pkl")
        back = result.read(written.location).value
        assert back == value and type(back) is type(value), (
            f"read must return the value written: wrote {value!r}, read back {back!r}"
        )

    def test_roundtrip_none_is_stored(self, result: Result) -> None:
        written = result.write(None, location="none.pkl")
        assert result.exists("none.pkl"), "a None value must be stored like any other value"
        back = result.read(written.location).value
        assert back is None, f"read must return the None written; got {back!r}"

    def test_roundtrip_zero_byte_payload(self, result: Result) -> None:
        class Empty(PickleSerializer):
            name = "empty"

            def dump(self, value: Any, stream: Any) -> None:
                pass

            def deserialize(self, data: bytes) -> Any:
                assert data == b"", f"a 0-byte payload must read back empty, got {data[:40]!r}"
                return "was-empty"

        r = result.copy()
        r.serializer = Empty()
        written = r.write("ignored", location="zero.bin")
        assert written.record is not None and written.record.size == 0, (
            f"a 0-byte payload must be stored with a record of size 0; got {written.record}"
        )
        assert r.read("zero.bin").value == "was-empty", "a 0-byte payload must be readable"

    def test_roundtrip_function(self, result: Result) -> None:
        offset = 10
        written = result.write(lambda x: x + offset, location="fn.pkl")
        assert result.read(written.location).value(5) == 15, "a closure must round-trip"

    def test_roundtrip_large_value(self, result: Result) -> None:
        value = bytes(range(256)) * (self.large_size // 256)
        written = result.write(value, location="large/blob.pkl")
        assert written.record is not None and written.record.size > self.large_size, (
            f"a {len(value)}-byte value must be stored whole; the record says "
            f"{written.record and written.record.size} bytes"
        )
        back = result.read(written.location).value
        assert len(back) == len(value) and back == value, (
            f"a large value must read back byte for byte: wrote {len(value)} bytes, read "
            f"{len(back)}"
        )

    def test_roundtrip_unicode_location(self, result: Result) -> None:
        written = result.write("v", location="données/ファイル-1.pkl")
        assert result.exists("données/ファイル-1.pkl"), "non-ASCII keys must be stored as given"
        assert result.read(written.location).value == "v", "non-ASCII keys must read back"

    def test_roundtrip_json_serializer(self, result: Result) -> None:
        r = result.copy()
        r.serializer = JSONSerializer()
        value = {"when": dt.datetime(2026, 1, 2, 3, 4, 5), "amount": decimal.Decimal("1.10")}
        written = r.write(value, location="data.json")
        back = r.read(written.location).value
        assert back == value, f"the JSON serializer's value must round-trip: got {back!r}"
        stored = self.raw_read(result, written.location)
        assert b'"amount"' in stored, (
            f"the payload must be the serializer's bytes, unchanged; got {stored[:80]!r}"
        )

    # == write semantics ======================================================
    def test_write_returns_new_result_and_leaves_template_alone(self, result: Result) -> None:
        template = result.copy()
        template.location = "{x}.pkl"
        written = template.write("v", x="one")
        assert written is not template, "write must return a new Result"
        assert template.location == "{x}.pkl" and template.value is None, (
            f"write must not change the Result it is called on; it now has location "
            f"{template.location!r} and value {template.value!r}"
        )
        assert written.value == "v", f"the returned Result must hold the value; {written.value!r}"

    def test_write_location_is_canonical_url_under_root(self, result: Result) -> None:
        written = result.write(1, location="sub/c.pkl")
        root = str(getattr(result, "root_url", "")).rstrip("/")
        loc = written.location
        assert isinstance(loc, FormattedLocation) and "://" in loc, (
            f"write must return a canonical URL (a FormattedLocation); got {loc!r}"
        )
        assert loc.endswith("sub/c.pkl") and loc.startswith(root), (
            f"the canonical location must be the root URL {root!r} plus the key; got {loc!r}"
        )

    def test_overwrite_replaces_value(self, result: Result) -> None:
        result.write("first", location="o.pkl")
        first = result.read("o.pkl").value
        result.write("second", location="o.pkl")
        second = result.read("o.pkl").value
        assert (first, second) == ("first", "second"), (
            "put must replace the stored pair and get must return the latest one (no stale "
            f"cache): read {first!r} then, after overwriting, {second!r}"
        )

    def test_overwrite_with_smaller_value_leaves_no_tail(self, result: Result) -> None:
        result.write(b"x" * 100_000, location="s.pkl")
        result.write(b"y", location="s.pkl")
        back = result.read("s.pkl").value
        assert back == b"y", f"put must replace the whole payload; read {back[:20]!r}..."

    def test_write_records_serializer_size_and_time(self, result: Result) -> None:
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
        written = result.write([1, 2, 3], location="r.pkl")
        rec = written.record
        assert rec is not None, "write must return the integrity record it stored"
        stored = len(self.raw_read(result, written.location))
        assert (rec.serializer, rec.size) == ("pickle", stored), (
            f"the record must name the serializer and the stored size; got {rec.serializer!r} "
            f"and {rec.size} for a {stored}-byte payload"
        )
        assert rec.written_at >= before, f"the record's time must be now; got {rec.written_at}"
        assert result.read("r.pkl").record == rec, "read must return the record write stored"

    def test_default_location_is_unique(self, result: Result) -> None:
        a = result.write(1)
        b = result.write(2)
        assert a.location != b.location, f"default locations must differ; both {a.location}"
        assert (result.read(a.location).value, result.read(b.location).value) == (1, 2), (
            "two writes at default locations must both be readable"
        )

    def test_payload_bytes_are_the_serializer_bytes(self, result: Result) -> None:
        written = result.write({"k": "v"}, location="plain.pkl")
        stored = self.raw_read(result, written.location)
        assert pickle.loads(stored) == {"k": "v"}, (
            f"get must return the bytes put, unchanged (a plain pickle); got {stored[:80]!r}"
        )

    def test_metadata_is_stored_with_the_payload(self, result: Result) -> None:
        written = result.write("meta", location="m/meta.pkl")
        assert written.record is not None, "write must return the record it stored"
        expected = written.record.to_metadata()
        head = self.storage_of(result).head(self.raw_key(result, written.location))
        got = self.raw_get(result, written.location)
        assert head is not None and expected.items() <= dict(head).items(), (
            "head must return the metadata put with the payload, every key and value "
            f"unchanged; put {expected}, head returned {head}"
        )
        assert got is not None and expected.items() <= got[1].items(), (
            "get must return the metadata put with the payload, every key and value "
            f"unchanged; put {expected}, get returned {got and got[1]}"
        )

    # == reading ==============================================================
    def test_read_missing_raises_not_found(self, result: Result) -> None:
        must = "get and head must return None for a key never written (read: ResultNotFoundError)"
        with expect_error(ResultNotFoundError, must) as info:
            result.read("missing/thing.pkl")
        assert "missing/thing.pkl" in str(info.value), (
            f"the not-found error must name the location; got {info.value}"
        )
        assert isinstance(info.value, FileNotFoundError), "not found must be a FileNotFoundError"
        head = self.storage_of(result).head("missing/thing.pkl")
        assert head is None, f"head must return None for a key never written; got {head!r}"

    def test_read_relative_and_canonical_agree(self, result: Result) -> None:
        written = result.write("same", location="rc/x.pkl")
        a = result.read("rc/x.pkl")
        b = result.read(written.location)
        assert a.value == b.value == "same" and a.location == b.location == written.location, (
            "a relative location and its canonical URL must name the same value: "
            f"{a.location!r} -> {a.value!r}, {b.location!r} -> {b.value!r}"
        )

    def test_read_returns_new_result(self, result: Result) -> None:
        result.write(5, location="n.pkl")
        got = result.read("n.pkl")
        assert got is not result and result.value is None and got.value == 5, (
            "read must return a new Result holding the value and leave the template alone"
        )

    def test_read_after_write_from_another_instance(self, result: Result) -> None:
        written = result.write("shared", location="shared.pkl")
        other = pickle.loads(pickle.dumps(result))
        back = other.read(written.location).value
        assert back == "shared", (
            f"a copy of the Result made by pickling must read what the original wrote; {back!r}"
        )

    def test_repr_names_class(self, result: Result) -> None:
        assert type(result).__name__ in repr(result), f"repr must name the class: {result!r}"

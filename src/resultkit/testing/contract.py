# mypy: disable-error-code="union-attr,operator"
"""The backend contract suite: what every Result backend must do.

Subclass :class:`ResultContract` in a test module and override the
``result`` fixture to return a fresh, empty Result of your backend. Every
built-in backend (Local, Memory, FSSpec, S3, GCS, Azure) passes this suite
unchanged.

Tests that must look underneath the Result (corrupting a payload, listing
leftovers) go through :meth:`ResultContract.raw_write`,
:meth:`ResultContract.raw_read` and :meth:`ResultContract.raw_list`, which
use ``result.fs`` by default; a backend that is not an
:class:`~resultkit.results.FSSpecResult` overrides them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import threading
import uuid
from typing import Any

import cloudpickle
import pytest

from ..errors import (
    MissingTemplateKeyError,
    ResultCorruptError,
    ResultError,
    ResultNotFoundError,
    SerializationError,
    SerializerMismatchError,
    TemplateError,
    UnsafeLocationError,
)
from ..results import FormattedLocation, Result
from ..serializers import JSONSerializer, PickleSerializer

__all__ = ["ResultContract"]

_RECORD_SUFFIX = ".rkmeta"
_TEMP_MARKER = ".rktmp-"


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("this object refuses to be pickled")


class _FailsHalfway:
    """Pickles a large chunk, then fails: a write that dies mid-stream."""

    def __reduce__(self) -> Any:
        return (list, ([b"x" * 4_000_000, _Unpicklable()],))


@pytest.mark.result_contract
class ResultContract:
    """Base class of the contract suite; override :meth:`result`."""

    #: Size of the "large value" round trip; backends may lower it for slow stores.
    large_size: int = 50 * 2**20

    @pytest.fixture
    def result(self) -> Result:
        raise NotImplementedError(
            "override the `result` fixture to return a fresh, empty Result of your backend"
        )

    # -- raw access hooks ----------------------------------------------------
    def raw_path(self, result: Result, location: Any) -> str:
        location = str(location)
        return location.split("://", 1)[1] if "://" in location else location

    def raw_write(self, result: Result, location: Any, data: bytes) -> None:
        result.fs.pipe_file(self.raw_path(result, location), data)  # type: ignore[attr-defined]

    def raw_read(self, result: Result, location: Any) -> bytes:
        return result.fs.cat_file(self.raw_path(result, location))  # type: ignore[attr-defined]

    def raw_delete(self, result: Result, location: Any) -> None:
        result.fs.rm_file(self.raw_path(result, location))  # type: ignore[attr-defined]

    def raw_list(self, result: Result) -> list[str]:
        """Every object name under the result's root (recursively)."""
        fs = result.fs  # type: ignore[attr-defined]
        root = self.raw_path(result, result.root_url)  # type: ignore[attr-defined]
        fs.invalidate_cache()
        try:
            return [str(p) for p in fs.find(root)]
        except FileNotFoundError:
            return []

    # == round trips ==========================================================
    @pytest.mark.parametrize(
        "value",
        [
            0,
            42,
            -1.5,
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
        ],
        ids=lambda v: type(v).__name__ + (f"-{len(v)}" if hasattr(v, "__len__") else ""),
    )
    def test_roundtrip_values(self, result: Result, value: Any) -> None:
        written = result.write(value, location="values/v.pkl")
        assert result.read(written.location).value == value

    def test_roundtrip_none_is_stored(self, result: Result) -> None:
        written = result.write(None, location="none.pkl")
        assert result.exists("none.pkl")
        assert result.read(written.location).value is None

    def test_roundtrip_zero_byte_payload(self, result: Result) -> None:
        class Empty(PickleSerializer):
            name = "empty"

            def dump(self, value: Any, stream: Any) -> None:
                pass

            def deserialize(self, data: bytes) -> Any:
                assert data == b""
                return "was-empty"

        r = result.copy()
        r.serializer = Empty()
        written = r.write("ignored", location="zero.bin")
        assert written.record is not None and written.record.size == 0
        assert r.read("zero.bin").value == "was-empty"

    def test_roundtrip_function(self, result: Result) -> None:
        offset = 10
        written = result.write(lambda x: x + offset, location="fn.pkl")
        assert result.read(written.location).value(5) == 15

    def test_roundtrip_large_value(self, result: Result) -> None:
        value = bytes(range(256)) * (self.large_size // 256)
        written = result.write(value, location="large/blob.pkl")
        assert written.record is not None and written.record.size > self.large_size
        back = result.read(written.location).value
        assert len(back) == len(value) and back == value

    def test_roundtrip_unicode_location(self, result: Result) -> None:
        written = result.write("v", location="données/ファイル-1.pkl")
        assert result.exists("données/ファイル-1.pkl")
        assert result.read(written.location).value == "v"

    def test_roundtrip_json_serializer(self, result: Result) -> None:
        r = result.copy()
        r.serializer = JSONSerializer()
        value = {"when": dt.datetime(2026, 1, 2, 3, 4, 5), "amount": decimal.Decimal("1.10")}
        written = r.write(value, location="data.json")
        assert r.read(written.location).value == value
        assert b'"amount"' in self.raw_read(result, written.location)

    # == exists =================================================================
    def test_exists_false_before_write(self, result: Result) -> None:
        assert result.exists("never-written.pkl") is False

    def test_exists_true_after_write(self, result: Result) -> None:
        result.write(1, location="a/b.pkl")
        assert result.exists("a/b.pkl") is True

    def test_exists_is_per_key(self, result: Result) -> None:
        result.write(1, location="k1.pkl")
        assert result.exists("k2.pkl") is False

    def test_exists_false_for_a_folder_prefix(self, result: Result) -> None:
        result.write(1, location="folder/inner.pkl")
        assert result.exists("folder") is False

    def test_exists_with_template_keys(self, result: Result) -> None:
        r = result.copy()
        r.location = "{flow}/{n}.pkl"
        r.write(1, flow="f", n=3)
        assert r.exists(flow="f", n=3) and not r.exists(flow="f", n=4)

    def test_exists_with_canonical_location(self, result: Result) -> None:
        written = result.write(1, location="c.pkl")
        assert result.exists(written.location)

    # == write semantics ==========================================================
    def test_write_returns_new_result_and_leaves_template_alone(self, result: Result) -> None:
        template = result.copy()
        template.location = "{x}.pkl"
        written = template.write("v", x="one")
        assert written is not template
        assert template.location == "{x}.pkl" and template.value is None
        assert written.value == "v"

    def test_write_location_is_canonical_url_under_root(self, result: Result) -> None:
        written = result.write(1, location="sub/c.pkl")
        assert "://" in written.location
        assert written.location.endswith("sub/c.pkl")
        assert isinstance(written.location, FormattedLocation)

    def test_overwrite_replaces_value(self, result: Result) -> None:
        result.write("first", location="o.pkl")
        result.write("second", location="o.pkl")
        assert result.read("o.pkl").value == "second"

    def test_overwrite_with_smaller_value_leaves_no_tail(self, result: Result) -> None:
        result.write(b"x" * 100_000, location="s.pkl")
        result.write(b"y", location="s.pkl")
        assert result.read("s.pkl").value == b"y"

    def test_write_records_serializer_size_and_time(self, result: Result) -> None:
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
        written = result.write([1, 2, 3], location="r.pkl")
        rec = written.record
        assert rec is not None
        assert rec.serializer == "pickle"
        assert rec.size == len(self.raw_read(result, written.location))
        assert rec.written_at >= before
        assert result.read("r.pkl").record == rec

    def test_default_location_is_unique(self, result: Result) -> None:
        a = result.write(1)
        b = result.write(2)
        assert a.location != b.location
        assert result.read(a.location).value == 1 and result.read(b.location).value == 2

    def test_payload_bytes_are_the_serializer_bytes(self, result: Result) -> None:
        written = result.write({"k": "v"}, location="plain.pkl")
        assert pickle.loads(self.raw_read(result, written.location)) == {"k": "v"}

    # == reading ================================================================
    def test_read_missing_raises_not_found(self, result: Result) -> None:
        with pytest.raises(ResultNotFoundError) as info:
            result.read("missing/thing.pkl")
        assert "missing/thing.pkl" in str(info.value)
        assert isinstance(info.value, FileNotFoundError)

    def test_read_relative_and_canonical_agree(self, result: Result) -> None:
        written = result.write("same", location="rc/x.pkl")
        a = result.read("rc/x.pkl")
        b = result.read(written.location)
        assert a.value == b.value == "same" and a.location == b.location == written.location

    def test_read_returns_new_result(self, result: Result) -> None:
        result.write(5, location="n.pkl")
        got = result.read("n.pkl")
        assert got is not result and result.value is None and got.value == 5

    def test_read_after_write_from_another_instance(self, result: Result) -> None:
        written = result.write("shared", location="shared.pkl")
        other = pickle.loads(pickle.dumps(result))
        assert other.read(written.location).value == "shared"

    # == templating ===============================================================
    def test_template_keywords_in_write(self, result: Result) -> None:
        written = result.write(1, location="k/{x}/{y}.pkl", x="a", y=2)
        assert written.location.endswith("k/a/2.pkl")

    def test_template_date_format_spec(self, result: Result) -> None:
        r = result.copy()
        r.location = "{date:%A}/{task_name}.txt"
        d = dt.datetime(2026, 11, 23)
        written = r.write(1, date=d, task_name="t")
        assert written.location.endswith("Monday/t.txt")

    def test_callable_location(self, result: Result) -> None:
        r = result.copy()
        r.location = lambda **kw: f"call/{kw['n'] * 2}.pkl"
        written = r.write("c", n=21)
        assert written.location.endswith("call/42.pkl")
        assert r.read(n=21).value == "c"

    def test_format_returns_formatted_copy(self, result: Result) -> None:
        r = result.copy()
        r.location = "{a}-{b}.pkl"
        f = r.format(a=1, b=2)
        assert f.location.endswith("1-2.pkl") and r.location == "{a}-{b}.pkl"
        written = f.write("v")
        assert written.location == f.location

    def test_location_formatted_exactly_once(self, result: Result) -> None:
        written = result.write(1, location="once/{x}.pkl", x="{not_a_key}")
        assert written.location.endswith("once/{not_a_key}.pkl")
        assert result.read(written.location).value == 1
        assert result.exists(written.location)

    def test_missing_key_names_key_and_given_keys(self, result: Result) -> None:
        with pytest.raises(MissingTemplateKeyError) as info:
            result.write(1, location="{task_name}/{day}.pkl", task_name="t")
        msg = str(info.value)
        assert "'day'" in msg and "task_name" in msg
        assert info.value.key == "day" and info.value.given == ["task_name"]

    def test_positional_field_is_a_template_error(self, result: Result) -> None:
        with pytest.raises(TemplateError, match="positional"):
            result.write(1, location="{}.pkl")

    def test_escaped_braces_are_literal(self, result: Result) -> None:
        written = result.write(1, location="lit/{{x}}-{y}.pkl", y=1)
        assert written.location.endswith("lit/{x}-1.pkl")

    # == unsafe locations ========================================================
    @pytest.mark.parametrize(
        "location",
        [
            "../escape.pkl",
            "a/../../escape.pkl",
            "/etc/passwd",
            "\\\\server\\share",
            "C:/x.pkl",
            "c:\\x.pkl",
            "nul\x00byte.pkl",
            "",
            "folder/",
            "..",
            "x.pkl.rkmeta",
        ],
    )
    def test_unsafe_locations_refused(self, result: Result, location: str) -> None:
        with pytest.raises(UnsafeLocationError):
            result.write(1, location=location)
        with pytest.raises(UnsafeLocationError):
            result.exists(location)

    def test_unsafe_value_substituted_into_template(self, result: Result) -> None:
        with pytest.raises(UnsafeLocationError, match=r"\.\."):
            result.write(1, location="safe/{name}.pkl", name="../../../etc/passwd")
        assert self.raw_list(result) == []

    def test_url_of_other_storage_refused(self, result: Result) -> None:
        other = "ftp://elsewhere/x.pkl"
        with pytest.raises(UnsafeLocationError):
            result.read(other)

    def test_canonical_url_outside_root_refused(self, result: Result) -> None:
        written = result.write(1, location="inside.pkl")
        proto, path = written.location.split("://", 1)
        root = path[: -len("inside.pkl")].rstrip("/")
        if not root:  # the root is the whole filesystem: only '..' leaves it
            with pytest.raises(UnsafeLocationError):
                result.read(f"{proto}://../elsewhere.pkl")
            return
        # A sibling folder whose name starts with the root's name is still outside.
        with pytest.raises(UnsafeLocationError, match="outside"):
            result.read(f"{proto}://{root}-other/x.pkl")
        with pytest.raises(UnsafeLocationError, match="outside"):
            result.read(f"{proto}://{root.rsplit('/', 1)[0]}/elsewhere-{uuid.uuid4().hex}.pkl")

    # == integrity ================================================================
    def test_corrupted_payload_detected(self, result: Result) -> None:
        written = result.write({"amount": 100}, location="c/p.pkl")
        data = bytearray(self.raw_read(result, written.location))
        data[len(data) // 2] ^= 0xFF
        self.raw_write(result, written.location, bytes(data))
        with pytest.raises(ResultCorruptError) as info:
            result.read(written.location)
        assert "c/p.pkl" in str(info.value)

    def test_same_size_substitution_detected(self, result: Result) -> None:
        written = result.write(1000, location="sub.pkl")
        other = pickle.dumps(9999, protocol=5)
        assert len(other) == len(self.raw_read(result, written.location))
        self.raw_write(result, written.location, other)
        with pytest.raises(ResultCorruptError):
            result.read(written.location)

    def test_truncated_payload_detected(self, result: Result) -> None:
        written = result.write(b"z" * 10_000, location="t.pkl")
        self.raw_write(result, written.location, self.raw_read(result, written.location)[:100])
        with pytest.raises(ResultCorruptError):
            result.read(written.location)

    def test_missing_record_is_corrupt_not_a_value(self, result: Result) -> None:
        written = result.write("v", location="norecord.pkl")
        self.raw_delete(result, str(written.location) + _RECORD_SUFFIX)
        with pytest.raises(ResultCorruptError, match="integrity record"):
            result.read(written.location)

    def test_garbled_record_is_corrupt(self, result: Result) -> None:
        written = result.write("v", location="badrecord.pkl")
        self.raw_write(result, str(written.location) + _RECORD_SUFFIX, b"{not json")
        with pytest.raises(ResultCorruptError):
            result.read(written.location)

    def test_serializer_mismatch_named(self, result: Result) -> None:
        written = result.write([1, 2], location="mismatch.pkl")
        r = result.copy()
        r.serializer = JSONSerializer()
        with pytest.raises(SerializerMismatchError) as info:
            r.read(written.location)
        assert "pickle" in str(info.value) and "json" in str(info.value)
        assert info.value.written_by == "pickle" and info.value.reading_with == "json"

    def test_errors_share_one_hierarchy(self, result: Result) -> None:
        for call in (
            lambda: result.read("nope.pkl"),
            lambda: result.write(1, location="../x"),
            lambda: result.write(1, location="{missing}"),
        ):
            with pytest.raises(ResultError):
                call()

    # == failed writes ==========================================================
    def test_unserializable_value_leaves_nothing(self, result: Result) -> None:
        with pytest.raises(SerializationError) as info:
            result.write(_Unpicklable(), location="bad.pkl")
        assert "pickle" in str(info.value).lower()
        assert result.exists("bad.pkl") is False
        assert self.raw_list(result) == []

    def test_failure_midway_keeps_old_value(self, result: Result) -> None:
        result.write("old", location="keep.pkl")
        with pytest.raises(SerializationError):
            result.write(_FailsHalfway(), location="keep.pkl")
        assert result.read("keep.pkl").value == "old"
        leftovers = [p for p in self.raw_list(result) if _TEMP_MARKER in p]
        assert leftovers == []

    def test_no_temporary_files_left_after_write(self, result: Result) -> None:
        result.write(b"v" * 1000, location="clean/one.pkl")
        names = [p.rsplit("/", 1)[-1] for p in self.raw_list(result)]
        assert sorted(names) == ["one.pkl", "one.pkl" + _RECORD_SUFFIX]

    # == concurrency ================================================================
    def test_concurrent_writers_different_keys(self, result: Result) -> None:
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                result.write({"i": i}, location=f"many/{i}.pkl")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [result.read(f"many/{i}.pkl").value for i in range(16)] == [
            {"i": i} for i in range(16)
        ]

    def test_concurrent_writers_same_key(self, result: Result) -> None:
        values = [bytes([i]) * (50_000 + i) for i in range(12)]
        errors: list[BaseException] = []

        def work(v: bytes) -> None:
            try:
                result.write(v, location="contended.pkl")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(v,)) for v in values]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert result.read("contended.pkl").value in values

    def test_reader_never_sees_partial_value(self, result: Result) -> None:
        old = b"o" * 1000
        new = b"n" * (8 * 2**20)
        result.write(old, location="big.pkl")
        seen: list[Any] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                try:
                    seen.append(len(result.read("big.pkl").value))
                except ResultNotFoundError:  # pragma: no cover - allowed, never partial
                    seen.append("missing")

        t = threading.Thread(target=reader)
        t.start()
        try:
            for _ in range(3):
                result.write(new, location="big.pkl")
                result.write(old, location="big.pkl")
        finally:
            stop.set()
            t.join()
        assert seen, "the reader never completed a read"
        assert set(seen) <= {len(old), len(new), "missing"}

    # == shipping to workers ========================================================
    def test_pickled_result_works(self, result: Result) -> None:
        template = result.copy()
        template.location = "{k}.pkl"
        clone = pickle.loads(pickle.dumps(template))
        written = clone.write("from-clone", k="shipped")
        assert template.read(k="shipped").value == "from-clone"
        assert written.location == template.format(k="shipped").location

    def test_cloudpickled_written_result_keeps_value(self, result: Result) -> None:
        written = result.write({"v": 1}, location="cp.pkl")
        clone = cloudpickle.loads(cloudpickle.dumps(written))
        assert clone.value == {"v": 1} and clone.location == written.location
        assert clone.read().value == {"v": 1}

    def test_repr_names_class(self, result: Result) -> None:
        assert type(result).__name__ in repr(result)

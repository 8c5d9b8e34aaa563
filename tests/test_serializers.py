"""Serializers on their own: names, round trips, streaming and clear errors."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import uuid

import numpy as np
import pandas as pd
import pytest

from resultkit.errors import ConfigurationError, SerializationError
from resultkit.serializers import (
    CompressedSerializer,
    DateTimeSerializer,
    JSONSerializer,
    PandasSerializer,
    PickleSerializer,
    Serializer,
)


def test_pickle_roundtrip_closure_and_numpy():
    s = PickleSerializer()
    arr = np.arange(1000, dtype=np.float64)
    back = s.deserialize(s.serialize({"f": lambda x: x * 2, "a": arr}))
    assert back["f"](4) == 8 and np.array_equal(back["a"], arr)


def test_pickle_dump_streams_into_file_without_whole_copy():
    """Protocol 5 writes a large array's buffer straight to the stream."""
    arr = np.ones(20 * 2**20 // 8)
    writes: list[int] = []

    class Recorder(io.BytesIO):
        def write(self, data):  # type: ignore[override]
            writes.append(memoryview(data).nbytes)
            return super().write(data)

    out = Recorder()
    PickleSerializer().dump(arr, out)
    assert max(writes) >= arr.nbytes  # the buffer went out in one direct write
    assert np.array_equal(PickleSerializer().deserialize(out.getvalue()), arr)


def test_pickle_bad_protocol():
    with pytest.raises(ConfigurationError, match="protocol"):
        PickleSerializer(protocol=99)


def test_json_roundtrips_documented_types():
    s = JSONSerializer()
    value = {
        "dt": dt.datetime(2026, 11, 23, 1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "d": dt.date(2026, 1, 1),
        "t": dt.time(4, 5, 6),
        "td": dt.timedelta(hours=1, microseconds=5),
        "dec": decimal.Decimal("0.1000000000000000055511151231257827"),
        "u": uuid.uuid4(),
        "b": b"\x00\x01",
        "text": "ünïcode",
    }
    assert s.deserialize(s.serialize(value)) == value


def test_json_tuple_becomes_list_and_set_is_refused():
    s = JSONSerializer()
    assert s.deserialize(s.serialize({"t": (1, 2)})) == {"t": [1, 2]}
    with pytest.raises(SerializationError, match="set"):
        s.serialize({1, 2})


def test_json_bad_payload_names_serializer():
    with pytest.raises(SerializationError, match="JSONSerializer"):
        JSONSerializer().deserialize(b"{nope")


def test_datetime_serializer():
    s = DateTimeSerializer()
    when = dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.timezone.utc)
    assert s.serialize(when) == b"2026-11-23T08:30:00+00:00"
    assert s.deserialize(s.serialize(when)) == when
    with pytest.raises(SerializationError, match="datetime"):
        s.serialize("not a datetime")


@pytest.mark.parametrize("file_type", ["parquet", "feather", "orc", "pickle", "csv", "json"])
def test_pandas_roundtrip(file_type):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    kwargs = {"index": False} if file_type == "csv" else {}
    s = PandasSerializer(file_type, serialize_kwargs=kwargs)
    assert s.name == f"pandas:{file_type}"
    back = s.deserialize(s.serialize(df))
    pd.testing.assert_frame_equal(back.reset_index(drop=True), df, check_dtype=False)


def test_pandas_unknown_type_lists_valid_ones():
    with pytest.raises(ConfigurationError, match="parquet") as info:
        PandasSerializer("xlsx-ish")
    assert "csv" in str(info.value)


def test_pandas_refuses_non_frame():
    with pytest.raises(SerializationError, match="DataFrame"):
        PandasSerializer("parquet").serialize([1, 2])


@pytest.mark.parametrize("fmt", ["zlib", "gzip", "bz2", "lzma", "zstd", "lz4"])
def test_compressed_roundtrip_and_smaller(fmt):
    s = CompressedSerializer(PickleSerializer(), format=fmt)
    value = {"text": "abc" * 10_000}
    data = s.serialize(value)
    assert len(data) < len(PickleSerializer().serialize(value)) / 5
    assert s.deserialize(data) == value
    assert s.name == f"compressed:{fmt}/pickle"


def test_compressed_streams_inner_dump():
    s = CompressedSerializer(JSONSerializer(), format="gzip")
    buf = io.BytesIO()
    s.dump([1, 2, 3], buf)
    import gzip

    assert gzip.decompress(buf.getvalue()) == b"[1, 2, 3]"


def test_compressed_unknown_format_lists_valid_ones():
    with pytest.raises(ConfigurationError, match="zstd"):
        CompressedSerializer(format="rar")


def test_compressed_garbage_is_serialization_error():
    with pytest.raises(SerializationError, match="compressed:zlib/pickle"):
        CompressedSerializer().deserialize(b"definitely not zlib")


def test_names_are_distinct_and_stable():
    names = [
        PickleSerializer().name,
        JSONSerializer().name,
        DateTimeSerializer().name,
        PandasSerializer("csv").name,
        PandasSerializer("parquet").name,
        CompressedSerializer().name,
        CompressedSerializer(JSONSerializer(), "zstd").name,
    ]
    assert len(set(names)) == len(names)
    assert names[0] == "pickle" and names[1] == "json"


def test_custom_serializer_subclass():
    class Upper(Serializer):
        name = "upper"

        def serialize(self, value):
            return value.upper().encode()

        def deserialize(self, data):
            return data.decode()

    assert Upper().deserialize(Upper().serialize("abc")) == "ABC"
    assert Upper() == Upper() and Upper() != JSONSerializer()

"""NumpySerializer: .npy payloads any tool opens, verified before numpy sees a byte."""

from __future__ import annotations

import io

import numpy as np
import pytest

from resultkit.errors import ResultCorruptError, SerializationError
from resultkit.results import LocalResult, MemoryResult
from resultkit.serializers import NumpySerializer, PickleSerializer

ARRAYS = {
    "c-order": np.arange(12.0).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided": np.arange(48).reshape(6, 8)[::2, 1::3],
    "zero-d": np.array(5.0),
    "empty": np.zeros((0, 3), dtype=np.int16),
    "big-endian": np.arange(5, dtype=">i4"),
    "structured": np.array([(1, 2.0), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "datetime": np.array(["2026-01-01", "2026-11-25"], dtype="M8[D]"),
    "unicode": np.array(["ab", "c"]),
    "bool-3d": np.arange(24).reshape(2, 3, 4) % 3 == 0,
}


class CountingNumpy(NumpySerializer):
    """Counts what reaches the deserializer."""

    calls = 0

    def deserialize(self, data):
        CountingNumpy.calls += 1
        return super().deserialize(data)


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_round_trip_and_numpy_load_opens_the_payload(tmp_path, name):
    value = ARRAYS[name]
    r = LocalResult(dir=tmp_path, serializer=NumpySerializer())
    r.write(value, location="a.npy")
    back = r.read("a.npy").value
    assert back.dtype == value.dtype and back.shape == value.shape
    assert np.array_equal(back, value)
    assert back.flags.writeable
    other = np.load(tmp_path / "a.npy")  # another tool opens it as is
    assert other.dtype == value.dtype and np.array_equal(other, value)


def test_a_large_array_is_made_in_the_buffer_it_was_read_into(tmp_path):
    value = np.random.default_rng(1).random(2**20)  # 8 MB
    r = LocalResult(dir=tmp_path, serializer=NumpySerializer())
    back = r.write(value, location="a.npy").read("a.npy").value
    assert np.array_equal(back, value)
    assert back.base is not None and back.base.dtype == np.uint8  # no copy after the read
    assert back.flags.aligned and back.flags.writeable


def test_bytes_from_any_storage_give_a_writable_array():
    s = NumpySerializer()
    back = s.deserialize(s.serialize(np.arange(4)))  # read-only bytes in
    back[0] = 7
    assert back.tolist() == [7, 1, 2, 3]
    back = MemoryResult(serializer=s).write(np.arange(3), location="m.npy").read("m.npy").value
    assert back.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "value, why",
    [
        (np.array([{"a": 1}, None], dtype=object), "holds Python objects"),
        (np.zeros(2, dtype=[("a", "i4"), ("b", "O")]), "holds Python objects"),
        (np.ma.masked_array([1, 2], mask=[0, 1]), "subclass of numpy.ndarray"),
        ([1, 2, 3], "list is not one"),
    ],
)
def test_values_npy_cannot_hold_plainly_are_refused_before_anything_is_written(
    tmp_path, value, why
):
    r = LocalResult(dir=tmp_path, serializer=NumpySerializer())
    with pytest.raises(SerializationError, match=why):
        r.write(value, location="a.npy")
    assert list(tmp_path.iterdir()) == []


def test_a_payload_with_a_pickled_object_array_is_refused_without_unpickling(tmp_path):
    out = io.BytesIO()
    np.save(out, np.array([print], dtype=object), allow_pickle=True)  # as another tool could
    with pytest.raises(SerializationError, match="Python objects"):
        NumpySerializer().deserialize(out.getvalue())


@pytest.mark.parametrize("where", ["header", "data", "truncated", "appended"])
def test_damage_is_detected_before_the_deserializer_sees_a_byte(tmp_path, where):
    r = LocalResult(dir=tmp_path, serializer=CountingNumpy())
    r.write(np.arange(1000.0), location="a.npy")
    path = tmp_path / "a.npy"
    data = bytearray(path.read_bytes())
    if where == "header":
        data[20] ^= 0x01
    elif where == "data":
        data[-5] ^= 0x01
    elif where == "truncated":
        del data[-8:]
    else:
        data += b"\0" * 8
    path.write_bytes(bytes(data))
    CountingNumpy.calls = 0
    with pytest.raises(ResultCorruptError):
        r.read("a.npy")
    assert CountingNumpy.calls == 0


def test_a_header_that_disagrees_with_the_size_is_an_error_not_a_short_array():
    s = NumpySerializer()
    payload = s.serialize(np.arange(10, dtype=np.int64))
    with pytest.raises(SerializationError, match="bytes follow it"):
        s.deserialize(payload[:-8])


def test_large_pickle_reads_go_through_mapped_pages(tmp_path):
    value = {"blob": np.arange(2**20), "name": "x"}  # 8 MB: above the mapping threshold
    r = LocalResult(dir=tmp_path, serializer=PickleSerializer())
    back = r.write(value, location="p.pkl").read("p.pkl").value
    assert back["name"] == "x" and np.array_equal(back["blob"], value["blob"])
    assert r.read_bytes("p.pkl")[0] == (tmp_path / "p.pkl").read_bytes()

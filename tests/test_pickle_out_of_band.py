"""PickleSerializer's out-of-band layout: large buffers read in place, plain pickles as before.

A value holding a buffer of 1 MB or more is a standard pickle stream plus
its buffers laid out after it; every other value is a plain pickle. The two
can never be taken for each other, and a damaged table is a clear
SerializationError, never a view out of range.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import pickletools
import random
import struct
import uuid

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from resultkit.errors import SerializationError
from resultkit.results import LocalResult, MemoryResult, S3Result
from resultkit.serializers import CompressedSerializer, PickleSerializer, load_pickle
from resultkit.serializers._pickle_layout import ALIGN, HEADER, LayoutWriter, is_layout

MB = 1 << 20


class RecordingPickle(PickleSerializer):
    """Keeps every buffer a read allocated, to find where the arrays' memory lies."""

    allocated: list[object] = []

    def allocate(self, size):
        buf = super().allocate(size)
        RecordingPickle.allocated.append(buf)
        return buf


def address(buf) -> int:
    return int(np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0])


def lies_in(array: np.ndarray, buf) -> bool:
    """Whether ``array``'s memory is inside ``buf`` (no copy was made after the read)."""
    start = int(array.__array_interface__["data"][0])
    base = address(buf)
    return base <= start and start + array.nbytes <= base + len(buf)


ARRAYS = {
    "c-order": np.random.default_rng(0).random((512, 1024)),  # 4 MB
    "fortran": np.asfortranarray(np.arange(300_000, dtype=np.int64).reshape(600, 500)),
    "int8": np.arange(3 * MB, dtype=np.uint8),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_large_arrays_are_read_in_place_writable_and_equal(tmp_path, name):
    value = ARRAYS[name]
    RecordingPickle.allocated = []
    r = LocalResult(dir=tmp_path, serializer=RecordingPickle())
    r.write({"x": value, "label": name}, location="a.pkl")
    assert (tmp_path / "a.pkl").read_bytes().startswith(HEADER)
    back = r.read("a.pkl").value
    x = back["x"]
    assert back["label"] == name and x.dtype == value.dtype and x.shape == value.shape
    assert np.array_equal(x, value)
    assert x.flags.f_contiguous == value.flags.f_contiguous
    assert x.flags.writeable and x.flags.aligned
    assert int(x.__array_interface__["data"][0]) % ALIGN == 0
    [buf] = RecordingPickle.allocated
    assert lies_in(x, buf)  # made in the verified buffer: no copy after the read
    x[0] = 7  # users mutate what they read
    assert x.flat[0] == 7


SMALL_VALUES = {
    "zero-d": np.array(5.0),
    "empty": np.zeros((0, 3), dtype=np.int16),
    "objects": np.array([{"a": 1}, None, "s"] * 200_000, dtype=object),  # stays in band
    "strided": np.arange(2 * MB, dtype=np.int64)[::2],  # numpy copies it in band
    "small": np.arange(1000),
    "bytes": b"x" * (2 * MB),  # bytes are pickled in band
    "dict": {"rows": list(range(100))},
}


@pytest.mark.parametrize("name", sorted(SMALL_VALUES))
def test_values_without_a_large_contiguous_buffer_are_plain_pickles_byte_for_byte(name):
    value = SMALL_VALUES[name]
    data = PickleSerializer().serialize(value)
    assert data == cloudpickle.dumps(value, protocol=5)
    out = io.BytesIO()
    PickleSerializer().dump(value, out)
    assert out.getvalue() == data
    back = pickle.loads(data)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape
        assert (back == value).all()
    else:
        assert back == value


def test_remote_reads_make_the_arrays_in_their_verified_buffer_too(moto_server):
    prefix = uuid.uuid4().hex
    r = S3Result("rk-oob", prefix=prefix, endpoint_url=moto_server.url)
    with contextlib.suppress(FileExistsError):
        r.fs.mkdir("rk-oob")
    value = np.random.default_rng(3).random(MB // 2)  # 4 MB
    r.write(value, location="a.pkl")
    RecordingPickle.allocated = []
    reader = S3Result(
        "rk-oob", prefix=prefix, endpoint_url=moto_server.url, serializer=RecordingPickle()
    )
    back = reader.read("a.pkl").value
    assert np.array_equal(back, value) and back.flags.writeable
    assert lies_in(back, RecordingPickle.allocated[-1])


def test_one_array_read_twice_is_one_object_and_several_arrays_each_have_their_place(tmp_path):
    a, b = np.arange(MB // 4, dtype=np.float64), np.ones(MB, dtype=np.uint8)
    r = LocalResult(dir=tmp_path)
    back = r.read(r.write({"a": a, "again": a, "b": b}, location="k.pkl").location).value
    assert back["a"] is back["again"]
    assert np.array_equal(back["a"], a) and np.array_equal(back["b"], b)
    back["a"][:] = 0
    assert back["b"].sum() == b.sum()  # no two arrays share memory


def test_a_read_only_array_reads_back_read_only_as_in_a_plain_pickle():
    value = np.arange(MB // 2, dtype=np.float64)
    value.flags.writeable = False
    s = PickleSerializer()
    back = s.deserialize(bytearray(s.serialize(value)))
    plain = pickle.loads(PickleSerializer(out_of_band=False).serialize(value))
    assert not back.flags.writeable and not plain.flags.writeable
    assert np.array_equal(back, value)


def test_pandas_dataframe_columns_are_read_in_place(tmp_path):
    n = 300_000
    df = pd.DataFrame({"i": np.arange(n), "f": np.linspace(0, 1, n), "s": ["ab", "c"] * (n // 2)})
    RecordingPickle.allocated = []
    r = LocalResult(dir=tmp_path, serializer=RecordingPickle())
    r.write(df, location="df.pkl")
    assert (tmp_path / "df.pkl").read_bytes().startswith(HEADER)
    back = r.read("df.pkl").value
    pd.testing.assert_frame_equal(back, df)
    column = back["f"].to_numpy()
    assert lies_in(column, RecordingPickle.allocated[0])
    back.loc[0, "f"] = 5.0  # writable
    assert back["f"].iloc[0] == 5.0


def test_pyarrow_table_round_trips_out_of_band(tmp_path):
    table = pa.table({"x": np.arange(400_000), "y": ["v"] * 400_000})
    r = MemoryResult()
    written = r.write(table, location="t.pkl")
    back = r.read(written.location).value
    assert back.equals(table)
    assert PickleSerializer().serialize(table).startswith(HEADER)


def test_plain_pickles_written_by_other_tools_still_read(tmp_path):
    """Prefect 1 targets, pickle.dumps of any protocol, resultkit before this layout."""
    big = np.random.default_rng(2).random(MB // 4)  # 2 MB, in band in these files
    r = LocalResult(dir=tmp_path)
    for protocol in range(6):
        (tmp_path / f"p{protocol}.pkl").write_bytes(pickle.dumps({"a": big}, protocol=protocol))
        back = r.adopt(f"p{protocol}.pkl").value  # deserialized, then given its record
        assert np.array_equal(back["a"], big)
        assert np.array_equal(r.read(f"p{protocol}.pkl").value["a"], big)
    (tmp_path / "prefect1.txt").write_bytes(cloudpickle.dumps(big))  # Prefect 1's serializer
    unverified = LocalResult(dir=tmp_path, verify=False)
    assert np.array_equal(unverified.read("prefect1.txt").value, big)
    plain = LocalResult(dir=tmp_path, serializer=PickleSerializer(out_of_band=False))
    plain.write(big, location="old.pkl")  # as resultkit wrote it before: same record name
    assert np.array_equal(r.read("old.pkl").value, big)


def test_no_plain_pickle_can_be_taken_for_the_layout_nor_the_layout_for_a_pickle():
    # No opcode is 0xff, so nothing pickle.loads accepts starts with the header...
    assert all(op.code.encode("latin-1") != HEADER[:1] for op in pickletools.opcodes)
    for protocol in range(6):
        for value in (HEADER, HEADER.decode("latin-1"), [HEADER] * 3, b"\xff" * 64):
            assert not is_layout(pickle.dumps(value, protocol=protocol))
    # ...and pickle.loads refuses the layout rather than return anything.
    laid_out = PickleSerializer().serialize(np.zeros(MB))
    with pytest.raises(pickle.UnpicklingError, match="invalid load key"):
        pickle.loads(laid_out)


def test_opt_out_writes_a_plain_pickle_that_pickle_load_reads(tmp_path):
    value = {"a": np.arange(MB, dtype=np.float32)}
    r = LocalResult(dir=tmp_path, serializer=PickleSerializer(out_of_band=False))
    r.write(value, location="plain.pkl")
    with open(tmp_path / "plain.pkl", "rb") as f:
        assert np.array_equal(pickle.load(f)["a"], value["a"])
    assert r.serializer.name == PickleSerializer().name == "pickle"  # records read either way


def test_load_pickle_opens_a_payload_outside_resultkit(tmp_path):
    value = {"a": np.arange(MB, dtype=np.int32), "n": 3}
    LocalResult(dir=tmp_path).write(value, location="x.pkl")
    back = load_pickle(tmp_path / "x.pkl")
    assert np.array_equal(back["a"], value["a"]) and back["n"] == 3 and back["a"].flags.writeable
    with open(tmp_path / "x.pkl", "rb") as f:
        assert np.array_equal(PickleSerializer().load(f)["a"], value["a"])

    class Unseekable:  # a socket-like stream: read() only
        def __init__(self, data):
            self.read = io.BytesIO(data).read

    for payload in ((tmp_path / "x.pkl").read_bytes(), pickle.dumps(value, protocol=5)):
        back = PickleSerializer().load(Unseekable(payload))
        assert np.array_equal(back["a"], value["a"]) and back["a"].flags.writeable


def test_read_only_bytes_still_give_writable_arrays():
    """verify=False and adopt pass bytes: the buffers are copied once so users can write."""
    value = np.arange(MB // 2, dtype=np.float64)
    back = PickleSerializer().deserialize(PickleSerializer().serialize(value))
    assert np.array_equal(back, value) and back.flags.writeable


def test_compressed_pickle_stays_in_band_and_reads_both_forms():
    s = CompressedSerializer(PickleSerializer(), format="zlib", level=1)
    value = np.arange(MB // 4, dtype=np.float64)
    data = s.serialize(value)
    import zlib

    assert np.array_equal(pickle.loads(zlib.decompress(data)), value)  # a plain pickle inside
    assert s.name == "compressed:zlib/pickle"
    laid_out = zlib.compress(PickleSerializer().serialize(value))  # should one exist: it reads
    assert np.array_equal(s.deserialize(laid_out), value)


def test_a_large_pickle_before_any_large_buffer_stays_plain():
    """Bytes are held only up to a limit while the layout is undecided: then a plain pickle."""
    value = [b"x" * 100_000, np.zeros(MB)]  # bytes past a frame are written at once
    out = io.BytesIO()
    writer = LayoutWriter(out, threshold=1000, hold_limit=4096)
    pickle.dump(value, writer, protocol=5, buffer_callback=writer.buffer)
    writer.finish()
    back = pickle.loads(out.getvalue())
    assert back[0] == value[0] and np.array_equal(back[1], value[1])


# -- damaged and hostile layouts (verify=False reads, adopted files, bugs) ----------------------


def laid_out() -> tuple[bytearray, int, int, list[tuple[int, int]]]:
    """A payload with two out-of-band buffers: (bytes, pickle length, table start, table)."""
    data = bytearray(
        PickleSerializer().serialize({"a": np.arange(MB // 8), "b": np.ones(MB, np.uint8)})
    )
    pickled, count, magic = struct.unpack("<QQ8s", data[-24:])
    assert magic == b"RKOOBEND" and count == 2
    start = len(data) - 24 - 16 * count
    table = [struct.unpack_from("<QQ", data, start + 16 * i) for i in range(count)]
    return data, pickled, start, table


def with_entry(i: int, offset: int, length: int) -> bytearray:
    data, _, start, _ = laid_out()
    struct.pack_into("<QQ", data, start + 16 * i, offset, length)
    return data


def with_footer(pickled: int | None = None, count: int | None = None, magic=b"RKOOBEND"):
    data, p, _, table = laid_out()
    data[-24:] = struct.pack("<QQ8s", p if pickled is None else pickled, count or 2, magic)
    return data


HOSTILE = {
    "offset past the end": (lambda: with_entry(1, 1 << 62, 8), "buffer 1 claims bytes"),
    "length past the end": (lambda: with_entry(0, laid_out()[3][0][0], 1 << 63), "buffer 0"),
    "offset into the pickle": (lambda: with_entry(0, 0, 64), "buffer 0 claims bytes 0..64"),
    "overlap": (lambda: with_entry(1, laid_out()[3][0][0], 64), "without overlap"),
    "unaligned": (lambda: with_entry(1, laid_out()[3][1][0] + 8, 8), "multiple of 64"),
    "huge count": (lambda: with_footer(count=1 << 60), "claims 1152921504606846976 buffers"),
    "huge pickle": (lambda: with_footer(pickled=1 << 40), "pickle stream of 1099511627776"),
    "no footer": (lambda: with_footer(magic=b"XXXXXXXX"), "has no footer"),
    "truncated": (lambda: laid_out()[0][: len(HEADER) + 10], "truncated"),
    "cut in the middle": (lambda: laid_out()[0][:MB], "has no footer"),
    "newer version": (lambda: bytearray(HEADER[:-3] + b"v9\n") + laid_out()[0][16:], "'v9'"),
    "a buffer fewer": (lambda: fewer_buffers(), "not enough out-of-band buffers"),
    "a buffer more": (lambda: more_buffers(), "lists 3 buffers but its pickle stream uses 2"),
}


def fewer_buffers() -> bytearray:
    data, pickled, start, table = laid_out()
    return (
        data[:start] + struct.pack("<QQ", *table[0]) + struct.pack("<QQ8s", pickled, 1, b"RKOOBEND")
    )


def more_buffers() -> bytearray:
    data, pickled, start, table = laid_out()
    (o0, n0), (o1, n1) = table  # an empty third buffer after the second: the pickle takes 2
    entries = struct.pack("<QQQQQQ", o0, n0, o1, n1, o1 + n1, 0)
    return data[:start] + entries + struct.pack("<QQ8s", pickled, 3, b"RKOOBEND")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_damaged_table_is_a_clear_error_naming_it(tmp_path, name):
    make, message = HOSTILE[name]
    payload = make()
    with pytest.raises(SerializationError, match=message):
        PickleSerializer().deserialize(payload)
    with pytest.raises(SerializationError, match=message):  # read-only bytes: same checks
        PickleSerializer().deserialize(bytes(payload))
    (tmp_path / "bad.pkl").write_bytes(payload)
    with pytest.raises(SerializationError, match=message) as caught:
        LocalResult(dir=tmp_path, verify=False).read("bad.pkl")
    assert str(caught.value.location).endswith("/bad.pkl")


def test_random_damage_to_the_table_never_escapes_as_anything_but_serialization_error():
    original, _, start, _ = laid_out()
    rng = random.Random(5)
    outcomes = set()
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(start, len(data))] = rng.randrange(256)
        try:
            back = PickleSerializer().deserialize(data)
        except SerializationError:
            outcomes.add("error")
        else:
            assert set(back) == {"a", "b"}  # a byte that changed nothing it uses
            outcomes.add("value")
    assert "error" in outcomes


def test_the_readme_recipe_opens_both_forms_without_resultkit(tmp_path):
    def load_resultkit_pickle(path):  # as in the README, standard library only
        with open(path, "rb") as f:
            data = bytearray(f.read())
        if not data.startswith(b"\xffRKPICKLEOOB v1\n"):
            return pickle.loads(data)
        size, count, _ = struct.unpack("<QQ8s", data[-24:])
        table = struct.unpack(f"<{2 * count}Q", data[-24 - 16 * count : -24])
        view = memoryview(data)
        buffers = [view[o : o + n] for o, n in zip(table[::2], table[1::2], strict=True)]
        return pickle.loads(view[16 : 16 + size], buffers=buffers)

    value = {"a": np.arange(MB, dtype=np.int16), "b": np.ones(MB // 4), "n": 1}
    LocalResult(dir=tmp_path).write(value, location="x.pkl")
    LocalResult(dir=tmp_path).write({"n": 2}, location="small.pkl")
    back = load_resultkit_pickle(tmp_path / "x.pkl")
    assert np.array_equal(back["a"], value["a"]) and np.array_equal(back["b"], value["b"])
    assert load_resultkit_pickle(tmp_path / "small.pkl") == {"n": 2}


def test_a_large_bytearray_stays_in_band_and_round_trips_as_a_bytearray():
    value = bytearray(b"ab" * MB)
    data = PickleSerializer().serialize(value)
    assert not is_layout(data)  # pickle writes a bytearray itself (BYTEARRAY8), no buffer
    back = PickleSerializer().deserialize(bytearray(data))
    assert type(back) is bytearray and back == value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"out_of_band": "yes"}, "give True, False"),
        ({"protocol": 4, "out_of_band": True}, "need protocol 5"),
    ],
)
def test_bad_out_of_band_settings_are_refused(kwargs, message):
    from resultkit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        PickleSerializer(**kwargs)
    assert PickleSerializer(protocol=4).out_of_band is False  # in band below protocol 5


def test_a_serializer_pickled_by_an_older_resultkit_unpickles_equal():
    old = PickleSerializer.__new__(PickleSerializer)
    old.__dict__.update({"protocol": 5})  # what an older release pickled
    revived = pickle.loads(pickle.dumps(old))
    assert revived == PickleSerializer() and revived.out_of_band

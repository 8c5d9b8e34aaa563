"""CompressedSerializer: levels honoured per format, and Prefect 1's compress/decompress form."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import zlib

import pytest

from resultkit.errors import ConfigurationError, SerializationError
from resultkit.serializers import CompressedSerializer, JSONSerializer, PickleSerializer

VALUE = {"text": "abc" * 10_000}
RAW = PickleSerializer().serialize(VALUE)

# format -> (lowest level, highest level)
RANGES = {
    "zlib": (-1, 9),
    "gzip": (0, 9),
    "bz2": (1, 9),
    "lzma": (0, 9),
    "zstd": (-131072, 22),
    "lz4": (0, 16),
}


# -- levels -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zlib", "gzip"])
def test_level_zero_stores_uncompressed(fmt):
    """gzip and zlib level 0 means 'no compression' (it used to become 9 for gzip)."""
    s = CompressedSerializer(PickleSerializer(), format=fmt, level=0)
    data = s.serialize(VALUE)
    assert len(data) > len(RAW)  # stored blocks: the raw bytes plus framing
    assert RAW in data
    assert s.deserialize(data) == VALUE


def test_bz2_refuses_level_zero_naming_range():
    with pytest.raises(ConfigurationError, match=r"bz2.*1 to 9") as info:
        CompressedSerializer(format="bz2", level=0)
    assert "level=1" in str(info.value)  # says what to use instead


def test_lz4_level_zero_is_its_default_fast_level():
    default = CompressedSerializer(format="lz4").serialize(VALUE)
    zero = CompressedSerializer(format="lz4", level=0)
    assert zero.serialize(VALUE) == default
    high = CompressedSerializer(format="lz4", level=16).serialize(VALUE)
    assert zero.deserialize(high) == VALUE


@pytest.mark.parametrize("fmt", sorted(RANGES))
def test_every_level_in_range_roundtrips(fmt):
    lo, hi = RANGES[fmt]
    for level in {lo, max(lo, 0), min(max(lo, 1), hi), hi}:
        s = CompressedSerializer(format=fmt, level=level)
        assert s.deserialize(s.serialize(VALUE)) == VALUE, level


@pytest.mark.parametrize("fmt", sorted(RANGES))
def test_out_of_range_level_names_format_and_range(fmt):
    lo, hi = RANGES[fmt]
    for level in (lo - 1, hi + 1):
        with pytest.raises(ConfigurationError) as info:
            CompressedSerializer(format=fmt, level=level)
        msg = str(info.value)
        assert repr(fmt) in msg and f"{lo} to {hi}" in msg, msg


@pytest.mark.parametrize("level", ["9", 4.5, True])
def test_level_must_be_an_int(level):
    with pytest.raises(ConfigurationError, match="integer level"):
        CompressedSerializer(format="gzip", level=level)


def test_lzma_extreme_preset_is_accepted():
    s = CompressedSerializer(format="lzma", level=6 | lzma.PRESET_EXTREME)
    assert s.deserialize(s.serialize(VALUE)) == VALUE


def test_gzip_level_changes_bytes_and_default_is_nine():
    fast = CompressedSerializer(format="gzip", level=1).serialize(VALUE)
    default = CompressedSerializer(format="gzip").serialize(VALUE)
    assert default == CompressedSerializer(format="gzip", level=9).serialize(VALUE)
    assert gzip.decompress(fast) == gzip.decompress(default) == RAW


def test_level_does_not_change_the_name():
    """Any level reads back with the same decoder: a level change is not a mismatch."""
    for fmt in RANGES:
        lo, hi = RANGES[fmt]
        assert (
            CompressedSerializer(format=fmt, level=hi).name
            == CompressedSerializer(format=fmt).name
            == f"compressed:{fmt}/pickle"
        )
    writer = CompressedSerializer(format="gzip", level=1)
    assert CompressedSerializer(format="gzip").deserialize(writer.serialize(VALUE)) == VALUE


# -- Prefect 1 signature ----------------------------------------------------


def test_prefect1_compress_decompress_callables():
    s = CompressedSerializer(PickleSerializer(), compress=bz2.compress, decompress=bz2.decompress)
    data = s.serialize(VALUE)
    assert bz2.decompress(data) == RAW
    assert s.deserialize(data) == VALUE


def test_prefect1_positional_form():
    s = CompressedSerializer(JSONSerializer(), None, zlib.compress, zlib.decompress)
    assert zlib.decompress(s.serialize([1, 2])) == b"[1, 2]"


def test_prefect1_kwargs_reach_the_callables():
    s = CompressedSerializer(
        PickleSerializer(),
        compress=zlib.compress,
        decompress=zlib.decompress,
        compress_kwargs={"level": 0, "wbits": -15},
        decompress_kwargs={"wbits": -15},
    )
    data = s.serialize(VALUE)
    assert RAW in data  # level 0, raw deflate
    assert s.deserialize(data) == VALUE


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [
        ("gzip", {"compresslevel": 0}),
        ("zlib", {"level": 0}),
        ("lzma", {"preset": 0}),
        ("bz2", {"compresslevel": 1}),
    ],
)
def test_prefect1_format_with_compress_kwargs_level(fmt, kwargs):
    """Prefect 1 passed compress_kwargs to the module's compress(): its level keyword works."""
    s = CompressedSerializer(PickleSerializer(), format=fmt, compress_kwargs=kwargs)
    level = next(iter(kwargs.values()))
    assert s.level == level
    assert s.serialize(VALUE) == CompressedSerializer(format=fmt, level=level).serialize(VALUE)


def test_format_with_other_compress_kwargs_is_refused_with_the_fix():
    with pytest.raises(ConfigurationError, match="compresslevel") as info:
        CompressedSerializer(format="gzip", compress_kwargs={"compresslvl": 1})
    assert "did you mean 'compresslevel'" in str(info.value)
    with pytest.raises(ConfigurationError, match="compress=/decompress="):
        CompressedSerializer(format="lzma", decompress_kwargs={"memlimit": 10})
    with pytest.raises(ConfigurationError, match="twice"):
        CompressedSerializer(format="gzip", level=1, compress_kwargs={"compresslevel": 2})


def test_both_format_and_callables_is_an_error():
    with pytest.raises(ConfigurationError, match="either format= or compress=/decompress="):
        CompressedSerializer(format="zlib", compress=zlib.compress, decompress=zlib.decompress)


def test_neither_format_nor_callables_is_an_error():
    with pytest.raises(ConfigurationError, match="format=.*or compress=/decompress="):
        CompressedSerializer(PickleSerializer(), format=None)


@pytest.mark.parametrize("given", ["compress", "decompress"])
def test_only_one_callable_is_an_error(given):
    kwargs = {given: zlib.compress if given == "compress" else zlib.decompress}
    missing = "decompress" if given == "compress" else "compress"
    with pytest.raises(ConfigurationError, match=f"{missing}= is missing"):
        CompressedSerializer(PickleSerializer(), **kwargs)


def test_callables_must_be_callable_and_level_goes_in_kwargs():
    with pytest.raises(ConfigurationError, match="level="):
        CompressedSerializer(PickleSerializer(), "gzip", 5)  # old positional level
    with pytest.raises(ConfigurationError, match="compress_kwargs"):
        CompressedSerializer(compress=zlib.compress, decompress=zlib.decompress, level=1)


def test_callable_kwargs_are_checked_at_construction():
    with pytest.raises(ConfigurationError, match="did you mean 'level'"):
        CompressedSerializer(
            compress=zlib.compress, decompress=zlib.decompress, compress_kwargs={"levl": 1}
        )
    with pytest.raises(ConfigurationError, match="decompress_kwargs"):
        CompressedSerializer(
            compress=gzip.compress, decompress=gzip.decompress, decompress_kwargs={"level": 1}
        )


def test_callable_returning_non_bytes_is_a_serialization_error():
    s = CompressedSerializer(compress=lambda b: b.hex(), decompress=bytes.fromhex)
    with pytest.raises(SerializationError, match="must return bytes"):
        s.serialize(1)


def test_callable_failure_on_read_is_serialization_error():
    s = CompressedSerializer(compress=bz2.compress, decompress=bz2.decompress)
    with pytest.raises(SerializationError, match="bz2.decompress"):
        s.deserialize(b"not bz2")


def _shrink(data: bytes) -> bytes:
    return zlib.compress(data)


def _grow(data: bytes) -> bytes:
    return zlib.decompress(data)


def test_callable_names_are_stable_and_distinct():
    pair = CompressedSerializer(compress=bz2.compress, decompress=bz2.decompress)
    assert pair.name == "compressed:custom(bz2.compress,bz2.decompress)/pickle"
    again = CompressedSerializer(
        PickleSerializer(), compress=bz2.compress, decompress=bz2.decompress
    )
    assert again.name == pair.name and again == pair
    mine = CompressedSerializer(JSONSerializer(), compress=_shrink, decompress=_grow)
    assert mine.name == f"compressed:custom({__name__}._shrink,{__name__}._grow)/json"
    partial = CompressedSerializer(
        compress=functools.partial(lzma.compress, preset=1), decompress=lzma.decompress
    )
    assert partial.name == "compressed:custom(lzma.compress,lzma.decompress)/pickle"
    names = {
        pair.name,
        mine.name,
        partial.name,
        CompressedSerializer(format="bz2").name,
        CompressedSerializer(compress=zlib.compress, decompress=zlib.decompress).name,
    }
    assert len(names) == 5


def test_format_names_unchanged():
    assert CompressedSerializer().name == "compressed:zlib/pickle"
    assert CompressedSerializer(JSONSerializer(), "gzip").name == "compressed:gzip/json"
    assert CompressedSerializer(serializer=JSONSerializer(), format="zstd", level=1).name == (
        "compressed:zstd/json"
    )


def test_callable_must_take_the_bytes():
    with pytest.raises(ConfigurationError, match="must take data as positional"):
        CompressedSerializer(compress=lambda: b"", decompress=zlib.decompress)

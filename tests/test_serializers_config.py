"""Serializer constructors refuse wrong arguments at once, and every message says the fix."""

from __future__ import annotations

import zlib

import pytest

from resultkit.errors import ConfigurationError, SerializationError
from resultkit.serializers import (
    CompressedSerializer,
    JSONSerializer,
    PandasSerializer,
    PickleSerializer,
)


def test_pandas_serialize_kwargs_typo_fails_at_construction():
    with pytest.raises(ConfigurationError, match="did you mean 'index'") as info:
        PandasSerializer("csv", serialize_kwargs={"indx": False})
    assert "to_csv" in str(info.value)


def test_pandas_deserialize_kwargs_typo_fails_at_construction():
    with pytest.raises(ConfigurationError, match="did you mean 'na_values'") as info:
        PandasSerializer("csv", deserialize_kwargs={"na_value": [3]})
    assert "read_csv" in str(info.value)


def test_pandas_kwargs_may_not_name_the_file():
    with pytest.raises(ConfigurationError, match="path_or_buf"):
        PandasSerializer("csv", serialize_kwargs={"path_or_buf": "x.csv"})


def test_pandas_valid_kwargs_still_work():
    s = PandasSerializer(
        "csv", serialize_kwargs={"sep": ":", "index": False}, deserialize_kwargs={"sep": ":"}
    )
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2]})
    pd.testing.assert_frame_equal(s.deserialize(s.serialize(df)), df)
    # formats whose writer takes **kwargs (passed to the engine) are not second-guessed
    PandasSerializer("parquet", serialize_kwargs={"row_group_size": 10})


def test_pandas_unknown_file_type_suggests_near_name():
    with pytest.raises(ConfigurationError, match="did you mean 'csv'"):
        PandasSerializer("CSV")
    with pytest.raises(ConfigurationError, match="did you mean 'parquet'"):
        PandasSerializer("parqet")


def test_compressed_unknown_format_suggests_near_name():
    with pytest.raises(ConfigurationError, match="did you mean 'gzip'"):
        CompressedSerializer(format="gz")
    with pytest.raises(ConfigurationError, match="did you mean 'lzma'"):
        CompressedSerializer(format="xz")


def test_compressed_module_as_format_says_how():
    with pytest.raises(ConfigurationError, match="format='zlib'"):
        CompressedSerializer(format=zlib)  # type: ignore[arg-type]


def test_compressed_serializer_class_instead_of_instance():
    with pytest.raises(ConfigurationError, match=r"PickleSerializer\(\)"):
        CompressedSerializer(PickleSerializer)  # type: ignore[arg-type]


def test_compressed_format_name_in_serializer_slot():
    with pytest.raises(ConfigurationError, match="format='gzip'"):
        CompressedSerializer("gzip")  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["5", 4.0, True])
def test_pickle_protocol_must_be_an_int(protocol):
    with pytest.raises(ConfigurationError, match="protocol"):
        PickleSerializer(protocol=protocol)


def test_json_indent_is_checked():
    with pytest.raises(ConfigurationError, match="indent"):
        JSONSerializer(indent=[2])  # type: ignore[arg-type]
    assert JSONSerializer(indent=2).serialize([1]) == b"[\n  1\n]"
    assert JSONSerializer(indent="\t").serialize([1]) == b"[\n\t1\n]"


def test_deserialize_error_says_to_use_the_writing_serializer():
    """Advice for a bad payload is about the payload, not about choosing another serializer."""
    with pytest.raises(SerializationError) as info:
        JSONSerializer().deserialize(b"\x80\x05not json")
    msg = str(info.value)
    assert "serializer that wrote" in msg
    assert "supports this value" not in msg


def test_serialize_error_still_suggests_pickle():
    with pytest.raises(SerializationError, match="PickleSerializer handles"):
        JSONSerializer().serialize({1, 2})

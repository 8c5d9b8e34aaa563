"""A serializer from the name a record carries (``pickle``, ``json``, ``compressed:zlib/pickle``...)."""

from __future__ import annotations

from ..errors import ConfigurationError, ResultKitError
from ..serializers import (
    CompressedSerializer,
    DateTimeSerializer,
    JSONSerializer,
    PandasSerializer,
    PickleSerializer,
    Serializer,
)
from ._common import CliError, shown

__all__ = ["serializer_named", "SERIALIZER_NAMES"]

#: The names ``--serializer`` takes (pandas and compressed ones are built from their parts).
SERIALIZER_NAMES = (
    "pickle, json, datetime, pandas:<parquet|csv|...>, compressed:<zlib|gzip|...>/<inner>"
)


def serializer_named(name: str, url: str = "") -> Serializer:
    """The serializer whose recorded name is ``name``.

    >>> serializer_named("compressed:gzip/json").name
    'compressed:gzip/json'
    """
    try:
        return _build(name)
    except CliError:
        raise
    except ResultKitError as exc:
        raise CliError(
            f"{shown(url) + ': ' if url else ''}serializer {shown(name)!r}: {exc}"
        ) from None


def _build(name: str) -> Serializer:
    simple = {"pickle": PickleSerializer, "json": JSONSerializer, "datetime": DateTimeSerializer}
    if name in simple:
        return simple[name]()
    kind, _, rest = name.partition(":")
    if kind == "pandas" and rest:
        return PandasSerializer(rest)
    if kind == "compressed" and "/" in rest and not rest.startswith("custom("):
        fmt, _, inner = rest.partition("/")
        return CompressedSerializer(_build(inner), format=fmt)
    if kind == "compressed" and rest.startswith("custom("):
        raise ConfigurationError(
            "it uses custom compress/decompress functions, which the command line cannot "
            "rebuild; read it in Python with the same CompressedSerializer"
        )
    raise CliError(f"unknown serializer {shown(name)!r}; use one of: {SERIALIZER_NAMES}")

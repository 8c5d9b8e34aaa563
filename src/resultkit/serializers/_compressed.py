"""Compression around any other serializer."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigurationError
from ._base import Serializer, WritableStream
from ._checks import check_call_kwargs, did_you_mean, qualified_name
from ._codecs import FORMATS, Codec, codec
from ._pickle import PickleSerializer

__all__ = ["CompressedSerializer"]

_DEFAULT_FORMAT = "zlib"
_UNSET: Any = object()  # format= not given: zlib, unless compress/decompress are


class CompressedSerializer(Serializer):
    """Compresses the bytes of another serializer.

    Either name a ``format`` or, as in Prefect 1, give a pair of functions
    ``compress(bytes) -> bytes`` and ``decompress(bytes) -> bytes``.

    Args:
        serializer: the inner serializer (default :class:`PickleSerializer`; a
            pickle inside compression is always a plain one, in band).
        format: ``zlib`` (the default), ``gzip``, ``bz2``, ``lzma`` (standard
            library), ``zstd`` or ``lz4`` (``pip install 'resultkit[compression]'``).
        compress: a function that compresses the inner serializer's bytes
            (instead of ``format``; needs ``decompress``).
        decompress: the function that undoes ``compress``.
        compress_kwargs: keywords for ``compress``. With ``format``, only the
            format's level keyword (Prefect 1 passed these to e.g.
            ``gzip.compress``): ``level`` (zlib, zstd), ``compresslevel``
            (gzip, bz2), ``preset`` (lzma), ``compression_level`` (lz4).
        decompress_kwargs: keywords for ``decompress`` (callables only).
        level: compression level for ``format``; ``None`` takes the format's
            default. Level 0 is honoured: no compression for zlib and gzip,
            lz4's default fast mode; bz2 has levels 1 to 9 only.

    Writing streams with a ``format``: the inner serializer writes into the
    compressor, which writes into the file, so a large value is never held
    twice in memory. User callables work on whole byte strings.

    The :attr:`name` says how to read the bytes back: ``compressed:<format>/<inner>``,
    or ``compressed:custom(<compress>,<decompress>)/<inner>`` from the
    functions' qualified names. The level is not part of it (every level
    reads back with the same decoder), nor are the kwargs; give distinct
    named functions for formats that need distinct decoders (two lambdas of
    one scope share a qualified name).

    Example:
        >>> s = CompressedSerializer(PickleSerializer(), format="gzip")
        >>> s.name
        'compressed:gzip/pickle'
        >>> import bz2
        >>> CompressedSerializer(compress=bz2.compress, decompress=bz2.decompress).name
        'compressed:custom(bz2.compress,bz2.decompress)/pickle'
    """

    def __init__(
        self,
        serializer: Serializer | None = None,
        format: str | None = _UNSET,
        compress: Callable[..., bytes] | None = None,
        decompress: Callable[..., bytes] | None = None,
        compress_kwargs: Mapping[str, Any] | None = None,
        decompress_kwargs: Mapping[str, Any] | None = None,
        *,
        level: int | None = None,
    ) -> None:
        self.serializer = _inner(serializer)
        self.compress_kwargs = dict(compress_kwargs or {})
        self.decompress_kwargs = dict(decompress_kwargs or {})
        self.compress: Callable[..., bytes] | None = None
        self.decompress: Callable[..., bytes] | None = None
        self.format: str | None = None
        self.level: int | None = None
        for role, fn in (("compress", compress), ("decompress", decompress)):
            if fn is not None and not callable(fn):
                raise ConfigurationError(
                    f"CompressedSerializer({role}=...) takes a function bytes -> bytes, got "
                    f"{type(fn).__name__} {fn!r}; for a compression level use "
                    "format=... with level=... (level is keyword-only)"
                )
        if compress is None and decompress is None:
            self._init_format(_DEFAULT_FORMAT if format is _UNSET else format, level)
        else:
            if format is not _UNSET and format is not None:
                raise ConfigurationError(
                    f"CompressedSerializer takes either format= or compress=/decompress=, "
                    f"not both (got format={format!r} and functions); drop one"
                )
            self._init_callables(compress, decompress, level)

    # -- construction -------------------------------------------------------
    def _init_format(self, format: object, level: int | None) -> None:
        if format is None:
            raise ConfigurationError(
                "CompressedSerializer needs a format= (one of: "
                f"{', '.join(FORMATS)}) or compress=/decompress= functions; got neither"
            )
        fmt = codec(format)
        if self.decompress_kwargs:
            raise ConfigurationError(
                f"CompressedSerializer(format={fmt.name!r}) takes no decompress_kwargs "
                f"(got {sorted(self.decompress_kwargs)}); to pass options to the decoder, "
                "give compress=/decompress= functions instead of format="
            )
        level = _level_from_kwargs(fmt, level, self.compress_kwargs)
        fmt.check_level(level)
        self.compress_kwargs = {}  # now in self.level: equal configurations compare equal
        self.format = fmt.name
        self.level = level
        self.name = f"compressed:{fmt.name}/{self.serializer.name}"

    def _init_callables(self, compress: object, decompress: object, level: int | None) -> None:
        for role, fn in (("compress", compress), ("decompress", decompress)):
            if fn is None:
                other = "decompress" if role == "compress" else "compress"
                raise ConfigurationError(
                    f"CompressedSerializer: {role}= is missing; give both compress= and "
                    f"decompress= (it was given {other}=), or a format= instead"
                )
        if level is not None:
            raise ConfigurationError(
                "CompressedSerializer: level= applies to format=; with compress=/decompress= "
                "pass the level in compress_kwargs (e.g. compress_kwargs={'level': 1})"
            )
        assert callable(compress) and callable(decompress)
        for where, fn, kwargs in (
            ("compress_kwargs", compress, self.compress_kwargs),
            ("decompress_kwargs", decompress, self.decompress_kwargs),
        ):
            check_call_kwargs(
                "CompressedSerializer", where, qualified_name(fn), fn, kwargs, ("data",)
            )
        self.compress, self.decompress = compress, decompress
        self.name = (
            f"compressed:custom({qualified_name(compress)},{qualified_name(decompress)})"
            f"/{self.serializer.name}"
        )

    # -- serializing --------------------------------------------------------
    def _codec(self) -> Codec:
        assert self.format is not None
        return FORMATS[self.format]

    def dump(self, value: Any, stream: WritableStream) -> None:
        if self.compress is not None:
            stream.write(self.serialize(value))
            return
        writer = self._codec().writer(stream, self.level)
        try:
            self.serializer.dump(value, writer)
        finally:
            writer.close()  # flushes the compressor's tail; leaves `stream` open

    def serialize(self, value: Any) -> bytes:
        if self.compress is None:
            buf = io.BytesIO()
            self.dump(value, buf)
            return buf.getvalue()
        raw = self.serializer.serialize(value)
        try:
            out = self.compress(raw, **self.compress_kwargs)
        except Exception as exc:
            raise self._fail("serialize", value, exc) from exc
        if not isinstance(out, (bytes, bytearray, memoryview)):
            raise self._fail(
                "serialize",
                value,
                TypeError(
                    f"compress={qualified_name(self.compress)} must return bytes, "
                    f"got {type(out).__name__}"
                ),
            )
        return bytes(out)

    def deserialize(self, data: bytes) -> Any:
        try:
            if self.decompress is not None:
                raw = self.decompress(bytes(data), **self.decompress_kwargs)
            else:
                raw = self._codec().decoder()(bytes(data))
        except Exception as exc:
            raise self._fail("deserialize", data, exc) from exc
        return self.serializer.deserialize(raw)


def _inner(serializer: object) -> Serializer:
    # Pickles inside compression stay plain (in band): ``decompress`` then
    # ``pickle.loads`` opens them, and the decompressed bytes are a copy
    # anyway, so buffers laid out of band would save nothing.
    if serializer is None:
        return PickleSerializer(out_of_band=False)
    if isinstance(serializer, PickleSerializer):
        return serializer.in_band()
    if isinstance(serializer, Serializer):
        return serializer
    if isinstance(serializer, type) and issubclass(serializer, Serializer):
        fix = f"pass an instance: CompressedSerializer({serializer.__name__}(), ...)"
    elif isinstance(serializer, str) and serializer in FORMATS:
        fix = f"to choose the compression, pass format={serializer!r}"
    else:
        fix = "pass one, e.g. PickleSerializer() or JSONSerializer()"
    raise ConfigurationError(
        f"CompressedSerializer wraps a Serializer, got {type(serializer).__name__} "
        f"{serializer!r}; {fix}"
    )


def _level_from_kwargs(fmt: Codec, level: int | None, kwargs: dict[str, Any]) -> int | None:
    """Prefect 1 gave a format's level as compress_kwargs; take it from there."""
    unknown = [k for k in kwargs if k != fmt.level_keyword]
    if unknown:
        raise ConfigurationError(
            f"CompressedSerializer(format={fmt.name!r}) takes only "
            f"compress_kwargs={{{fmt.level_keyword!r}: ...}} (or level=), got {unknown[0]!r}"
            f"{did_you_mean(unknown[0], [fmt.level_keyword])}; for other options of the "
            "compressor give compress=/decompress= functions instead of format="
        )
    if fmt.level_keyword in kwargs:
        if level is not None:
            raise ConfigurationError(
                f"CompressedSerializer(format={fmt.name!r}) got the level twice, as level= "
                f"and compress_kwargs[{fmt.level_keyword!r}]; give one"
            )
        level = kwargs[fmt.level_keyword]
    return level
